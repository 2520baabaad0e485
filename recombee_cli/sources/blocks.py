"""A `Block`: consecutive lines of one source with their place (source, line number, byte offset),
the unit every input format yields and the pipeline translates, acknowledges and resumes by.

Kept apart from the reader so that what makes blocks (one module per input format) need not
import the reader that chooses among them.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

from recombee_cli.sources.base import Line
from recombee_cli.sources.lines import count_newlines, cut_lines

__all__ = ["Block", "pieces", "starting_at"]


class Block:
    """Consecutive physical lines of one source as read, blank ones included: the unit the
    pipeline works in. A block keeps the bytes as read; they are cut into lines (`lines.cut_lines`)
    where they are translated, which with --workers is another process. A `Line`, with its byte
    offset, is made only for the few lines someone asks about (invalid events, failures)."""

    __slots__ = ("source", "number", "offset", "count", "data", "errors", "unreadable", "_lines", "_lengths",
                 "_starts")

    def __init__(self, source: str, number: int, offset: int, *, data: bytes | None = None,
                 lines: list[bytes] | None = None, errors: dict[int, str] | None = None,
                 lengths: dict[int, int] | None = None):
        self.source = source
        self.number = number       # line number of the first line
        self.offset = offset       # byte offset where the first line starts
        self.data = data           # the lines joined by "\n" as read (None: see `lines`)
        self._lines = lines        # each line without its newline; b"" where it is unreadable
        # counting newlines is a pass over the bytes of its own: skipped where they are cut anyway
        if lines is not None:
            self.count = len(lines)
        else:
            assert data is not None, "a block is made of its lines or of its bytes"
            self.count = count_newlines(data) + 1
        self.errors = errors       # {position: why that line is unreadable}, or None
        # True when an error is the machine's, not the data's (cannot open, I/O error): the source
        # must stay pending, to be read again by the next run, instead of being marked done.
        self.unreadable = False
        self._lengths = lengths    # {position: real length} where the data is not the whole line
        self._starts: list[int] | None = None

    def __len__(self) -> int:
        return self.count

    @property
    def lines(self) -> list[bytes]:
        if self._lines is None:
            assert self.data is not None   # a block without its lines has its bytes
            self._lines = cut_lines(self.data)
        return self._lines

    def release_lines(self) -> None:
        """Forget the lines cut from the bytes; they are cut again if someone asks (an invalid or
        failed event's line). A block waiting for its answers, or shipped to a cluster, then holds
        its bytes once instead of twice."""
        if self.data is not None:
            self._lines = None

    def raw(self) -> bytes:
        """The lines joined by newlines (unreadable ones empty): what a translator worker gets."""
        return self.data if self.data is not None else b"\n".join(self.lines)

    def _sizes(self) -> list[int]:
        sizes = list(map(len, self.lines))
        if self._lengths:
            for position, length in self._lengths.items():
                sizes[position] = length
        return sizes

    def start_of(self, position: int) -> int:
        """Byte offset where a line starts."""
        if position == 0:
            return self.offset
        if self._starts is None:   # each line is followed by its newline
            self._starts = list(accumulate(map((1).__add__, self._sizes()[:-1]), initial=self.offset))
        return self._starts[position]

    def end(self) -> int:
        """Byte offset just past the last line's newline."""
        if self.data is not None and not self._lengths:
            return self.offset + len(self.data) + 1
        return self.offset + sum(self._sizes()) + self.count

    def line(self, position: int) -> Line:
        data = self.lines[position]
        return Line(self.source, self.number + position, self.start_of(position),
                    data[:-1] if data[-1:] == b"\r" else data,
                    self.errors.get(position) if self.errors else None)

    def slice(self, begin: int, end: int) -> Block:
        errors = lengths = None
        if self.errors:
            errors = {p - begin: r for p, r in self.errors.items() if begin <= p < end} or None
            lengths = {p - begin: n for p, n in (self._lengths or {}).items() if begin <= p < end} or None
        block = Block(self.source, self.number + begin, self.start_of(begin), lines=self.lines[begin:end],
                      errors=errors, lengths=lengths)
        block.unreadable = self.unreadable
        return block

    def mark_too_long(self, max_line_bytes: int, reason: str) -> None:
        """Blank out lines longer than the limit and record them as errors."""
        lines = self.lines
        if max(map(len, lines)) <= max_line_bytes:
            return
        self.errors = self.errors or {}
        self._lengths = self._lengths or {}
        for position, line in enumerate(lines):
            if len(line) > max_line_bytes:
                self.errors[position], self._lengths[position] = reason, len(line)
                lines[position] = b""
        self.data = None   # no longer what the lines are


def pieces(block: Block, chunk_lines: int) -> Iterator[Block]:
    """A block as chunks of at most `chunk_lines` lines: the unit translated and acknowledged.
    Equal parts, not chunk_lines and a remainder: workers take chunks in turn, and 1000 + 400
    lines per block gave one worker every long part."""
    if block.count <= chunk_lines:
        yield block
        return
    step = -(-block.count // -(-block.count // chunk_lines))
    for begin in range(0, block.count, step):
        yield block.slice(begin, begin + step)


def starting_at(block: Block, start_offset: int) -> Block | None:
    """The part of a block that starts at or after `start_offset` (resuming a source)."""
    if block.offset >= start_offset:
        return block
    for position in range(block.count):
        if block.start_of(position) >= start_offset:
            return block.slice(position, block.count)
    return None
