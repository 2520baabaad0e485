"""A read-only look at a state file, for `doctor`: which database it belongs to, how many files are
done or pending, whether a run holds it now, and whether its folder takes writes. It never
migrates, locks or writes the state (a run may be using it), and it reads states of every schema:
a state of an earlier version, which records no database, is said as such."""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import tempfile
from dataclasses import dataclass


@dataclass
class StatePeek:
    path: str
    exists: bool
    database_id: str | None = None      # the database it belongs to, when the state records it
    endpoint: str | None = None         # and the address
    files_done: int = 0
    files_pending: int = 0
    runs: int = 0
    last_status: str | None = None      # the last run's: done, failed, aborted, interrupted, crashed...
    holder: str | None = None           # the run holding the lock now ("pid 12 on host since ...: command")
    problem: str | None = None          # why it cannot be read


def writable_folder(folder: str) -> str | None:
    """None when a file can be created in `folder` (or in the nearest existing folder above it,
    where `folder` would be created); else why not, in a few words."""
    probe = folder
    while not os.path.isdir(probe):
        if os.path.exists(probe):
            return f"{probe} is not a folder"
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        fd, name = tempfile.mkstemp(prefix=".recombee-cli-doctor-", dir=probe)
    except OSError as exc:
        return f"cannot write in {probe}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(name)
    return None


def _connect(path: str) -> sqlite3.Connection:
    uri = "file:" + path.replace("?", "%3F").replace("#", "%23")
    try:
        db = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=2)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:   # a read-only folder: no -shm can be made; read what is on disk
        return sqlite3.connect(uri + "?immutable=1", uri=True, timeout=2)


def peek(path: str) -> StatePeek:
    if not os.path.exists(path):
        return StatePeek(path, exists=False)
    found = StatePeek(path, exists=True, holder=_holder(path + ".lock"))
    try:
        db = _connect(path)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" in tables:
                meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('database_id', 'endpoint')"))
                found.database_id, found.endpoint = meta.get("database_id"), meta.get("endpoint")
            if "files" in tables:
                for done, count in db.execute("SELECT done, count(*) FROM files GROUP BY done"):
                    if done:
                        found.files_done += count
                    else:
                        found.files_pending += count
            if "runs" in tables:
                found.runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
                last = db.execute("SELECT status FROM runs ORDER BY id DESC LIMIT 1").fetchone()
                found.last_status = last[0] if last else None
        finally:
            db.close()
    except sqlite3.Error as exc:
        found.problem = f"cannot read it: {exc}"
    return found


def _holder(lock_path: str) -> str | None:
    """Who holds the run lock now (the lock file names it), or None."""
    try:
        fh = open(lock_path)
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return fh.read().strip() or "another process"
            return None
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None
