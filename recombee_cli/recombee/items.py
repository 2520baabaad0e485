"""What the sender keeps of a request while it waits to be sent: an `Item`, made from the route
the translate stage noted for it (request_kinds.route), and the marks the sender puts on a chunk's
routes before (`mark_gone_sources`). batching.py keeps the Items in input order until they go.
"""

from __future__ import annotations

from itertools import count
from typing import Any

from recombee_cli.request_kinds import REMOVES, SOLO, SOURCE_GONE, Users

try:   # (compiled, Cython's own decorators; not installed, ones that do nothing, as its own do run as Python)
    import cython  # type: ignore[import-not-found, unused-ignore]
except ImportError:
    from recombee_cli import pure as cython  # type: ignore[no-redef, unused-ignore]

_SOLO, _REMOVES, _SOURCE_GONE = SOLO, REMOVES, SOURCE_GONE   # (C ints compiled: items.pxd)
GONE_LIMIT = 100_000   # users remembered as absent from the store (`mark_gone_sources`); then the newest half

_ORDER = count()       # the order items are made in: a sender makes them in input order


@cython.no_gc   # an Item holds its ticket, body and route, none of which holds an Item: no cycle to find
@cython.cclass
class Item:
    """One request waiting to be sent: its ticket and index there, its body, its route and when it
    was queued. `whole`: it takes its users (`wholes`: all, but a merge's source alone when that is
    gone, request_kinds.SOURCE_GONE) whole (no part, solo, or more than one user); else `pair`
    names its user and part (one string, "user\\0part", its hash made once; an id holding a NUL,
    which Recombee refuses, could make two pairs one: more order, never less), or is None for a
    request of no user. `seq`: its place in input order (parked requests come back by it);
    `held`: it was parked at least once."""

    __slots__ = ("ticket", "index", "body", "users", "flags", "key", "sid", "enqueued", "whole", "wholes", "pair",
                 "seq", "held")

    def __init__(self, ticket: Any, index: int, body: bytes, users: Users, flags: int, key: Any, sid: int,
                 enqueued: float, part: str | None = None):
        self._fill(ticket, index, body, users, flags, key, sid, enqueued, part)

    def _fill(self, ticket: Any, index: Any, body: Any, users: Any, flags: Any, key: Any, sid: Any,
              enqueued: Any, part: Any) -> None:   # (Any: Cython would read `int` as a clash with the .pxd)
        self.ticket = ticket
        self.index = index
        self.body = body
        self.users = users
        self.flags = flags
        self.key = key
        self.sid = sid
        self.enqueued = enqueued
        self.whole = part is None or bool(self.flags & _SOLO) or len(users) > 1
        self.wholes = users[1:] if self.flags & _SOURCE_GONE else users
        self.pair: str | None = None if part is None or self.whole or not users else f"{users[0]}\0{part}"
        self.seq = next(_ORDER)
        self.held = False   # parked at least once (SendQueue.held_back counts it once)


def queued_items(ticket: Any, bodies: list, routes: list, codes: list, base: Any,
                 enqueued: float) -> list:   # (bare types: as the .pxd declares it)
    """The Items of a ticket's requests that have no answer yet (code 0), in order: `bodies` and
    `routes` are the ticket's (bytes, request_kinds.Route and int codes), `base` (an int) turns a
    route's place into the file's sid. (Compiled, each Item is made by C calls: the constructor's
    argument parsing cost as much as the rest; and `index` is a C integer, not an int made per
    request.)"""
    items: list[Item] = []
    item: Item
    route: tuple[Any, ...]
    index = -1
    for route in routes:   # (users, flags, duplicate key, place, part)
        index += 1
        if codes[index]:
            continue
        place = route[3]
        item = Item.__new__(Item)
        item._fill(ticket, index, bodies[index], route[0], route[1], route[2], base + place if place >= 0 else -1,
                   enqueued, route[4])
        items.append(item)
    return items


def mark_gone_sources(routes: list, gone: dict) -> None:
    """Mark, in input order, the merges whose source is surely absent from the store when they
    come (request_kinds.SOURCE_GONE): merged away or deleted before (REMOVES), nothing of theirs
    since. Such a merge moves nothing: its target's interactions need not wait for it
    (batching.choose_batch).
    `routes`: all of a chunk's (those an earlier run answered too: their effect is in the store),
    a marked one replaced in the list; `gone`: those users, oldest first, kept across chunks by
    the thread that feeds the queue; beyond GONE_LIMIT the older half is forgotten."""
    route: tuple[Any, ...]
    users: tuple[Any, ...]
    k = -1
    for route in routes:   # (users, flags, duplicate key, place, part)
        k += 1
        flags = route[1]
        if flags & _REMOVES:   # a merge (target, source) or a user deletion (user): rare
            users = route[0]
            source = users[len(users) - 1]
            if len(users) == 2:   # a merge: of a source gone, it moves nothing; it may create its target
                if source in gone:
                    routes[k] = (users, flags | _SOURCE_GONE, route[2], route[3], route[4])
                gone.pop(users[0], None)
            gone.pop(source, None)   # (set again, as the newest)
            gone[source] = None
            if len(gone) > GONE_LIMIT:   # the older half forgotten
                for user in list(gone)[:GONE_LIMIT // 2]:
                    del gone[user]
        elif gone:
            users = route[0]
            for user in users:
                if user in gone:   # (a C lookup compiled; most users were never merged away)
                    del gone[user]


def solo_count(items: list[Item]) -> int:
    """How many of `items` are solo (request_kinds.SOLO; compiled, a typed loop, once a chunk)."""
    solos = 0
    item: Item
    for item in items:
        if item.flags & _SOLO:
            solos += 1
    return solos


def bodies_of(items: list[Item]) -> list[bytes]:
    """The serialised requests of `items`, in order (compiled, each read from its Item's struct,
    not through an attribute lookup: once per request sent)."""
    bodies: list[bytes] = []
    item: Item
    for item in items:
        bodies.append(item.body)
    return bodies
