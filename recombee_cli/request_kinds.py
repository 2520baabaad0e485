"""What a Recombee request is: the one table of the request kinds this tool sends.

A request is the object that goes into a Batch's `requests` array, `{"method", "path", "params"}`.
Whatever depends on a request's kind reads it here, not from the path again:

* its ordering keys (`order`): whose order it takes part in — a user id, or `/items/{id}` for an
  item's values (no user id can equal it: ids hold no `/`) — and the *part* of them it touches
  (`part`): an interaction touches one (user, item) pair of its user's history, so it is ordered
  against that user's requests for the same item and against the requests that take the user
  whole (a merge, a user deletion, values, anything of no part); requests for other items commute
  with it (the store ends the same whichever is applied first), so they need not wait for it. The
  sender keeps one Batch in flight per part, and a request of no part waits for every Batch of
  its keys: requests that do not commute take effect in input order;
* `LENIENT`: a 404 means there was nothing left to do (a delete or merge applied already, or a
  user never there), so it counts as done;
* `SOLO`: applied a second time it would undo later work — a merge moves again whatever its source
  user was given since, a user deletion deletes it. So a solo request never shares a Batch with
  another request of its keys (a failed neighbour would make it be sent again), the later requests
  of its keys wait until it is answered *and* recorded in the state, and a resumed run, a
  `--reprocess` or a `--since/--until` window never sends it again (SPEC §7);
* `REMOVES`: applied, or answered 404, it leaves its last ordering key absent from the store — a
  user deletion its user, a merge its source (one that may create its target: `cascadeCreate`;
  without it, a missing target leaves the source where it was). A later merge of a source that is
  absent so, with no request of that user in between (input order), moves nothing: the sender
  marks it `SOURCE_GONE` (`mark_gone_sources`) and orders its target only against the target's
  requests that take them whole, not against the target's interactions. An alias repeated at
  every login is such a merge: a benchmark archive of 824,000 requests holds 12,052 merges, 7,487
  of them so;
* its duplicate key (`keyed`): Recombee keeps the first interaction of a (user, item, timestamp)
  and answers 409 to the next; two requests with one key never share a Batch, or a retried first
  one would come back 409 behind the second and the store would keep the wrong one. View portions
  are updated per (user, item, session): keyed likewise. `route` marks a key that holds its user
  and part (`KEY_OF_PART`): only a request of the same part can share it, which the sender looks
  up by the part instead of hashing the key;
* `table`: the interaction type it adds to or deletes from (`detailviews`…), for an export;
* `values`: the entity (`users`, `items`) whose property values it sets, for the property gate.

A new kind (say `addSeries`) is one `RequestKind` in KINDS (or `register`): the sender orders it,
the export names it, nothing else changes. `route(request, sid)` gives the sender what it needs of
a request in one tuple.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

LENIENT = 1
SOLO = 2
KEY_OF_PART = 4   # its duplicate key holds its user and its part (the interactions'): only a request of
                  # the same (user, part) can have it (set by `route`, not a kind's own flag)
REMOVES = 8       # it leaves its last ordering key absent from the store (see above; `route` drops it from
                  # a merge that cannot: no cascadeCreate, target and source one user, a key missing)
SOURCE_GONE = 16  # a merge whose source is absent when it comes (set by the sender: `mark_gone_sources`)

Users = tuple[str, ...]
# (ordering keys, flags, duplicate key or None, sid, part or None): what the sender needs of a
# request. `sid` is the request's place in its input, relative to the chunk it was translated in
# (see `sid`); `part` is the item id of an interaction (None: the request takes its keys whole).
Route = tuple[Users, int, Any, int, "str | None"]

_NAME = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class RequestKind:
    action: str           # the destination action that builds it (Segment's name, or ours)
    method: str
    path: str             # the path, or its template with {names} (one path segment each)
    flags: int = 0
    order: tuple[str, ...] = ("{userId}",)   # templates of its ordering keys, from the path or params
    keyed: tuple[str, ...] = ()              # params that make its duplicate key (with the path)
    part: str | None = None                  # the param naming the part of its keys it touches
    table: str | None = None                 # the interaction type it adds to or deletes from
    values: str | None = None                # the entity whose property values it sets
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @property
    def fixed(self) -> bool:
        return "{" not in self.path


def _pattern(template: str) -> re.Pattern[str]:
    parts = _NAME.split(template)   # literal, name, literal, name, ...
    return re.compile("".join(re.escape(p) if k % 2 == 0 else f"(?P<{p}>[^/?]+)" for k, p in enumerate(parts)))


INTERACTIONS = {   # interaction type -> (add action, delete action or None), in the export's order
    "purchases": ("addPurchase", None),
    "cartadditions": ("addCartAddition", "deleteCartAddition"),
    "detailviews": ("addDetailView", None),
    "bookmarks": ("addBookmark", "deleteBookmark"),
    "ratings": ("addRating", None),
    "viewportions": ("setViewPortion", None),
}
_KEYED = {"viewportions": ("userId", "itemId", "sessionId")}

KINDS: list[RequestKind] = [
    *(RequestKind(add, "POST", f"/{table}/", keyed=_KEYED.get(table, ("userId", "itemId", "timestamp")),
                  part="itemId", table=table) for table, (add, _) in INTERACTIONS.items()),
    *(RequestKind(delete, "DELETE", f"/{table}/", LENIENT, part="itemId", table=table)
      for table, (_, delete) in INTERACTIONS.items() if delete),
    RequestKind("mergeUsers", "PUT", "/users/{userId}/merge/{sourceUserId}", LENIENT | SOLO | REMOVES,
                order=("{userId}", "{sourceUserId}")),
    RequestKind("deleteUser", "DELETE", "/users/{userId}", LENIENT | SOLO | REMOVES),
    RequestKind("setUserValues", "POST", "/users/{userId}", values="users"),
    RequestKind("setItemValues", "POST", "/items/{itemId}", order=("/items/{itemId}",), values="items"),
    RequestKind("addUserProperty", "PUT", "/users/properties/{name}", order=()),
    RequestKind("addItemProperty", "PUT", "/items/properties/{name}", order=()),
]
_FIXED: dict[tuple[str, str], RequestKind] = {}
_TEMPLATED: list[RequestKind] = []
# The fixed-path kinds ordered by their `userId` (the interactions), for `route`'s quick way:
# path -> ((method, path, flags, keyed params, part param or None, third), ...), one a method. `third`:
# the third keyed param when the key is (userId, the part, third), the interactions' shape, whose
# first two `route` has read already; else None. (By path, then method: a tuple of two fresh
# strings cost each request sent a tuple, two string hashes and a tuple comparison.)
_QuickKind = tuple[str, str, int, tuple[str, ...], "str | None", "str | None"]
_QUICK: dict[str, tuple[_QuickKind, ...]] = {}


def register(kind: RequestKind) -> RequestKind:
    """Add a kind to the table (the module adds its own; a new action's module, or a test, more).
    Templated paths are matched most specific first (more literal text wins)."""
    if kind.fixed:
        _FIXED[(kind.method, kind.path)] = kind
        others = tuple(quick for quick in _QUICK.get(kind.path, ()) if quick[0] != kind.method)
        if kind.order == ("{userId}",):
            third = (kind.keyed[2] if len(kind.keyed) == 3 and kind.keyed[:2] == ("userId", kind.part)
                     and kind.part is not None else None)
            others += ((kind.method, kind.path, kind.flags | (KEY_OF_PART if third is not None else 0), kind.keyed,
                        kind.part, third),)
        if others:
            _QUICK[kind.path] = others
        else:
            _QUICK.pop(kind.path, None)
    else:
        kind = RequestKind(kind.action, kind.method, kind.path, kind.flags, kind.order, kind.keyed, kind.part,
                           kind.table, kind.values, _pattern(kind.path))
        _TEMPLATED.append(kind)
        _TEMPLATED.sort(key=lambda k: -len(_NAME.sub("", k.path)))
    if kind not in KINDS:
        KINDS.append(kind)
    return kind


for _kind in list(KINDS):
    register(_kind)


def match(request: dict[str, Any]) -> tuple[RequestKind, dict[str, str]] | None:
    """The kind of a request and the names its path holds, or None for a request of no known kind."""
    method, path = request["method"], request["path"]
    kind = _FIXED.get((method, path))
    if kind is not None:
        return kind, {}
    for kind in _TEMPLATED:
        if kind.method == method and kind.pattern is not None:
            found = kind.pattern.fullmatch(path)
            if found is not None:
                return kind, found.groupdict()
    return None


def kind_of(request: dict[str, Any]) -> RequestKind | None:
    found = match(request)
    return found[0] if found is not None else None


def _order_keys(kind: RequestKind, names: dict[str, str], params: dict[str, Any]) -> Users:
    keys = []
    for template in kind.order:
        sole = _SOLE.get(template, template)   # (a template of one name, `{userId}`, is its value)
        if sole is template:
            sole = _SOLE[template] = (found := _NAME.fullmatch(template)) and found.group(1)
        try:
            if sole:
                key = _text(names[sole] if sole in names else params[sole])
            else:
                key = _NAME.sub(lambda m: _text(names[m.group(1)] if m.group(1) in names else params[m.group(1)]),
                                template)
        except KeyError:   # a key the request lacks (a Recombee refusal to come): no order to keep
            continue
        keys.append(key)
    return tuple(keys)


# template -> its one name, or None: a merge's two keys were two regular-expression substitutions,
# each calling back into Python (26k instructions a merge routed, 1.4 % of the requests sent)
_SOLE: dict[str, str | None] = {}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise KeyError(value)   # an id that is not a string orders nothing (Recombee refuses it)
    return value


def users_of(request: dict[str, Any]) -> Users:
    """The ordering keys of a request (see the module docstring); () for none."""
    found = match(request)
    if found is None:
        user = (request.get("params") or {}).get("userId")
        return (user,) if isinstance(user, str) else ()
    kind, names = found
    return _order_keys(kind, names, request.get("params") or {})


def route(request: dict[str, Any], sid: Any = -1) -> Route:   # (`sid` an int: bare for request_kinds.pxd)
    """(ordering keys, flags, duplicate key, sid, part) of a request: the sender's whole view of it."""
    # (typed locals: the compiled build calls the dictionaries' C functions, not their methods)
    given = request.get("params")
    params: dict[str, Any] = given if type(given) is dict else dict(given) if isinstance(given, dict) else {}
    quick_kinds: dict[str, tuple[_QuickKind, ...]] = _QUICK
    method = request["method"]
    quick: _QuickKind | None = None
    for one in quick_kinds.get(request["path"], ()):
        if one[0] == method:
            quick = one
            break
    if quick is not None:   # the interactions: the common case, quickly (once per request sent)
        keyed: tuple[str, ...]
        _, path, flags, keyed, part_name, third = quick   # (`path`: the table's, its hash known)
        user = params.get("userId")
        users: Users = (user,) if isinstance(user, str) else ()
        part = params.get(part_name) if part_name is not None else None
        if third is not None:   # keyed by (userId, the part, third): two of them read already
            key: Any = (path, user, part, params.get(third))
        else:
            key = (path, *[params.get(name) for name in keyed]) if keyed else None
        return users, flags, key, sid, part if isinstance(part, str) else None
    found = match(request)
    if found is None:
        user = params.get("userId")
        return ((user,) if isinstance(user, str) else ()), 0, None, sid, None
    kind, names = found
    # (a list, not a generator: compiled, a generator here made every call allocate a closure)
    key = (kind.path, *[params.get(name) for name in kind.keyed]) if kind.keyed else None
    users = _order_keys(kind, names, params)
    flags = kind.flags
    if flags & REMOVES and not _removes(users, len(kind.order), params):
        flags &= ~REMOVES
    return users, flags, key, sid, _part(kind, params)


def _removes(users: Users, keys: int, params: dict[str, Any]) -> bool:
    """Whether a request of a REMOVES kind surely leaves its last ordering key absent: it holds
    every key, and a merge (two keys) differs in them and may create its target (else Recombee
    answers 400 or 404 and the source stays)."""
    if len(users) != keys:
        return False
    return keys == 1 or (keys == 2 and users[0] != users[1] and params.get("cascadeCreate") is True)


def _part(kind: RequestKind, params: dict[str, Any]) -> str | None:
    """The part of its keys a request touches; None (whole) where its kind names none or the
    request lacks it (a Recombee refusal to come: ordered as strictly as can be)."""
    if kind.part is None:
        return None
    value = params.get(kind.part)
    return value if isinstance(value, str) else None


def interaction_table(request: dict[str, Any]) -> str | None:
    """The interaction type a request adds to or deletes from (`purchases`…), else None."""
    kind = kind_of(request)
    return kind.table if kind is not None else None


def value_target(request: dict[str, Any]) -> tuple[str, str] | None:
    """(entity, id) when a request sets a user's or an item's property values, else None."""
    found = match(request)
    if found is None:
        return None
    kind, names = found
    entity = kind.values
    return None if entity is None else (entity, names["userId" if entity == "users" else "itemId"])


def action_of(request: dict[str, Any]) -> str:
    """The action a request comes from (`mergeUsers`…), or its method and first path segment."""
    kind = kind_of(request)
    if kind is not None:
        return kind.action
    method, path = request.get("method", ""), request.get("path", "")
    first = path.strip("/").split("/")[0]
    return f"{method} /{first}/" if first else f"{method} {path}"


# A request's place in its input: its line's number (relative to a chunk's first line, made
# absolute by adding `chunk_sid(first line number)`), the event's index in a batch-envelope line,
# and the request's index among that event's requests. The state records what Recombee answered
# by these numbers, so a resumed run knows them whatever chunks it cuts (SPEC §8).
SID_LIMIT = 1 << 16


def sid(line: int, index: int, ordinal: int) -> int:
    """The place of a request; -1 (never recorded, so sent again when a run resumes) for an event
    past the 65,536th of a batch envelope line, or a request past an event's 65,536th."""
    if index >= SID_LIMIT or ordinal >= SID_LIMIT:
        return -1
    return (line << 32) | (index << 16) | ordinal


def chunk_sid(first_line: int) -> int:
    """What turns a chunk-relative sid into the file's: add it."""
    return first_line << 32


def sid_line(value: int) -> int:
    """The line number a (file) sid belongs to."""
    return value >> 32
