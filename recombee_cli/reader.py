"""Read stage: input arguments -> sources -> physical lines with their origin.

Files, folders (recursive, sorted by path), glob patterns, `-` for stdin and remote URLs (fsspec).
Compression is sniffed from the first bytes, never from the file name, because S3 often serves
Segment's `.gz` objects already decompressed. Lines are cut from large chunks so memory stays flat
and the per-line cost stays low; a line longer than `max_line_bytes` is reported, not buffered.
"""

from __future__ import annotations

import bz2
import glob
import io
import os
import sys
from dataclasses import dataclass, field
from itertools import accumulate
from typing import BinaryIO, Callable, Iterator

from .errors import InputError

try:  # ISA-L gzip is ~2.5x faster than zlib; fall back to the stdlib where it is missing.
    from isal import igzip as _gzip
except ImportError:  # pragma: no cover - isal is a declared dependency
    import gzip as _gzip

CHUNK_SIZE = 1 << 20
DEFAULT_MAX_LINE_BYTES = 16 << 20  # Segment caps a message at 32 KB; 16 MiB is generous.

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZ2_MAGIC = b"BZh"


@dataclass(frozen=True)
class Source:
    """One input: a name for messages and an opener for its raw bytes."""

    name: str
    open: Callable[[], BinaryIO] = field(repr=False, compare=False)
    size: int | None = None          # bytes on disk (compressed), for progress; None if unknown
    identity: str | None = None      # path+size+mtime or an object's ETag; None for stdin
    key: str | None = None           # what the state file knows it by: the resolved absolute path
                                     # of a local file, the canonical URL of an object (None: name)

    @property
    def state_key(self) -> str:
        return self.key or self.name


@dataclass(slots=True)   # not frozen: a frozen dataclass is 7x slower to create, once per line
class Line:
    """A physical line of a source, or a problem that stands in for one (`error` set)."""

    source: str
    number: int      # 1-based physical line number
    offset: int      # byte offset of the line start in the decompressed stream
    data: bytes      # the line without its newline ("" when error is set and nothing is kept)
    error: str | None = None


def _local_source(path: str) -> Source:
    st = os.stat(path)
    # `./F`, `F` and `/abs/F` (and a path through a symlinked folder) are one file to the state,
    # so a nightly run from another directory does not send it again.
    real = os.path.realpath(path)
    return Source(
        name=path,
        open=lambda: open(path, "rb"),
        size=st.st_size,
        identity=f"{real}|{st.st_size}|{st.st_mtime_ns}",
        key=real,
    )


def _stdin_source() -> Source:
    return Source(name="<stdin>", open=lambda: sys.stdin.buffer, size=None, identity=None)


def is_remote(arg: str) -> bool:
    return "://" in arg and not arg.startswith("file://")


def expand_inputs(args: list[str]) -> list[Source]:
    """Turn command-line inputs into sources, in the order given; folders and globs sorted by path."""
    sources: list[Source] = []
    for arg in args:
        if arg == "-":
            sources.append(_stdin_source())
        elif is_remote(arg):
            from .remote import expand_remote  # optional extra; imported only when used

            sources.extend(expand_remote(arg))
        elif os.path.isdir(arg):
            found = []
            for root, dirs, files in os.walk(arg):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found.extend(os.path.join(root, f) for f in files if not f.startswith("."))
            sources.extend(_local_source(p) for p in sorted(found))
        elif os.path.isfile(arg):
            sources.append(_local_source(arg))
        elif glob.has_magic(arg):
            matches = sorted(p for p in glob.glob(arg, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(f"{arg}: the pattern matches no file")
            sources.extend(_local_source(p) for p in matches)
        else:
            raise InputError(f"{arg}: no such file or directory")
    return sources


class _Prefixed(io.RawIOBase):
    """A stream that first returns already-peeked bytes, then the rest of the underlying stream."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n


class _ZstdStream(io.RawIOBase):
    """zstd frames one after another. zstandard's own stream reader treats a truncated frame as a
    normal end of file; this one reports it, like gzip and bz2 do."""

    def __init__(self, raw: BinaryIO):
        import zstandard

        self._raw = raw
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._frame = None        # the frame being decoded; None between frames
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self._out:
            chunk = self._raw.read(CHUNK_SIZE)
            if not chunk:
                if self._frame is not None:
                    raise EOFError("zstd stream ends in the middle of a frame")
                return 0
            out = []
            while chunk:
                if self._frame is None:
                    self._frame = self._new()
                out.append(self._frame.decompress(chunk))
                chunk = b""
                if self._frame.eof:
                    chunk = self._frame.unused_data
                    self._frame = None
            self._out = b"".join(out)
        n = min(len(buf), len(self._out))
        buf[:n] = self._out[:n]
        self._out = self._out[n:]
        return n


def decompressed(raw: BinaryIO) -> BinaryIO:
    """Wrap a raw byte stream in the decompressor its magic bytes call for."""
    head = raw.read(4)
    if raw.seekable():   # a local file: read the magic, then start again (no copying wrapper)
        raw.seek(0)
        stream = raw
    else:
        stream = io.BufferedReader(_Prefixed(head, raw), CHUNK_SIZE)
    if head.startswith(GZIP_MAGIC):
        return _gzip.GzipFile(fileobj=stream, mode="rb")
    if head.startswith(ZSTD_MAGIC):
        return io.BufferedReader(_ZstdStream(stream), CHUNK_SIZE)
    if head.startswith(BZ2_MAGIC):
        return bz2.BZ2File(stream, "rb")
    return stream


def _describe_read_error(exc: Exception) -> str:
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, EOFError):
        return f"compressed stream ends early (truncated file?): {text}"
    return f"cannot read: {text}"


class ReadProgress:
    """Raw (compressed) bytes consumed so far across sources, for progress bars."""

    __slots__ = ("done", "_base")

    def __init__(self) -> None:
        self.done = 0
        self._base = 0

    def finish_source(self, size: int | None) -> None:
        self._base += size or 0
        self.done = self._base


class Block:
    """Consecutive physical lines of one source as read, blank ones included: the unit the
    pipeline works in. A block keeps the bytes as read; they are cut into lines (`bytes.split`, in
    C) where they are translated, which with --workers is another process. A `Line`, with its byte
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
        self.count = len(lines) if lines is not None else data.count(b"\n") + 1
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
            self._lines = self.data.split(b"\n")
        return self._lines

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

    def slice(self, begin: int, end: int) -> "Block":
        errors = lengths = None
        if self.errors:
            errors = {p - begin: r for p, r in self.errors.items() if begin <= p < end} or None
            lengths = {p - begin: n for p, n in (self._lengths or {}).items() if begin <= p < end} or None
        return Block(self.source, self.number + begin, self.start_of(begin), lines=self.lines[begin:end],
                     errors=errors, lengths=lengths)

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


def _starting_at(block: Block, start_offset: int) -> Block | None:
    """The part of a block that starts at or after `start_offset` (resuming a source)."""
    if block.offset >= start_offset:
        return block
    for position in range(block.count):
        if block.start_of(position) >= start_offset:
            return block.slice(position, block.count)
    return None


def read_blocks(source: Source, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                start_offset: int = 0, progress: ReadProgress | None = None,
                split: bool = True) -> Iterator[Block]:
    """Yield a source's physical lines in blocks of one read (about CHUNK_SIZE bytes each).

    A line longer than `max_line_bytes` is not buffered: it becomes an error entry. A read error
    (truncated gzip, corrupt zstd...) ends the source with an error entry, so the caller can count
    and report it; the run goes on with the next source. Lines that start before `start_offset`
    (an already acknowledged prefix) are left out. With `split`, blocks come already cut into
    lines (what this process will do next anyway); without, they keep the bytes as read and only
    count their lines (for another process to cut).
    """
    name = source.name
    try:
        raw = source.open()
    except OSError as exc:
        block = Block(name, 0, 0, lines=[b""], errors={0: f"cannot open: {exc.strerror or exc}"})
        block.unreadable = True
        yield block
        return
    number = 1          # line number of the next line
    offset = 0          # byte offset where the next line (`pending`) starts
    pending = b""       # the start of a line whose newline has not been read yet
    skipping = 0        # > 0: the bytes so far of an over-long line being discarded
    too_long = f"line longer than {max_line_bytes} bytes (skipped)"
    try:
        stream = decompressed(raw)
        tell = raw.tell if progress is not None and raw.seekable() else None
        while True:
            if tell is not None:
                progress.done = progress._base + tell()
            error = None
            try:
                chunk = stream.read(CHUNK_SIZE)
            except Exception as exc:  # noqa: BLE001 - any decoder error ends this source, not the run
                chunk, error = b"", _describe_read_error(exc)
            if not chunk:
                lines: list[bytes] = []
                errors: dict[int, str] = {}
                lengths: dict[int, int] = {}
                if skipping:
                    errors[0], lengths[0] = too_long, skipping
                    lines.append(b"")
                elif pending:
                    lines.append(pending)
                if error:
                    errors[len(lines)] = error
                    lines.append(b"")
                if lines:
                    block = _starting_at(Block(name, number, offset, lines=lines, errors=errors or None,
                                               lengths=lengths or None), start_offset)
                    if block is not None:
                        yield block
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
                block = Block(name, number, offset, data=data, lines=data.split(b"\n") if split else None)
            if len(head) + len(pending) > max_line_bytes:
                block.mark_too_long(max_line_bytes, too_long)
            number += block.count
            offset = block.end()
            pending = chunk[cut + 1:]
            if len(pending) > max_line_bytes:
                skipping, pending = len(pending), b""
            block = _starting_at(block, start_offset)
            if block is not None:
                yield block
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def read_lines(source: Source, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
               start_offset: int = 0, progress: ReadProgress | None = None,
               split: bool = True) -> Iterator[Line]:
    """Yield the non-blank lines of a source, with 1-based line numbers and byte offsets, and one
    `Line` carrying `error` for each unreadable stretch (see read_blocks)."""
    for block in read_blocks(source, max_line_bytes=max_line_bytes, start_offset=start_offset,
                             progress=progress, split=split):
        errors = block.errors or {}
        for position, data in enumerate(block.lines):
            if position in errors or (data and not data.isspace()):
                yield block.line(position)
