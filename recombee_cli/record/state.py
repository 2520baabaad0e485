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
from recombee_cli.private import FILE_MODE, create_private, make_folders
from recombee_cli.sources.reader import Source, display_name

SCHEMA_VERSION = 2
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
    report TEXT                         -- the run's --report JSON
);
"""


_NAME_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@")


def state_file_name(database_id: str) -> str:
    """A database id as a file name, one file per id: Recombee's ID characters stay as they are
    (so `shop-prod` is `shop-prod.sqlite`, as it always was), anything else, `%` included, is
    %-escaped (`shop/prod` -> `shop%2Fprod`, never `shop_prod`), and so are `.` and `..`."""
    if database_id in (".", ".."):
        return database_id.replace(".", "%2E")
    return "".join(c if c in _NAME_SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
                   for c in database_id)


def default_state_path(database_id: str | None) -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "recombee-cli", f"{state_file_name(database_id or 'default')}.sqlite")


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
    """The state file, opened (created 0600, in folders made 0700, when it does not exist)."""

    def __init__(self, path: str, *, warn: Callable[[str], None] | None = None):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        try:
            make_folders(directory)
        except FileExistsError:
            raise StateError(f"cannot create the state folder {directory}: a file of that name is there") from None
        except OSError as exc:
            raise StateError(f"cannot create the state folder {directory}: {exc.strerror or exc}") from None
        self._lock_fh: TextIO | None = None
        self._check_not_emptied(warn)
        db: sqlite3.Connection | None = None
        try:
            create_private(path)
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
                    if int(self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]) < 2:
                        self._migrate_v1()
                    self.db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        except (sqlite3.DatabaseError, OSError) as exc:
            if db is not None:
                db.close()
            raise StateError(f"{path}: not a usable state file ({exc})") from None
        except StateError:
            if db is not None:
                db.close()
            raise

    def _check_not_emptied(self, warn: Callable[[str], None] | None) -> None:
        """A state file of zero bytes is not a new state: SQLite would take it for one, and every
        input would be sent again. Refused when a run has used this path before (its lock file is
        there: the state was emptied or truncated since); else said, and a new state starts."""
        try:
            if os.path.getsize(self.path) != 0:
                return
        except OSError:
            return   # not there (a new state), or not readable (sqlite says why)
        if os.path.exists(self.path + ".lock"):
            raise StateError(f"the state file {self.path} is empty, but runs have used it before "
                             f"({self.path}.lock is theirs): it was emptied or truncated, and a new state "
                             f"would send every input again; restore it from a backup, or remove it and "
                             f"{self.path}.lock to start afresh")
        if warn is not None:
            warn(f"the state file {self.path} is empty: starting a new state in it (every input counts as new)")

    # -- which database the state belongs to -----------------------------------------------------
    def bind(self, database_id: str, endpoint: str | None = None) -> None:
        """The state belongs to one database at one address (a region's host or a base URI): the
        first run records them, and a run for another database or address is refused (StateError,
        exit 2): its files would be skipped as done while that database never got them. A state
        from before this was recorded is bound by its next run; an `endpoint` of None (a Python
        caller's own sink) checks the database alone."""
        meta = dict(self.db.execute("SELECT key, value FROM meta WHERE key IN ('database_id', 'endpoint')"))
        owner, address = meta.get("database_id"), meta.get("endpoint")
        if (owner is not None and owner != database_id) or (endpoint and address and address != endpoint):
            raise StateError(f"the state file {self.path} belongs to database {owner!r}"
                             + (f" at {address}" if address else "") + f", not {database_id!r}"
                             + (f" at {endpoint}" if endpoint else "") + ": its files are done for that "
                             "database only; use that database's state (--state FILE; by default one "
                             "file per database id)")
        try:
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('database_id', ?)", (database_id,))
                if endpoint:
                    self.db.execute("INSERT OR IGNORE INTO meta VALUES ('endpoint', ?)", (endpoint,))
        except sqlite3.Error as exc:
            raise StateError(f"cannot write the state file {self.path}: {exc}") from None

    def owner(self) -> tuple[str | None, str | None]:
        """The database id and address the state belongs to (None where not recorded yet)."""
        meta = dict(self.db.execute("SELECT key, value FROM meta WHERE key IN ('database_id', 'endpoint')"))
        return meta.get("database_id"), meta.get("endpoint")

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
            fh = os.fdopen(os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE), "a+")
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
