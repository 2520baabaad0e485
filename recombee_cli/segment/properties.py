"""User and item properties: names, values, types, and the definitions that must precede values.

Recombee stores a user's or an item's values only for properties that exist (404 otherwise), each
with a type fixed when it is created. This module holds the rules the CLI applies before sending.
A value Recombee would refuse is left out of its request alone ("dropped"), with the reason; the
other values of the request are still sent.

Names (`property_values`): a mapping's `values` object is flattened: a nested object becomes
  `parent_child` (Segment's `address: {city}` -> `address_city`), at any depth. Letters with an
  accent lose it (`é` -> `e`, Unicode NFKD); every other character outside Recombee's rule
  `^[a-zA-Z0-9_\\-:]+$` is replaced by `_` (`first name` -> `first_name`, `a.b` -> `a_b`); letters
  keep their case (`firstName` stays `firstName`). A value is dropped when its name is then empty,
  longer than 63 characters, reserved (`id`, `userid`, `itemid`, any case), or already set by
  another key of the same object (`a.b` beside `a_b`: the later one is dropped). Engage's names
  (`engage_name`: audience and computed-trait keys of its track events) are snake_cased as Engage
  makes its keys: accents dropped, lower case, every run of other characters one `_`.

Values (state-free checks, in the builder): strings of at most MAX_STRING_BYTES (UTF-8), lists
  of strings only (Recombee's `set`/`imageList`) of at most MAX_LIST_LENGTH elements, finite
  numbers. Anything else is dropped before sending.

Types: declared in the config (`[user_properties]`, `[item_properties]`: name -> type; presets
  may declare defaults, the config wins), or found in the database at the start of a sending run
  (its property lists), else inferred from the first non-null value the run sees (`infer_type`):
  a boolean -> `boolean`, any number -> `double` (never `int`: a price 19 then 19.99 must not
  conflict), a string -> `string`, a list of strings -> `set`; never `image` (a product page's
  `url` is a URL but no image): `image` is declared. A null value of a property whose type is not
  known yet is left out of the request (nothing to infer from, and Recombee would refuse a value
  of a property that does not exist). Which values fit which type is `fits`; an `image` value
  must be an http(s) URL. These decisions are made in the main process, in input order
  (`PropertyGate`), so they do not depend on `--workers`; there too a name that two different
  keys become across events (`Käufer` and `Kaufer` are both `Kaufer`) keeps the values of the
  first key seen, and the other key's values are dropped.

Between the builder and the main process, a value request carries its notes (the dropped values,
the keys that were renamed) under NOTES; `describe_values` takes them out: they are never sent.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from recombee_cli.errors import PayloadInvalid
from recombee_cli.request_kinds import value_target

TYPES = ("int", "double", "string", "boolean", "timestamp", "set", "image", "imageList")
NAME_RE = re.compile(r"[a-zA-Z0-9_\-:]+")
_BAD_CHAR = re.compile(r"[^a-zA-Z0-9_\-:]")
_NOT_SNAKE = re.compile(r"[^a-z0-9]+")
_ALNUM = re.compile(r"[a-zA-Z0-9]")
MAX_NAME_LENGTH = 63                 # Recombee: "must not exceed 63 characters"
RESERVED = frozenset(("id", "userid", "itemid"))
MAX_STRING_BYTES = 64 * 1024         # our conservative limit (Recombee documents none we found)
MAX_LIST_LENGTH = 1000
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")
# Recombee: an `image` value is "the URL of an image": an http(s) URL with a host, no spaces.
IMAGE_URL = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?", re.IGNORECASE)
NOTES = "~values"   # a value request's notes, from the builder to the main process; never sent

# Value classes: what a value is, as far as the type checks care.
NULL, BOOLEAN, INTEGER, NUMBER, STRING, DATE, URL, STRINGS, URLS = (
    "null", "boolean", "integer", "number", "string", "date-string", "http(s) URL", "list of strings",
    "list of http(s) URLs")

_FITS = {
    "int": {INTEGER},
    "double": {INTEGER, NUMBER},
    "string": {STRING, DATE, URL},
    "boolean": {BOOLEAN},
    "timestamp": {INTEGER, NUMBER, DATE},
    "set": {STRINGS, URLS},
    "image": {URL},
    "imageList": {URLS},
}
_INFERRED = {BOOLEAN: "boolean", INTEGER: "double", NUMBER: "double", STRING: "string", DATE: "string",
             URL: "string", STRINGS: "set", URLS: "set"}

# A value left out of its request: (field, property name, reason, the value). The field is the
# mapping's (`values.address.city`, `items[2].values.price`); the name is the key when no valid
# name could be made of it.
Dropped = tuple[str, str, str, Any]


def _unaccented(key: str) -> str:
    if key.isascii():
        return key
    return "".join(c for c in unicodedata.normalize("NFKD", key) if not unicodedata.combining(c))


def property_name(key: str) -> str:
    """A Segment key as a Recombee property name: accents dropped, other characters outside the
    rule become `_`; empty when the key's letters and digits are all of other scripts (`Покупки`
    would be only `_`: no name)."""
    name = _BAD_CHAR.sub("_", _unaccented(key))
    if name != key and not _ALNUM.search(name) and any(c.isalnum() for c in key):
        return ""
    return name


def engage_name(key: str) -> str:
    """An Engage audience or computed-trait key as Engage snake_cases names: accents dropped, lower
    case, every run of characters other than a-z and 0-9 one `_`, none at either end (`Order
    Completed Last 30days` -> `order_completed_last_30days`; a name of other letters only is empty)."""
    return "_".join(part for part in _NOT_SNAKE.split(_unaccented(key).lower()) if part)


def name_problem(name: str, original: str) -> str | None:
    """Why Recombee would refuse this property name, or None."""
    if not name:
        return f"property name {original!r} is empty once made of Recombee's characters"
    if len(name) > MAX_NAME_LENGTH:
        return f"property name {name!r} is longer than {MAX_NAME_LENGTH} characters"
    if name.lower() in RESERVED:
        return f"property name {name!r} is reserved by Recombee (id, userid, itemid)"
    return None


def check_name(name: str, original: str) -> None:
    problem = name_problem(name, original)
    if problem is not None:
        raise PayloadInvalid(problem)


def value_problem(value: Any) -> str | None:
    """Why this value cannot be stored whatever the property's type, or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value} is not a finite number"
        return None
    if isinstance(value, str):
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_STRING_BYTES:
            return f"a string of {size:,} bytes is longer than the {MAX_STRING_BYTES:,} bytes allowed"
        return None
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_LIST_LENGTH:
            return f"a list of {len(value):,} values is longer than the {MAX_LIST_LENGTH:,} allowed"
        for element in value:
            if not isinstance(element, str):
                return f"a list may hold only strings (Recombee's set), not {type_word(element)}"
            problem = value_problem(element)
            if problem is not None:
                return problem
        return None
    return f"{type_word(value)} values cannot be stored"


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


def property_values(values: dict[str, Any], field: str = "values",
                    name_of: Callable[[str], str] = property_name,
                    ) -> tuple[dict[str, Any], list[Dropped], dict[str, str]]:
    """A mapping's `values` object as Recombee property values (see the module docstring): the
    values to send, those dropped (with their field and reason), and the renamed keys
    (name -> the key path it was made of, when they differ)."""
    out: dict[str, Any] = {}
    dropped: list[Dropped] = []
    renamed: dict[str, str] = {}
    origin: dict[str, str] = {}

    def walk(obj: dict[str, Any], prefix: str, path: str) -> None:
        for key, value in obj.items():
            key = str(key)
            part = name_of(key)
            name = prefix + part
            where = f"{path}.{key}" if path else key
            if isinstance(value, dict):
                walk(value, name + "_", where)
                continue
            problem = name_problem(name if part else "", where)
            if problem is None and name in origin:
                problem = f"property name {name!r} is already set from {origin[name]!r} in the same event"
            if problem is None:
                problem = value_problem(value)
                if problem is not None:
                    problem = f"property {name!r}: {problem}"
            if problem is not None:
                dropped.append((f"{field}.{where}", name or where, problem, value))
                continue
            origin[name] = where
            out[name] = list(value) if isinstance(value, tuple) else value
            if where != name:
                renamed[name] = where

    walk(values, "", "")
    return out, dropped, renamed


def value_request(path: str, values: dict[str, Any], field: str = "values",
                  name_of: Callable[[str], str] = property_name) -> dict[str, Any]:
    """SetUserValues / SetItemValues as a Batch request (the SDK's shape), with its notes."""
    out, dropped, renamed = property_values(values, field, name_of)
    request: dict[str, Any] = {"method": "POST", "path": path, "params": {**out, "!cascadeCreate": True}}
    if dropped or renamed or field != "values":
        notes: dict[str, Any] = {}
        if dropped:
            notes["dropped"] = dropped
        if renamed:
            notes["renamed"] = renamed
        if field != "values":
            notes["field"] = field
        request[NOTES] = notes
    return request


def is_image_url(value: str) -> bool:
    return IMAGE_URL.fullmatch(value) is not None


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
        if ISO_DATE.fullmatch(value):
            return DATE
        return URL if IMAGE_URL.fullmatch(value) else STRING
    return URLS if all(IMAGE_URL.fullmatch(v) for v in value) else STRINGS


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
    """(entity, id) when a request sets a user's or an item's values (request_kinds: POST
    /users/{id}, /items/{id})."""
    return value_target(request)


# What the main process needs of a value request: its entity, each (name, value class), and its
# notes (dropped values, renamed keys) or None.
Described = tuple[str, tuple[tuple[str, str], ...], "dict[str, Any] | None"]


def describe_values(request: dict[str, Any]) -> Described | None:
    """A value request described for the PropertyGate; its notes are taken out of the request."""
    target = value_request_target(request)
    if target is None:
        return None
    notes = request.pop(NOTES, None)
    params = request.get("params") or {}
    return target[0], tuple((name, value_class(value)) for name, value in params.items()
                            if name != "!cascadeCreate"), notes


def _misfit(noun: str, name: str, kind: str, why: str, cls: str) -> str:
    text = f"{noun} property {name!r} is {kind} ({why}); the value ({cls}) does not fit"
    if kind in ("image", "imageList") and cls in (STRING, DATE, STRINGS):
        text += " (an image is the http(s) URL of one)"
    return text


class PropertyGate:
    """The run's property types, decided in input order in the main process.

    `existing`: the types the database already has (its property lists, read when a sending run
    starts): no definition is sent for them and the values must fit them. `check(entity,
    described, renamed)` answers (dropped, names to leave out, new definitions): a value that does
    not fit its property's type is dropped alone, with the reason; so is a value whose name an
    earlier value of another key already holds (`renamed`: name -> that key, where they differ); a
    null of a property whose type is not known yet is left out; a property seen for the first time
    (with a declared type, or a type inferred from this value) needs a definition before this
    request."""

    def __init__(self, declared: dict[str, dict[str, str]] | None = None,
                 existing: dict[str, dict[str, str]] | None = None):
        self.declared: dict[str, dict[str, str]] = {"users": {}, "items": {}}
        for entity, table in (declared or {}).items():
            self.declared[entity].update(table)
        self.types: dict[tuple[str, str], tuple[str, str]] = {}   # (entity, name) -> (type, why)
        for entity, table in (existing or {}).items():
            for name, kind in table.items():
                self.types[(entity, name)] = (kind, "in the database")
        self.origins: dict[tuple[str, str], str] = {}             # (entity, name) -> the key it came from
        self.definitions = 0

    def check(self, entity: str, described: tuple[tuple[str, str], ...], renamed: dict[str, str] | None = None,
              ) -> tuple[list[tuple[str, str]], list[str], list[dict[str, Any]]]:
        new: list[dict[str, Any]] = []
        leave: list[str] = []
        dropped: list[tuple[str, str]] = []
        noun = ENTITY_NOUN[entity]
        types, origins = self.types, self.origins
        for name, cls in described:
            key = (entity, name)
            origin = renamed.get(name, name) if renamed else name
            first = origins.get(key)
            if first is not None and first != origin:
                dropped.append((name, f"{noun} property {name!r} already holds the values of key {first!r}; "
                                      f"key {origin!r} would write over them"))
                leave.append(name)
                continue
            known = types.get(key)
            if known is None:
                kind = self.declared[entity].get(name)
                why = "declared in the config"
                if kind is None:
                    kind = infer_type(cls)
                    why = f"inferred from its first value, {cls}"
                    if kind is None:   # a null: nothing to infer from
                        leave.append(name)
                        continue
                if not fits(kind, cls):
                    dropped.append((name, _misfit(noun, name, kind, why, cls)))
                    leave.append(name)
                    continue
                known = types[key] = (kind, why)
                new.append(definition_request(entity, name, kind))
            elif not fits(known[0], cls):
                dropped.append((name, _misfit(noun, name, known[0], known[1], cls)))
                leave.append(name)
                continue
            if first is None:
                origins[key] = origin
        self.definitions += len(new)
        return dropped, leave, new
