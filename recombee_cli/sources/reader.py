"""Read stage: input arguments -> sources -> physical lines with their origin.

Files, folders (recursive, sorted by path), glob patterns, `-` for stdin and remote URLs (fsspec).
Compression is sniffed from the first bytes, never from the file name, because S3 often serves
Segment's `.gz` objects already decompressed. Lines are cut from large chunks so memory stays flat
and the per-line cost stays low; a line longer than `max_line_bytes` is reported, not buffered.

The stage's parts: `base` (Source, Line, display_name), `local` (paths, folders, globs, streams),
`remote` (object stores), `decompress` (the codecs). This module sends each argument to `local` or
`remote` (`expand_inputs`) and cuts the decoded bytes into lines and blocks (`read_blocks`); for
--workers it also says where a plain file's blocks are, for the workers to read them (`plain_ranges`).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator

from recombee_cli.sources import decompress
from recombee_cli.sources.base import Line, Source, Warn, display_name, one_line, quiet
from recombee_cli.sources.blocks import Block, pieces, starting_at
from recombee_cli.sources.dayfolders import (
    CLOCK_SKEW_SECONDS,
    LATE_ARRIVAL_DAYS,
    folder_outside_window,
    glob_skip,
    received_day,
)
from recombee_cli.sources.decompress import DamagedData, ReadFailed, compressed, decoded, decompressed
from recombee_cli.sources.lines import blank_free_segments, cut_lines
from recombee_cli.sources.local import expand_local, stdin_source
from recombee_cli.sources.remote import expand_remote

# What the read stage offers: the reader's own names, and those of the modules it is made of that
# its callers use (a Source, a Line, a name for messages, Segment's day folders).
__all__ = [
    "DEFAULT_MAX_LINE_BYTES", "Block", "DamagedData", "Line", "ReadProgress", "Source", "Warn",
    "decompressed", "display_name", "expand_inputs", "is_remote", "pieces", "plain_ranges", "read_blocks",
    "read_lines",
    "CLOCK_SKEW_SECONDS", "LATE_ARRIVAL_DAYS", "folder_outside_window", "glob_skip", "received_day",
]

DEFAULT_MAX_LINE_BYTES = 16 << 20  # Segment caps a message at 32 KB; 16 MiB is generous.


def is_remote(arg: str) -> bool:
    return "://" in arg and not arg.startswith("file://")


def expand_inputs(args: list[str], *, window: tuple[float | None, float | None] | None = None,
                  warn: Warn | None = None, skipped: list[str] | None = None,
                  empty: list[str] | None = None) -> list[Source]:
    """Turn command-line inputs into sources, in the order given; folders and globs sorted by path.

    - A path that exists and is not a folder is read: a regular file (resumable, known by its
      resolved path) or a stream (pipe, `<(zcat day.gz)`, /dev/stdin, a device: `identity` and
      `key` None, nothing to resume). Inside folders and glob matches only regular files are read.
    - `window` = (since, until), epoch seconds or None: Segment's `<epoch-ms>` day folders found
      inside folders (local or remote) or by a pattern's wildcards that cannot hold an event of the
      window are not listed or read; the path (or URL) of each is appended to `skipped`, a list
      the caller owns, so it can say "N folders skipped (received outside the window)".
    - `warn(message)` gets a one-line message for each thing skipped (symbolic link loops, dangling
      links, pipes inside folders, a file named twice); default: nothing is said.
    - `empty`, a list the caller owns, gets each folder (or prefix) that held no file to read, the
      window aside: a wrong path more often than a quiet day.
    """
    warn = warn or quiet
    sources: list[Source] = []
    for arg in args:
        before, left_out = len(sources), len(skipped) if skipped is not None else 0
        if arg == "-":
            sources.append(stdin_source())
        elif is_remote(arg):
            sources.extend(expand_remote(arg, window=window, warn=warn, skipped=skipped))
        else:
            sources.extend(expand_local(arg, window=window, warn=warn, skipped=skipped))
        if empty is not None and len(sources) == before and (skipped is None or len(skipped) == left_out):
            empty.append(arg)
    return _read_once(sources, warn)


def _read_once(sources: list[Source], warn: Warn) -> list[Source]:
    """Each file once, though named twice (`a.gz ./a.gz`, a symbolic link beside its target): the
    state knows a file by its resolved path, and a second read would send its events again."""
    first: dict[str, str] = {}
    kept, again = [], []
    for source in sources:
        if source.key is None:
            kept.append(source)
        elif source.key in first:
            again.append((source.name, first[source.key]))
        else:
            first[source.key] = source.name
            kept.append(source)
    for name, earlier in again[:5]:
        warn(f"{display_name(name)}: the same file as {display_name(earlier)}; read once")
    if len(again) > 5:
        warn(f"{len(again) - 5} more paths name files already listed; each file is read once")
    return kept


class ReadProgress:
    """Raw (compressed) bytes consumed so far across sources, for progress bars."""

    __slots__ = ("done", "_base")

    def __init__(self) -> None:
        self.done = 0
        self._base = 0

    def finish_source(self, size: int | None) -> None:
        self._base += size or 0
        self.done = self._base

    def reached(self, offset: int) -> None:
        """The current source is read up to `offset` (raw bytes)."""
        self.done = self._base + offset


# ---------------------------------------------------------------------------------------------
# One JSON document spanning lines (a pretty-printed event, or an array of events), as people
# paste them from Segment's debugger or write them by hand. NDJSON is the rule; an input is read
# as one document only when its first non-blank line starts with `{` or `[` and is not a complete
# JSON value by itself, and the whole input then parses as one JSON value (else it is read as lines,
# each with its reason). The document is held in memory, so it may be at most `max_line_bytes`
# (--max-line-bytes, 16 MiB by default) decoded bytes: a larger input is read as lines, with a
# warning when its first line is a lone `{` or `[` (a pretty-printer's).

_SPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


def _replayed(taken: list[bytes], rest: Iterator[bytes] | None, error: Exception | None = None) -> Iterator[bytes]:
    """The chunks already taken, then the rest (or the error that stopped the taking)."""
    yield from taken
    if error is not None:
        raise error
    if rest is not None:
        yield from rest


def _sniff_document(chunks: Iterator[bytes], cap: int, name: str = "",
                    warn: Warn | None = None) -> tuple[bytes | None, Iterator[bytes]]:
    """(the document's bytes, or None for lines; the chunks to read as lines, unchanged, when it
    is lines). The lines of an input are never changed unless it is one document within the cap."""
    import orjson

    taken: list[bytes] = []
    size = 0
    try:
        while True:   # up to the end of the first non-blank line
            chunk = next(chunks, b"")
            if not chunk:
                break
            taken.append(chunk)
            size += len(chunk)
            head = b"".join(taken)
            start = len(head) - len(head.lstrip(_SPACE))
            if head[start:start + 3] == _BOM:
                start += 3 + len(head[start + 3:]) - len(head[start + 3:].lstrip(_SPACE))
            if (start < len(head) and head.find(b"\n", start) >= 0) or size > cap:
                break
        if not taken:
            return None, iter(())
        head = b"".join(taken)
        body = head.lstrip(_SPACE)
        if body.startswith(_BOM):
            body = body[3:].lstrip(_SPACE)
        if body[:1] not in (b"{", b"["):
            return None, _replayed(taken, chunks)
        end = body.find(b"\n")
        first = body if end < 0 else body[:end]
        try:
            orjson.loads(first)
            return None, _replayed(taken, chunks)   # a complete value: NDJSON
        except orjson.JSONDecodeError:
            pass
        lone = first.strip() in (b"{", b"[")        # a pretty-printer's first line
        while size <= cap:
            chunk = next(chunks, b"")
            if not chunk:
                break
            taken.append(chunk)
            size += len(chunk)
    except Exception as exc:  # noqa: BLE001 - damage or an I/O error: read as lines, it says so there
        return None, _replayed(taken, None, exc)
    if size > cap:
        if lone and warn is not None:
            warn(f"{display_name(name)}: looks like one JSON document spanning lines, larger than {cap} bytes "
                 f"(--max-line-bytes): read line by line instead; write it as one event per line "
                 f"(e.g. jq -c '.[]') or raise --max-line-bytes")
        return None, _replayed(taken, chunks)
    document = b"".join(taken)
    whole = document.lstrip(_SPACE)
    try:
        orjson.loads(whole[3:] if whole.startswith(_BOM) else whole)
    except orjson.JSONDecodeError:
        return None, _replayed(taken, None)   # not one document: its lines, each with its reason
    return document, iter(())


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n\ufeff":
        at += 1
    return at


def _document_blocks(name: str, document: bytes, start_offset: int) -> Iterator[Block]:
    """One block per event of a JSON document (an object, or each element of an array): its line
    is the line where the event starts, its offset the byte where it starts, and its data the
    event as one line of compact JSON."""
    import json

    import orjson

    text = document.decode("utf-8")
    at = _skip_space(text, 0)
    if text[at] == "[":
        decoder = json.JSONDecoder()
        spans = []
        at = _skip_space(text, at + 1)
        while at < len(text) and text[at] != "]":
            _, end = decoder.raw_decode(text, at)
            spans.append((at, end))
            at = _skip_space(text, end)
            if at < len(text) and text[at] == ",":
                at = _skip_space(text, at + 1)
    else:
        spans = [(at, len(text.rstrip()))]
    line, offset, where = 1, 0, 0
    for begin, end in spans:
        line += text.count("\n", where, begin)
        offset += len(text[where:begin].encode("utf-8"))
        where = begin
        if offset < start_offset:
            continue
        piece = text[begin:end]
        data = orjson.dumps(orjson.loads(piece))
        yield Block(name, line, offset, lines=[data], lengths={0: len(piece.encode("utf-8"))})


def read_blocks(source: Source, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                start_offset: int = 0, progress: ReadProgress | None = None,
                split: bool = True, warn: Warn | None = None) -> Iterator[Block]:
    """Yield a source's physical lines in blocks of one read (about decompress.CHUNK_SIZE bytes each).

    A line longer than `max_line_bytes` is not buffered: it becomes an error entry. Damaged data
    (a truncated or corrupt gzip, zstd or bz2 stream) ends the source: every complete line before
    the damage comes in blocks as usual, then one error entry naming the damage's offset in the
    file stands for the rest (a last line cut off by the damage is part of it), so the caller can
    count and report it and go on with the next source. When the source cannot be opened or read
    (I/O error, a remote read that broke off), that error entry's block has `unreadable` set: the
    machine's fault, the source must be read again. Trailing garbage after complete gzip members
    loses nothing: `warn` gets a one-line message naming the source. Lines that start before
    `start_offset` (an already acknowledged prefix) are left out; an error entry never is. With
    `split`, blocks come already cut into lines (what this process will do next anyway); without,
    they keep the bytes as read and only count their lines (for another process to cut).
    """
    name = source.name
    try:
        raw = source.open()
    except Exception as exc:  # noqa: BLE001 - a remote store raises its own types
        block = Block(name, 0, 0, lines=[b""], errors={0: f"cannot open: {one_line(exc)}"})
        block.unreadable = True
        yield block
        return
    number = 1          # line number of the next line
    offset = 0          # byte offset where the next line (`pending`) starts
    pending = b""       # the start of a line whose newline has not been read yet
    skipping = 0        # > 0: the bytes so far of an over-long line being discarded
    too_long = f"line longer than {max_line_bytes} bytes (skipped)"
    try:
        chunks = decoded(raw, name, warn)
        document, chunks = _sniff_document(chunks, max_line_bytes, name, warn)
        if document is not None:
            yield from _document_blocks(name, document, start_offset)
            return
        tracked = progress if progress is not None and raw.seekable() else None
        while True:
            if tracked is not None:
                tracked.done = tracked._base + raw.tell()
            try:
                chunk = next(chunks, b"")
            except Exception as exc:  # noqa: BLE001 - damage ends this source, not the run
                # The line being read when the damage came has no newline: it is part of the damage.
                block = Block(name, number, offset, lines=[b""], errors={0: _read_error(exc)})
                block.unreadable = isinstance(exc, ReadFailed)
                yield block
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
                    number += data.count(b"\n") + 1
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
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


RANGE_TAIL = 1 << 16   # bytes read back from a chunk's end to find its last newline


def plain_ranges(source: Source,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> tuple[str, list[tuple[int, int]]] | None:
    """Where other processes can read a source's blocks themselves (--workers): for a regular
    local file of plain NDJSON, (its resolved path, the byte range of each block `read_blocks`
    would make of it: from its first line's start to its last line's end, that line's newline
    left out). The ranges follow the reader's chunks exactly (each block ends at the last newline
    of a chunk), so the blocks, their line numbers and offsets are the same however they are read.
    None where `read_blocks` must read the source: compressed, a stream, remote, one JSON document
    spanning lines (or what might be one), a line longer than `max_line_bytes`, a file that cannot
    be opened here (read_blocks says why)."""
    if source.key is None or is_remote(source.name):
        return None
    try:
        raw = source.open()
    except Exception:  # noqa: BLE001 - read_blocks reports it
        return None
    try:
        fd = raw.fileno()
        st = os.fstat(fd)
        there = os.stat(source.key)
        if not stat.S_ISREG(st.st_mode) or (there.st_dev, there.st_ino) != (st.st_dev, st.st_ino):
            return None
        size, chunk = st.st_size, decompress.CHUNK_SIZE
        head = os.pread(fd, min(chunk, size), 0)
        if compressed(head) or not _lines_for_sure(head, size):
            return None
        ranges: list[tuple[int, int]] = []
        begin = 0
        for at in range(0, size, chunk):
            stop = min(at + chunk, size)
            low = max(at, stop - RANGE_TAIL)
            cut = os.pread(fd, stop - low, low).rfind(b"\n")
            if cut < 0 and low > at:
                low = at
                cut = os.pread(fd, stop - low, low).rfind(b"\n")
            if cut >= 0:
                ranges.append((begin, low + cut))
                begin = low + cut + 1
        if begin < size:
            ranges.append((begin, size))   # the last line, without a newline
        if any(end - start > max_line_bytes for start, end in ranges):
            return None   # a line may be over the limit: the reader reports it
        return source.key, ranges
    except OSError:
        return None
    finally:
        raw.close()


def _lines_for_sure(head: bytes, size: int) -> bool:
    """The input is read as lines, not as one JSON document (see _sniff_document): its first
    non-blank line does not start with `{` or `[`, or is a complete JSON value by itself."""
    import orjson

    body = head.lstrip(_SPACE)
    if body.startswith(_BOM):
        body = body[3:].lstrip(_SPACE)
    if not body:
        return len(head) == size   # blank so far: sure only if that is all
    if body[:1] not in (b"{", b"["):
        return True
    end = body.find(b"\n")
    if end < 0:
        return False
    try:
        orjson.loads(body[:end])
    except orjson.JSONDecodeError:
        return False
    return True


def _read_error(exc: Exception) -> str:
    if isinstance(exc, (ReadFailed, DamagedData)):
        return str(exc)
    return f"cannot decode: {exc or exc.__class__.__name__}"


def read_lines(source: Source, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
               start_offset: int = 0, progress: ReadProgress | None = None,
               split: bool = True, warn: Warn | None = None) -> Iterator[Line]:
    """Yield the non-blank lines of a source, with 1-based line numbers and byte offsets, and one
    `Line` carrying `error` for each unreadable stretch (see read_blocks)."""
    for block in read_blocks(source, max_line_bytes=max_line_bytes, start_offset=start_offset,
                             progress=progress, split=split, warn=warn):
        errors = block.errors or {}
        for position, data in enumerate(block.lines):
            if position in errors or (data and not data.isspace()):
                yield block.line(position)
