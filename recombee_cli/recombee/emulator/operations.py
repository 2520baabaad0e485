"""The emulator's operations, (store, params, now) -> (code, json), and the routing of a method
and path to one. Operations raise ApiError for error answers; `run` turns that into the answer."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import orjson

from recombee_cli.recombee.emulator.params import (
    IMAGE_URL_RE,
    PROPERTY_RE,
    ApiError,
    QueryValue,
    boolean_param,
    check_names,
    id_param,
    json_object_param,
    number_param,
    parse_timestamp,
    required_param,
    string_param,
    timestamp_param,
    valid_id,
)
from recombee_cli.recombee.emulator.store import KINDS, Kind, Store
from recombee_cli.request_kinds import INTERACTIONS

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


def op_add_interaction(kind: Kind, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, kind.add_names)
    user = id_param(params, "userId")
    item = id_param(params, "itemId")
    timestamp = timestamp_param(params, now)
    row = {"user_id": user, "item_id": item, "timestamp": timestamp, **kind.read_fields(params),
           "recomm_id": string_param(params, "recommId"),
           "additional_data": json_object_param(params, "additionalData")}
    cascade = bool(boolean_param(params, "cascadeCreate"))
    _require_entities(store, user, item, cascade)
    if kind.table == "viewportions":
        return _set_view_portion(store, row)
    if not store.insert(kind.table, row):
        raise ApiError(409, f"A {kind.noun} of the exact same userId, itemId and timestamp "
                            "is already present")
    return 200, "ok"


def _set_view_portion(store: Store, row: dict[str, Any]) -> Result:
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


def op_delete_interaction(kind: Kind, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, kind.delete_names)
    user = id_param(params, "userId")
    item = id_param(params, "itemId")
    args: tuple[Any, ...]
    if kind.table == "viewportions":
        where, args = "session_id IS ?", (id_param(params, "sessionId", required=False),)
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


def op_add_user(user_path: str, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, frozenset())
    user = valid_id(user_path, "userId")
    if not store.create("users", user):
        raise ApiError(409, f"User '{user}' already exists")
    return 201, "ok"


def _delete_user_rows(store: Store, user: str) -> None:
    for table in (*KINDS, "user_values"):
        store.execute(f"DELETE FROM {table} WHERE user_id = ?", (user,))
    store.execute("DELETE FROM users WHERE user_id = ?", (user,))


def op_delete_user(user_path: str, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, frozenset())
    user = valid_id(user_path, "userId")
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


def op_add_property(entity: str, name: str, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, frozenset({"type", "role", "metadata"}))
    name = _property_name(entity, name)
    kind = required_param(params, "type")
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
    kind: str = row[0]
    return kind


def op_get_property(entity: str, name: str, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, frozenset())
    return 200, {"name": name, "type": _property_type(store, entity, name)}


def op_delete_property(entity: str, name: str, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, frozenset())
    _property_type(store, entity, name)
    noun, _, values, table, _ = _ENTITY[entity]
    store.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
    store.execute(f"DELETE FROM {values} WHERE name = ?", (name,))
    return 200, "ok"


def op_list_properties(entity: str, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, frozenset())
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
    if kind == "string":
        if not isinstance(value, str):
            raise wrong()
        return value
    if kind == "image":
        if not isinstance(value, str) or not IMAGE_URL_RE.fullmatch(value):
            raise ApiError(400, f"Value {value!r} of property '{name}' is not a valid image "
                                "(the http(s) URL of an image)")
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
        if kind == "imageList" and not all(IMAGE_URL_RE.fullmatch(v) for v in value):
            raise ApiError(400, f"Value {value!r} of property '{name}' is not a valid imageList "
                                "(a list of http(s) URLs of images)")
        return sorted(set(value)) if kind == "set" else list(value)
    raise AssertionError(kind)


def _set_values(entity: str, key_path: str, store: Store, params: dict[str, Any]) -> Result:
    noun, column, table, _, id_name = _ENTITY[entity]
    key = valid_id(key_path, id_name)
    values = dict(params)
    # The SDK sends the special body key "!cascadeCreate"; the OAS also lists a query cascadeCreate.
    # In the body a plain "cascadeCreate" key is just a property value.
    cascade = bool(boolean_param(values, "!cascadeCreate"))
    values.pop("!cascadeCreate", None)
    if isinstance(values.get("cascadeCreate"), QueryValue):
        cascade = cascade or bool(boolean_param(values, "cascadeCreate"))
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


def op_set_user_values(user_path: str, store: Store, params: dict[str, Any], now: float) -> Result:
    return _set_values("users", user_path, store, params)


def op_set_item_values(item_path: str, store: Store, params: dict[str, Any], now: float) -> Result:
    return _set_values("items", item_path, store, params)


def op_add_item(item_path: str, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, frozenset())
    item = valid_id(item_path, "itemId")
    if not store.create("items", item):
        raise ApiError(409, f"Item '{item}' already exists")
    return 201, "ok"


def op_delete_item(item_path: str, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, frozenset())
    item = valid_id(item_path, "itemId")
    if not store.exists("items", item):
        raise ApiError(404, f"Item '{item}' not found")
    for table in (*KINDS, "item_values"):
        store.execute(f"DELETE FROM {table} WHERE item_id = ?", (item,))
    store.execute("DELETE FROM items WHERE item_id = ?", (item,))
    return 200, "ok"


def _values_of(store: Store, entity: str, key: str, names: list[str] | None = None) -> dict[str, Any]:
    """Every property of the entity (null when unset), as Recombee's GetUserValues answers."""
    noun, column, table, ptable, _ = _ENTITY[entity]
    out = {n: None for (n,) in store.execute(f"SELECT name FROM {ptable} ORDER BY name")}
    for name, value in store.execute(f"SELECT name, value FROM {table} WHERE {column} = ?", (key,)):
        out[name] = orjson.loads(value)
    if names is not None:
        out = {n: v for n, v in out.items() if n in names}
    return out


def op_get_values(entity: str, key_path: str, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, frozenset())
    noun, *_ = _ENTITY[entity]
    key = valid_id(key_path, _ENTITY[entity][4])
    if not store.exists(entity, key):
        raise ApiError(404, f"{noun.capitalize()} '{key}' not found")
    return 200, _values_of(store, entity, key)


def op_list_entities(entity: str, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, frozenset({"filter", "count", "offset", "returnProperties", "includedProperties"}))
    if params.get("filter") is not None:
        raise ApiError(400, "The emulator does not evaluate ReQL filters")
    count = number_param(params, "count", lo=1)
    offset = number_param(params, "offset", lo=0) or 0
    noun, column, _, _, id_name = _ENTITY[entity]
    sql = f"SELECT {column} FROM {entity} ORDER BY {column} LIMIT ? OFFSET ?"
    keys = [k for (k,) in store.execute(sql, (-1 if count is None else int(count), int(offset)))]
    if not boolean_param(params, "returnProperties"):
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


def op_list_interactions(entity: str, kind: Kind, key_path: str, store: Store, params: dict[str, Any],
                         now: float) -> Result:
    """ListUserDetailViews, ListItemPurchases...: the interactions of a user or an item, oldest first."""
    check_names(params, frozenset())
    noun, column, *_ = _ENTITY[entity]
    key = valid_id(key_path, _ENTITY[entity][4])
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


def op_merge_users(target_path: str, source_path: str, store: Store, params: dict[str, Any], now: float) -> Result:
    check_names(params, frozenset({"cascadeCreate"}))
    target = valid_id(target_path, "targetUserId")
    source = valid_id(source_path, "sourceUserId")
    cascade = bool(boolean_param(params, "cascadeCreate"))
    if target == source:
        raise ApiError(400, "targetUserId and sourceUserId must differ")
    if not store.exists("users", source):
        raise ApiError(404, f"Source user '{source}' not found")
    if not store.exists("users", target):
        if not cascade:
            raise ApiError(404, f"Target user '{target}' not found")
        store.create("users", target)
    # Recombee: "all the interactions of the source user are attributed to the target user, and
    # the source user is deleted" (MergeUsers in its API reference and every official SDK). Nothing
    # is documented of property values, and the SDK's own merge test reads none back: the source's
    # values go with the source user (deleted), the target keeps its own. Interactions that clash
    # with the target's own rows (the same key) go with the source too.
    for table in KINDS:
        store.execute(f"UPDATE OR IGNORE {table} SET user_id = ? WHERE user_id = ?", (target, source))
    _delete_user_rows(store, source)
    return 201, "ok"


# ----------------------------------------------------------------------------------------------
# Routing
# ----------------------------------------------------------------------------------------------

_TYPES = "|".join(INTERACTIONS)   # Recombee's six interaction types (request_kinds.py)
_INTERACTION_PATH = re.compile(rf"/({_TYPES})/?")
_MERGE_PATH = re.compile(r"/users/([^/?]+)/merge/([^/?]+)/?")
_USER_PATH = re.compile(r"/users/([^/?]+)/?")
_ITEM_PATH = re.compile(r"/items/([^/?]+)/?")
_PROPERTY_LIST_PATH = re.compile(r"/(users|items)/properties/list/?")
_PROPERTY_PATH = re.compile(r"/(users|items)/properties/([^/?]+)/?")
_ENTITY_LIST_PATH = re.compile(r"/(users|items)/list/?")
_ENTITY_INTERACTIONS_PATH = re.compile(rf"/(users|items)/([^/?]+)/({_TYPES})/?")
BATCH_PATH = re.compile(r"/batch/?")

Operation = Callable[[Store, dict[str, Any], float], Result]


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


def run(op: Operation, store: Store, params: dict[str, Any], now: float) -> Result:
    try:
        return op(store, params, now)
    except ApiError as e:
        return e.code, e.body()


def plan(index: int, request: dict[str, Any]) -> tuple[Operation, dict[str, Any]]:
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
