"""NDJSON, the rule (docs/behaviour.md, Input): one event per line, blank lines ignored, a line
longer than --max-line-bytes reported, never buffered. Segment's exports are written so.

The last format of the registry: it claims whatever no other format did. The only splittable one:
--workers cuts a plain local file of it into byte ranges at the very places these blocks end
(`reader.plain_ranges`), and `pipeline/parallel.py` reads them the way this module does.

Blocks are made per read (about decompress.CHUNK_SIZE bytes, ending at its last newline), never
per line: the lines are cut by memchr (`lines.cut_lines`) where the block is translated.
"""

from __future__ import annotations

from collections.abc import Iterator

from recombee_cli.sources.blocks import Block, starting_at
from recombee_cli.sources.formats.base import ReadOptions, stopped
from recombee_cli.sources.lines import blank_free_segments, count_newlines, cut_lines

__all__ = ["NDJSON", "Ndjson"]


class Ndjson:
    """One event per line: the InputFormat every input is unless another format claims it."""

    name = "ndjson"
    splittable = True

    def sniff(self, head: bytes, name: str) -> bool:
        return True

    def blocks(self, chunks: Iterator[bytes], options: ReadOptions) -> Iterator[Block]:
        """A source's physical lines in blocks of one read each (blank ones included).

        A line longer than `max_line_bytes` is not buffered: it becomes an error entry. Damaged
        data ends the source: every complete line before the damage comes in blocks as usual, then
        one error entry (`base.stopped`) stands for the rest (a last line cut off by the damage is
        part of it). Lines that start before `start_offset` are left out; an error entry never is."""
        name, max_line_bytes, start_offset, split = (options.source.name, options.max_line_bytes,
                                                     options.start_offset, options.split)
        progress = options.progress
        number = 1          # line number of the next line
        offset = 0          # byte offset where the next line (`pending`) starts
        pending = b""       # the start of a line whose newline has not been read yet
        skipping = 0        # > 0: the bytes so far of an over-long line being discarded
        too_long = f"line longer than {max_line_bytes} bytes (skipped)"
        while True:
            if progress is not None:
                progress()
            try:
                chunk = next(chunks, b"")
            except Exception as exc:  # noqa: BLE001 - damage ends this source, not the run
                # The line being read when the damage came has no newline: it is part of the damage.
                yield stopped(name, number, offset, exc)
                return
            if not chunk:
                lines: list[bytes] = []
                errors: dict[int, str] = {}
                lengths: dict[int, int] = {}
                if skipping:
                    errors[0], lengths[0] = too_long, skipping
                    lines.append(b"")
                elif pending:
                    lines.append(pending)
                if lines:
                    kept = starting_at(Block(name, number, offset, lines=lines, errors=errors or None,
                                             lengths=lengths or None), start_offset)
                    if kept is not None:
                        yield kept
                return
            cut = chunk.rfind(b"\n")
            if cut < 0:   # no newline in this read
                if skipping:
                    skipping += len(chunk)
                else:
                    pending += chunk
                    if len(pending) > max_line_bytes:
                        skipping, pending = len(pending), b""
                continue
            head = memoryview(chunk)[:cut]   # copied once, below, into the block's bytes
            if skipping:   # the rest of an over-long line ends here: it stays an empty line
                first = chunk.find(b"\n", 0, cut)
                first = cut if first < 0 else first
                block = Block(name, number, offset, data=bytes(head[first:]), errors={0: too_long},
                              lengths={0: skipping + first})
                skipping = 0
            else:
                data = b"".join((pending, head))
                parts = blank_free_segments(data)
                if parts is not None:   # long runs of blank lines: only the rest becomes blocks
                    for first, begin, end in parts:
                        part = data[begin:end]
                        block = Block(name, number + first, offset + begin, data=part,
                                      lines=cut_lines(part) if split else None)
                        if end - begin > max_line_bytes:
                            block.mark_too_long(max_line_bytes, too_long)
                        kept = starting_at(block, start_offset)
                        if kept is not None:
                            yield kept
                    number += count_newlines(data) + 1
                    offset += len(data) + 1
                    pending = chunk[cut + 1:]
                    if len(pending) > max_line_bytes:
                        skipping, pending = len(pending), b""
                    continue
                block = Block(name, number, offset, data=data, lines=cut_lines(data) if split else None)
            if len(head) + len(pending) > max_line_bytes:
                block.mark_too_long(max_line_bytes, too_long)
            number += block.count
            offset = block.end()
            pending = chunk[cut + 1:]
            if len(pending) > max_line_bytes:
                skipping, pending = len(pending), b""
            kept = starting_at(block, start_offset)
            if kept is not None:
                yield kept


NDJSON = Ndjson()
