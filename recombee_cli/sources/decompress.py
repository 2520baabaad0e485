"""Decompression for the read stage: a raw byte stream -> its decoded bytes, in pieces.

The codec is sniffed from the first bytes (gzip, zstd, bz2, else the bytes as they are), never
from a name: S3 often serves Segment's `.gz` objects already decompressed. Concatenated gzip
members and bz2 streams are read one after another, as `gzip -d` does; zero padding after the last
is ignored, other trailing bytes too, with a warning (the data is complete). Damage (a truncated or
corrupt stream) raises `DamagedData` naming the byte, after everything decoded before it; an I/O
error raises `ReadFailed`. Output comes in pieces of about CHUNK_SIZE bytes, so a member that
inflates 1000:1 never sits in memory whole.
"""

from __future__ import annotations

import bz2
import io
import os
import select
import stat
from collections.abc import Generator, Iterator
from typing import Any, BinaryIO, ClassVar

from recombee_cli.sources.base import Warn, display_name, one_line, quiet, widen_pipe

try:  # ISA-L inflate is ~2.5x faster than zlib; fall back to the stdlib where it is missing.
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    import zlib as _zlib  # type: ignore[no-redef]  # the stdlib's inflate, the same interface

CHUNK_SIZE = 1 << 20  # decoded bytes per piece (read via the module: tests make it small)
_IN_SIZE = 1 << 17    # compressed bytes read at a time (a damaged piece is decoded again byte by byte)
_WAIT_MS = 250        # a stream's read waits for bytes this long at a time (see _Input)

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZ2_MAGIC = b"BZh"


class DamagedData(ValueError):
    """Compressed data that cannot be decoded past some byte (truncated, corrupt): the data's
    fault. Everything decoded before it has been delivered; the message names the byte."""


class ReadFailed(OSError):
    """Reading the raw bytes failed (an I/O error, a remote read that broke off): the machine's
    fault, not the data's; the same file may read fine next time."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Input:
    """The raw bytes of a source, read in large pieces, with the file offset of the next byte.

    A stream (a pipe, a FIFO, a terminal: `producer | recombee-cli replay -`) is read from its
    descriptor, what is there at each read, after waiting for bytes in steps of _WAIT_MS. A
    buffered read of a pipe waits inside C until its whole size has come: a SIGTERM or Ctrl-C that
    landed just before such a wait was not acted on until the producer wrote again (a stalled
    producer held the run for ever). Between the steps Python runs the signal's handler."""

    __slots__ = ("raw", "buf", "offset", "_poll")

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.buf = b""      # read but not taken yet
        self.offset = 0     # file offset of the next byte `take` returns
        self._poll = _stream_poll(raw)   # None: a file, or a stream without a descriptor

    def _read(self, n: int) -> bytes:
        try:
            poll = self._poll
            if poll is None:
                return self.raw.read(n)
            while not poll.poll(_WAIT_MS):
                pass
            return os.read(self.raw.fileno(), n)
        except Exception as exc:  # noqa: BLE001 - whatever the stream raises, its bytes are not there
            raise ReadFailed(f"cannot read at byte {self.offset + len(self.buf)} of the file: "
                              f"{one_line(exc)}") from exc

    def peek(self, n: int) -> bytes:
        """The next n bytes (fewer only at the end of the file), left in place."""
        while len(self.buf) < n:
            more = self._read(max(n - len(self.buf), _IN_SIZE))
            if not more:
                break
            self.buf += more
        return self.buf[:n]

    def take(self, n: int | None = None) -> bytes:
        """Up to n bytes (default _IN_SIZE): what is buffered, else a fresh read; b"" at the end."""
        n = n or _IN_SIZE
        if self.buf:
            data, self.buf = self.buf[:n], self.buf[n:]
        else:
            data = self._read(n)
        self.offset += len(data)
        return data

    def ready(self) -> bool:
        """Whether a read now returns at once: always for a file; for a stream, when bytes (or its
        end) are there (what a slow producer wrote is handed on, not held for more to come)."""
        return bool(self.buf) or self._poll is None or bool(self._poll.poll(0))

    def give_back(self, data: bytes) -> None:
        if data:
            self.buf = data + self.buf
            self.offset -= len(data)


class _Codec:
    """A decoder of streams read one after another (gzip members, bz2 streams): `new()` makes a
    decompressor, `feed(d, data)` gives its output in pieces of at most CHUNK_SIZE."""

    name: ClassVar[str]
    magic: ClassVar[bytes]

    @staticmethod
    def new() -> Any:
        raise NotImplementedError

    @staticmethod
    def feed(d: Any, data: bytes) -> Iterator[bytes]:
        raise NotImplementedError


class _Gzip(_Codec):
    """A gzip member through ISA-L's inflate (header and CRC checked), output at most CHUNK_SIZE
    per call so a highly compressed member cannot fill memory."""

    name, magic = "gzip", GZIP_MAGIC

    @staticmethod
    def new() -> Any:
        return _zlib.decompressobj(31)

    @staticmethod
    def feed(d: Any, data: bytes) -> Iterator[bytes]:
        """All the output `data` gives, in pieces."""
        out = d.decompress(data, CHUNK_SIZE)
        while True:
            if out:
                yield out
            if len(out) < CHUNK_SIZE or d.eof:   # input used up (a full output may hide more)
                return
            out = d.decompress(d.unconsumed_tail, CHUNK_SIZE)


class _Bz2(_Codec):
    name, magic = "bz2", BZ2_MAGIC

    @staticmethod
    def new() -> Any:
        return bz2.BZ2Decompressor()

    @staticmethod
    def feed(d: Any, data: bytes) -> Iterator[bytes]:
        out = d.decompress(data, CHUNK_SIZE)
        while True:
            if out:
                yield out
            # needs_input can be True after a full output while the decoder still holds output
            # (CPython's bz2): only a short output means it has none left.
            if d.eof or (d.needs_input and len(out) < CHUNK_SIZE):
                return
            out = d.decompress(b"", CHUNK_SIZE)


def _members(inp: _Input, codec: type[_Codec], name: str, warn: Warn) -> Iterator[bytes]:
    """gzip members (or bz2 streams) one after another, as `gzip -d` reads them: zero padding after
    the last is ignored, other trailing bytes are ignored with a warning (the data is complete)."""
    while True:
        start = inp.offset
        d = codec.new()
        produced = 0
        while not d.eof:
            at = inp.offset
            data = inp.take()
            if not data:
                raise DamagedData(f"{codec.name} stream is truncated at byte {at} of the file (compressed)")
            try:
                for out in codec.feed(d, data):
                    produced += len(out)
                    yield out
            except Exception as exc:  # noqa: BLE001 - each decoder has its own error types
                where = yield from _relocate(inp, codec, start, at, data, produced)
                place = f"at byte {where}" if where is not None else \
                    f"between bytes {at} and {at + len(data)}"
                raise DamagedData(f"{codec.name} data is corrupt {place} of the file (compressed): "
                                  f"{exc or exc.__class__.__name__}") from None
        inp.give_back(d.unused_data)
        head = inp.peek(len(codec.magic))
        if not head:
            return
        if head == codec.magic:
            continue
        if len(head) < len(codec.magic) and codec.magic.startswith(head):
            # The file ends inside the next member's magic: a cut, not garbage (gzip would call it
            # garbage and say nothing of the member that was lost).
            raise DamagedData(f"{codec.name} stream is truncated at byte {inp.offset + len(head)} of the "
                              f"file (compressed)")
        while True:   # zeros (a tape's padding) to the end are ignored without a word, as gzip does
            piece = inp.take()
            if not piece:
                return
            rest = piece.lstrip(b"\0")
            if rest:
                inp.give_back(rest)
                break
        warn(f"{display_name(name)}: decompression OK, trailing garbage ignored (the bytes from byte "
             f"{inp.offset} of the file are not {codec.name} data)")
        return


def _relocate(inp: _Input, codec: type[_Codec], start: int, at: int, data: bytes, produced: int
              ) -> Generator[bytes, None, int | None]:
    """After a decoding error in `data` (read at offset `at` of a member starting at `start`):
    decode the member again, then `data` one byte at a time, to deliver what the failed call
    decoded before the damage and return the damage's offset. Needs a seekable file; None when
    the damage cannot be placed more precisely than `data`."""
    raw = inp.raw
    again = 0   # output of this second pass; the first `produced` bytes were delivered already

    def fresh(out: bytes) -> bytes:
        nonlocal again
        before, again = again, again + len(out)
        return out[max(0, produced - before):] if again > produced else b""

    try:
        if not raw.seekable():
            return None
        raw.seek(start)
        d = codec.new()
        remaining = at - start
        while remaining > 0:
            piece = raw.read(min(_IN_SIZE, remaining))
            if not piece:
                return None
            remaining -= len(piece)
            for out in codec.feed(d, piece):
                new = fresh(out)
                if new:
                    yield new
    except Exception:  # noqa: BLE001 - the file or the decoder disagrees now: no better place is known
        return None
    for i in range(len(data)):
        try:
            for out in codec.feed(d, data[i:i + 1]):
                new = fresh(out)
                if new:
                    yield new
        except Exception:  # noqa: BLE001 - this byte is where the decoder fails
            return at + i
        if d.eof:
            return at + i + 1
    return None


def _skippable(magic: bytes) -> bool:
    """A zstd skippable frame (metadata that zstd tools pass over) starts here."""
    return len(magic) == 4 and 0x184D2A50 <= int.from_bytes(magic, "little") <= 0x184D2A5F


def _zstd_frames(inp: _Input) -> Iterator[bytes]:
    """zstd frames one after another, fed to the decoder one block at a time: blocks before a
    damaged one are all delivered (a decoder error loses the output of its call), and each
    call's output stays under 128 KiB, a block's limit."""
    import zstandard

    new = zstandard.ZstdDecompressor().decompressobj

    def need(n: int) -> bytes:
        data = inp.peek(n)
        if len(data) < n:
            raise DamagedData(f"zstd stream is truncated at byte {inp.offset + len(data)} of the file (compressed)")
        return inp.take(n)

    def decode(d: Any, data: bytes, at: int) -> bytes:
        try:
            out: bytes = d.decompress(data)
            return out
        except zstandard.ZstdError as exc:
            raise DamagedData(f"zstd data is corrupt at byte {at} of the file (compressed): {exc}") from None

    while True:
        at = inp.offset
        magic = inp.peek(4)
        if not magic:
            return
        if _skippable(magic):
            size = int.from_bytes(need(8)[4:], "little")   # a skippable frame: metadata, no data
            while size:
                piece = inp.take(min(size, _IN_SIZE))
                if not piece:
                    raise DamagedData(f"zstd stream is truncated at byte {inp.offset} of the file (compressed)")
                size -= len(piece)
            continue
        if magic != ZSTD_MAGIC:
            raise DamagedData(f"not zstd data at byte {at} of the file (compressed)")
        descriptor = inp.peek(5)[4:5]
        if not descriptor:
            need(5)
        flags = descriptor[0]
        single, dictionary, size_flag = flags >> 5 & 1, flags & 3, flags >> 6
        header = 5 + (not single) + (0, 1, 2, 4)[dictionary] + (single, 2, 4, 8)[size_flag]
        d = new()
        decode(d, need(header), at)
        while True:
            at = inp.offset
            head = inp.peek(3)
            if len(head) < 3:
                need(3)   # raises: the file ends in a block header
            block = int.from_bytes(head, "little")
            kind = block >> 1 & 3
            data = need(3 + (1 if kind == 1 else 0 if kind == 3 else block >> 3))
            out = decode(d, data, at)
            if out:
                yield out
            if block & 1:
                break
        if flags & 4:   # the content checksum: a mismatch is damage at the end of the frame
            at = inp.offset
            decode(d, need(4), at)


def _stream_poll(raw: BinaryIO) -> Any:
    """A poll object for a stream's descriptor (a pipe, FIFO, socket or terminal), else None (a
    regular file, an object in a store, a stream without a descriptor, a system without poll).
    The stream is read by its descriptor from its first byte: nothing reads it before."""
    if not hasattr(select, "poll"):
        return None
    try:
        fd = raw.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):   # (io.UnsupportedOperation is both of the first two)
        return None
    if stat.S_ISREG(mode) or stat.S_ISBLK(mode):
        return None
    if stat.S_ISFIFO(mode):
        widen_pipe(fd, CHUNK_SIZE)
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    return poll


def _plain(inp: _Input) -> Iterator[bytes]:
    data = inp.take(CHUNK_SIZE)   # the sniffed bytes, then the rest of a full read
    while data:
        if len(data) < CHUNK_SIZE and inp.ready():   # (a stream: only what is there now)
            parts, size = [data], len(data)
            while size < CHUNK_SIZE:
                more = inp.take(CHUNK_SIZE - size)
                if not more:
                    break
                parts.append(more)
                size += len(more)
                if not inp.ready():
                    break
            data = b"".join(parts)
        yield data
        data = inp.take(CHUNK_SIZE)


def _gathered(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Small decoded pieces joined to about CHUNK_SIZE (blocks of a few lines cost per block);
    what was gathered is delivered before an error goes on."""
    parts: list[bytes] = []
    size = 0
    try:
        for piece in pieces:
            if not parts and len(piece) >= CHUNK_SIZE // 2:
                yield piece
                continue
            parts.append(piece)
            size += len(piece)
            if size >= CHUNK_SIZE:
                yield b"".join(parts)
                parts, size = [], 0
    except Exception:
        if parts:
            yield b"".join(parts)
        raise
    if parts:
        yield b"".join(parts)


def compressed(head: bytes) -> bool:
    """Whether a stream starting with these (at least 4) bytes is one `decoded` decompresses."""
    return head.startswith((GZIP_MAGIC, ZSTD_MAGIC, BZ2_MAGIC)) or _skippable(head[:4])


def decoded(raw: BinaryIO, name: str = "", warn: Warn | None = None) -> Iterator[bytes]:
    """The decoded bytes of a raw stream, in pieces, decoder chosen by the magic bytes. Damage
    raises DamagedData after every byte decoded before it; an I/O error raises ReadFailed. Never
    seeks, except to place the damage in a corrupt (not truncated) gzip or bz2 file."""
    inp = _Input(raw)
    head = inp.peek(4)
    if head.startswith(GZIP_MAGIC):
        yield from _gathered(_members(inp, _Gzip, name, warn or quiet))
    elif head.startswith(ZSTD_MAGIC) or _skippable(head):
        yield from _gathered(_zstd_frames(inp))
    elif head.startswith(BZ2_MAGIC):
        yield from _gathered(_members(inp, _Bz2, name, warn or quiet))
    else:
        yield from _plain(inp)


class _Chunks(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if not self._rest:
            self._rest = next(self._chunks, b"")
        n = min(len(buf), len(self._rest))
        buf[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def decompressed(raw: BinaryIO, *, name: str = "", warn: Warn | None = None) -> BinaryIO:
    """A readable stream of a raw stream's decoded bytes (gzip, zstd, bz2 sniffed, else as is).
    Reading raises DamagedData (a ValueError) after the bytes before the damage, OSError when the
    raw stream fails. Does not seek a stream that cannot."""
    return io.BufferedReader(_Chunks(decoded(raw, name, warn)), CHUNK_SIZE)

