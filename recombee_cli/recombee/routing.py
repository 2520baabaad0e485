"""Routing: which users a request touches, and so which sender lane keeps its order.

Apart from the sender (and its HTTP client) so that translation workers and dry runs can route
without importing an HTTP stack.
"""

from __future__ import annotations

import zlib

DEFAULT_CONCURRENCY = 4     # sender lanes


def lane_of(user: str, lanes: int) -> int:
    return zlib.crc32(user.encode("utf-8", "replace")) % lanes


def request_users(request: dict) -> tuple[str, ...]:
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


def lenient_404(request: dict) -> bool:
    """A delete or merge answered 404 has nothing left to do: the state is the intended one."""
    return request["method"] == "DELETE" or "/merge/" in request["path"]
