"""Record stage: what has been acknowledged, per input file, so that runs resume and skip.

A SQLite file (versioned schema) holds, per input file, its identity (path + size + mtime, or an
object's ETag) and the byte offset (in the decompressed stream) before which every event's requests
were answered — sent, duplicate, or failed and written to the rejects file. A crash re-reads from
that offset; what is re-sent comes back 409 and counts as `duplicate`.

A lock (flock on `<state>.lock`, which the kernel releases when the process dies, even on kill -9)
keeps two runs off one state file; the lock file names the running process.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import sys
import time
from collections import deque
from dataclasses import dataclass

from .errors import RecombeeCliError
from .reader import Source

SCHEMA_VERSION = 1
FLUSH_SECONDS = 1.0   # a crash re-sends at most about this much work (a few batches)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    offset INTEGER NOT NULL DEFAULT 0,   -- every line starting before this is acknowledged
    done INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,               -- running, done, failed, aborted, interrupted
    command TEXT NOT NULL,
    report TEXT                         -- the run's --report JSON
);
"""


class StateLocked(RecombeeCliError):
    """Another run holds the state file."""


class StateError(RecombeeCliError):
    """The state file cannot be used (unreadable, newer schema...)."""


def default_state_path(database_id: str | None) -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in (database_id or "default"))
    return os.path.join(base, "recombee-cli", f"{name}.sqlite")


@dataclass
class FileState:
    path: str
    identity: str
    offset: int
    done: bool
    updated: float


class StateStore:
    def __init__(self, path: str):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._lock_fh = None
        try:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: not a usable state file ({exc})") from None
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise StateError(f"{path}: written by a newer recombee-cli (schema {row[0]}); upgrade to use it")

    # -- the lock ------------------------------------------------------------------------------
    def lock(self, command: str) -> None:
        """Take the run lock or raise StateLocked naming the holder. A dead holder's lock is free."""
        fh = open(self.path + ".lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StateLocked(f"another run is using the state file {self.path}: {holder}; "
                              f"wait for it to finish (or use another --state)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {command}\n")
        fh.flush()
        self._lock_fh = fh

    def unlock(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.truncate(0)
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # -- files ---------------------------------------------------------------------------------
    def file(self, path: str) -> FileState | None:
        row = self.db.execute("SELECT path, identity, offset, done, updated FROM files WHERE path=?",
                              (path,)).fetchone()
        return FileState(row[0], row[1], row[2], bool(row[3]), row[4]) if row else None

    def save_files(self, rows: list[tuple[str, str, int, bool]]) -> None:
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO files (path, identity, offset, done, updated) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET identity=excluded.identity, offset=excluded.offset, "
                "done=excluded.done, updated=excluded.updated",
                [(p, i, o, int(d), now) for p, i, o, d in rows])

    def files(self) -> list[FileState]:
        return [FileState(r[0], r[1], r[2], bool(r[3]), r[4]) for r in self.db.execute(
            "SELECT path, identity, offset, done, updated FROM files ORDER BY path")]

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, command: str) -> int:
        cur = self.db.execute("INSERT INTO runs (started, status, command) VALUES (?, 'running', ?)",
                              (time.time(), command))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str, report: dict) -> None:
        self.db.execute("UPDATE runs SET finished=?, status=?, report=? WHERE id=?",
                        (time.time(), status, json.dumps(report), run_id))

    def runs(self, limit: int = 10) -> list[dict]:
        out = []
        for r in self.db.execute("SELECT id, started, finished, status, command, report FROM runs "
                                 "ORDER BY id DESC LIMIT ?", (limit,)):
            out.append({"id": r[0], "started": r[1], "finished": r[2], "status": r[3], "command": r[4],
                        "report": json.loads(r[5]) if r[5] else None})
        return out

    def close(self) -> None:
        self.unlock()
        self.db.close()


class _FileProgress:
    """Offsets of lines with unanswered events (in read order) and how far reading has got."""

    __slots__ = ("source", "pending", "open", "frontier", "read_all")

    def __init__(self, source: Source, start: int):
        self.source = source
        self.pending: deque[int] = deque()
        self.open: dict[int, int] = {}       # line offset -> events of that line still unanswered
        self.frontier = start                # every line starting before this has been read
        self.read_all = False

    def checkpoint(self) -> int:
        return self.pending[0] if self.pending else self.frontier


class Checkpoints:
    """Tracks acknowledged positions while a run goes, and writes them to the state store."""

    def __init__(self, store: StateStore, *, reprocess: bool = False, warn=lambda message: None,
                 clock=time.monotonic):
        self.store = store
        self.reprocess = reprocess
        self.warn = warn
        self._clock = clock
        self._files: dict[str, _FileProgress] = {}
        self._last_flush = clock()
        self.skipped = 0
        self.resumed = 0

    def begin(self, source: Source) -> int | None:
        """Where to start reading a source; None to skip it (done before, unchanged)."""
        if source.identity is None:
            return 0   # stdin: nothing to resume
        known = self.store.file(source.name)
        start = 0
        if known is not None and not self.reprocess:
            if known.identity != source.identity:
                self.warn(f"{source.name} changed since it was last read; processing it again from the start")
            elif known.done:
                self.skipped += 1
                return None
            elif known.offset > 0:
                start = known.offset
                self.resumed += 1
        self._files[source.name] = _FileProgress(source, start)
        return start

    def submitted(self, source: str, offset: int) -> None:
        progress = self._files.get(source)
        if progress is None:
            return
        if offset in progress.open:
            progress.open[offset] += 1
        else:
            progress.open[offset] = 1
            progress.pending.append(offset)

    def read_past(self, source: str, offset: int) -> None:
        progress = self._files.get(source)
        if progress is not None:
            progress.frontier = offset + 1

    def source_read(self, source: str) -> None:
        progress = self._files.get(source)
        if progress is not None:
            progress.read_all = True

    def answered(self, source: str, offset: int) -> None:
        progress = self._files.get(source)
        if progress is None:
            return
        left = progress.open[offset] - 1
        if left:
            progress.open[offset] = left
            return
        del progress.open[offset]
        pending = progress.pending
        while pending and pending[0] not in progress.open:
            pending.popleft()

    def maybe_flush(self) -> None:
        if self._clock() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        rows = []
        finished = []
        for name, progress in self._files.items():
            done = progress.read_all and not progress.pending
            rows.append((name, progress.source.identity, progress.checkpoint(), done))
            if done:
                finished.append(name)
        if rows:
            self.store.save_files(rows)
        for name in finished:   # done files need no more tracking
            del self._files[name]
        self._last_flush = self._clock()


def describe_command(argv: list[str] | None = None) -> str:
    return " ".join(argv if argv is not None else sys.argv)
