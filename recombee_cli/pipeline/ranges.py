"""A plain local file read by byte ranges, away from the process that does the accounting: what
`--workers` (pipeline/parallel.py) and `--dask` (pipeline/cluster_tasks.py) share.

`reader.plain_ranges` says where each block `read_blocks` would make of a plain NDJSON file starts
and ends; `translate_range` reads one such block's bytes (handed to it) and translates it chunk by
chunk exactly as the main process would have (the same chunks, so the same checkpoints), and the
process that accounts numbers the lines (`RangeNumbering`), since only it has seen the blocks
before. A chunk comes back as a `RangeBlock`: its place without its bytes, which are read back
from the file only for a line someone asks about (an invalid or failed event's, for the rejects).
"""

from __future__ import annotations

from recombee_cli.mapping.translate import BlockResult, EventFilter, Translator, translate_block
from recombee_cli.sources.lines import blank_free_segments, count_newlines, cut_lines
from recombee_cli.sources.reader import Block

# A chunk of a range: (its first line's index in the range, lines, offset, offset just past its
# last newline, result, size of its requests in the range's blob).
RangeChunk = tuple[int, int, int, int, BlockResult, int]
# A range translated: (lines in the range, those left out before a resume offset included; its chunks).
RangeAnswer = tuple[int, list[RangeChunk]]


def translate_range(data: bytes, start: int, resume: int, chunk_lines: int, translator: Translator,
                    window_filter: EventFilter | None, routes: bool) -> tuple[RangeAnswer, list[bytes]]:
    """A block's bytes (it starts at byte `start` of its file) translated chunk by chunk, as the
    main process would: long runs of blank lines left out (reader.read_blocks), the lines that
    start before the resume offset left out (blocks.starting_at), the rest cut into equal chunks
    of at most `chunk_lines` lines (blocks.pieces). Each chunk's requests are taken out of its
    result into the list returned beside the answer (one blob, sent apart from the rest)."""
    parts = blank_free_segments(data)
    chunks: list[RangeChunk] = []
    blobs: list[bytes] = []
    if parts is None:
        lines = cut_lines(data)
        count = len(lines)
        _translate_part(lines, 0, start, resume, chunk_lines, translator, window_filter, routes, chunks, blobs)
    else:
        count = count_newlines(data) + 1
        for first, begin, stop in parts:
            _translate_part(cut_lines(data[begin:stop]), first, start + begin, resume, chunk_lines, translator,
                            window_filter, routes, chunks, blobs)
    return (count, chunks), blobs


def _translate_part(lines: list[bytes], at: int, offset: int, resume: int, chunk_lines: int,
                    translator: Translator, window_filter: EventFilter | None, routes: bool,
                    chunks: list[RangeChunk], blobs: list[bytes]) -> None:
    """Consecutive lines of a range (the first is line `at` of the range, at byte `offset`)."""
    count = len(lines)
    first = 0
    if offset < resume:
        while first < count and offset < resume:
            offset += len(lines[first]) + 1
            first += 1
        lines = lines[first:]
    kept = count - first
    at += first
    step = (kept or 1) if kept <= chunk_lines else -(-kept // -(-kept // chunk_lines))
    for begin in range(0, kept, step):
        part = lines[begin:begin + step] if step < kept else lines
        result = translate_block(part, translator, window_filter=window_filter, routes=routes)
        stop = offset + sum(map(len, part)) + len(part)
        blobs.append(result.requests)
        chunks.append((at, len(part), offset, stop, result, len(result.requests)))
        result.requests = b""
        offset = stop
        at += len(part)


class RangeBlock(Block):
    """A block a worker read from a file by itself: its place (line number, offsets) without its
    bytes, which are read again from the file only if someone asks for a line (an invalid or
    failed event's, for the rejects file)."""

    __slots__ = ("path", "stop")

    def __init__(self, source: str, path: str, number: int, offset: int, stop: int, count: int):
        super().__init__(source, number, offset, lines=[])
        self.count = count
        self.path = path
        self.stop = stop   # just past the newline of its last line

    @property
    def lines(self) -> list[bytes]:
        if self._lines is None or len(self._lines) != self.count:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                self._lines = cut_lines(file.read(self.stop - 1 - self.offset))
        return self._lines

    def end(self) -> int:
        return self.stop


class RangeNumbering:
    """Numbers a file's lines as its ranges' answers come back in order (the process that reads
    them is the only one that has counted the lines before them): each chunk of an answer
    becomes a `RangeBlock` with its requests put back from the answer's blob."""

    __slots__ = ("source", "path", "number")

    def __init__(self, source: str, path: str) -> None:
        self.source = source
        self.path = path
        self.number = 1   # the line number of the next range's first line

    def blocks(self, answer: RangeAnswer, blob: bytes) -> list[tuple[RangeBlock, BlockResult]]:
        count, chunks = answer
        out = []
        at = 0
        for first, lines, offset, stop, result, size in chunks:
            result.requests = blob if size == len(blob) else blob[at:at + size]
            at += size
            out.append((RangeBlock(self.source, self.path, self.number + first, offset, stop, lines), result))
        self.number += count
        return out
