"""Cutting bytes into lines: the one step of reading that touches every byte.

`bytes.split(b"\\n")` compares byte by byte (about 5 instructions a byte); `bytes.find` runs memchr,
which skips a whole event's bytes in a few instructions per 32 bytes. Segment events are hundreds
of bytes to a few kilobytes, so a loop of finds is several times cheaper per line, in either build
(this module is in build.COMPILED_MODULES). The result is exactly `data.split(b"\\n")`
(tests/sources/test_reader.py checks that).
"""

from __future__ import annotations

import re


def cut_lines(data: bytes) -> list[bytes]:
    """`data.split(b"\\n")`, by memchr."""
    lines: list[bytes] = []
    find = data.find
    start = 0
    end = find(b"\n")
    while end >= 0:
        lines.append(data[start:end])
        start = end + 1
        end = find(b"\n", start)
    lines.append(data[start:])
    return lines


# A run of this many blank lines or more is left out of the blocks instead of being cut into lines
# one by one: a file of newlines (a "newline bomb", or a writer that padded its output) is then
# read at the speed of a search for the run's end, not at a line's cost per newline. Shorter runs
# are cut as usual (translate_block skips an empty line in a few instructions). Large enough that
# a file with some blank lines between events is still read in the usual large blocks.
BLANK_RUN = 4096
_RUN_PROBE = b"\n" * BLANK_RUN
_CRLF_PROBE = b"\r\n" * BLANK_RUN
_BLANK_BYTES = re.compile(rb"[\r\n]*")   # a character class: a run's end is found at memory speed


def blank_free_segments(data: bytes) -> list[tuple[int, int, int]] | None:
    """Where `data` (whole lines joined by newlines, the last one without its newline) holds runs
    of BLANK_RUN or more blank lines (empty, or a lone `\r`): the parts to keep, as (index of the
    part's first line, start, end), `data[start:end]` being whole lines joined by newlines. A run's
    lines are in no part, nor is a last line that is blank. None when there is no such run: keep
    `data` whole (one search of the data: the common case)."""
    if data.find(_RUN_PROBE) < 0 and data.find(_CRLF_PROBE) < 0:
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
