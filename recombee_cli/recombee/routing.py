"""Routing: which users a request touches, and so which sender lane keeps its order; and how a
group holding merges is cut into Batches that keep every user's order (`merge_safe_batches`).

Apart from the sender (and its HTTP client) so that translation workers and dry runs can route
without importing an HTTP stack.
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol, TypeVar

DEFAULT_CONCURRENCY = 4     # sender lanes


class _HasUsers(Protocol):
    @property
    def users(self) -> tuple[str, ...]: ...


_Routed = TypeVar("_Routed", bound=_HasUsers)


def lane_of(user: str, lanes: int) -> int:
    return zlib.crc32(user.encode("utf-8", "replace")) % lanes


def request_users(request: dict[str, Any]) -> tuple[str, ...]:
    """The users whose order a request takes part in. An item's values (POST /items/{id}) are
    ordered per item: their key is `/items/{id}`, which no user ID can equal (IDs have no `/`)."""
    path = request["path"]
    if path.startswith("/users/"):
        parts = path.split("/")          # /users/{t}/merge/{s}  or  /users/{u}
        if len(parts) >= 5 and parts[3] == "merge":
            return (parts[2], parts[4])
        return (parts[2],)
    if path.startswith("/items/"):
        return ("/items/" + path.split("/")[2],)
    user = (request.get("params") or {}).get("userId")
    if user is not None:
        return (user,)
    return ()


def lenient_404(request: dict[str, Any]) -> bool:
    """A delete or merge answered 404 has nothing left to do: the state is the intended one."""
    return request["method"] == "DELETE" or "/merge/" in request["path"]


def merge_safe_batches(items: list[_Routed], size: int) -> list[list[_Routed]]:
    """Cut a group into Batches of at most `size` to be sent one after another, such that a merge
    shares its Batch with no other request of its two users (sender.py's docstring: a merge
    must never be sent again after what followed it). Each request goes into the first Batch
    that keeps its users' order: not before the Batch of any earlier request of its users, and
    after it when either is a merge. Other users' requests fill the Batches around the merges,
    so a group needs about as many Batches as its longest chain of merges, not one per merge."""
    batches: list[list[_Routed]] = []
    last: dict[str, tuple[int, bool]] = {}   # user -> (Batch of its latest request, a merge?)
    for item in items:
        merge = len(item.users) > 1
        at = 0
        for user in item.users:
            seen = last.get(user)
            if seen is not None:
                at = max(at, seen[0] + 1 if merge or seen[1] else seen[0])
        while at < len(batches) and len(batches[at]) >= size:
            at += 1
        if at == len(batches):
            batches.append([])
        batches[at].append(item)
        for user in item.users:
            last[user] = (at, merge)
    return batches
