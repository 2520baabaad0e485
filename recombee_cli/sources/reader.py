"""Read stage: input arguments -> sources -> physical lines with their origin.

Files, folders (recursive, sorted by path), glob patterns, `-` for stdin and remote URLs (fsspec).
Compression is sniffed from the first bytes, never from the file name, because S3 often serves
Segment's `.gz` objects already decompressed. Lines are cut from large chunks so memory stays flat
and the per-line cost stays low; a line longer than `max_line_bytes` is reported, not buffered.
"""

from __future__ import annotations

import bz2
import errno
import glob
import io
import os
import stat
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import BinaryIO

from recombee_cli.errors import InputError
from recombee_cli.sources.dayfolders import (  # noqa: F401
    CLOCK_SKEW_SECONDS,
    LATE_ARRIVAL_DAYS,
    folder_outside_window,
    glob_skip,
    received_day,
)

try:  # ISA-L inflate is ~2.5x faster than zlib; fall back to the stdlib where it is missing.
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    import zlib as _zlib

CHUNK_SIZE = 1 << 20
_IN_SIZE = 1 << 17    # compressed bytes read at a time (a damaged piece is decoded again byte by byte)
DEFAULT_MAX_LINE_BYTES = 16 << 20  # Segment caps a message at 32 KB; 16 MiB is generous.


Warn = Callable[[str], None]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZ2_MAGIC = b"BZh"


@dataclass(frozen=True)
class Source:
    """One input: a name for messages and an opener for its raw bytes. `name` is the path as
    given: a non-UTF-8 one keeps Python's surrogate escapes, so print it through display_name()."""

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


def display_name(name: str) -> str:
    r"""A file name as printable one-line text: the bytes of a non-UTF-8 name (surrogate escapes,
    as Python gives them) and control characters as `\xNN`, so no message about it can fail."""
    try:
        text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:   # a lone surrogate that no byte stands for
        text = name.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" if ord(c) < 0x100
                   else c.encode("unicode_escape").decode("ascii") for c in text)


def _local_source(path: str, st: os.stat_result | None = None) -> Source:
    st = st or os.stat(path)
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


def _stream_source(path: str) -> Source:
    """A pipe, `<(zcat day.gz)`, /dev/stdin or a device: read once as a stream, nothing to resume."""
    return Source(name=path, open=lambda: open(path, "rb"), size=None, identity=None, key=None)


def _stdin_source() -> Source:
    return Source(name="<stdin>", open=lambda: sys.stdin.buffer, size=None, identity=None)


def is_remote(arg: str) -> bool:
    return "://" in arg and not arg.startswith("file://")


def _symlink_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "a dangling symbolic link"
    return f"a symbolic link that cannot be followed ({exc.strerror or exc})"


def _walk(top: str, *, warn: Warn, window, skipped: list[str] | None) -> list[tuple[str, os.stat_result]]:
    """The regular files under a folder (hidden ones left out), sorted by path. Symbolic links are
    followed, but a folder already read (a link loop, a second link to it) is read once; a link
    that leads nowhere, and pipes or devices found inside, are skipped with a warning."""
    found = []
    seen: dict[tuple[int, int], str] = {}
    folders, linked = [top], []   # real folders first, so that a link to one is the copy skipped
    while folders or linked:
        folder = folders.pop() if folders else linked.pop()
        try:
            st = os.stat(folder)
            ident = (st.st_dev, st.st_ino)
            if ident in seen:
                first = seen[ident]
                why = f"a symbolic link loop (back to {display_name(first)})" \
                    if folder.startswith(first.rstrip(os.sep) + os.sep) else \
                    f"the same folder as {display_name(first)}, already read"
                warn(f"{display_name(folder)}: {why}; skipped")
                continue
            seen[ident] = folder
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)   # warnings in a stable order
        except OSError as exc:
            warn(f"{display_name(folder)}: cannot list this folder ({exc.strerror or exc}); skipped")
            continue
        real, links = [], []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = entry.path
            try:
                st = os.stat(path)   # through symbolic links
            except OSError as exc:
                why = _symlink_problem(exc) if entry.is_symlink() else f"cannot be read ({exc.strerror or exc})"
                warn(f"{display_name(path)}: {why}; skipped")
                continue
            if stat.S_ISDIR(st.st_mode):
                if folder_outside_window(entry.name, window):   # pruned: never listed
                    if skipped is not None:
                        skipped.append(path)
                    continue
                (links if entry.is_symlink() else real).append(path)
            elif stat.S_ISREG(st.st_mode):
                found.append((path, st))
            else:   # reading a pipe found in a folder could block the run forever
                warn(f"{display_name(path)}: not a regular file (a pipe, socket or device); skipped")
        folders.extend(reversed(real))   # popped in name order: warnings come in path order
        linked.extend(reversed(links))
    found.sort(key=lambda item: item[0])
    return found


def _no_such(arg: str, exc: OSError) -> str:
    if os.path.islink(arg):
        return f"{display_name(arg)}: {_symlink_problem(exc)}"
    if exc.errno == errno.ENOENT:
        return f"{display_name(arg)}: no such file or directory"
    return f"{display_name(arg)}: {(exc.strerror or str(exc)).lower()}"


def _ignore(message: str) -> None:
    pass


def expand_inputs(args: list[str], *, window: tuple[float | None, float | None] | None = None,
                  warn: Warn | None = None, skipped: list[str] | None = None) -> list[Source]:
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
    """
    warn = warn or _ignore
    sources: list[Source] = []
    for arg in args:
        if arg == "-":
            sources.append(_stdin_source())
            continue
        if is_remote(arg):
            from recombee_cli.sources.remote import expand_remote  # optional extra; imported only when used

            sources.extend(expand_remote(arg, window=window, warn=warn, skipped=skipped))
            continue
        try:
            st = os.stat(arg)
        except OSError as exc:
            if not glob.has_magic(arg):
                raise InputError(_no_such(arg, exc)) from None
            sources.extend(_expand_glob(arg, window=window, warn=warn, skipped=skipped))
            continue
        if stat.S_ISDIR(st.st_mode):
            sources.extend(_local_source(p, s) for p, s in _walk(arg, warn=warn, window=window, skipped=skipped))
        elif stat.S_ISREG(st.st_mode):
            sources.append(_local_source(arg, st))
        else:
            sources.append(_stream_source(arg))
    return _read_once(sources, warn)


def _expand_glob(pattern: str, *, window, warn: Warn, skipped: list[str] | None) -> list[Source]:
    matches = sorted(glob.glob(pattern, recursive=True))
    sources: list[Source] = []
    passed: set[str] = set()
    for path in matches:
        try:
            st = os.stat(path)
        except OSError as exc:
            warn(f"{display_name(path)}: {_symlink_problem(exc)}; skipped")
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        folder = glob_skip(pattern, path, is_dir, window)
        if folder is not None:
            if folder not in passed:
                passed.add(folder)
                if skipped is not None:
                    skipped.append(folder)
            continue
        if is_dir:
            sources.extend(_local_source(p, s) for p, s in _walk(path, warn=warn, window=window, skipped=skipped))
        elif stat.S_ISREG(st.st_mode):
            sources.append(_local_source(path, st))
        else:
            warn(f"{display_name(path)}: not a regular file (a pipe, socket or device); skipped")
    if not sources and not passed:
        raise InputError(f"{display_name(pattern)}: the pattern matches no file")
    return sources


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


class DamagedData(ValueError):
    """Compressed data that cannot be decoded past some byte (truncated, corrupt): the data's
    fault. Everything decoded before it has been delivered; the message names the byte."""


class _ReadFailed(OSError):
    """Reading the raw bytes failed (an I/O error, a remote read that broke off): the machine's
    fault, not the data's; the same file may read fine next time."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _one_line(exc: BaseException) -> str:
    """An exception as one line of a reason (a remote store's messages run over several)."""
    text = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or exc.__class__.__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


class _Input:
    """The raw bytes of a source, read in large pieces, with the file offset of the next byte."""

    __slots__ = ("raw", "buf", "offset")

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.buf = b""      # read but not taken yet
        self.offset = 0     # file offset of the next byte `take` returns

    def _read(self, n: int) -> bytes:
        try:
            return self.raw.read(n)
        except Exception as exc:  # noqa: BLE001 - whatever the stream raises, its bytes are not there
            raise _ReadFailed(f"cannot read at byte {self.offset + len(self.buf)} of the file: "
                              f"{_one_line(exc)}") from exc

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

    def give_back(self, data: bytes) -> None:
        if data:
            self.buf = data + self.buf
            self.offset -= len(data)


class _Gzip:
    """A gzip member through ISA-L's inflate (header and CRC checked), output at most CHUNK_SIZE
    per call so a highly compressed member cannot fill memory."""

    name, magic = "gzip", GZIP_MAGIC

    @staticmethod
    def new():
        return _zlib.decompressobj(31)

    @staticmethod
    def feed(d, data: bytes) -> Iterator[bytes]:
        """All the output `data` gives, in pieces."""
        out = d.decompress(data, CHUNK_SIZE)
        while True:
            if out:
                yield out
            if len(out) < CHUNK_SIZE or d.eof:   # input used up (a full output may hide more)
                return
            out = d.decompress(d.unconsumed_tail, CHUNK_SIZE)


class _Bz2:
    name, magic = "bz2", BZ2_MAGIC

    @staticmethod
    def new():
        return bz2.BZ2Decompressor()

    @staticmethod
    def feed(d, data: bytes) -> Iterator[bytes]:
        out = d.decompress(data, CHUNK_SIZE)
        while True:
            if out:
                yield out
            if d.eof or d.needs_input:
                return
            out = d.decompress(b"", CHUNK_SIZE)


def _members(inp: _Input, codec, name: str, warn: Warn) -> Iterator[bytes]:
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


def _relocate(inp: _Input, codec, start: int, at: int, data: bytes, produced: int
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

    def decode(d, data: bytes, at: int) -> bytes:
        try:
            return d.decompress(data)
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


def _plain(inp: _Input) -> Iterator[bytes]:
    data = inp.take(CHUNK_SIZE)   # the sniffed bytes, then the rest of a full read
    while data:
        if len(data) < CHUNK_SIZE:
            data += inp.take(CHUNK_SIZE - len(data))
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


def _decoded(raw: BinaryIO, name: str = "", warn: Warn | None = None) -> Iterator[bytes]:
    """The decoded bytes of a raw stream, in pieces, decoder chosen by the magic bytes. Damage
    raises DamagedData after every byte decoded before it; an I/O error raises _ReadFailed. Never
    seeks, except to place the damage in a corrupt (not truncated) gzip or bz2 file."""
    inp = _Input(raw)
    head = inp.peek(4)
    if head.startswith(GZIP_MAGIC):
        yield from _gathered(_members(inp, _Gzip, name, warn or _ignore))
    elif head.startswith(ZSTD_MAGIC) or _skippable(head):
        yield from _gathered(_zstd_frames(inp))
    elif head.startswith(BZ2_MAGIC):
        yield from _gathered(_members(inp, _Bz2, name, warn or _ignore))
    else:
        yield from _plain(inp)


class _Chunks(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
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
    return io.BufferedReader(_Chunks(_decoded(raw, name, warn)), CHUNK_SIZE)


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


def _starting_at(block: Block, start_offset: int) -> Block | None:
    """The part of a block that starts at or after `start_offset` (resuming a source)."""
    if block.offset >= start_offset:
        return block
    for position in range(block.count):
        if block.start_of(position) >= start_offset:
            return block.slice(position, block.count)
    return None


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
    """Yield a source's physical lines in blocks of one read (about CHUNK_SIZE bytes each).

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
        block = Block(name, 0, 0, lines=[b""], errors={0: f"cannot open: {_one_line(exc)}"})
        block.unreadable = True
        yield block
        return
    number = 1          # line number of the next line
    offset = 0          # byte offset where the next line (`pending`) starts
    pending = b""       # the start of a line whose newline has not been read yet
    skipping = 0        # > 0: the bytes so far of an over-long line being discarded
    too_long = f"line longer than {max_line_bytes} bytes (skipped)"
    try:
        chunks = _decoded(raw, name, warn)
        document, chunks = _sniff_document(chunks, max_line_bytes, name, warn)
        if document is not None:
            yield from _document_blocks(name, document, start_offset)
            return
        tell = raw.tell if progress is not None and raw.seekable() else None
        while True:
            if tell is not None:
                progress.done = progress._base + tell()
            try:
                chunk = next(chunks, b"")
            except Exception as exc:  # noqa: BLE001 - damage ends this source, not the run
                # The line being read when the damage came has no newline: it is part of the damage.
                block = Block(name, number, offset, lines=[b""], errors={0: _read_error(exc)})
                block.unreadable = isinstance(exc, _ReadFailed)
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


def _read_error(exc: Exception) -> str:
    if isinstance(exc, (_ReadFailed, DamagedData)):
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
