"""What an input format is: the interface each module of this folder implements, and what the
reader hands it.

The reader (`sources/reader.py`) opens a source and decompresses it (`sources/decompress.py`);
then it takes the source's *head* (`take_head`) and asks the formats of the registry
(`formats/__init__.py`), in order, whether the head is theirs (`sniff`); the first that says yes
makes the source's blocks (`blocks`). The choice is made once per source (and once more, on the
same head, where --workers asks whether a file may be cut into byte ranges: `splittable`); no
format is asked anything per line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from recombee_cli.sources.base import Source, Warn
from recombee_cli.sources.blocks import Block
from recombee_cli.sources.decompress import DamagedData, ReadFailed

__all__ = ["InputFormat", "ReadOptions", "read_error", "replayed", "stopped", "take_head"]

SPACE = b" \t\r\n"
BOM = b"\xef\xbb\xbf"


class ReadOptions:
    """How a source is to be read: the same for every format (read_blocks' arguments). A plain
    class, not a dataclass: making a dataclass costs about 5 M instructions at every start."""

    __slots__ = ("source", "start_offset", "max_line_bytes", "split", "warn", "progress")

    def __init__(self, source: Source, start_offset: int, max_line_bytes: int, split: bool, warn: Warn,
                 progress: Callable[[], None] | None) -> None:
        self.source = source                  # Block.source is its name; a format may open it again to seek
        self.start_offset = start_offset      # leave out the events that start before this byte (resuming)
        self.max_line_bytes = max_line_bytes  # the most bytes held for one line (or one whole document)
        self.split = split                    # blocks cut into lines (this process), or kept as bytes (--workers)
        self.warn = warn                      # one-line messages about the source (not about an event)
        self.progress = progress              # call before each read of `chunks`: the bar follows the raw bytes


class InputFormat(Protocol):
    """One input format: one module of this folder, one entry of `formats.FORMATS`.

    - `sniff(head, name)`: is this source mine? `head` is the start of the decompressed bytes, up
      to the end of the first non-blank line (`take_head`: or more than max_line_bytes of it, or
      the whole input where it is shorter), `name` the source's name as given (a path or URL).
      Answer from these alone: it runs for every source, in registry order, before any reading.
    - `blocks(chunks, options)`: the source's `Block`s in order. `chunks` are its decompressed
      bytes from the start, the head included, in pieces of about decompress.CHUNK_SIZE; reading
      one may raise (damaged data, an I/O error): end with the `stopped` block. Each block names
      where its events start: a line number (1-based, what rejects and messages show) and a byte
      offset of the decompressed bytes, increasing from one event to the next; a resumed run gets
      the offset the state recorded as `options.start_offset` and must leave out exactly the events
      that start before it (`blocks.starting_at` does it for blocks of lines).
    - `splittable`: a plain local file of this format may be cut at newlines into byte ranges
      that the workers read themselves as NDJSON lines (`reader.plain_ranges`,
      `pipeline/parallel.py`). True only where the format's blocks are exactly NDJSON's.
    """

    @property
    def name(self) -> str: ...

    @property
    def splittable(self) -> bool: ...

    def sniff(self, head: bytes, name: str) -> bool: ...

    def blocks(self, chunks: Iterator[bytes], options: ReadOptions) -> Iterator[Block]: ...


def replayed(taken: list[bytes], rest: Iterator[bytes] | None, error: Exception | None = None) -> Iterator[bytes]:
    """The chunks already taken, then the rest (or the error that stopped the taking)."""
    yield from taken
    if error is not None:
        raise error
    if rest is not None:
        yield from rest


def take_head(chunks: Iterator[bytes], cap: int) -> tuple[bytes, Iterator[bytes]]:
    """(the head, the chunks from the start again): chunks are taken up to the end of the first
    non-blank line (a byte-order mark counts as blank), or the end of the input, or more than `cap`
    bytes. An error while taking (damage, I/O) comes again after the bytes taken, where it came."""
    taken: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = next(chunks, b"")
            if not chunk:
                break
            taken.append(chunk)
            size += len(chunk)
            head = b"".join(taken)
            start = len(head) - len(head.lstrip(SPACE))
            if head[start:start + 3] == BOM:
                start += 3 + len(head[start + 3:]) - len(head[start + 3:].lstrip(SPACE))
            if (start < len(head) and head.find(b"\n", start) >= 0) or size > cap:
                break
    except Exception as exc:  # noqa: BLE001 - damage or an I/O error: the format reads up to it
        return b"".join(taken), replayed(taken, None, exc)
    if not taken:
        return b"", iter(())
    return b"".join(taken), replayed(taken, chunks)


def read_error(exc: Exception) -> str:
    """The reason an error entry gives for what stopped the reading."""
    if isinstance(exc, (ReadFailed, DamagedData)):
        return str(exc)
    return f"cannot decode: {exc or exc.__class__.__name__}"


def stopped(name: str, number: int, offset: int, exc: Exception) -> Block:
    """The error entry that stands for the rest of a source whose reading stopped at line `number`,
    byte `offset`; `unreadable` (the machine's fault: read it again next run) for an I/O error."""
    block = Block(name, number, offset, lines=[b""], errors={0: read_error(exc)})
    block.unreadable = isinstance(exc, ReadFailed)
    return block
