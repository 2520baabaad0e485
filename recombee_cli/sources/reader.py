"""Read stage: input arguments -> sources -> blocks of lines with their origin.

Files, folders (recursive, sorted by path), glob patterns, `-` for stdin and remote URLs (fsspec).
Compression is sniffed from the first bytes, never from the file name, because S3 often serves
Segment's `.gz` objects already decompressed. Lines are cut from large chunks so memory stays flat
and the per-line cost stays low; a line longer than `max_line_bytes` is reported, not buffered.

The stage's parts: `base` (Source, Line, display_name), `local` (paths, folders, globs, streams),
`remote` (object stores), `decompress` (the codecs), `blocks` (Block), `formats` (one module per
input format: NDJSON, a JSON document spanning lines; and their registry). This module sends each
argument to `local` or `remote` (`expand_inputs`), opens and decompresses a source, and hands it to
the format its first bytes say it is (`read_blocks`); for --workers it also says where a plain
NDJSON file's blocks are, for the workers to read them (`plain_ranges`)."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from itertools import chain
from typing import BinaryIO

from recombee_cli.sources import decompress
from recombee_cli.sources.base import Line, Source, Warn, display_name, one_line, quiet
from recombee_cli.sources.blocks import Block, pieces
from recombee_cli.sources.dayfolders import (
    CLOCK_SKEW_SECONDS,
    LATE_ARRIVAL_DAYS,
    folder_outside_window,
    glob_skip,
    received_day,
)
from recombee_cli.sources.decompress import DamagedData, compressed, decoded, decompressed
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


def read_blocks(source: Source, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                start_offset: int = 0, progress: ReadProgress | None = None,
                split: bool = True, warn: Warn | None = None) -> Iterator[Block]:
    """Yield a source's blocks as its input format makes them (`formats`): NDJSON in blocks of
    one read (about decompress.CHUNK_SIZE bytes), a JSON document spanning lines one event a block.
    The format is chosen once per source, from its first bytes after decompression and its name
    (formats.choose).

    A line longer than `max_line_bytes` is not buffered: it becomes an error entry. Damaged data
    (a truncated or corrupt gzip, zstd or bz2 stream) ends the source: every complete line before
    the damage comes in blocks as usual, then one error entry naming the damage's offset in the
    file stands for the rest (a last line cut off by the damage is part of it), so the caller can
    count and report it and go on with the next source. When the source cannot be opened or read
    (I/O error, a remote read that broke off), that error entry's block has `unreadable` set: the
    machine's fault, the source must be read again. Trailing garbage after complete gzip members
    loses nothing: `warn` gets a one-line message naming the source. Events that start before
    `start_offset` (an already acknowledged prefix) are left out; an error entry never is. With
    `split`, blocks come already cut into lines (what this process will do next anyway); without,
    they keep the bytes as read and only count their lines (for another process to cut).
    """
    from recombee_cli.sources import formats  # here: a command that reads nothing never loads them

    name = source.name
    try:
        raw = source.open()
    except Exception as exc:  # noqa: BLE001 - a remote store raises its own types
        block = Block(name, 0, 0, lines=[b""], errors={0: f"cannot open: {one_line(exc)}"})
        block.unreadable = True
        yield block
        return
    try:
        head, chunks = formats.take_head(decoded(raw, name, warn), max_line_bytes)
        tracked = _following(progress, raw) if progress is not None and raw.seekable() else None
        options = formats.ReadOptions(source, start_offset, max_line_bytes, split, warn or quiet, tracked)
        yield from formats.choose(head, name).blocks(chunks, options)
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def _following(progress: ReadProgress, raw: BinaryIO) -> Callable[[], None]:
    """What a format calls before each read: the progress bar follows the raw bytes."""
    return lambda: progress.reached(raw.tell())


# Bytes read back from a chunk's end to find its last newline: a few lines' worth first (a
# browser event is about 2 KB: 64 KB for each of a 2 GB file's 2,000 chunks took 22 ms before the
# first task could go, 4 KB 4 ms), then more, then the whole chunk.
RANGE_TAILS = (1 << 12, 1 << 16)


def plain_ranges(source: Source,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> tuple[str, list[tuple[int, int]]] | None:
    """Where other processes can read a source's blocks themselves (--workers): for a regular
    local file of plain NDJSON, (its resolved path, the byte range of each block `read_blocks`
    would make of it: from its first line's start to its last line's end, that line's newline
    left out). The ranges follow the reader's chunks exactly (each block ends at the last newline
    of a chunk), so the blocks, their line numbers and offsets are the same however they are read.
    None where `read_blocks` must read the source: compressed, a stream, remote, a format that is
    not `splittable` (sniffed from the same head as read_blocks sniffs: a JSON document spanning
    lines, or what might be one, is read whole by the main process), a line longer than
    `max_line_bytes`, a file that cannot be opened here (read_blocks says why)."""
    from recombee_cli.sources import formats

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
        if compressed(head):
            return None
        reads = (os.pread(fd, min(chunk, size - at), at) for at in range(chunk, size, chunk))
        head, _ = formats.take_head(chain((head,), reads), max_line_bytes)   # the head read_blocks sniffs
        if not formats.choose(head, source.name).splittable:
            return None
        ranges: list[tuple[int, int]] = []
        begin = 0
        for at in range(0, size, chunk):
            stop = min(at + chunk, size)
            for tail in (*RANGE_TAILS, chunk):
                low = max(at, stop - tail)
                cut = os.pread(fd, stop - low, low).rfind(b"\n")
                if cut >= 0 or low == at:
                    break
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
