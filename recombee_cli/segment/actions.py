"""Actions: Segment's Recombee destination actions, their fields, and how each builds requests.

A request is the object that goes into a Batch's `requests` array: `{"method", "path", "params"}`.
Deletes and merges carry their parameters in `params` with JSON types (the official SDK's style;
Segment's destination puts them in the path's query string instead; Recombee accepts both).

Before an action builds anything, the resolved payload goes through what Segment's runtime applies
(actions-core): empty values dropped, values coerced to the field's type, required fields checked.
Two deliberate improvements over Segment (documented in docs/behaviour.md): an add-type interaction
never goes out without a timestamp (fallback to originalTimestamp, receivedAt, sentAt), and IDs and
value ranges Recombee would refuse are caught here instead of being sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from recombee_cli.errors import PayloadInvalid
from recombee_cli.segment.jsvalues import UNDEFINED, js_integral, js_multiply, js_string, js_string_to_number
from recombee_cli.segment.properties import engage_name, value_request
from recombee_cli.segment.timestamps import first_epoch_seconds, to_epoch_seconds

# Recombee's rule, except `.` and `..` alone: in a request's path (`/users/{userId}`, a merge's
# `/users/{target}/merge/{source}`) they are dot segments, which HTTP resolves to another path.
ID_PATTERN = re.compile(r"(?!\.\.?\Z)[a-zA-Z0-9_\-:@.]+")
is_valid_id = ID_PATTERN.fullmatch   # the fast path inlines this check

NO_DEFAULT = object()


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str                      # string | number | integer | datetime | object | any
    required: bool = False
    default: Any = NO_DEFAULT      # a mapping-kit value
    multiple: bool = False         # an array of `type`
    properties: tuple[FieldSpec, ...] = ()
    maximum: float | None = None   # Segment enforces only truthy maxima (see docs)
    description: str = ""


def _path(p: str) -> dict[str, Any]:
    return {"@path": p}


def _first_of(a: str, b: str) -> dict[str, Any]:
    return {"@if": {"exists": _path(a), "then": _path(a), "else": _path(b)}}


USER_ID = FieldSpec("userId", "string", True, _first_of("$.userId", "$.anonymousId"),
                    description="The user's ID (userId, else anonymousId).")
ITEM_ID = FieldSpec("itemId", "string", True, _first_of("$.properties.product_id", "$.properties.asset_id"),
                    description="The item's ID.")
ADD_TIMESTAMP = FieldSpec("timestamp", "datetime", False,
                          _first_of("$.properties.timestamp", "$.timestamp"),
                          description="When the interaction happened.")
DELETE_TIMESTAMP = FieldSpec("timestamp", "datetime", False, _path("$.properties.timestamp"),
                             description="Timestamp of the interaction to delete; without it Recombee "
                                         "deletes every such interaction of the user and item.")
RECOMM_ID = FieldSpec("recommId", "string", False, _path("$.properties.recomm_id"),
                      description="ID of the recommendation that led to the interaction.")
INTERNAL_DATA = FieldSpec("internalAdditionalData", "object", False,
                          {"segmentEventType": _path("$.type"),
                           "segmentEventName": _first_of("$.event", "$.name")},
                          description="Segment's hidden field: event type and name.")
ADDITIONAL_DATA = FieldSpec("additionalData", "object", False,
                            description="Extra data stored with the interaction.")
SESSION_ID = FieldSpec("sessionId", "string", False, _path("$.properties.session"),
                       description="Viewing session ID.")

ECOMMERCE_ID = _first_of("$.properties.product_id", "$.properties.sku")
VIDEO_ID = _first_of("$.properties.content_asset_id", "$.properties.content_asset_ids[0]")


@dataclass(frozen=True)
class Action:
    slug: str
    title: str
    fields: tuple[FieldSpec, ...]
    build: Callable[[dict[str, Any], dict[str, Any]], list[dict[str, Any]]] = field(repr=False)
    default_trigger: str | None = None

    def field(self, name: str) -> FieldSpec | None:
        for spec in self.fields:
            if spec.name == name:
                return spec
        return None

    def default_mapping(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.fields if f.default is not NO_DEFAULT}


# ---------------------------------------------------------------------------------------------
# Checks shared by the builders

# Recombee's ID rule applies to what goes to Recombee; a file export applies its own contract's
# rules instead (`recombee_id_rule(False)` around it, process-wide: the export's forked workers
# inherit it). A list, not a bool, so that the compiled build reads the current value.
_ID_RULE = [True]


@contextmanager
def recombee_id_rule(enabled: bool) -> Iterator[None]:
    before = _ID_RULE[0]
    _ID_RULE[0] = enabled
    try:
        yield
    finally:
        _ID_RULE[0] = before


def check_id(name: str, value: str) -> None:
    """Recombee's ID rule (SPEC 6): raise unless the ID is valid; with the rule off (a file
    export), return, and callers must not remember such an ID as valid."""
    if not is_valid_id(value) and _ID_RULE[0]:
        if value in (".", ".."):
            raise PayloadInvalid(f"{name} {value!r} is not a usable Recombee ID (in a request's path "
                                 f"it would name another path)")
        raise PayloadInvalid(
            f"{name} {value!r} is not a valid Recombee ID (allowed: letters, digits, _ - : @ .)")


FALLBACK_TIMESTAMPS = ("originalTimestamp", "receivedAt", "sentAt")
NO_TIMESTAMP = ("no usable timestamp (the mapped timestamp is missing and none of "
                "originalTimestamp, receivedAt, sentAt parses); Recombee would store it as now")


def interaction_timestamp(payload: dict[str, Any], event: dict[str, Any]) -> float | int:
    """The mapped timestamp, else the event's own clock fields: history is never stored as 'now'."""
    value = payload.get("timestamp")
    if value is not None:
        return to_epoch_seconds(value)
    seconds = first_epoch_seconds(event, FALLBACK_TIMESTAMPS)
    if seconds is not None:
        return seconds
    raise PayloadInvalid(NO_TIMESTAMP)


SKIP_IN_BODY = frozenset(("timestamp", "additionalData", "internalAdditionalData"))


def _add_params(payload: dict[str, Any], event: dict[str, Any], first: dict[str, Any] | None = None) -> dict[str, Any]:
    """createAddInteractionData: timestamp, cascadeCreate, additionalData, then the rest in order."""
    params: dict[str, Any] = {"timestamp": interaction_timestamp(payload, event), "cascadeCreate": True}
    extra = payload.get("additionalData")
    internal = payload.get("internalAdditionalData")
    if extra and internal:
        params["additionalData"] = {**extra, **internal}
    else:
        params["additionalData"] = dict(extra or internal or {})
    if first:
        params.update(first)
    for key, value in payload.items():
        if key not in SKIP_IN_BODY and key not in params:
            params[key] = value
    check_id("userId", params["userId"])
    if "itemId" in params:
        check_id("itemId", params["itemId"])
    if "sessionId" in params:
        check_id("sessionId", params["sessionId"])
    return params


class AddBuilder:
    """The builder of the add-type interactions: after an optional range check of one field,
    one POST of the add parameters — or, where one field becomes the first parameters (a cart
    line, a portion from watch time), one POST per value it gives (a purchase: per product).
    A class, not a closure, so that the compiled fast path (fastpath.py) can read its parts and
    inline the same steps."""

    __slots__ = ("path", "checked_field", "check", "first_field", "first", "first_keys", "each")

    def __init__(self, path: str, checked_field: str | None = None,
                 check: Callable[[Any], None] | None = None, *, first_field: str | None = None,
                 first: Callable[[Any], dict[str, Any]] | None = None, first_keys: frozenset[str] = frozenset(),
                 each: bool = False):
        self.path = path
        self.checked_field = checked_field
        self.check = check
        self.first_field = first_field   # the field that becomes the first parameters...
        self.first = first               # ...through this (per element when `each`)...
        self.first_keys = first_keys     # ...which sets at most these keys
        self.each = each

    def __call__(self, payload: dict[str, Any], event: dict[str, Any]) -> list[dict[str, Any]]:
        if self.check is not None and self.checked_field is not None:
            self.check(payload[self.checked_field])
        if self.first_field is None or self.first is None:
            return [{"method": "POST", "path": self.path, "params": _add_params(payload, event)}]
        first = self.first
        value = payload[self.first_field]
        rest = {k: v for k, v in payload.items() if k != self.first_field}
        values = value if self.each else [value]
        return [{"method": "POST", "path": self.path, "params": _add_params(rest, event, first(v))}
                for v in values]


def check_rating(rating: float) -> None:
    if not -1 <= rating <= 1:
        raise PayloadInvalid(f"rating {js_string(rating)} is outside [-1, 1] (rescale it, e.g. (stars-3)/2)")


def check_portion(portion: float) -> None:
    if not 0 <= portion <= 1:
        raise PayloadInvalid(f"portion {js_string(portion)} is outside [0, 1]")


def portion_from_watch_time(times: dict[str, Any]) -> dict[str, Any]:
    total, watched = times["totalLength"], times["watchTime"]
    if total == 0:
        raise PayloadInvalid("The total length of the item cannot be zero.")
    if watched > total:
        raise PayloadInvalid("The watch time of the item cannot be greater than the total length of the item.")
    portion = watched / total
    check_portion(portion)
    return {"portion": portion}


def _line_item(item: dict[str, Any], with_profit: bool) -> dict[str, Any]:
    """Recombee wants line totals: price (and profit) times amount when both are present."""
    out = {"itemId": item["itemId"]}
    amount = item.get("amount")
    if amount is not None:
        out["amount"] = amount
    for key in ("price", "profit") if with_profit else ("price",):
        value = item.get(key)
        if value is not None:
            out[key] = js_multiply(value, amount) if amount is not None else value
    return out


def cart_line(item: dict[str, Any]) -> dict[str, Any]:
    return _line_item(item, with_profit=False)


def purchase_line(item: dict[str, Any]) -> dict[str, Any]:
    return _line_item(item, with_profit=True)


_LINE_KEYS = frozenset(("itemId", "amount", "price", "profit"))


def _delete_interaction(path: str) -> Callable[[dict[str, Any], dict[str, Any]], list[dict[str, Any]]]:
    def build(payload: dict[str, Any], event: dict[str, Any]) -> list[dict[str, Any]]:
        params = {"userId": payload["userId"], "itemId": payload["itemId"]}
        check_id("userId", params["userId"])
        check_id("itemId", params["itemId"])
        if payload.get("timestamp") is not None:
            params["timestamp"] = to_epoch_seconds(payload["timestamp"])
        return [{"method": "DELETE", "path": path, "params": params}]
    return build


def _build_merge(payload: dict[str, Any], event: dict[str, Any]) -> list[dict[str, Any]]:
    target, source = payload["targetUserId"], payload["sourceUserId"]
    check_id("targetUserId", target)
    check_id("sourceUserId", source)
    return [{"method": "PUT", "path": f"/users/{target}/merge/{source}", "params": {"cascadeCreate": True}}]


def _build_delete_user(payload: dict[str, Any], event: dict[str, Any]) -> list[dict[str, Any]]:
    user = payload["userId"]
    check_id("userId", user)
    return [{"method": "DELETE", "path": f"/users/{user}", "params": {}}]


def _build_set_user_values(payload: dict[str, Any], event: dict[str, Any]) -> list[dict[str, Any]]:
    user = payload["userId"]
    check_id("userId", user)
    return [value_request(f"/users/{user}", payload.get("values") or {})]


_NO_VALUE = object()


def _build_set_user_value(payload: dict[str, Any], event: dict[str, Any]) -> list[dict[str, Any]]:
    """One user property named by `key` as Engage names it (its audience and computed-trait
    track events: `audience_key` or `trait_key`), set to `value`, else to `values[key]`."""
    user = payload["userId"]
    check_id("userId", user)
    key = payload["key"]
    if "value" in payload:
        value, where = payload["value"], "value"
    else:
        value, where = (payload.get("values") or {}).get(key, _NO_VALUE), "values"
        if value is _NO_VALUE:
            raise PayloadInvalid(f"no value for {key!r}: neither value nor values.{key} is there")
    return [value_request(f"/users/{user}", {key: value}, where, engage_name)]


def _build_set_item_values(payload: dict[str, Any], event: dict[str, Any]) -> list[dict[str, Any]]:
    """One item (itemId, values), and/or several (`items`: each {itemId, values}, e.g. the
    products of an order): one request per item, in order."""
    targets = []
    if payload.get("itemId") is not None:
        targets.append((payload["itemId"], payload.get("values") or {}, "values"))
    for n, item in enumerate(payload.get("items") or ()):
        targets.append((item["itemId"], item.get("values") or {}, f"items[{n}].values"))
    if not targets and "items" not in payload:
        raise PayloadInvalid(missing_field("itemId"))
    requests = []
    for item, values, where in targets:
        check_id("itemId", item)
        requests.append(value_request(f"/items/{item}", values, where))
    return requests


VALUES = FieldSpec("values", "object", False,
                   description="Property values (a mapping-kit object); nested objects are flattened "
                               "with _ (see docs/configuration.md, Users and items).")

_ADD_COMMON_TAIL = (RECOMM_ID, INTERNAL_DATA, ADDITIONAL_DATA)

ACTIONS: dict[str, Action] = {a.slug: a for a in (
    Action("addDetailView", "Add Detail View",
           (USER_ID, ITEM_ID, ADD_TIMESTAMP,
            FieldSpec("duration", "integer", description="Duration of the view in seconds."),
            *_ADD_COMMON_TAIL),
           AddBuilder("/detailviews/")),
    Action("addBookmark", "Add Bookmark", (USER_ID, ITEM_ID, ADD_TIMESTAMP, *_ADD_COMMON_TAIL),
           AddBuilder("/bookmarks/"), 'type = "track" and event = "Product Added to Wishlist"'),
    Action("deleteBookmark", "Delete Bookmark", (USER_ID, ITEM_ID, DELETE_TIMESTAMP),
           _delete_interaction("/bookmarks/"), 'type = "track" and event = "Product Removed from Wishlist"'),
    Action("addCartAddition", "Add Cart Addition",
           (USER_ID,
            FieldSpec("item", "object", True,
                      {"itemId": ECOMMERCE_ID, "amount": _path("$.properties.quantity"),
                       "price": _path("$.properties.price")},
                      properties=(FieldSpec("itemId", "string", True), FieldSpec("amount", "number"),
                                  FieldSpec("price", "number")),
                      description="The product added: itemId, amount, price per item."),
            ADD_TIMESTAMP, *_ADD_COMMON_TAIL),
           AddBuilder("/cartadditions/", first_field="item", first=cart_line, first_keys=_LINE_KEYS),
           'type = "track" and event = "Product Added"'),
    Action("deleteCartAddition", "Delete Cart Addition", (USER_ID, ITEM_ID, DELETE_TIMESTAMP),
           _delete_interaction("/cartadditions/"), 'type = "track" and event = "Product Removed"'),
    Action("addPurchase", "Add Purchase",
           (USER_ID,
            FieldSpec("items", "object", True,
                      {"@arrayPath": ["$.properties.products",
                                      {"itemId": _first_of("$.product_id", "$.sku"),
                                       "amount": _path("$.quantity"), "price": _path("$.price"),
                                       "profit": _path("$.profit")}]},
                      multiple=True,
                      properties=(FieldSpec("itemId", "string", True), FieldSpec("amount", "number"),
                                  FieldSpec("price", "number"), FieldSpec("profit", "number")),
                      description="The products bought: one purchase each."),
            ADD_TIMESTAMP, *_ADD_COMMON_TAIL),
           AddBuilder("/purchases/", first_field="items", first=purchase_line, first_keys=_LINE_KEYS,
                      each=True)),
    Action("addRating", "Add Rating",
           (USER_ID, ITEM_ID, ADD_TIMESTAMP,
            FieldSpec("rating", "number", True, _path("$.properties.rating"),
                      description="Rating in [-1, 1]."),
            *_ADD_COMMON_TAIL),
           AddBuilder("/ratings/", "rating", check_rating)),
    Action("setViewPortion", "Set View Portion",
           (USER_ID, ITEM_ID, ADD_TIMESTAMP,
            FieldSpec("portion", "number", True, _path("$.properties.portion"), maximum=1,
                      description="Viewed portion in [0, 1]."),
            SESSION_ID, *_ADD_COMMON_TAIL),
           AddBuilder("/viewportions/", "portion", check_portion)),
    Action("setViewPortionFromWatchTime", "Set View Portion from Watch Time",
           (USER_ID, ITEM_ID, ADD_TIMESTAMP,
            FieldSpec("portion", "object", True,
                      {"totalLength": _path("$.properties.total_length"),
                       "watchTime": _path("$.properties.position")},
                      properties=(FieldSpec("totalLength", "number", True),
                                  FieldSpec("watchTime", "number", True)),
                      description="totalLength and watchTime; portion = watchTime / totalLength."),
            SESSION_ID, *_ADD_COMMON_TAIL),
           AddBuilder("/viewportions/", first_field="portion", first=portion_from_watch_time,
                      first_keys=frozenset(("portion",)))),
    Action("mergeUsers", "Merge Users",
           (FieldSpec("targetUserId", "string", True, _path("$.userId"), description="The user kept."),
            FieldSpec("sourceUserId", "string", True, _path("$.previousId"),
                      description="The user merged into the target and deleted.")),
           _build_merge, 'type = "alias"'),
    Action("deleteUser", "Delete User",
           (FieldSpec("userId", "string", True, _path("$.userId"), description="The user to delete."),),
           _build_delete_user),
    # Beyond Segment's destination (docs/behaviour.md): users' and items' property values.
    Action("setUserValues", "Set User Values",
           (USER_ID, VALUES), _build_set_user_values),
    Action("setUserValue", "Set User Value",
           (USER_ID,
            FieldSpec("key", "string", True, description="The property's key, named as Engage names "
                                                         "audiences and computed traits (snake_case)."),
            FieldSpec("value", "any", description="The value (else values[key])."),
            VALUES),
           _build_set_user_value),
    Action("setItemValues", "Set Item Values",
           (FieldSpec("itemId", "string", False, ECOMMERCE_ID, description="The item's ID."),
            VALUES,
            FieldSpec("items", "object", False, multiple=True,
                      properties=(FieldSpec("itemId", "string", True), FieldSpec("values", "object")),
                      description="Several items at once (e.g. an order's products): each itemId and "
                                  "values; one request per item.")),
           _build_set_item_values),
)}


# ---------------------------------------------------------------------------------------------
# What actions-core does between mapping and action: removeEmptyValues, AJV coercion, required.

def _where(path: str) -> str:
    return f"The value at {path}" if path else "The root value"


def _coerce_scalar(spec: FieldSpec, value: Any, path: str, name: str | None = None) -> Any:
    """AJV's coercion of one value to its field's type. The value's JSON pointer is `path`, plus
    `/name` for an object's property (joined only for an error message: this runs per value)."""
    kind = spec.type
    t = type(value)
    if t is str and kind == "string" or (t is int or t is float) and kind == "number" and not spec.maximum:
        return value   # the common case: the type already
    if kind == "any":
        return value   # (our own fields only: Segment's have a type)
    if isinstance(value, list) and len(value) == 1 and kind != "object":
        value = value[0]  # AJV coerceTypes 'array' unwraps a one-element array
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, int, float)):
            return js_string(value)
        raise PayloadInvalid(f"{_where(_pointer(path, name))} must be string.")
    if kind in ("number", "integer"):
        if isinstance(value, bool):
            value = 1 if value else 0
        elif isinstance(value, str):
            # AJV: `data && data == +data`, so "" stays a string and "  " is 0 (Number("  ")).
            number = js_string_to_number(value) if value != "" else float("nan")
            if number != number or number in (float("inf"), float("-inf")):
                raise PayloadInvalid(f"{_where(_pointer(path, name))} must be {kind}.")
            value = js_integral(number)
        elif not isinstance(value, (int, float)):
            raise PayloadInvalid(f"{_where(_pointer(path, name))} must be {kind}.")
        if kind == "integer":
            if type(value) is float:
                if not value.is_integer():   # (nor infinite: a @json-decoded 1e400)
                    raise PayloadInvalid(f"{_where(_pointer(path, name))} must be integer.")
                value = js_integral(value)
        if spec.maximum and value > spec.maximum:
            raise PayloadInvalid(f"{_where(_pointer(path, name))} must be <= {js_string(spec.maximum)} "
                                 "(schema maximum)")
        return value
    if kind == "datetime":
        if isinstance(value, bool):
            return js_string(value)
        if isinstance(value, (str, int, float)):
            return value
        raise PayloadInvalid(f"{_where(_pointer(path, name))} must be a date-like string or number.")
    if kind == "object":
        if isinstance(value, dict):
            return value
        raise PayloadInvalid(f"{_where(_pointer(path, name))} must be object.")
    raise AssertionError(kind)


def _pointer(path: str, name: str | int | None) -> str:
    return path if name is None else f"{path}/{name}"


def _clean_object(spec: FieldSpec, value: dict[str, Any], path: str, index: int | None = None) -> dict[str, Any]:
    """Declared-property objects: nulls dropped, '' dropped unless the property is a string,
    undeclared keys removed (AJV removeAdditional), then coercion and required checks. The
    object's JSON pointer is `path`, plus `/index` for an item of an array."""
    out = {}
    properties = spec.properties
    where = path if index is None else f"{path}/{index}"
    for prop in properties:
        v = value.get(prop.name)
        if v is None or (v == "" and prop.type != "string"):
            continue
        out[prop.name] = _coerce_scalar(prop, v, where, prop.name)
    if len(out) < len(properties):
        for prop in properties:
            if prop.required and prop.name not in out:
                raise PayloadInvalid(f"{_where(where)} is missing the required field '{prop.name}'.")
    return out


def coerce_field(spec: FieldSpec, value: Any) -> Any:
    path = "/" + spec.name
    if spec.multiple:
        items = value if isinstance(value, list) else [value]
        out = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise PayloadInvalid(f"{_where(f'{path}/{index}')} must be object.")
            out.append(_clean_object(spec, item, path, index) if spec.properties else item)
        return out
    if spec.type == "object" and spec.properties:
        if not isinstance(value, dict):
            raise PayloadInvalid(f"{_where(path)} must be object.")
        return _clean_object(spec, value, path)
    return _coerce_scalar(spec, value, path)


_PASS_THROUGH = {"string": (str,), "number": (int, float), "integer": (int,), "datetime": (str, int, float)}


PlanStep = tuple[str, Callable[[dict[str, Any]], Any], FieldSpec, "tuple[type[Any], ...] | None"]


def preparer_plan(action: Action, resolvers: Iterable[tuple[str, Callable[[dict[str, Any]], Any]]],
                  ) -> tuple[list[PlanStep], list[str]]:
    """The mapped fields in the action's order, each (name, resolver, spec, the types that pass
    through uncoerced or None), and the required fields the mapping leaves unmapped."""
    by_name = dict(resolvers)
    plan: list[PlanStep] = []
    for spec in action.fields:
        resolve = by_name.get(spec.name)
        if resolve is None:
            continue
        plain: tuple[type[Any], ...] | None = (
            None if (spec.multiple or spec.properties or spec.maximum) else _PASS_THROUGH.get(spec.type))
        if spec.type == "object" and not spec.properties and not spec.multiple:
            plain = (dict,)
        plan.append((spec.name, resolve, spec, plain))
    unmapped = [spec.name for spec in action.fields if spec.required and spec.name not in by_name]
    return plan, unmapped


def missing_field(name: str) -> str:
    return f"The root value is missing the required field '{name}'."


def make_preparer(action: Action, resolvers: Iterable[tuple[str, Callable[[dict[str, Any]], Any]]],
                  ) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Resolve a mapping's fields and apply Segment's post-mapping steps in one pass: empty values
    dropped (null anywhere, "" at the root), values coerced to the field's type, required fields
    checked. Values that already have their field's type pass straight through."""
    plan, unmapped = preparer_plan(action, resolvers)
    undefined = UNDEFINED

    def prepare(event: dict[str, Any]) -> dict[str, Any]:
        if unmapped:
            raise PayloadInvalid(missing_field(unmapped[0]))
        payload: dict[str, Any] = {}
        for name, resolve, spec, plain in plan:
            value = resolve(event)
            if value is undefined or value is None or value == "":
                if spec.required:
                    raise PayloadInvalid(missing_field(name))
                continue
            if plain is not None and type(value) in plain:   # (bool is not int here: type() is exact)
                payload[name] = value
            else:
                payload[name] = coerce_field(spec, value)
        return payload

    return prepare
