"""What a Recombee request is: the one table of the request kinds this tool sends.

A request is the object that goes into a Batch's `requests` array, `{"method", "path", "params"}`.
Whatever depends on a request's kind reads it here, not from the path again:

* whose order it takes part in: its *users* (the keys the sender orders by: a user id, or
  `/items/{id}` for an item's values, which no user id can equal since ids hold no `/`);
* `LENIENT`: a 404 means there was nothing left to do (a delete or merge applied already, or a
  user never there), so it counts as done;
* `SOLO`: applied a second time it would undo later work — a merge moves again whatever its source
  user was given since, a user deletion deletes it. So a solo request never shares a Batch with
  another request of its users (a failed neighbour would make it be sent again), the requests of
  its users that come after it wait until it is answered *and* recorded in the state, and a resumed
  run never sends it again (SPEC §7);
* its duplicate *key*: Recombee keeps the first interaction of a (user, item, timestamp) and answers
  409 to the next; two requests with one key must never share a Batch, or a retried first one would
  come back 409 behind the second and the store would keep the wrong one. View portions are
  updated per (user, item, session): keyed likewise.

`route(request, sid)` gives the sender everything it needs per request in one tuple.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LENIENT = 1
SOLO = 2

Users = tuple[str, ...]
# (users, flags, duplicate key or None, sid): what the sender needs of a request. `sid` is the
# request's place in its input, relative to the chunk it was translated in (see `sid`).
Route = tuple[Users, int, Any, int]


@dataclass(frozen=True, slots=True)
class RequestKind:
    action: str           # the destination action that builds it (Segment's name, or ours)
    method: str
    path: str             # the path, or its pattern with {userId}, {itemId}, {sourceUserId}, {name}
    flags: int = 0
    keyed: bool = False   # Recombee answers 409 to a second one with the same key


INTERACTIONS = {   # path -> (add action, delete action); the add-type's key is (user, item, timestamp)
    "/detailviews/": ("addDetailView", None),
    "/purchases/": ("addPurchase", None),
    "/ratings/": ("addRating", None),
    "/cartadditions/": ("addCartAddition", "deleteCartAddition"),
    "/bookmarks/": ("addBookmark", "deleteBookmark"),
    "/viewportions/": ("setViewPortion", None),
}

KINDS: tuple[RequestKind, ...] = (
    *(RequestKind(add, "POST", path, keyed=True) for path, (add, _) in INTERACTIONS.items()),
    *(RequestKind(delete, "DELETE", path, LENIENT) for path, (_, delete) in INTERACTIONS.items() if delete),
    RequestKind("mergeUsers", "PUT", "/users/{userId}/merge/{sourceUserId}", LENIENT | SOLO),
    RequestKind("deleteUser", "DELETE", "/users/{userId}", LENIENT | SOLO),
    RequestKind("setUserValues", "POST", "/users/{userId}"),
    RequestKind("setItemValues", "POST", "/items/{itemId}"),
    RequestKind("addUserProperty", "PUT", "/users/properties/{name}"),
    RequestKind("addItemProperty", "PUT", "/items/properties/{name}"),
)

_FIXED = {(kind.method, kind.path): kind for kind in KINDS if "{" not in kind.path}
_BY_ACTION = {kind.action: kind for kind in KINDS}
_FIXED_DELETES = frozenset(path for (method, path) in _FIXED if method == "DELETE")


def kind_of(request: dict[str, Any]) -> RequestKind | None:
    """The kind of a request, or None for one this tool does not make."""
    method, path = request["method"], request["path"]
    kind = _FIXED.get((method, path))
    if kind is not None:
        return kind
    parts = path.split("/")   # "", "users" | "items", id [, "merge", source] | "properties", name
    entity = parts[1] if len(parts) > 2 else ""
    action = None
    if len(parts) == 3 and parts[2]:
        action = {("users", "DELETE"): "deleteUser", ("users", "POST"): "setUserValues",
                  ("items", "POST"): "setItemValues"}.get((entity, method))
    elif len(parts) == 5 and entity == "users" and parts[3] == "merge" and method == "PUT":
        action = "mergeUsers"
    elif len(parts) == 4 and parts[2] == "properties" and method == "PUT":
        action = {"users": "addUserProperty", "items": "addItemProperty"}.get(entity)
    return _BY_ACTION[action] if action is not None else None


def users_of(request: dict[str, Any]) -> Users:
    """The users whose order a request takes part in: a merge's target and source, an item's
    values' `/items/{id}`, else the user in the path or in `params.userId`; () for none."""
    path = request["path"]
    if path.startswith("/users/"):
        parts = path.split("/")
        if len(parts) >= 5 and parts[3] == "merge":
            return (parts[2], parts[4])
        if len(parts) == 3:
            return (parts[2],)
        return ()
    if path.startswith("/items/"):
        parts = path.split("/")
        return ("/items/" + parts[2],) if len(parts) == 3 else ()
    user = (request.get("params") or {}).get("userId")
    return (user,) if isinstance(user, str) else ()


def route(request: dict[str, Any], sid: int = -1) -> Route:
    """(users, flags, duplicate key, sid) of a request: the sender's whole view of it."""
    path = request["path"]
    method = request["method"]
    params = request.get("params") or {}
    if method == "POST" and path in INTERACTIONS:
        user = params.get("userId")
        users: Users = (user,) if isinstance(user, str) else ()
        third = params.get("sessionId") if path == "/viewportions/" else params.get("timestamp")
        return users, 0, (path, user, params.get("itemId"), third), sid
    if method == "DELETE" and path in _FIXED_DELETES:
        user = params.get("userId")
        return ((user,) if isinstance(user, str) else ()), LENIENT, None, sid
    kind = kind_of(request)
    return users_of(request), kind.flags if kind is not None else 0, None, sid


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
