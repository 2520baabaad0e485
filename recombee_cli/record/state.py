"""Record stage: what has been acknowledged, per input file, so that runs resume and skip.

A SQLite file (versioned schema) holds, per input file, its identity (path + size + mtime, or an
object's ETag) and the byte offset (in the decompressed stream) before which every event has a final
answer — sent, duplicate, or invalid and written to the rejects file. A crash re-reads from that
offset; what is re-sent comes back 409 and counts as `duplicate`.

A file is *done* only when every event in it has such an answer. An event whose requests `failed`
(Recombee refused them, or retries ran out in an outage) is not acknowledged: the offset stays
before it and the file stays pending, with the reason, so the next run sends it again. So does a
file that could not be opened or read (permission denied, I/O error). Files are known by their
resolved absolute path (objects by their canonical URL), so `F`, `./F` and `/abs/F` are one file.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from recombee_cli.errors import StateError, StateLocked, StateWriteError
from recombee_cli.sources.reader import Source, display_name

SCHEMA_VERSION = 3
FLUSH_SECONDS = 1.0   # a crash re-sends at most about this much work (a few batches)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    offset INTEGER NOT NULL DEFAULT 0,   -- every line starting before this is acknowledged
    done INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    failed INTEGER NOT NULL DEFAULT 0,   -- events not delivered in the last run (v2)
    reason TEXT                          -- why the file is not done (v2)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,               -- running, done, failed, aborted, interrupted, crashed
    command TEXT NOT NULL,
    report TEXT,                        -- the run's --report JSON
    mappings TEXT                       -- which mappings it used: config, count, digest (JSON; v3)
);
"""


def default_state_path(database_id: str | None) -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in (database_id or "default"))
    return os.path.join(base, "recombee-cli", f"{name}.sqlite")


def default_rejects_path(state_path: str) -> str:
    """Where a run that keeps this state keeps its rejects (invalid and failed events, a dead-letter
    queue for that database): beside the state, `<database>.rejects.ndjson`."""
    stem, extension = os.path.splitext(state_path)
    return (stem if extension == ".sqlite" else state_path) + ".rejects.ndjson"


@dataclass
class FileState:
    path: str
    identity: str
    offset: int
    done: bool
    updated: float
    failed: int = 0
    reason: str | None = None


class StateStore:
    def __init__(self, path: str):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
        except FileExistsError:
            raise StateError(f"cannot create the state folder {directory}: a file of that name is there") from None
        except OSError as exc:
            raise StateError(f"cannot create the state folder {directory}: {exc.strerror or exc}") from None
        self._lock_fh: TextIO | None = None
        db: sqlite3.Connection | None = None
        try:
            self.db = db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() \
                if self._has_table("meta") else None
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise StateError(f"{path}: written by a newer recombee-cli (schema {row[0]}); upgrade to use it")
            if row is None:   # a new file (CREATE ... IF NOT EXISTS: two new runs may race here)
                self.db.executescript(_SCHEMA)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) < SCHEMA_VERSION:
                with self.db:
                    self.db.execute("BEGIN IMMEDIATE")
                    version = int(self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
                    if version < 2:
                        self._migrate_v1()
                    if version < 3:   # v3: which mappings each run used
                        self.db.execute("ALTER TABLE runs ADD COLUMN mappings TEXT")
                    self.db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        except (sqlite3.DatabaseError, OSError) as exc:
            if db is not None:
                db.close()
            raise StateError(f"{path}: not a usable state file ({exc})") from None
        except StateError:
            if db is not None:
                db.close()
            raise

    @property
    def rejects_path(self) -> str:
        """The rejects this state keeps (see `default_rejects_path`)."""
        return default_rejects_path(self.path)

    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() \
            is not None

    def _migrate_v1(self) -> None:
        """Schema 1 knew files by the path as typed (`F`, `./F`...): re-key them by resolved path,
        so an older state file is not read as "nothing done" (which would send everything again)."""
        self.db.execute("ALTER TABLE files ADD COLUMN failed INTEGER NOT NULL DEFAULT 0")
        self.db.execute("ALTER TABLE files ADD COLUMN reason TEXT")
        rows = self.db.execute("SELECT path, identity, offset, done, updated FROM files ORDER BY updated").fetchall()
        keyed: dict[str, tuple[str, str, int, int, float]] = {}
        for path, identity, offset, done, updated in rows:
            if "://" in path:          # an object: its URL was already canonical
                keyed[path] = (path, identity, offset, done, updated)
                continue
            absolute, _, rest = identity.partition("|")   # schema 1: abspath|size|mtime
            real = os.path.realpath(absolute if os.path.isabs(absolute) else path)
            keyed[display_name(real)] = (display_name(real), f"{display_name(real)}|{rest}", offset, done, updated)
        self.db.execute("DELETE FROM files")
        self.db.executemany("INSERT INTO files (path, identity, offset, done, updated) VALUES (?, ?, ?, ?, ?)",
                            list(keyed.values()))

    # -- the lock ------------------------------------------------------------------------------
    def lock(self, command: str) -> None:
        """Take the run lock or raise StateLocked naming the holder. A dead holder's lock is free."""
        try:
            fh = open(self.path + ".lock", "a+")
        except OSError as exc:
            raise StateError(f"cannot create the lock file {self.path}.lock: {exc.strerror or exc}") from None
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
    _COLUMNS = "path, identity, offset, done, updated, failed, reason"

    def file(self, key: str) -> FileState | None:
        row = self.db.execute(f"SELECT {self._COLUMNS} FROM files WHERE path=?", (display_name(key),)).fetchone()
        return FileState(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6]) if row else None

    def save_files(self, rows: list[tuple[str, str, int, bool, int, str | None]]) -> None:
        """Rows of (key, identity, offset, done, failed events, reason it is not done)."""
        now = time.time()
        try:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany(
                    "INSERT INTO files (path, identity, offset, done, updated, failed, reason) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET identity=excluded.identity, offset=excluded.offset, "
                    "done=excluded.done, updated=excluded.updated, failed=excluded.failed, "
                    "reason=excluded.reason",
                    [(display_name(p), display_name(i), o, int(d), now, f, r) for p, i, o, d, f, r in rows])
        except sqlite3.Error as exc:
            raise StateWriteError(f"cannot write the state file {self.path}: {exc}") from None

    def files(self) -> list[FileState]:
        return [FileState(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6]) for r in self.db.execute(
            f"SELECT {self._COLUMNS} FROM files ORDER BY path")]

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, command: str) -> int:
        """Record a run. Called with the lock held, so a run still marked `running` is one that
        died without saying so (kill -9, power cut): it is marked `crashed`."""
        try:
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("UPDATE runs SET status='crashed' WHERE status='running'")
                cur = self.db.execute("INSERT INTO runs (started, status, command) VALUES (?, 'running', ?)",
                                      (time.time(), display_name(command)))
        except sqlite3.Error as exc:
            raise StateError(f"cannot write the state file {self.path}: {exc}") from None
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, report: dict[str, Any]) -> None:
        try:
            self.db.execute("UPDATE runs SET finished=?, status=?, report=? WHERE id=?",
                            (time.time(), status, json.dumps(report), run_id))
        except sqlite3.Error as exc:
            raise StateWriteError(f"cannot write the state file {self.path}: {exc}") from None

    def runs(self, limit: int = 10) -> list[dict[str, Any]]:
        out = []
        for r in self.db.execute("SELECT id, started, finished, status, command, report, mappings FROM runs "
                                 "ORDER BY id DESC LIMIT ?", (limit,)):
            out.append({"id": r[0], "started": r[1], "finished": r[2], "status": r[3], "command": r[4],
                        "report": json.loads(r[5]) if r[5] else None,
                        "mappings": json.loads(r[6]) if r[6] else None})
        return out

    def record_mappings(self, run_id: int, mappings: dict[str, Any]) -> dict[str, Any] | None:
        """Note which mappings a run uses (`pipeline.config.Config.mappings_identity`); returns what
        the last earlier run that noted them used, or None (a first run, an older state)."""
        try:
            row = self.db.execute("SELECT id, started, mappings FROM runs WHERE id < ? AND mappings IS NOT NULL "
                                  "ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
            self.db.execute("UPDATE runs SET mappings=? WHERE id=?", (json.dumps(mappings), run_id))
        except sqlite3.Error as exc:
            raise StateError(f"cannot write the state file {self.path}: {exc}") from None
        return {**json.loads(row[2]), "run": row[0], "started": row[1]} if row else None

    def close(self) -> None:
        self.unlock()
        self.db.close()


class _FileProgress:
    """Offsets of lines with unanswered events (in read order) and how far reading has got."""

    __slots__ = ("source", "identity", "pending", "open", "frontier", "read_all", "failed", "reason", "stuck")

    def __init__(self, source: Source, identity: str, start: int):
        self.source = source
        self.identity = identity             # the source's, as read when the run began
        self.pending: deque[int] = deque()
        self.open: dict[int, int] = {}       # line offset -> events of that line still unanswered
        self.frontier = start                # every line starting before this has been read
        self.read_all = False
        self.failed = 0                      # events of this file that failed in this run
        self.reason: str | None = None       # why the file is not done (the first failure)
        self.stuck: int | None = None        # where reading failed (I/O): never past it

    def checkpoint(self) -> int:
        at = self.pending[0] if self.pending else self.frontier
        return at if self.stuck is None else min(at, self.stuck)

    def done(self) -> bool:
        return self.read_all and not self.pending and self.stuck is None


class Checkpoints:
    """Tracks acknowledged positions while a run goes, and writes them to the state store."""

    def __init__(self, store: StateStore, *, reprocess: bool = False,
                 warn: Callable[[str], None] = lambda message: None, clock: Callable[[], float] = time.monotonic):
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
            return 0   # stdin, a pipe: nothing to resume
        known = self.store.file(source.state_key)
        start = 0
        if known is not None and not self.reprocess:
            if known.identity != display_name(source.identity):
                self.warn(f"{display_name(source.name)} changed since it was last read; processing it again "
                          f"from the start")
            elif known.done:
                self.skipped += 1
                return None
            elif known.offset > 0:
                start = known.offset
                self.resumed += 1
        self._files[source.name] = _FileProgress(source, source.identity, start)
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

    def failed(self, source: str, offset: int, events: int, reason: str) -> None:
        """Events of the chunk or line at `offset` failed: it stays open, so the checkpoint never
        passes it and the file stays pending for the next run, which sends it again."""
        progress = self._files.get(source)
        if progress is None:
            return
        progress.failed += events
        if progress.reason is None:
            progress.reason = reason

    def unreadable(self, source: str, offset: int, reason: str) -> None:
        """Reading stopped at `offset` for a reason of the machine's (cannot open, I/O error)."""
        progress = self._files.get(source)
        if progress is None:
            return
        progress.stuck = offset if progress.stuck is None else min(progress.stuck, offset)
        progress.reason = progress.reason or reason

    def stopped(self, reason: str) -> None:
        """The run was aborted or interrupted: files not done say why, for `status`."""
        for progress in self._files.values():
            if progress.reason is None and not progress.done():
                progress.reason = reason

    def maybe_flush(self) -> None:
        if self._clock() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        rows = []
        finished = []
        for name, progress in self._files.items():
            done = progress.done()
            rows.append((progress.source.state_key, progress.identity, progress.checkpoint(), done,
                         progress.failed, None if done else progress.reason))
            if done:
                finished.append(name)
        if rows:
            self.store.save_files(rows)
        for name in finished:   # done files need no more tracking
            del self._files[name]
        self._last_flush = self._clock()


def describe_command(argv: list[str] | None = None) -> str:
    return " ".join(argv if argv is not None else sys.argv)
