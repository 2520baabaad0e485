"""A local Recombee API emulator for tests, benchmarks and ``recombee-cli sandbox``.

It serves the write endpoints the CLI uses (recombee-api.md §3-§5) on 127.0.0.1 and keeps what it
was told in SQLite, so a test can look at the result. Behaviour follows the documentation; where the
documentation is silent the choice is written down here (and in the report to the lead):

Auth
  * HMAC over the raw request target minus the trailing ``&hmac_sign=<hex>`` (see signing.verify);
    ``hmac_timestamp`` may be anywhere in the query. Bad or missing signature -> 401
    ``Invalid HMAC signature``; ``|server time - hmac_timestamp| > clock_skew_limit`` -> 401
    ``Token has expired (...)``.
  * A database id other than ours -> 401 ``Unknown database '<id>'`` (each database has its own
    token, so the server cannot authenticate a request for a database it does not know). A target
    with no database segment at all (``/``) -> 404.
  * ``emu.reject_all_auth = True`` answers every call 401; ``emu.clock_offset`` shifts server time.

Requests (single, and inside a Batch)
  * POST /{detailviews,purchases,cartadditions,bookmarks,ratings,viewportions}/   -> 200 "ok"
  * DELETE on the same six paths (Recombee has all six deletes)                     -> 200 "ok"
  * PUT /users/{id} (AddUser 201, 409 if present), DELETE /users/{id}[/] (200, cascades),
    POST /users/{id} (SetUserValues 200), PUT /users/{target}/merge/{source} (201);
    the same for items: PUT/DELETE/POST /items/{id} (AddItem, DeleteItem, SetItemValues)
  * Properties: PUT /{users,items}/properties/{name} with ``type`` (201; 409 if present; 400 for
    a type other than int, double, string, boolean, timestamp, set, image, imageList, a name not
    matching ``^[a-zA-Z0-9_\\-:]+$``, longer than 63, or reserved: id, userid/itemid, any case),
    GET (``{"name", "type"}``, 404), DELETE (200, its values go too), GET .../properties/list/.
  * Reading back: GET /users/{id} and /items/{id} (every property, null when unset),
    GET /users/list/ and /items/list/ (``count``, ``offset``, ``returnProperties``,
    ``includedProperties``; ``filter`` is 400: no ReQL here), GET /users/{id}/{kind}/ and
    /items/{id}/{kind}/ for the six interaction kinds (oldest first; Recombee's field names).
  * POST /batch/ (not allowed inside a batch: a nested batch is an unknown URL).
  * Trailing slash optional on every path. Another method on a known path: 405 (single) and an
    unknown URL (whole-batch 404) inside a batch.
  * Params: query string (values are text: numbers and booleans are parsed from it; cascadeCreate
    accepts True/true/False/false) merged with the JSON body (single) or ``params`` (batch); JSON
    wins on a clash. Inside a batch the ``path`` may carry a query (Segment's DELETE style) and
    ``params`` may be ``{}`` or missing (SDK style puts everything in ``params``).
  * Unknown parameter names -> 400 (strict, so a misspelt field in the CLI shows up in tests).
  * Timestamps: a JSON number >= 0, a numeric string, or an ISO-8601 string (naive = UTC),
    normalised to float epoch seconds; ``1704164645``, ``1704164645.0`` and
    ``"2024-01-02T03:04:05Z"`` are the same timestamp. Missing timestamp = the server's "now" (so a
    replay without timestamps creates a second interaction, exactly the danger the docs describe).
  * 409 on an exact duplicate (userId, itemId, timestamp) per interaction type (float equality).
  * View portions: one row per (userId, itemId, sessionId) (missing sessionId = the null session).
    If a row exists: 409 when its timestamp >= the new one or its portion > the new one, else it is
    updated (timeSpent keeps the old value when not sent). DeleteViewPortion without sessionId
    deletes the null-session row.
  * Deletes: 404 when the user or item is unknown; with timestamp deletes that exact interaction,
    without it every interaction of the pair of that type; 404 when nothing was deleted.
  * MergeUsers: 400 when target == source; interactions of source move to target; on a clash
    (same unique key already on target) target's row is kept and source's dropped; then source is
    deleted (a value the target has already is kept). Set{User,Item}Values: every property must
    exist (404 ``... property 'x' not found``) and every value fit its type (400), checked before
    anything is written; stored as typed JSON: int, double (float), timestamp (epoch seconds, from
    a number or ISO-8601), set (sorted, distinct), null (unset).
  * Error bodies: ``{"statusCode": code, "error": message}`` everywhere.

Batch: 400 for invalid JSON / wrong structure / Content-Type not application/json, 413 above
10,000 requests, 404 (nothing executed) if any request has an unknown URL or method, else 200 and
one ``{"code", "json"}`` per request, executed in order, not atomic. ``{"requests": []}`` -> 200 ``[]``.

Faults (``Faults``; ``emu.faults = Faults(...)`` at runtime reseeds the RNG) apply only to calls
that passed authentication (a 401 is never masked). Per call, one draw picks at most one of
drop_before / 500 / 503 / 429 (nothing executed); otherwise the call executes, and then ``p_slow``
delays the reply by ``slow_seconds`` and ``p_drop`` sends half of the reply's head and closes the
connection: the work is done but the client sees a broken connection. Inside a batch ``p_sub_5xx``
answers a request 500 or 503 without executing it. ``limit`` caps the number of injected faults.
After execution too, ``p_trickle`` sends the whole reply, head included, one byte every
``trickle_seconds`` (a server that never times out a per-read timeout), and ``p_odd`` (Batch calls
only) answers 200 with a body that is not a proper Batch answer, of the kind ``odd`` names (see
``ODD_ANSWERS``).
"""

from __future__ import annotations

import math
import random
import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from recombee_cli.recombee.signing import verify

__all__ = ["Emulator", "Faults", "Stats", "ApiError", "MAX_BATCH", "ODD_ANSWERS"]

MAX_BATCH = 10_000
ID_RE = re.compile(r"[a-zA-Z0-9_\-:@.]+")          # used with fullmatch (no "\n" before $)
PROPERTY_RE = re.compile(r"[a-zA-Z0-9_\-:]+")
ID_RULE = r"^[a-zA-Z0-9_\-:@.]+$"


class ApiError(Exception):
    """A request answered with an error status; becomes ``{"statusCode", "error"}``."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict:
        return {"statusCode": self.code, "error": self.message}


class QueryValue(str):
    """A parameter that came from a query string: always text, so numbers/booleans get parsed."""


# ----------------------------------------------------------------------------------------------
# Parameter validation
# ----------------------------------------------------------------------------------------------

def _check_names(params: dict, allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise ApiError(400, f"Unknown parameter '{name}'")


def _required(params: dict, name: str) -> Any:
    value = params.get(name)
    if value is None:
        raise ApiError(400, f"Missing required parameter '{name}'")
    return value


def _valid_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ApiError(400, f"Invalid {what} {value!r}: must match {ID_RULE}")
    return str(value)


def _id_param(params: dict, name: str, required: bool = True) -> str | None:
    value = _required(params, name) if required else params.get(name)
    return None if value is None else _valid_id(value, name)


def _number(params: dict, name: str, *, lo: float | None = None, hi: float | None = None,
            required: bool = False) -> float | int | None:
    value = _required(params, name) if required else params.get(name)
    if value is None:
        return None
    if isinstance(value, QueryValue):
        try:
            value = float(value)
        except ValueError:
            raise ApiError(400, f"Parameter '{name}' must be a number, got {str(value)!r}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"Parameter '{name}' must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ApiError(400, f"Parameter '{name}' must be a real number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ApiError(400, f"Parameter '{name}' must be in [{lo}, {hi}], got {value}")
    return value


_QUERY_BOOLS = {"true": True, "True": True, "false": False, "False": False}


def _boolean(params: dict, name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, QueryValue):
        # The Python SDK prints Python booleans into the query (True/False), Node/Go send true/false.
        if value not in _QUERY_BOOLS:
            raise ApiError(400, f"Parameter '{name}' must be a boolean, got {str(value)!r}")
        return _QUERY_BOOLS[value]
    if not isinstance(value, bool):
        raise ApiError(400, f"Parameter '{name}' must be a boolean, got {value!r}")
    return value


def _string(params: dict, name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"Parameter '{name}' must be a string")
    return None if value is None else str(value)


def _json_object(params: dict, name: str) -> str | None:
    """An object parameter, stored as canonical JSON text (sorted keys, for stable snapshots)."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, QueryValue) or not isinstance(value, dict):
        raise ApiError(400, f"Parameter '{name}' must be a JSON object")
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def parse_timestamp(value: Any) -> float:
    """Epoch seconds from a number, numeric text or ISO-8601 text (naive means UTC)."""
    if isinstance(value, bool):
        raise ApiError(400, f"Invalid timestamp {value!r}")
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        ts = _timestamp_from_text(value)
    else:
        raise ApiError(400, f"Invalid timestamp {value!r}")
    if not math.isfinite(ts) or ts < 0:
        raise ApiError(400, f"Invalid timestamp {value!r}: must be a real number >= 0 or ISO-8601")
    return ts


def _timestamp_from_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"Invalid timestamp {text!r}: not a number nor ISO-8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _timestamp_param(params: dict, now: float) -> float:
    value = params.get("timestamp")
    return now if value is None else parse_timestamp(value)


# ----------------------------------------------------------------------------------------------
# Interaction types: table, extra columns and how to read them from the params
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    table: str
    noun: str                               # for messages
    read_fields: Callable[[dict], dict]     # params -> {column: value} of the type's own columns
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


def _detailview_fields(p: dict) -> dict:
    return {"duration": _number(p, "duration", lo=0), "auto_presented": _boolean(p, "autoPresented")}


def _purchase_fields(p: dict) -> dict:
    return {"amount": _number(p, "amount"), "price": _number(p, "price"), "profit": _number(p, "profit")}


def _cartaddition_fields(p: dict) -> dict:
    return {"amount": _number(p, "amount"), "price": _number(p, "price")}


def _rating_fields(p: dict) -> dict:
    return {"rating": _number(p, "rating", lo=-1.0, hi=1.0, required=True)}


def _viewportion_fields(p: dict) -> dict:
    return {"session_id": _id_param(p, "sessionId", required=False),
            "portion": _number(p, "portion", lo=0.0, hi=1.0, required=True),
            "time_spent": _number(p, "timeSpent", lo=0),
            "auto_presented": _boolean(p, "autoPresented")}


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
    def transaction(self):
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

    def insert(self, table: str, row: dict, *, or_ignore: bool = True) -> bool:
        names = ", ".join(row)
        marks = ", ".join("?" * len(row))
        verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
        cur = self.db.execute(f"{verb} INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))
        return cur.rowcount == 1

    def execute(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, args)

    def snapshot(self) -> dict[str, list[tuple]]:
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


# ----------------------------------------------------------------------------------------------
# Operations: (store, params, now) -> (code, json). They raise ApiError for error answers.
# ----------------------------------------------------------------------------------------------

Result = tuple[int, Any]


def _require_entities(store: Store, user: str, item: str, cascade: bool) -> None:
    if cascade:
        store.create("users", user)
        store.create("items", item)
        return
    if not store.exists("users", user):
        raise ApiError(404, f"User '{user}' not found")
    if not store.exists("items", item):
        raise ApiError(404, f"Item '{item}' not found")


def op_add_interaction(kind: Kind, store: Store, params: dict, now: float) -> Result:
    _check_names(params, kind.add_names)
    user = _id_param(params, "userId")
    item = _id_param(params, "itemId")
    timestamp = _timestamp_param(params, now)
    row = {"user_id": user, "item_id": item, "timestamp": timestamp, **kind.read_fields(params),
           "recomm_id": _string(params, "recommId"),
           "additional_data": _json_object(params, "additionalData")}
    cascade = bool(_boolean(params, "cascadeCreate"))
    _require_entities(store, user, item, cascade)
    if kind.table == "viewportions":
        return _set_view_portion(store, row)
    if not store.insert(kind.table, row):
        raise ApiError(409, f"A {kind.noun} of the exact same userId, itemId and timestamp "
                            "is already present")
    return 200, "ok"


def _set_view_portion(store: Store, row: dict) -> Result:
    key = (row["user_id"], row["item_id"], row["session_id"])
    old = store.execute(
        "SELECT seq, timestamp, portion, time_spent FROM viewportions "
        "WHERE user_id = ? AND item_id = ? AND session_id IS ?", key).fetchone()
    if old is None:
        store.insert("viewportions", row, or_ignore=False)
        return 200, "ok"
    seq, old_ts, old_portion, old_spent = old
    if old_ts >= row["timestamp"] or old_portion > row["portion"]:
        raise ApiError(409, "A view portion of the exact same userId, itemId, sessionId and a greater "
                            "or equal timestamp (or a greater portion) is already present")
    if row["time_spent"] is None:
        row["time_spent"] = old_spent  # "required only if it has changed"
    sets = ", ".join(f"{c} = ?" for c in row)
    store.execute(f"UPDATE viewportions SET {sets} WHERE seq = ?", (*row.values(), seq))
    return 200, "ok"


def op_delete_interaction(kind: Kind, store: Store, params: dict, now: float) -> Result:
    _check_names(params, kind.delete_names)
    user = _id_param(params, "userId")
    item = _id_param(params, "itemId")
    if kind.table == "viewportions":
        where, args = "session_id IS ?", (_id_param(params, "sessionId", required=False),)
    elif params.get("timestamp") is not None:
        where, args = "timestamp = ?", (parse_timestamp(params["timestamp"]),)
    else:
        where, args = "1", ()  # no timestamp: every interaction of the pair
    if not store.exists("users", user):
        raise ApiError(404, f"User '{user}' not found")
    if not store.exists("items", item):
        raise ApiError(404, f"Item '{item}' not found")
    sql = f"DELETE FROM {kind.table} WHERE user_id = ? AND item_id = ? AND {where}"
    if store.execute(sql, (user, item, *args)).rowcount == 0:
        raise ApiError(404, f"No such {kind.noun} of user '{user}' and item '{item}'")
    return 200, "ok"


def op_add_user(user_path: str, store: Store, params: dict, now: float) -> Result:
    _check_names(params, frozenset())
    user = _valid_id(user_path, "userId")
    if not store.create("users", user):
        raise ApiError(409, f"User '{user}' already exists")
    return 201, "ok"


def _delete_user_rows(store: Store, user: str) -> None:
    for table in (*KINDS, "user_values"):
        store.execute(f"DELETE FROM {table} WHERE user_id = ?", (user,))
    store.execute("DELETE FROM users WHERE user_id = ?", (user,))


def op_delete_user(user_path: str, store: Store, params: dict, now: float) -> Result:
    _check_names(params, frozenset())
    user = _valid_id(user_path, "userId")
    if not store.exists("users", user):
        raise ApiError(404, f"User '{user}' not found")
    _delete_user_rows(store, user)  # cascades to all of the user's interactions
    return 200, "ok"


# -- properties and values ------------------------------------------------------------------------

PROPERTY_TYPES = ("int", "double", "string", "boolean", "timestamp", "set", "image", "imageList")
_RESERVED = {"users": frozenset(("id", "userid")), "items": frozenset(("id", "itemid"))}
_ENTITY = {"users": ("user", "user_id", "user_values", "user_properties", "userId"),
           "items": ("item", "item_id", "item_values", "item_properties", "itemId")}


def _property_name(entity: str, name: Any) -> str:
    if not isinstance(name, str) or not PROPERTY_RE.fullmatch(name) or len(name) > 63:
        raise ApiError(400, f"Invalid property name {name!r}: must match ^[a-zA-Z0-9_\\-:]+$, "
                            "at most 63 characters")
    if name.lower() in _RESERVED[entity]:
        raise ApiError(400, f"Property name {name!r} is reserved")
    return name


def op_add_property(entity: str, name: str, store: Store, params: dict, now: float) -> Result:
    _check_names(params, frozenset({"type", "role", "metadata"}))
    name = _property_name(entity, name)
    kind = _required(params, "type")
    if kind not in PROPERTY_TYPES:
        raise ApiError(400, f"Invalid property type {kind!r}: one of {', '.join(PROPERTY_TYPES)}")
    table = _ENTITY[entity][3]
    if store.execute(f"SELECT 1 FROM {table} WHERE name = ?", (name,)).fetchone():
        raise ApiError(409, f"{_ENTITY[entity][0].capitalize()} property '{name}' already exists")
    store.execute(f"INSERT INTO {table} VALUES (?, ?)", (name, str(kind)))
    return 201, "ok"


def _property_type(store: Store, entity: str, name: str) -> str:
    row = store.execute(f"SELECT type FROM {_ENTITY[entity][3]} WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise ApiError(404, f"{_ENTITY[entity][0].capitalize()} property '{name}' not found")
    return row[0]


def op_get_property(entity: str, name: str, store: Store, params: dict, now: float) -> Result:
    _check_names(params, frozenset())
    return 200, {"name": name, "type": _property_type(store, entity, name)}


def op_delete_property(entity: str, name: str, store: Store, params: dict, now: float) -> Result:
    _check_names(params, frozenset())
    _property_type(store, entity, name)
    noun, _, values, table, _ = _ENTITY[entity]
    store.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
    store.execute(f"DELETE FROM {values} WHERE name = ?", (name,))
    return 200, "ok"


def op_list_properties(entity: str, store: Store, params: dict, now: float) -> Result:
    _check_names(params, frozenset())
    rows = store.execute(f"SELECT name, type FROM {_ENTITY[entity][3]} ORDER BY name").fetchall()
    return 200, [{"name": n, "type": t} for n, t in rows]


def _typed_value(kind: str, name: str, value: Any) -> Any:
    """A value as stored for a property of `kind`; 400 when it does not fit."""
    def wrong() -> ApiError:
        return ApiError(400, f"Value {value!r} of property '{name}' is not a valid {kind}")
    if value is None:
        return None
    if kind in ("int", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise wrong()
        if kind == "int":
            if value != int(value):
                raise wrong()
            return int(value)
        return float(value)
    if kind in ("string", "image"):
        if not isinstance(value, str):
            raise wrong()
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise wrong()
        return value
    if kind == "timestamp":
        try:
            return parse_timestamp(value)
        except ApiError:
            raise wrong() from None
    if kind in ("set", "imageList"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong()
        return sorted(set(value)) if kind == "set" else list(value)
    raise AssertionError(kind)


def _set_values(entity: str, key_path: str, store: Store, params: dict) -> Result:
    noun, column, table, _, id_name = _ENTITY[entity]
    key = _valid_id(key_path, id_name)
    values = dict(params)
    # The SDK sends the special body key "!cascadeCreate"; the OAS also lists a query cascadeCreate.
    # In the body a plain "cascadeCreate" key is just a property value.
    cascade = bool(_boolean(values, "!cascadeCreate"))
    values.pop("!cascadeCreate", None)
    if isinstance(values.get("cascadeCreate"), QueryValue):
        cascade = cascade or bool(_boolean(values, "cascadeCreate"))
        values.pop("cascadeCreate")
    typed = {}
    for name, value in values.items():   # every check before any write: a refused call sets nothing
        if not isinstance(name, str) or not PROPERTY_RE.fullmatch(name):
            raise ApiError(400, f"Invalid property name {name!r}")
        typed[name] = _typed_value(_property_type(store, entity, name), name, value)
    if not cascade and not store.exists(entity, key):
        raise ApiError(404, f"{noun.capitalize()} '{key}' not found")
    store.create(entity, key)
    for name, value in typed.items():
        store.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)",
                      (key, name, orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()))
    return 200, "ok"


def op_set_user_values(user_path: str, store: Store, params: dict, now: float) -> Result:
    return _set_values("users", user_path, store, params)


def op_set_item_values(item_path: str, store: Store, params: dict, now: float) -> Result:
    return _set_values("items", item_path, store, params)


def op_add_item(item_path: str, store: Store, params: dict, now: float) -> Result:
    _check_names(params, frozenset())
    item = _valid_id(item_path, "itemId")
    if not store.create("items", item):
        raise ApiError(409, f"Item '{item}' already exists")
    return 201, "ok"


def op_delete_item(item_path: str, store: Store, params: dict, now: float) -> Result:
    _check_names(params, frozenset())
    item = _valid_id(item_path, "itemId")
    if not store.exists("items", item):
        raise ApiError(404, f"Item '{item}' not found")
    for table in (*KINDS, "item_values"):
        store.execute(f"DELETE FROM {table} WHERE item_id = ?", (item,))
    store.execute("DELETE FROM items WHERE item_id = ?", (item,))
    return 200, "ok"


def _values_of(store: Store, entity: str, key: str, names: list[str] | None = None) -> dict:
    """Every property of the entity (null when unset), as Recombee's GetUserValues answers."""
    noun, column, table, ptable, _ = _ENTITY[entity]
    out = {n: None for (n,) in store.execute(f"SELECT name FROM {ptable} ORDER BY name")}
    for name, value in store.execute(f"SELECT name, value FROM {table} WHERE {column} = ?", (key,)):
        out[name] = orjson.loads(value)
    if names is not None:
        out = {n: v for n, v in out.items() if n in names}
    return out


def op_get_values(entity: str, key_path: str, store: Store, params: dict, now: float) -> Result:
    _check_names(params, frozenset())
    noun, *_ = _ENTITY[entity]
    key = _valid_id(key_path, _ENTITY[entity][4])
    if not store.exists(entity, key):
        raise ApiError(404, f"{noun.capitalize()} '{key}' not found")
    return 200, _values_of(store, entity, key)


def op_list_entities(entity: str, store: Store, params: dict, now: float) -> Result:
    _check_names(params, frozenset({"filter", "count", "offset", "returnProperties", "includedProperties"}))
    if params.get("filter") is not None:
        raise ApiError(400, "The emulator does not evaluate ReQL filters")
    count = _number(params, "count", lo=1)
    offset = _number(params, "offset", lo=0) or 0
    noun, column, _, _, id_name = _ENTITY[entity]
    sql = f"SELECT {column} FROM {entity} ORDER BY {column} LIMIT ? OFFSET ?"
    keys = [k for (k,) in store.execute(sql, (-1 if count is None else int(count), int(offset)))]
    if not _boolean(params, "returnProperties"):
        return 200, keys
    included = params.get("includedProperties")
    if isinstance(included, str):
        included = [n for n in included.split(",") if n]
    elif included is not None and not isinstance(included, list):
        raise ApiError(400, "Parameter 'includedProperties' must be a comma-separated list")
    return 200, [{id_name: k, **_values_of(store, entity, k, included)} for k in keys]


_LIST_COLUMNS = {"timestamp": "timestamp", "duration": "duration", "amount": "amount", "price": "price",
                 "profit": "profit", "rating": "rating", "portion": "portion", "session_id": "sessionId",
                 "time_spent": "timeSpent", "recomm_id": "recommId", "additional_data": "additionalData"}


def op_list_interactions(entity: str, kind: Kind, key_path: str, store: Store, params: dict,
                         now: float) -> Result:
    """ListUserDetailViews, ListItemPurchases...: the interactions of a user or an item, oldest first."""
    _check_names(params, frozenset())
    noun, column, *_ = _ENTITY[entity]
    key = _valid_id(key_path, _ENTITY[entity][4])
    if not store.exists(entity, key):
        raise ApiError(404, f"{noun.capitalize()} '{key}' not found")
    columns = [c for c in store.columns()[kind.table]]
    rows = store.execute(f"SELECT {', '.join(columns)} FROM {kind.table} WHERE {column} = ? "
                         f"ORDER BY timestamp, user_id, item_id", (key,)).fetchall()
    out = []
    for row in rows:
        record = {"userId": row[columns.index("user_id")], "itemId": row[columns.index("item_id")]}
        for name, value in zip(columns, row):
            if name in _LIST_COLUMNS and value is not None:
                record[_LIST_COLUMNS[name]] = orjson.loads(value) if name == "additional_data" else value
        out.append(record)
    return 200, out


def op_merge_users(target_path: str, source_path: str, store: Store, params: dict, now: float) -> Result:
    _check_names(params, frozenset({"cascadeCreate"}))
    target = _valid_id(target_path, "targetUserId")
    source = _valid_id(source_path, "sourceUserId")
    cascade = bool(_boolean(params, "cascadeCreate"))
    if target == source:
        raise ApiError(400, "targetUserId and sourceUserId must differ")
    if not store.exists("users", source):
        raise ApiError(404, f"Source user '{source}' not found")
    if not store.exists("users", target):
        if not cascade:
            raise ApiError(404, f"Target user '{target}' not found")
        store.create("users", target)
    # Move what does not clash with the target's own rows; the clashing rest goes with the source.
    for table in (*KINDS, "user_values"):
        # A value the target has already is kept (the source's goes with it), like interactions.
        store.execute(f"UPDATE OR IGNORE {table} SET user_id = ? WHERE user_id = ?", (target, source))
    _delete_user_rows(store, source)
    return 201, "ok"


# ----------------------------------------------------------------------------------------------
# Routing
# ----------------------------------------------------------------------------------------------

_INTERACTION_PATH = re.compile(r"/(detailviews|purchases|cartadditions|bookmarks|ratings|viewportions)/?")
_MERGE_PATH = re.compile(r"/users/([^/?]+)/merge/([^/?]+)/?")
_USER_PATH = re.compile(r"/users/([^/?]+)/?")
_ITEM_PATH = re.compile(r"/items/([^/?]+)/?")
_PROPERTY_LIST_PATH = re.compile(r"/(users|items)/properties/list/?")
_PROPERTY_PATH = re.compile(r"/(users|items)/properties/([^/?]+)/?")
_ENTITY_LIST_PATH = re.compile(r"/(users|items)/list/?")
_ENTITY_INTERACTIONS_PATH = re.compile(
    r"/(users|items)/([^/?]+)/(detailviews|purchases|cartadditions|bookmarks|ratings|viewportions)/?")
_BATCH_PATH = re.compile(r"/batch/?")

Operation = Callable[[Store, dict, float], Result]


def resolve(method: str, path: str) -> Operation:
    """The operation for METHOD path (no database prefix, no query). 404 unknown URL, 405 method."""
    if m := _INTERACTION_PATH.fullmatch(path):
        kind = KINDS[m.group(1)]
        ops = {"POST": partial(op_add_interaction, kind), "DELETE": partial(op_delete_interaction, kind)}
    elif m := _MERGE_PATH.fullmatch(path):
        ops = {"PUT": partial(op_merge_users, m.group(1), m.group(2))}
    elif m := _PROPERTY_LIST_PATH.fullmatch(path):
        ops = {"GET": partial(op_list_properties, m.group(1))}
    elif m := _PROPERTY_PATH.fullmatch(path):
        entity, name = m.groups()
        ops = {"PUT": partial(op_add_property, entity, name), "GET": partial(op_get_property, entity, name),
               "DELETE": partial(op_delete_property, entity, name)}
    elif m := _ENTITY_LIST_PATH.fullmatch(path):
        ops = {"GET": partial(op_list_entities, m.group(1))}
    elif m := _ENTITY_INTERACTIONS_PATH.fullmatch(path):
        ops = {"GET": partial(op_list_interactions, m.group(1), KINDS[m.group(3)], m.group(2))}
    elif m := _USER_PATH.fullmatch(path):
        user = m.group(1)
        ops = {"PUT": partial(op_add_user, user), "DELETE": partial(op_delete_user, user),
               "POST": partial(op_set_user_values, user), "GET": partial(op_get_values, "users", user)}
    elif m := _ITEM_PATH.fullmatch(path):
        item = m.group(1)
        ops = {"PUT": partial(op_add_item, item), "DELETE": partial(op_delete_item, item),
               "POST": partial(op_set_item_values, item), "GET": partial(op_get_values, "items", item)}
    else:
        raise ApiError(404, f"Unknown URL: {method} {path}")
    if method not in ops:
        raise ApiError(405, f"Method {method} not allowed on {path}")
    return ops[method]


def query_params(query: str) -> dict[str, QueryValue]:
    """Query parameters minus the signing ones, as QueryValue text."""
    return {k: QueryValue(v) for k, v in parse_qsl(query, keep_blank_values=True)
            if k not in ("hmac_timestamp", "hmac_sign")}


def run(op: Operation, store: Store, params: dict, now: float) -> Result:
    try:
        return op(store, params, now)
    except ApiError as e:
        return e.code, e.body()


# ----------------------------------------------------------------------------------------------
# Faults and statistics
# ----------------------------------------------------------------------------------------------

def _odd_answer(results: list[dict], kind: str) -> Any:
    """A Batch answer spoilt in one way; the middle result is the one spoilt."""
    middle = len(results) // 2
    spoilt = list(results)
    if kind == "not_a_list":
        return {"results": spoilt}
    if kind == "wrong_length":
        return spoilt[:-1]
    if not spoilt:
        return spoilt
    if kind == "string_code":
        spoilt[middle] = {**spoilt[middle], "code": str(spoilt[middle]["code"])}
    elif kind == "null_result":
        spoilt[middle] = None
    elif kind == "not_an_object":
        spoilt[middle] = [spoilt[middle]["code"], spoilt[middle]["json"]]
    return spoilt


# kind -> what the answer looks like
ODD_ANSWERS = {
    "string_code": 'a result\'s "code" is a string ("200")',
    "null_result": "a result is null",
    "not_a_list": "the answer is an object, not a list",
    "not_an_object": "a result is a list, not an object",
    "wrong_length": "one result fewer than requests",
}


@dataclass(frozen=True)
class Faults:
    """Injected failures; probabilities per HTTP call (``p_sub_5xx`` per sub-request).

    At most one of p_drop_before, p_500, p_503, p_429 hits a call (nothing is executed then);
    p_slow and p_drop act after execution. ``limit`` caps the total number of injected faults
    (e.g. ``Faults(p_503=1.0, limit=3)``: the first three calls fail, the rest succeed).
    """

    p_500: float = 0.0
    p_503: float = 0.0
    p_429: float = 0.0
    retry_after: float = 1.0        # Retry-After header value in seconds (fractions printed as is)
    p_slow: float = 0.0
    slow_seconds: float = 2.0
    p_drop: float = 0.0             # execute, then close the connection halfway through the reply
    p_drop_before: float = 0.0      # close the connection without executing or answering
    p_sub_5xx: float = 0.0          # per batch sub-request: 500 or 503, not executed
    seed: int = 0
    limit: int | None = None
    p_trickle: float = 0.0          # execute, then send the reply one byte every trickle_seconds
    trickle_seconds: float = 2.0
    p_odd: float = 0.0              # a batch: execute, then answer 200 with a malformed answer...
    odd: str = "string_code"        # ...of this kind (ODD_ANSWERS)

    def __post_init__(self):
        probs = [self.p_500, self.p_503, self.p_429, self.p_slow, self.p_drop, self.p_drop_before,
                 self.p_sub_5xx, self.p_trickle, self.p_odd]
        if any(not 0.0 <= p <= 1.0 for p in probs):
            raise ValueError("fault probabilities must be within [0, 1]")
        if self.odd not in ODD_ANSWERS:
            raise ValueError(f"odd must be one of {', '.join(ODD_ANSWERS)}")
        if self.p_drop_before + self.p_500 + self.p_503 + self.p_429 > 1.0:
            raise ValueError("p_drop_before + p_500 + p_503 + p_429 must not exceed 1")


class _FaultDice:
    """The seeded RNG behind Faults; one lock so concurrent handlers draw consistently."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.lock = threading.Lock()
        self.injected = 0

    def _exhausted(self) -> bool:
        return self.faults.limit is not None and self.injected >= self.faults.limit

    def _hit(self, p: float) -> bool:
        if p <= 0.0 or self._exhausted():
            return False  # no draw: a fault kind that is off does not shift the sequence
        hit = self.rng.random() < p
        self.injected += hit
        return hit

    def before(self) -> str | None:
        """One of 'drop_before', '500', '503', '429' or None, from a single draw."""
        f = self.faults
        with self.lock:
            exclusive = (("drop_before", f.p_drop_before), ("500", f.p_500), ("503", f.p_503),
                         ("429", f.p_429))
            if self._exhausted() or not any(p for _, p in exclusive):
                return None
            u, edge = self.rng.random(), 0.0
            for kind, p in exclusive:
                edge += p
                if u < edge:
                    self.injected += 1
                    return kind
            return None

    def hit(self, p: float) -> bool:
        with self.lock:
            return self._hit(p)

    def sub_code(self) -> int | None:
        with self.lock:
            if not self._hit(self.faults.p_sub_5xx):
                return None
            return self.rng.choice((500, 503))


@dataclass
class Stats:
    """Counters since start (or reset_stats). ``codes``: HTTP status of each call answered in full;
    ``sub_codes``: code of each batch sub-request; ``faults``: injected faults by kind."""

    http_calls: int = 0
    batch_calls: int = 0
    sub_requests: int = 0
    codes: Counter = field(default_factory=Counter)
    sub_codes: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)


# ----------------------------------------------------------------------------------------------
# The emulator: dispatch (no sockets) + HTTP server
# ----------------------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int = 200
    body: bytes = b'"ok"'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0          # seconds to wait before answering (p_slow)
    drop: bool = False          # send half the head, then close (p_drop)
    drop_silently: bool = False  # close without a byte (p_drop_before)
    trickle: float = 0.0        # seconds between the bytes of the reply (p_trickle)


def _error_reply(code: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(code, orjson.dumps({"statusCode": code, "error": message}), headers or {})


_OK_ITEM = b'{"code":200,"json":"ok"}'


class Emulator:
    """A Recombee API emulator on a local port (see the module docstring for its behaviour).

    ``with Emulator("db", "token") as emu: emu.base_uri`` -> ``http://127.0.0.1:PORT``.
    ``latency`` is milliseconds slept per HTTP call. Runtime-changeable attributes: ``faults``,
    ``reject_all_auth``, ``clock_offset`` (seconds added to the server clock), ``latency``.
    """

    def __init__(self, database_id: str, token: str, *, store_path: str | Path | None = None,
                 fast: bool = False, faults: Faults | None = None, clock_skew_limit: float = 10.0,
                 host: str = "127.0.0.1", port: int = 0, latency: float = 0.0, tls: bool = False):
        self.database_id = database_id
        self.token = token
        self.fast = fast
        self.clock_skew_limit = clock_skew_limit
        self.host, self._port = host, port
        self.latency = latency
        self.tls = tls
        self.reject_all_auth = False
        self.clock_offset = 0.0
        self.store_path = str(store_path) if store_path is not None else None
        self.store = Store(self.store_path)
        self.faults = faults or Faults()
        self._stats = Stats()
        self._stats_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._stopping = threading.Event()   # ends trickled replies at once
        self.cert_path: str | None = None

    # -- runtime knobs ---------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._dice.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._dice = _FaultDice(value)  # reseeded: a new Faults means a fresh, reproducible sequence

    @property
    def stats(self) -> Stats:
        return self._stats

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats = Stats()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def snapshot(self) -> dict[str, list[tuple]]:
        """Sorted rows per table (users, items, user_values and the six interaction tables).
        Columns are listed by ``emu.store.columns()``; the insertion counter ``seq`` is left out."""
        return self.store.snapshot()

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return self._server.server_address[1]

    @property
    def host_port(self) -> str:
        """``127.0.0.1:PORT``: what the official SDK wants as ``options={"base_uri": ...}``."""
        return f"{self.host}:{self.port}"

    @property
    def base_uri(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host_port}"

    def describe(self) -> dict[str, Any]:
        """What the sandbox command prints."""
        return {"base_uri": self.base_uri, "database_id": self.database_id,
                "store": self.store_path or ":memory: (lost on exit)", "fast": self.fast,
                "tls_cert": self.cert_path}

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self._port), _Handler)
        self._server.emulator = self
        if self.tls:
            self._server.socket = _tls_context(self).wrap_socket(self._server.socket, server_side=True)
        self._stopped.clear()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._server.serve_forever, name="recombee-emulator",
                                        kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open client connections. The store stays readable (snapshot)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_clients()
        server.server_close()
        self._thread.join(timeout=5)
        if self.cert_path:
            shutil.rmtree(Path(self.cert_path).parent, ignore_errors=True)
        self._stopped.set()

    def serve_forever(self, on_ready: Callable[[Emulator], None] | None = None) -> None:
        """Serve until Ctrl-C (or stop() from another thread); for ``recombee-cli sandbox``."""
        self.start()
        if on_ready:
            on_ready(self)
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- dispatch --------------------------------------------------------------------------------

    def _count(self, **kw: Any) -> None:
        with self._stats_lock:
            for name, value in kw.items():
                if name in ("codes", "sub_codes", "faults"):
                    getattr(self._stats, name).update(value)
                else:
                    setattr(self._stats, name, getattr(self._stats, name) + value)

    def handle(self, method: str, target: str, content_type: str | None, body: bytes) -> Reply:
        """Answer one HTTP call. ``target`` is the raw request target (path + query)."""
        self._count(http_calls=1)
        try:
            reply = self._authenticate(target)
            if reply is None:
                reply = self._handle_authenticated(method, target, content_type, body)
        except Exception as e:  # an emulator bug: say so instead of dropping the connection
            reply = _error_reply(500, f"Emulator error: {type(e).__name__}: {e}")
        if not (reply.drop or reply.drop_silently):
            self._count(codes=[reply.status])
        return reply

    def _authenticate(self, target: str) -> Reply | None:
        path = target.partition("?")[0]
        database = path.split("/", 2)[1] if path.startswith("/") else ""
        if not database:
            return _error_reply(404, f"Unknown URL: {path}")
        if database != self.database_id:
            return _error_reply(401, f"Unknown database '{database}'")
        # http.server decoded the request line as latin-1: encoding back gives the bytes received.
        ok, stamp = verify(target.encode("latin-1"), self.token)
        if self.reject_all_auth or not ok or stamp is None:
            return _error_reply(401, "Invalid HMAC signature")
        now = self.now()
        if abs(now - stamp) > self.clock_skew_limit:
            when = datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%d %H:%M:%S")
            return _error_reply(401, f"Token has expired (Current time: {int(now)} or {when} UTC, "
                                     f"you are {abs(int(now) - stamp)}s off)")
        return None

    def _handle_authenticated(self, method: str, target: str, content_type: str | None,
                              body: bytes) -> Reply:
        fault = self._dice.before()
        if fault is not None:
            self._count(faults=[fault])
            return _fault_reply(fault, self.faults)
        path, _, query = target.partition("?")
        path = path[len(self.database_id) + 1:]
        if _BATCH_PATH.fullmatch(path):
            reply = self._batch(method, content_type, body)
        else:
            reply = self._single(method, path, query, body)
        if self._dice.hit(self.faults.p_slow):
            self._count(faults=["slow"])
            reply.delay = self.faults.slow_seconds
        if self._dice.hit(self.faults.p_drop):
            self._count(faults=["drop"])
            reply.drop = True
        if self._dice.hit(self.faults.p_trickle):
            self._count(faults=["trickle"])
            reply.trickle = self.faults.trickle_seconds
        return reply

    def _single(self, method: str, path: str, query: str, body: bytes) -> Reply:
        try:
            op = resolve(method, path)
            params = query_params(query)
            params.update(_body_object(body))
        except ApiError as e:
            return _error_reply(e.code, e.message)
        if self.fast:
            return Reply(200, b'"ok"')
        with self.store.transaction():
            code, result = run(op, self.store, params, self.now())
        return Reply(code, orjson.dumps(result))

    def _batch(self, method: str, content_type: str | None, body: bytes) -> Reply:
        self._count(batch_calls=1)
        if method != "POST":
            return _error_reply(405, f"Method {method} not allowed on /batch/")
        try:
            requests = _parse_batch(content_type, body)
            if self.fast:
                self._count(sub_requests=len(requests), sub_codes={200: len(requests)})
                return Reply(200, b"[" + b",".join([_OK_ITEM] * len(requests)) + b"]")
            planned = [_plan(i, r) for i, r in enumerate(requests)]
        except ApiError as e:
            return _error_reply(e.code, e.message)
        results = self._execute(planned)
        self._count(sub_requests=len(results), sub_codes=[r["code"] for r in results])
        if self._dice.hit(self.faults.p_odd):
            self._count(faults=["odd"])
            return Reply(200, orjson.dumps(_odd_answer(results, self.faults.odd)))
        return Reply(200, orjson.dumps(results))

    def _execute(self, planned: list[tuple[Operation, dict]]) -> list[dict]:
        results = []
        with self.store.transaction():
            now = self.now()
            for op, params in planned:
                code = self._dice.sub_code()
                if code is not None:
                    self._count(faults=["sub_5xx"])
                    results.append({"code": code, "json": _fault_body(code)})
                    continue
                code, result = run(op, self.store, params, now)
                results.append({"code": code, "json": result})
        return results


def _fault_body(code: int) -> dict:
    message = {500: "Internal server error", 503: "Service temporarily unavailable",
               429: "Too many requests"}[code]
    return {"statusCode": code, "error": message}


def _fault_reply(kind: str, faults: Faults) -> Reply:
    if kind == "drop_before":
        return Reply(drop_silently=True)
    code = int(kind)
    headers = {"Retry-After": f"{faults.retry_after:g}"} if code == 429 else {}
    return Reply(code, orjson.dumps(_fault_body(code)), headers)


def _body_object(body: bytes) -> dict:
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Request body is not a valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return value


def _parse_batch(content_type: str | None, body: bytes) -> list:
    """The ``requests`` list of a batch body; 400 for anything malformed, 413 when too long."""
    if not content_type or content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(400, "Invalid or missing Content-Type (must be application/json)")
    value = _body_object(body)
    requests = value.get("requests")
    if not isinstance(requests, list):
        raise ApiError(400, "Request JSON must have a 'requests' array")
    if set(value) - {"requests", "distinctRecomms"}:
        raise ApiError(400, f"Unknown batch field(s): {sorted(set(value) - {'requests', 'distinctRecomms'})}")
    if not isinstance(value.get("distinctRecomms", False), bool):
        raise ApiError(400, "'distinctRecomms' must be a boolean")
    if len(requests) > MAX_BATCH:
        raise ApiError(413, f"Too large batch ({len(requests)} requests; at most {MAX_BATCH:,} in case of "
                            "a server side request)")
    for i, r in enumerate(requests):
        if not (isinstance(r, dict) and isinstance(r.get("method"), str) and isinstance(r.get("path"), str)
                and isinstance(r.get("params", {}), (dict, type(None)))):
            raise ApiError(400, f"Request #{i} must be an object with string 'method' and 'path' "
                                "and an optional 'params' object")
    return requests


def _plan(index: int, request: dict) -> tuple[Operation, dict]:
    """Resolve one sub-request; any unknown URL or method makes the whole batch 404."""
    method = request["method"].upper()
    path, _, query = request["path"].partition("?")
    try:
        op = resolve(method, path)
    except ApiError:
        raise ApiError(404, f"Request #{index} has an invalid URL ({method} {request['path']}); "
                            "the batch was not executed") from None
    params = query_params(query)
    params.update(request.get("params") or {})
    return op, params


# ----------------------------------------------------------------------------------------------
# HTTP layer
# ----------------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    emulator: Emulator

    def __init__(self, *args, **kwargs):
        self.clients: set[socket.socket] = set()
        self.clients_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def close_clients(self) -> None:
        # Keep-alive connections would otherwise keep their handler threads waiting forever.
        with self.clients_lock:
            for sock in list(self.clients):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RecombeeEmulator/1.0"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Head and body go out in one write, but set NODELAY anyway: a Nagle stall costs 40 ms.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        with self.server.clients_lock:
            self.server.clients.add(self.connection)

    def finish(self) -> None:
        with self.server.clients_lock:
            self.server.clients.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence access logs
        pass

    def do_POST(self) -> None:
        self._serve()

    do_PUT = do_DELETE = do_GET = do_PATCH = do_POST

    def _serve(self) -> None:
        emulator = self.server.emulator
        body = self._read_body()
        if emulator.latency:
            time.sleep(emulator.latency / 1000.0)
        reply = emulator.handle(self.command, self.path, self.headers.get("Content-Type"), body)
        self._send(reply)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, reply: Reply) -> None:
        if reply.drop_silently:
            return self._hang_up()
        if reply.delay:
            time.sleep(reply.delay)
        head = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}",
                "Content-Type: application/json", f"Content-Length: {len(reply.body)}",
                *(f"{k}: {v}" for k, v in reply.headers.items())]
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        try:
            if reply.drop:
                self.wfile.write(data[: len(data) // 2])
                return self._hang_up()
            if reply.trickle:
                return self._trickle(data + reply.body, reply.trickle)
            self.wfile.write(data + reply.body)
        except OSError:
            self.close_connection = True

    def _trickle(self, data: bytes, seconds: float) -> None:
        """One byte every `seconds` (the client hanging up, or the emulator stopping, ends it)."""
        stopped = self.server.emulator._stopping
        for n in range(len(data)):
            self.wfile.write(data[n:n + 1])
            if stopped.wait(seconds):
                return self._hang_up()

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# TLS (optional): the SDK sends Batch over https whatever the protocol option says
# ----------------------------------------------------------------------------------------------

def _tls_context(emulator: Emulator) -> ssl.SSLContext:
    cert, key = _self_signed_cert(emulator.host)
    emulator.cert_path = cert
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def _self_signed_cert(host: str) -> tuple[str, str]:
    """A throwaway certificate for ``host`` (and localhost): cryptography if installed, else the
    openssl command. Clients trust it with e.g. ``httpx.Client(verify=emu.cert_path)`` or
    ``REQUESTS_CA_BUNDLE=emu.cert_path`` for the official SDK."""
    folder = Path(tempfile.mkdtemp(prefix="recombee-emulator-"))
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        _cert_with_cryptography(host, cert, key)
    except ImportError:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
                        "-addext", f"subjectAltName=IP:{host},DNS:localhost"],
                       check=True, capture_output=True)
    return str(cert), str(key)


def _cert_with_cryptography(host: str, cert_path: Path, key_path: Path) -> None:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
