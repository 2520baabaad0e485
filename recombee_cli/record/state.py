"""Record stage: the state file, what has been answered per input file, so that runs resume and skip.

A SQLite file (versioned schema) holds, per input file, its identity (path + size + mtime, or an
object's ETag), the byte offset (in the decompressed stream) and line number before which every
event has a final answer, and the journal of what Recombee accepted past that point (`answered`:
the places of the requests, request_kinds.sid, or whole ranges of lines), so that a resumed run
sends nothing Recombee already answered — a merge or a user deletion above all, which Recombee
would apply again (record/checkpoints.py keeps it up to date while a run goes). `applied` counts,
per file, the merges and user deletions Recombee applied, which `--reprocess` must not send again.

A file is *done* only when every event in it has a final answer. An event with a request not
delivered (retries ran out in an outage, no usable answer) keeps its file pending, with the
reason, so the next run sends it again; so does a file that could not be opened or read. A
request Recombee refused for good (a 4xx no retry can change) is final: counted (`refused`), kept
in the rejects, the file can be done. Files are known by their resolved absolute path (objects by
their canonical URL), so `F`, `./F` and `/abs/F` are one file.

A lock (flock on `<state>.lock`, which the kernel releases when the process dies, even on kill -9)
keeps two runs off one state file; the lock file names the running process. Within a run, the
sender's threads write the journal while the main thread writes checkpoints: one lock orders them.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from recombee_cli.errors import StateError, StateLocked, StateWriteError
from recombee_cli.private import FILE_MODE, create_private, make_folders
from recombee_cli.sources.reader import display_name

SCHEMA_VERSION = 3

_JOURNAL = """
CREATE TABLE IF NOT EXISTS answered (   -- past a file's checkpoint: what Recombee accepted (v3)
    path TEXT NOT NULL,
    first INTEGER NOT NULL,             -- the lines it covers
    last INTEGER NOT NULL,
    sids BLOB                           -- the requests' places (int64 each), or NULL: every request of the lines
);
CREATE INDEX IF NOT EXISTS answered_by_path ON answered (path, last);
CREATE TABLE IF NOT EXISTS applied (    -- merges and user deletions Recombee applied, per file (v3)
    path TEXT PRIMARY KEY,
    solos INTEGER NOT NULL DEFAULT 0
);
"""
_SCHEMA = _JOURNAL + """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    offset INTEGER NOT NULL DEFAULT 0,   -- every line starting before this is acknowledged
    done INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    failed INTEGER NOT NULL DEFAULT 0,   -- events not delivered in the last run (v2)
    reason TEXT,                         -- why the file is not done (v2)
    line INTEGER NOT NULL DEFAULT 1,     -- the line number at `offset` (v3)
    refused INTEGER NOT NULL DEFAULT 0   -- events Recombee refused for good, in the runs so far (v3)
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
    line: int = 1
    refused: int = 0


# A journal row: (first line, last line, the places of the requests, or None for every request of the lines)
AnsweredRow = tuple[int, int, bytes | None]


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
        self._write = threading.Lock()   # the sender's threads (journal) and the main thread (checkpoints)
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
                    version = int(self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
                    if version < 2:
                        self._migrate_v1()
                    if version < 3:
                        self._migrate_v2()
                        self.db.execute("ALTER TABLE runs ADD COLUMN mappings TEXT")   # which mappings each run used
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

    def _migrate_v2(self) -> None:
        """Schema 3 adds each checkpoint's line number, the refusals and the journal of answers. A
        file of schema 2 has no journal: its pending files resume from their checkpoints, as before."""
        self.db.execute("ALTER TABLE files ADD COLUMN line INTEGER NOT NULL DEFAULT 1")
        self.db.execute("ALTER TABLE files ADD COLUMN refused INTEGER NOT NULL DEFAULT 0")
        for statement in _JOURNAL.split(";"):   # (not executescript: it would end the transaction)
            if statement.strip():
                self.db.execute(statement)

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
    _COLUMNS = "path, identity, offset, done, updated, failed, reason, line, refused"

    def file(self, key: str) -> FileState | None:
        row = self.db.execute(f"SELECT {self._COLUMNS} FROM files WHERE path=?", (display_name(key),)).fetchone()
        return FileState(row[0], row[1], row[2], bool(row[3]), *row[4:]) if row else None

    def save_files(self, rows: list[FileState], prune: dict[str, tuple[int, list[tuple[int, int]]]]) -> None:
        """Write files' checkpoints (`updated` is set here) and tidy their journals in one
        transaction. `prune`: per file, its checkpoint's line (the journal rows before it are let
        go) and the ranges of lines past it whose every request is answered (one row each,
        replacing the rows they hold); a file done keeps no journal."""
        now = time.time()
        try:
            with self._write, self.db:
                self.db.execute("BEGIN")
                self.db.executemany(
                    "INSERT INTO files (path, identity, offset, done, updated, failed, reason, line, refused) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET identity=excluded.identity, offset=excluded.offset, "
                    "done=excluded.done, updated=excluded.updated, failed=excluded.failed, "
                    "reason=excluded.reason, line=excluded.line, refused=excluded.refused",
                    [(display_name(f.path), display_name(f.identity), f.offset, int(f.done), now, f.failed,
                      f.reason, f.line, f.refused) for f in rows])
                for f in rows:
                    key = display_name(f.path)
                    if f.done:
                        self.db.execute("DELETE FROM answered WHERE path=?", (key,))
                        continue
                    line, ranges = prune.get(f.path, (f.line, []))
                    self.db.execute("DELETE FROM answered WHERE path=? AND last < ?", (key, line))
                    if f.path in prune:
                        self.db.execute("DELETE FROM answered WHERE path=? AND sids IS NULL", (key,))
                    for first, last in ranges:
                        self.db.execute("DELETE FROM answered WHERE path=? AND first >= ? AND last <= ?",
                                        (key, first, last))
                        self.db.execute("INSERT INTO answered (path, first, last, sids) VALUES (?, ?, ?, NULL)",
                                        (key, first, last))
        except sqlite3.Error as exc:
            raise StateWriteError(f"cannot write the state file {self.path}: {exc}") from None

    def files(self) -> list[FileState]:
        return [FileState(r[0], r[1], r[2], bool(r[3]), *r[4:]) for r in self.db.execute(
            f"SELECT {self._COLUMNS} FROM files ORDER BY path")]

    # -- the journal of answers ----------------------------------------------------------------
    def record_answered(self, rows: list[tuple[str, int, int, bytes]], solos: dict[str, int]) -> None:
        """Record what Recombee accepted (rows of key, first line, last line, places), and the
        merges and user deletions it applied per file; committed before this returns."""
        try:
            with self._write, self.db:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT INTO answered (path, first, last, sids) VALUES (?, ?, ?, ?)",
                                    [(display_name(k), first, last, blob) for k, first, last, blob in rows])
                self.db.executemany("INSERT INTO applied (path, solos) VALUES (?, ?) "
                                    "ON CONFLICT(path) DO UPDATE SET solos = solos + excluded.solos",
                                    [(display_name(k), n) for k, n in solos.items() if n])
        except sqlite3.Error as exc:
            raise StateWriteError(f"cannot write the state file {self.path}: {exc}") from None

    def answered_rows(self, key: str, from_line: int) -> list[AnsweredRow]:
        """The journal of a file from a line on."""
        return [(r[0], r[1], r[2]) for r in self.db.execute(
            "SELECT first, last, sids FROM answered WHERE path=? AND last >= ? ORDER BY first",
            (display_name(key), from_line))]

    def forget_answered(self, key: str) -> None:
        """A file read again from its start (changed, or --reprocess): its journal no longer applies."""
        try:
            with self._write, self.db:
                self.db.execute("DELETE FROM answered WHERE path=?", (display_name(key),))
        except sqlite3.Error as exc:
            raise StateWriteError(f"cannot write the state file {self.path}: {exc}") from None

    def applied_solos(self, keys: list[str]) -> dict[str, int]:
        """Per file (of `keys`), the merges and user deletions Recombee applied in earlier runs."""
        wanted = {display_name(k): k for k in keys}
        return {wanted[path]: n for path, n in self.db.execute("SELECT path, solos FROM applied WHERE solos > 0")
                if path in wanted}

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
            with self._write:
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
        """Note which mappings a run uses (`mapping.config.Config.mappings_identity`); returns what
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


def describe_command(argv: list[str] | None = None) -> str:
    return " ".join(argv if argv is not None else sys.argv)
