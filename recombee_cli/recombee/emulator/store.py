"""The emulator's storage: the interaction types and their columns, and SQLite behind one lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from recombee_cli.private import create_private
from recombee_cli.recombee.emulator.params import boolean_param, id_param, number_param

# ----------------------------------------------------------------------------------------------
# Interaction types: table, extra columns and how to read them from the params
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    table: str
    noun: str                               # for messages
    read_fields: Callable[[dict[str, Any]], dict[str, Any]]   # params -> {column: value}: the type's own columns
    names: frozenset[str]                   # the type's own parameter names

    @property
    def add_names(self) -> frozenset[str]:
        return _COMMON_ADD | self.names

    @property
    def delete_names(self) -> frozenset[str]:
        if self.table == "viewportions":
            return frozenset({"userId", "itemId", "sessionId"})
        return frozenset({"userId", "itemId", "timestamp"})


_COMMON_ADD = frozenset({"userId", "itemId", "timestamp", "cascadeCreate", "recommId", "additionalData"})


def _detailview_fields(p: dict[str, Any]) -> dict[str, Any]:
    return {"duration": number_param(p, "duration", lo=0), "auto_presented": boolean_param(p, "autoPresented")}


def _purchase_fields(p: dict[str, Any]) -> dict[str, Any]:
    return {"amount": number_param(p, "amount"), "price": number_param(p, "price"), "profit": number_param(p, "profit")}


def _cartaddition_fields(p: dict[str, Any]) -> dict[str, Any]:
    return {"amount": number_param(p, "amount"), "price": number_param(p, "price")}


def _rating_fields(p: dict[str, Any]) -> dict[str, Any]:
    return {"rating": number_param(p, "rating", lo=-1.0, hi=1.0, required=True)}


def _viewportion_fields(p: dict[str, Any]) -> dict[str, Any]:
    return {"session_id": id_param(p, "sessionId", required=False),
            "portion": number_param(p, "portion", lo=0.0, hi=1.0, required=True),
            "time_spent": number_param(p, "timeSpent", lo=0),
            "auto_presented": boolean_param(p, "autoPresented")}


KINDS: dict[str, Kind] = {
    "detailviews": Kind("detailviews", "detail view", _detailview_fields,
                        frozenset({"duration", "autoPresented"})),
    "purchases": Kind("purchases", "purchase", _purchase_fields, frozenset({"amount", "price", "profit"})),
    "cartadditions": Kind("cartadditions", "cart addition", _cartaddition_fields,
                          frozenset({"amount", "price"})),
    "bookmarks": Kind("bookmarks", "bookmark", lambda p: {}, frozenset()),
    "ratings": Kind("ratings", "rating", _rating_fields, frozenset({"rating"})),
    "viewportions": Kind("viewportions", "view portion", _viewportion_fields,
                         frozenset({"portion", "sessionId", "timeSpent", "autoPresented"})),
}

# ----------------------------------------------------------------------------------------------
# Storage
# ----------------------------------------------------------------------------------------------

# seq is the only volatile column (insertion order); snapshot() leaves it out.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (user_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS items (item_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS user_values (user_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT,
    PRIMARY KEY (user_id, name));
CREATE TABLE IF NOT EXISTS item_values (item_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT,
    PRIMARY KEY (item_id, name));
CREATE TABLE IF NOT EXISTS user_properties (name TEXT PRIMARY KEY, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS item_properties (name TEXT PRIMARY KEY, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS detailviews (seq INTEGER PRIMARY KEY, user_id TEXT NOT NULL,
    item_id TEXT NOT NULL, timestamp REAL NOT NULL, duration REAL, auto_presented INTEGER,
    recomm_id TEXT, additional_data TEXT, UNIQUE (user_id, item_id, timestamp));
CREATE TABLE IF NOT EXISTS purchases (seq INTEGER PRIMARY KEY, user_id TEXT NOT NULL,
    item_id TEXT NOT NULL, timestamp REAL NOT NULL, amount REAL, price REAL, profit REAL,
    recomm_id TEXT, additional_data TEXT, UNIQUE (user_id, item_id, timestamp));
CREATE TABLE IF NOT EXISTS cartadditions (seq INTEGER PRIMARY KEY, user_id TEXT NOT NULL,
    item_id TEXT NOT NULL, timestamp REAL NOT NULL, amount REAL, price REAL,
    recomm_id TEXT, additional_data TEXT, UNIQUE (user_id, item_id, timestamp));
CREATE TABLE IF NOT EXISTS bookmarks (seq INTEGER PRIMARY KEY, user_id TEXT NOT NULL,
    item_id TEXT NOT NULL, timestamp REAL NOT NULL,
    recomm_id TEXT, additional_data TEXT, UNIQUE (user_id, item_id, timestamp));
CREATE TABLE IF NOT EXISTS ratings (seq INTEGER PRIMARY KEY, user_id TEXT NOT NULL,
    item_id TEXT NOT NULL, timestamp REAL NOT NULL, rating REAL NOT NULL,
    recomm_id TEXT, additional_data TEXT, UNIQUE (user_id, item_id, timestamp));
CREATE TABLE IF NOT EXISTS viewportions (seq INTEGER PRIMARY KEY, user_id TEXT NOT NULL,
    item_id TEXT NOT NULL, session_id TEXT, timestamp REAL NOT NULL, portion REAL NOT NULL,
    time_spent REAL, auto_presented INTEGER, recomm_id TEXT, additional_data TEXT);
-- NULL session ids are distinct in a plain UNIQUE; the expression makes "no session" one key.
CREATE UNIQUE INDEX IF NOT EXISTS viewportions_key
    ON viewportions (user_id, item_id, ifnull(session_id, ''));
"""

TABLES = ("users", "items", "user_values", *KINDS, "item_values", "user_properties", "item_properties")


class Store:
    """SQLite behind one lock; every HTTP call runs in one transaction (a batch is still not
    atomic: a failed request raises before writing, so nothing needs rolling back)."""

    def __init__(self, path: str | None):
        self.path = path
        if path:
            create_private(path)   # what was sent may be real users' data: 0600 when new
        self.db = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        self.lock = threading.RLock()
        if path:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._columns = {t: self._table_columns(t) for t in TABLES}

    def _table_columns(self, table: str) -> list[str]:
        rows = self.db.execute(f"PRAGMA table_info({table})").fetchall()
        return [r[1] for r in rows if r[1] != "seq"]

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        with self.lock:
            self.db.execute("BEGIN")
            try:
                yield self
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def exists(self, table: str, key: str) -> bool:
        column = "user_id" if table == "users" else "item_id"
        return self.db.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", (key,)).fetchone() is not None

    def create(self, table: str, key: str) -> bool:
        return self.db.execute(f"INSERT OR IGNORE INTO {table} VALUES (?)", (key,)).rowcount == 1

    def insert(self, table: str, row: dict[str, Any], *, or_ignore: bool = True) -> bool:
        names = ", ".join(row)
        marks = ", ".join("?" * len(row))
        verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
        cur = self.db.execute(f"{verb} INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))
        return cur.rowcount == 1

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, args)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        with self.lock:
            out = {}
            for table, cols in self._columns.items():
                names = ", ".join(cols)
                out[table] = self.db.execute(f"SELECT {names} FROM {table} ORDER BY {names}").fetchall()
            return out

    def columns(self) -> dict[str, list[str]]:
        return dict(self._columns)

    def close(self) -> None:
        with self.lock:
            self.db.close()
