"""Lanes: where the sender keeps requests, in order, until they go out in a Batch.

Every request goes to the *home lane* of its first user (a hash of the user id; a merge: of its
target). A lane sends one Batch at a time, built from its queue in input order, so one user's
requests take effect in input order while `concurrency` lanes work at once. A Batch is built by
taking requests from the front of the queue and *skipping* those that may not go yet
(`Lane.build`), so that they hold up their own users and nobody else:

* a request that waits for something (`after`): a merge waits until the lane holding earlier
  requests of its source user has answered them (a `Watermark`), and every later request of a
  merge's or a user deletion's users waits until that one is answered and recorded in the state
  (its `Fence`: request_kinds.SOLO says why);
* a request of a user one of whose earlier requests was skipped (order);
* a solo request beside another request of its users in the Batch, or any request beside a solo
  one of its users (a failed neighbour would make the solo be sent again);
* a request with the duplicate key of one already in the Batch (request_kinds says why);
* a request of a user whose earlier request gave up (`poisoned`): it is not sent at all, so that
  nothing overtakes the failed one; the next run sends both, in order.

A lane sends when it holds a Batch's worth that may go, or when its oldest such request has
waited LINGER_SECONDS, or at the close.
"""

from __future__ import annotations

import threading
from collections import deque
from itertools import islice
from typing import Any, Protocol

from recombee_cli.request_kinds import SOLO, Users

LINGER_SECONDS = 0.5   # a partly filled Batch waits this long for more requests
SCAN_LIMIT = 4         # a build looks at most this many Batches' worth of the queue


class Dependency(Protocol):
    def passed(self) -> bool: ...


class Fence:
    """What the later requests of a merge's or user deletion's users wait for: that request
    answered and recorded, or given up. Small on purpose: the sender remembers it per user after
    the request and its ticket are gone."""

    __slots__ = ("settled",)

    def __init__(self) -> None:
        self.settled = False

    def passed(self) -> bool:
        return self.settled


class Item:
    """One request waiting in a lane: its ticket and index there, its body, its route, its
    place in the lane (`pos`), what it waits for, when it was queued, and (a solo request) the
    fence its users' later requests wait at."""

    __slots__ = ("ticket", "index", "body", "users", "flags", "key", "sid", "pos", "after", "enqueued", "fence")

    def __init__(self, ticket: Any, index: int, body: bytes, users: Users, flags: int, key: Any, sid: int,
                 enqueued: float):
        self.ticket = ticket
        self.index = index
        self.body = body
        self.users = users
        self.flags = flags
        self.key = key
        self.sid = sid
        self.enqueued = enqueued
        self.pos = 0
        self.after: list[Dependency] | None = None
        self.fence: Fence | None = None


class Watermark:
    """A dependency on a lane: every request it was given up to `pos` is answered."""

    __slots__ = ("lane", "pos")

    def __init__(self, lane: Lane, pos: int):
        self.lane = lane
        self.pos = pos

    def passed(self) -> bool:
        return self.lane.floor >= self.pos


class Lane:
    """A queue of items in `pos` order and the thread that sends them (the sender starts it).

    `assigned`: positions handed out by the routing (the main thread); `put_count`: positions
    queued; `floor`: every item up to it is answered (written under `cond` by the lane's thread,
    read by anyone: a stale value only makes a dependency wait a little longer)."""

    def __init__(self, number: int):
        self.number = number
        self.queue: deque[Item] = deque()
        self.assigned = 0
        self.put_count = 0
        self.floor = 0
        self.cond = threading.Condition()
        self.rescan = True       # something changed since the last build found nothing to send
        self.thread: threading.Thread | None = None

    def assign(self) -> int:
        self.assigned += 1
        return self.assigned

    def put(self, items: list[Item], batch_size: int) -> None:
        """Queue items (their positions assigned, in order); wakes the lane when it holds a Batch's
        worth. Never waits: the sender waits for room after every lane got its part of a ticket,
        since a request here may wait for one that another lane has not been given yet."""
        with self.cond:
            self.queue.extend(items)
            self.put_count = items[-1].pos
            if len(self.queue) >= batch_size:
                self.rescan = True
                self.cond.notify_all()

    def wake(self) -> None:
        """Something elsewhere moved (an answer, a record, the close): look again."""
        with self.cond:
            self.rescan = True
            self.cond.notify_all()

    def answered(self) -> None:
        """The Batch in flight (or the items dropped) has its answers: move the floor."""
        with self.cond:
            self.floor = self.queue[0].pos - 1 if self.queue else self.put_count

    def build(self, size: int, poisoned: frozenset[str]) -> tuple[list[Item], list[Item], int]:
        """Choose the next Batch from the front of the queue without changing it: (the items that
        may go, in order; the items of poisoned users, not to be sent; how many were looked at).
        `take` commits the choice."""
        batch: list[Item] = []
        dropped: list[Item] = []
        users_in: set[str] = set()
        solo_users: set[str] = set()
        keys: set[Any] = set()
        blocked: set[str] = set()
        scanned = 0
        for item in islice(self.queue, SCAN_LIMIT * size):
            scanned += 1
            users = item.users
            if poisoned and not poisoned.isdisjoint(users):
                dropped.append(item)
                continue
            go = not blocked or blocked.isdisjoint(users)
            if go and item.after is not None:
                if all(dependency.passed() for dependency in item.after):
                    item.after = None
                else:
                    go = False
            if go and item.flags & SOLO:
                go = users_in.isdisjoint(users)
            elif go and solo_users:
                go = solo_users.isdisjoint(users)
            key = item.key
            if go and key is not None:
                go = key not in keys
                keys.add(key)
            if not go:
                blocked.update(users)
                continue
            batch.append(item)
            users_in.update(users)
            if item.flags & SOLO:
                solo_users.update(users)
            if len(batch) >= size:
                break
        return batch, dropped, scanned

    def take(self, batch: list[Item], dropped: list[Item], scanned: int) -> None:
        """Remove a build's batch and dropped items from the queue (under `cond`)."""
        queue = self.queue
        if len(batch) == scanned:   # the common case: the front of the queue
            for _ in range(scanned):
                queue.popleft()
            return
        gone = {id(item) for item in batch}
        gone.update(id(item) for item in dropped)
        kept = [item for item in (queue.popleft() for _ in range(scanned)) if id(item) not in gone]
        queue.extendleft(reversed(kept))
