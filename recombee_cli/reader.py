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
    return Source(
        name=path,
        open=lambda: open(path, "rb"),
        size=st.st_size,
        identity=f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}",
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


def read_lines(source: Source, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
               start_offset: int = 0, progress: ReadProgress | None = None) -> Iterator[Line]:
    """Yield the non-blank lines of a source, with 1-based line numbers and byte offsets.

    A read error (truncated gzip, corrupt zstd...) ends the source with one `Line` carrying
    `error`, so the caller can count and report it; the run goes on with the next source.
    Lines that start before `start_offset` (an already acknowledged prefix) are not yielded.
    """
    name = source.name
    try:
        raw = source.open()
    except OSError as exc:
        yield Line(name, 0, 0, b"", f"cannot open: {exc.strerror or exc}")
        return
    number = 0          # physical lines completed so far
    offset = 0          # byte offset where `pending` starts
    pending = b""       # the start of a line whose newline has not been read yet
    skipping = False    # inside an over-long line that we discard instead of buffering
    skip_len = 0
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
                if skipping:
                    number += 1
                    yield Line(name, number, offset, b"", too_long)
                    offset += skip_len
                elif pending:
                    number += 1
                    if offset >= start_offset and not pending.isspace():
                        yield Line(name, number, offset, pending[:-1] if pending[-1:] == b"\r" else pending)
                    offset += len(pending)
                if error:
                    yield Line(name, number + 1, offset, b"", error)
                return
            parts = chunk.split(b"\n")
            last = parts.pop()
            for part in parts:
                number += 1
                if skipping:
                    if offset >= start_offset:
                        yield Line(name, number, offset, b"", too_long)
                    offset += skip_len + len(part) + 1
                    skipping = False
                    continue
                if pending:
                    part = pending + part
                    pending = b""
                if part and offset >= start_offset and not part.isspace():
                    if len(part) > max_line_bytes:
                        yield Line(name, number, offset, b"", too_long)
                    else:
                        yield Line(name, number, offset, part[:-1] if part[-1:] == b"\r" else part)
                offset += len(part) + 1
            if skipping:
                skip_len += len(last)
            elif last:
                pending = pending + last if pending else last
                if len(pending) > max_line_bytes:
                    skipping, skip_len, pending = True, len(pending), b""
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()
