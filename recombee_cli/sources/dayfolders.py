"""Segment's day folders: which `segment-logs/<source>/<epoch-ms>/` folders a time window can skip.

The rules of one thing, shared by local folders (reader) and object stores (remote)."""

from __future__ import annotations

import glob
import os

# Segment's S3 destination files events under the UTC day Segment *received* them
# (`segment-logs/<source>/<day epoch-ms>/`). Mobile libraries queue events while offline and send
# them days later, so a folder received up to this many days after --until can still hold events
# from before it.
LATE_ARRIVAL_DAYS = 7
CLOCK_SKEW_SECONDS = 3600   # an event stamped a little after its receipt (a fast device clock)
_DAY_MS = 86_400_000

# (since, until) in epoch seconds, either end open (None); None: no window, nothing is skipped.
Window = tuple[float | None, float | None] | None


def received_day(name: str) -> float | None:
    """The start (epoch seconds) of the UTC day a Segment `<epoch-ms>` folder is named after, or
    None: only 13 ASCII digits that are a UTC midnight count."""
    if len(name) == 13 and name.isascii() and name.isdigit():
        ms = int(name)
        if ms % _DAY_MS == 0:
            return ms / 1000
    return None


def folder_outside_window(name: str, window: Window) -> bool:
    """True when a folder named after the day Segment received its events cannot hold an event of
    `window` = (since, until) in epoch seconds: its day (plus clock skew) ends before `since` (an
    event is not received before it happens), or it starts more than LATE_ARRIVAL_DAYS after `until`."""
    if window is None:
        return False
    start = received_day(name)
    if start is None:
        return False
    since, until = window
    if since is not None and start + 86_400 + CLOCK_SKEW_SECONDS <= since:
        return True
    return until is not None and start > until + LATE_ARRIVAL_DAYS * 86_400


def glob_skip(pattern: str, match: str, is_dir: bool, window: Window, sep: str = os.sep) -> str | None:
    """The day folder, among those a pattern's wildcards matched, that puts `match` outside the window."""
    if window is None:
        return None
    fixed = 0
    for part in pattern.split(sep):
        if glob.has_magic(part):
            break
        fixed += 1
    parts = match.split(sep)
    for i in range(fixed, len(parts) if is_dir else len(parts) - 1):
        if folder_outside_window(parts[i], window):
            return sep.join(parts[:i + 1])
    return None
