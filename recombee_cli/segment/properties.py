"""User and item properties: names, values, types, and the definitions that must precede values.

Recombee stores a user's or an item's values only for properties that exist (404 otherwise), each
with a type fixed when it is created. This module holds the rules the CLI applies before sending:

Names (`property_values`): a mapping's `values` object is flattened: a nested object becomes
  `parent_child` (Segment's `address: {city}` -> `address_city`), at any depth. Every character
  outside Recombee's rule `^[a-zA-Z0-9_\\-:]+$` is replaced by `_` (`first name` -> `first_name`,
  `a.b` -> `a_b`); letters keep their case (`firstName` stays `firstName`). A name that is then
  empty, longer than 63 characters, reserved (`id`, `userid`, `itemid`, any case), or produced by
  two keys of the same object is refused: the request is `invalid` with the reason.

Values (state-free checks, in the builder): strings of at most MAX_STRING_BYTES (UTF-8), lists
  of strings only (Recombee's `set`/`imageList`) of at most MAX_LIST_LENGTH elements, finite
  numbers. Anything else is `invalid` before sending.

Types: declared in the config (`[user_properties]`, `[item_properties]`: name -> type; presets
  may declare defaults, the config wins), else inferred from the first non-null value the run
  sees (`infer_type`): a boolean -> `boolean`, any number -> `double` (never `int`: a price 19
  then 19.99 must not conflict), a string -> `string`, a list of strings -> `set`. A null value
  of a property whose type is not known yet is left out of the request (nothing to infer from,
  and Recombee would refuse a value of a property that does not exist). Which values fit which
  type is `fits`. These decisions are made in the main process, in input order (`PropertyGate`),
  so they do not depend on `--workers`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from recombee_cli.errors import PayloadInvalid

TYPES = ("int", "double", "string", "boolean", "timestamp", "set", "image", "imageList")
NAME_RE = re.compile(r"[a-zA-Z0-9_\-:]+")
_BAD_CHAR = re.compile(r"[^a-zA-Z0-9_\-:]")
MAX_NAME_LENGTH = 63                 # Recombee: "must not exceed 63 characters"
RESERVED = frozenset(("id", "userid", "itemid"))
MAX_STRING_BYTES = 64 * 1024         # our conservative limit (Recombee documents none we found)
MAX_LIST_LENGTH = 1000
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")

# Value classes: what a value is, as far as the type checks care.
NULL, BOOLEAN, INTEGER, NUMBER, STRING, DATE, STRINGS = (
    "null", "boolean", "integer", "number", "string", "date-string", "list of strings")

_FITS = {
    "int": {INTEGER},
    "double": {INTEGER, NUMBER},
    "string": {STRING, DATE},
    "boolean": {BOOLEAN},
    "timestamp": {INTEGER, NUMBER, DATE},
    "set": {STRINGS},
    "image": {STRING},
    "imageList": {STRINGS},
}
_INFERRED = {BOOLEAN: "boolean", INTEGER: "double", NUMBER: "double", STRING: "string", DATE: "string",
             STRINGS: "set"}


def property_name(key: str) -> str:
    """A Segment key as a Recombee property name: characters outside the rule become `_`."""
    return _BAD_CHAR.sub("_", key)


def check_name(name: str, original: str) -> None:
    if not name:
        raise PayloadInvalid(f"property name {original!r} is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise PayloadInvalid(f"property name {name!r} is longer than {MAX_NAME_LENGTH} characters")
    if name.lower() in RESERVED:
        raise PayloadInvalid(f"property name {name!r} is reserved by Recombee (id, userid, itemid)")


def _check_value(name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise PayloadInvalid(f"property {name!r}: {value} is not a finite number")
        return value
    if isinstance(value, str):
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_STRING_BYTES:
            raise PayloadInvalid(f"property {name!r}: a string of {size:,} bytes is longer than "
                                 f"the {MAX_STRING_BYTES:,} bytes allowed")
        return value
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_LIST_LENGTH:
            raise PayloadInvalid(f"property {name!r}: a list of {len(value):,} values is longer than "
                                 f"the {MAX_LIST_LENGTH:,} allowed")
        for element in value:
            if not isinstance(element, str):
                raise PayloadInvalid(f"property {name!r}: a list may hold only strings (Recombee's set), "
                                     f"not {type_word(element)}")
            _check_value(name, element)
        return list(value)
    raise PayloadInvalid(f"property {name!r}: {type_word(value)} values cannot be stored")


def type_word(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def property_values(values: dict[str, Any]) -> dict[str, Any]:
    """A mapping's `values` object as Recombee property values (see the module docstring)."""
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def walk(obj: dict[str, Any], prefix: str, path: str) -> None:
        for key, value in obj.items():
            key = str(key)
            name = prefix + property_name(key)
            where = f"{path}.{key}" if path else key
            if isinstance(value, dict):
                walk(value, name + "_", where)
                continue
            check_name(name, where)
            if name in origin:
                raise PayloadInvalid(f"property name {name!r} comes from both {origin[name]!r} and {where!r}")
            origin[name] = where
            out[name] = _check_value(name, value)

    walk(values, "", "")
    return out


def value_class(value: Any) -> str:
    """The class of a checked value (`property_values`), for the type checks."""
    if value is None:
        return NULL
    if value is True or value is False:
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return INTEGER if value.is_integer() else NUMBER
    if isinstance(value, str):
        return DATE if ISO_DATE.fullmatch(value) else STRING
    return STRINGS


def fits(kind: str, cls: str) -> bool:
    return cls == NULL or cls in _FITS[kind]


def infer_type(cls: str) -> str | None:
    return _INFERRED.get(cls)


def check_types(table: dict[str, Any], where: str) -> dict[str, str]:
    """A `[user_properties]`-style table (name -> type), checked; raises ValueError."""
    out = {}
    for name, kind in table.items():
        if not isinstance(kind, str) or kind not in TYPES:
            raise ValueError(f"{where}.{name}: type {kind!r} is not one of {', '.join(TYPES)}")
        if not NAME_RE.fullmatch(name) or len(name) > MAX_NAME_LENGTH or name.lower() in RESERVED:
            raise ValueError(f"{where}: {name!r} is not a property name Recombee accepts "
                             f"(letters, digits, _ - :, at most {MAX_NAME_LENGTH}, not id/userid/itemid)")
        out[name] = kind
    return out


ENTITY_NOUN = {"users": "user", "items": "item"}


def definition_request(entity: str, name: str, kind: str) -> dict[str, Any]:
    """AddUserProperty / AddItemProperty as a Batch request (the SDK's shape: type in params)."""
    return {"method": "PUT", "path": f"/{entity}/properties/{name}", "params": {"type": kind}}


def value_request_target(request: dict[str, Any]) -> tuple[str, str] | None:
    """(entity, id) when a request sets a user's or an item's values (POST /users/{id}, /items/{id})."""
    if request.get("method") != "POST":
        return None
    path = request.get("path", "")
    if path.startswith("/users/"):
        entity = "users"
    elif path.startswith("/items/"):
        entity = "items"
    else:
        return None
    rest = path[7:]
    if not rest or "/" in rest:
        return None
    return entity, rest


def describe_values(request: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """What the main process needs of a value request: its entity and each (name, value class)."""
    target = value_request_target(request)
    if target is None:
        return None
    params = request.get("params") or {}
    return target[0], tuple((name, value_class(value)) for name, value in params.items()
                            if name != "!cascadeCreate")


class PropertyGate:
    """The run's property types, decided in input order in the main process.

    `check(entity, values)` answers (reason or None, names to leave out, new definitions): a value
    that does not fit its property's type makes the whole request invalid (reason); a null of a
    property whose type is not known yet is left out; a property seen for the first time (with a
    declared type, or a type inferred from this value) needs a definition before this request."""

    def __init__(self, declared: dict[str, dict[str, str]] | None = None):
        self.declared: dict[str, dict[str, str]] = {"users": {}, "items": {}}
        for entity, table in (declared or {}).items():
            self.declared[entity].update(table)
        self.types: dict[tuple[str, str], tuple[str, str]] = {}   # (entity, name) -> (type, why)
        self.definitions = 0

    def check(self, entity: str, described: tuple[tuple[str, str], ...],
              ) -> tuple[str | None, list[str], list[dict[str, Any]]]:
        new: list[tuple[str, str]] = []
        skip: list[str] = []
        pending: dict[str, tuple[str, str]] = {}
        noun = ENTITY_NOUN[entity]
        for name, cls in described:
            known = self.types.get((entity, name)) or pending.get(name)
            if known is None:
                kind = self.declared[entity].get(name)
                why = "declared in the config"
                if kind is None:
                    kind = infer_type(cls)
                    why = f"inferred from its first value, {cls}"
                    if kind is None:   # a null: nothing to infer from
                        skip.append(name)
                        continue
                known = pending[name] = (kind, why)
                new.append((name, kind))
            if not fits(known[0], cls):
                return (f"{noun} property {name!r} is {known[0]} ({known[1]}); the value ({cls}) does not fit",
                        [], [])
        for name, kind in new:
            self.types[(entity, name)] = (kind, pending[name][1])
        self.definitions += len(new)
        return None, skip, [definition_request(entity, name, kind) for name, kind in new]
