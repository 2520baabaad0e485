"""Local inputs: files, streams (pipes, `<(zcat day.gz)`, /dev/stdin), folders read recursively
and glob patterns, sorted by path, each regular file known by its resolved path.

Folders are walked with symbolic links followed, but each folder once; hidden entries, pipes and
devices inside folders are left out (with a warning for the latter); Segment's day folders that
cannot hold an event of the window are pruned unlisted.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
import sys

from recombee_cli.errors import InputError
from recombee_cli.sources.base import Source, Warn, display_name
from recombee_cli.sources.dayfolders import Window, folder_outside_window, glob_skip


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


def stdin_source() -> Source:
    return Source(name="<stdin>", open=lambda: sys.stdin.buffer, size=None, identity=None)


def _symlink_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "a dangling symbolic link"
    return f"a symbolic link that cannot be followed ({exc.strerror or exc})"


def _walk(top: str, *, warn: Warn, window: Window, skipped: list[str] | None) -> list[tuple[str, os.stat_result]]:
    """The regular files under a folder (hidden ones left out), sorted by path. Symbolic links are
    followed, but a folder already read (a link loop, a second link to it) is read once; a link
    that leads nowhere, and pipes or devices found inside, are skipped with a warning."""
    found = []
    seen: dict[tuple[int, int], str] = {}
    # real folders first, so that a link to one is the copy skipped
    folders: list[str] = [top]
    linked: list[str] = []
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
        real: list[str] = []
        links: list[str] = []
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


def expand_local(arg: str, *, window: Window, warn: Warn, skipped: list[str] | None) -> list[Source]:
    """The sources a local argument names (see `reader.expand_inputs`): a file, a stream (pipe,
    device), a folder read recursively or a glob pattern; InputError when it names nothing."""
    try:
        st = os.stat(arg)
    except OSError as exc:
        if not glob.has_magic(arg):
            raise InputError(_no_such(arg, exc)) from None
        return _expand_glob(arg, window=window, warn=warn, skipped=skipped)
    if stat.S_ISDIR(st.st_mode):
        return [_local_source(p, s) for p, s in _walk(arg, warn=warn, window=window, skipped=skipped)]
    if stat.S_ISREG(st.st_mode):
        return [_local_source(arg, st)]
    return [_stream_source(arg)]


def _expand_glob(pattern: str, *, window: Window, warn: Warn, skipped: list[str] | None) -> list[Source]:
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
