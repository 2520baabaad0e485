"""Cutting bytes into lines: the one step of reading that touches every byte.

`bytes.split(b"\\n")` compares byte by byte (about 5 instructions a byte); `bytes.find` runs memchr,
which skips a whole event's bytes in a few instructions per 32 bytes. Segment events are hundreds
of bytes to a few kilobytes, so a loop of finds is several times cheaper per line. Compiled (this
module is in build.COMPILED_MODULES), the loop calls memchr itself and makes each line's bytes
from the pointer (lines.pxd): 4x cheaper a line than the method calls. The result is exactly
`data.split(b"\\n")` in either build (tests/sources/test_reader.py checks both). Lines that are
not cut are counted (`count_newlines`), compiled sixteen bytes a step.
"""

from __future__ import annotations

import re
import types


def cut_lines(data: bytes) -> list[bytes]:
    """`data.split(b"\\n")`, by memchr."""
    lines: list[bytes] = []
    if _FAST:
        p = data
        n = len(data)
        start = 0
        end = _newline(p, n, 0)  # type: ignore[name-defined]  # noqa: F821 - lines.pxd's C function
        while end >= 0:
            lines.append(p[start:end])   # (compiled: the bytes made straight from the pointer)
            start = end + 1
            end = _newline(p, n, start)  # type: ignore[name-defined]  # noqa: F821
        lines.append(p[start:n])
        return lines
    find = data.find
    start = 0
    end = find(b"\n")
    while end >= 0:
        lines.append(data[start:end])
        start = end + 1
        end = find(b"\n", start)
    lines.append(data[start:])
    return lines


def count_newlines(data: bytes) -> int:
    """`data.count(b"\\n")`. Compiled (lines.pxd), sixteen bytes a step instead of one: the main
    process counts the lines of every block it reads whole for the workers (a .gz file, stdin, an
    object), without cutting them."""
    if _FAST:
        return _newlines(data, len(data))  # type: ignore[name-defined]  # noqa: F821 - lines.pxd's C function
    return data.count(b"\n")


# Compiled (lines.pxd), the newlines are found by C's memchr on the bytes themselves: a call of
# `bytes.find` per line cost more than the line (about 2.6k instructions a line of a replay).
# (Compiled, cut_lines is a C function, not a Python one: whatever the module's file is called.)
_FAST = not isinstance(cut_lines, types.FunctionType)


# A run of this many blank lines or more is left out of the blocks instead of being cut into lines
# one by one: a file of newlines (a "newline bomb", or a writer that padded its output) is then
# read at the speed of a search for the run's end, not at a line's cost per newline. Shorter runs
# are cut as usual (translate_block skips an empty line in a few instructions). Large enough that
# a file with some blank lines between events is still read in the usual large blocks.
BLANK_RUN = 4096
_RUN_PROBE = b"\n" * BLANK_RUN
_CRLF_PROBE = b"\r\n" * BLANK_RUN
_BLANK_BYTES = re.compile(rb"[\r\n]*")   # a character class: a run's end is found at memory speed
# A run (at least BLANK_RUN bytes, each \r or \n) holds a whole aligned block of _BLOCK bytes: the
# first _SAMPLED bytes of some such block are all \r or \n. Looking at those first (8 bytes in
# 2048) spares most blocks of text the two searches for the probes, 2 % of a dry run's CPU.
_BLOCK = BLANK_RUN // 2
_SAMPLED = 8
_NEWLINE_FLAGS = bytes(1 if c in (10, 13) else 0 for c in range(256))


def _may_hold_run(data: bytes) -> bool:
    """False where `data` surely holds no run of BLANK_RUN blank lines (see _BLOCK)."""
    blocks = len(data) // _BLOCK   # the whole aligned blocks: a run in `data` holds one of them
    flags = -1
    for offset in range(_SAMPLED if blocks else 0):
        flags &= int.from_bytes(data[offset:blocks * _BLOCK:_BLOCK].translate(_NEWLINE_FLAGS), "little")
        if not flags:
            return False
    return bool(blocks)


def blank_free_segments(data: bytes) -> list[tuple[int, int, int]] | None:
    """Where `data` (whole lines joined by newlines, the last one without its newline) holds runs
    of BLANK_RUN or more blank lines (empty, or a lone `\r`): the parts to keep, as (index of the
    part's first line, start, end), `data[start:end]` being whole lines joined by newlines. A run's
    lines are in no part, nor is a last line that is blank. None when there is no such run: keep
    `data` whole (one search of the data: the common case)."""
    if not _may_hold_run(data) or (data.find(_RUN_PROBE) < 0 and data.find(_CRLF_PROBE) < 0):
        return None
    parts: list[tuple[int, int, int]] = []
    size = len(data)
    line = start = 0          # the next line to place: its index and where it starts
    while start < size:
        run = size            # where the next run's first line starts (size: no run)
        at = data.find(_RUN_PROBE, start)
        if at >= 0:           # a newline, then blank lines: the run starts after it, or at it
            run = at if at == start else at + 1
        at = data.find(_CRLF_PROBE, start, run)
        if at >= 0:           # "\r\n" runs: the run starts at a line start
            run = at if at == start or data[at - 1] == 10 else at + 2
        if run > start:       # the lines before the run are kept
            end = min(run - 1, size) if run < size else size
            parts.append((line, start, end))
            line += data.count(b"\n", start, end) + 1
            if run >= size:
                break
        match = _BLANK_BYTES.match(data, run)   # (an empty match at least)
        end = match.end() if match is not None else run
        if end >= size:
            break             # the rest is blank lines, the last one included
        end = data.rfind(b"\n", run, end) + 1   # the line the run stops in is not blank: keep it
        if end <= run:        # (cannot happen: a run holds BLANK_RUN newlines) never loop for ever
            parts.append((line, run, size))
            break
        line += data.count(b"\n", run, end)     # the run's lines, each ended by its newline
        start = end
    return parts
