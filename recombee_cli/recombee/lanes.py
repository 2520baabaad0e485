"""Lanes: where the sender keeps requests, in order, until they go out in a Batch.

Every request goes to the *home lane* of its first user (a hash of the user id; a merge: of its
target). A lane sends one Batch at a time, built from its queue in input order, so one user's
requests take effect in input order while `concurrency` lanes work at once. A Batch is built by
taking requests from the front of the queue and *skipping* those that may not go yet
(`Lane.build`), so that they hold up their own users and nobody else:

* a request that waits for something (`after`): a merge waits until the latest earlier request of
  its source user (queued in the source's own lane) is answered (that `Item`), and every later
  request of a merge's or a user deletion's users waits until that one is answered and recorded in
  the state (its `Fence`: request_kinds.SOLO says why);
* a request of a user one of whose earlier requests was skipped (order);
* a solo request beside another request of its users in the Batch, or any request beside a solo
  one of its users (a failed neighbour would make the solo be sent again);
* a request with the duplicate key of one already in the Batch (request_kinds says why);
* a request of a user whose earlier request gave up (`poisoned`): it is not sent at all, so that
  nothing overtakes the failed one; the next run sends both, in order.

A lane sends when it holds a Batch's worth that may go. It sends a partly filled Batch only when
it was given nothing new for LINGER_SECONDS (the input is slower than the sending), when a request
that may go has waited HOLD_SECONDS, or at the close: requests released by a merge join the next
full Batch instead of leaving in a small one.
"""

from __future__ import annotations

import threading
from collections import deque
from itertools import islice
from typing import Any, Protocol

from recombee_cli.request_kinds import SOLO, Users

LINGER_SECONDS = 0.5   # a lane given nothing new for this long sends a partly filled Batch...
HOLD_SECONDS = 2.0     # ...as it does when a request that may go has waited this long
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
    """One request waiting in a lane: its ticket and index there, its body, its route, what it
    waits for, when it was queued, whether it has its answer (`done`: the ticket and body are
    then let go, since the sender may remember the item a while as its users' latest), and (a
    solo request) the fence its users' later requests wait at."""

    __slots__ = ("ticket", "index", "body", "users", "flags", "key", "sid", "after", "enqueued", "done", "fence")

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
        self.after: list[Dependency] | None = None
        self.done = False
        self.fence: Fence | None = None

    def passed(self) -> bool:
        """As a dependency (a merge waiting for its source's earlier request): answered."""
        return self.done


class Built:
    """What `Lane.build` chose: the batch, the dropped items, the kept items, how many it looked at."""

    __slots__ = ("batch", "dropped", "kept", "scanned")

    def __init__(self, batch: list[Item], dropped: list[Item], kept: list[Item], scanned: int):
        self.batch = batch
        self.dropped = dropped
        self.kept = kept
        self.scanned = scanned


class Lane:
    """A queue of items in input order and the thread that sends them (the sender starts it)."""

    def __init__(self, number: int):
        self.number = number
        self.queue: deque[Item] = deque()
        self.cond = threading.Condition()
        self.rescan = True       # something changed since the last build found no full Batch
        self.last_put = 0.0      # time.monotonic() of the last put
        self.last_look = 0.0     # ...of the last build that looked for an overdue request
        self.thread: threading.Thread | None = None

    def put(self, items: list[Item], batch_size: int, now: float) -> None:
        """Queue items, in order; wakes the lane when it holds a Batch's worth. Never waits: the
        sender waits for room after every lane got its part of a ticket, since a request here may
        wait for one that another lane has not been given yet."""
        with self.cond:
            self.queue.extend(items)
            self.last_put = now
            if len(self.queue) >= batch_size:
                self.rescan = True
                self.cond.notify_all()

    def wake(self) -> None:
        """Something elsewhere moved (an answer, a record, the close): look again."""
        with self.cond:
            self.rescan = True
            self.cond.notify_all()

    def build(self, size: int, poisoned: frozenset[str]) -> Built:
        """Choose the next Batch from the front of the queue without changing it: the items that
        may go, in order; the items of poisoned users, not to be sent; the items that stay; how
        many were looked at. `take` commits the choice. Most items wait for nothing: they take
        the short way."""
        batch: list[Item] = []
        dropped: list[Item] = []
        kept: list[Item] = []
        keys: set[Any] = set()
        blocked: set[str] = set()
        users_in: set[str] | None = None   # the batch's users, kept once a solo request is met
        solo_users: set[str] = set()
        scanned = 0
        append = batch.append
        for item in islice(self.queue, SCAN_LIMIT * size):
            scanned += 1
            users = item.users
            if blocked or poisoned or solo_users or item.flags or item.after is not None:
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
                    if users_in is None:
                        users_in = {user for earlier in batch for user in earlier.users}
                    go = users_in.isdisjoint(users)
                elif go and solo_users:
                    go = solo_users.isdisjoint(users)
                if not go:
                    blocked.update(users)
                    kept.append(item)
                    continue
            key = item.key
            if key is not None:
                known = len(keys)
                keys.add(key)
                if len(keys) == known:   # one key twice: the second waits for the next Batch
                    blocked.update(users)
                    kept.append(item)
                    continue
            append(item)
            if users_in is not None:
                users_in.update(users)
            if item.flags & SOLO:
                solo_users.update(users)
            if len(batch) >= size:
                break
        return Built(batch, dropped, kept, scanned)

    def take(self, built: Built, *, send: bool = True) -> None:
        """Remove a build's dropped items, and its batch unless not `send`, from the queue (under `cond`)."""
        queue = self.queue
        if send:
            for _ in range(built.scanned):
                queue.popleft()
            queue.extendleft(reversed(built.kept))
        elif built.dropped:   # rare: only the dropped go
            gone = {id(item) for item in built.dropped}
            self.queue = deque(item for item in queue if id(item) not in gone)
