"""Batching: where the sender keeps requests, in input order, until they go out in a Batch.

One queue, and `concurrency` senders that each take the next Batch from it. A user has at most one
Batch in flight: a sender builds its Batch from the front of the queue, *skipping* what may not go
yet, so that a request holds up its own users and nobody else (`SendQueue.build`):

* a request of a user with a request in flight (in another sender's Batch, until its answer is
  final and recorded): so one user's requests take effect in input order, and every later request
  of a merge's or a user deletion's users waits until that one is answered *and recorded in the
  state* (request_kinds.SOLO says why);
* a request of a user one of whose earlier requests was skipped (order): a merge waits for the
  earlier requests of both its users;
* a solo request beside another request of its users in the Batch, or any request beside a solo
  one of its users (a failed neighbour would make the solo be sent again);
* a request with the duplicate key of one already in the Batch (request_kinds says why);
* a request of a user whose earlier request was not delivered (`poisoned`): it is not sent at all,
  so that nothing overtakes the failed one; the next run sends both, in order.

A sender takes a Batch when a Batch's worth may go. It takes a partly filled one only when the
queue was given nothing new for LINGER_SECONDS (the input is slower than the sending), when a
request that may go has waited HOLD_SECONDS, or at the close: requests released by a merge join
the next full Batch instead of leaving in a small one.
"""

from __future__ import annotations

import threading
from collections import deque
from itertools import islice
from typing import Any

from recombee_cli.request_kinds import SOLO, Users

DEFAULT_CONCURRENCY = 8   # senders, each with at most one Batch call in flight
LINGER_SECONDS = 0.5   # a queue given nothing new for this long lets a partly filled Batch go...
HOLD_SECONDS = 2.0     # ...as does a request that may go and has waited this long
SCAN_LIMIT = 8         # a build looks at most this many Batches' worth of the queue


class Item:
    """One request waiting to be sent: its ticket and index there, its body, its route and when it
    was queued."""

    __slots__ = ("ticket", "index", "body", "users", "flags", "key", "sid", "enqueued")

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


class Built:
    """What `SendQueue.build` chose: the batch, its users, the dropped items, the kept items, and
    how many it looked at."""

    __slots__ = ("batch", "users", "dropped", "kept", "scanned")

    def __init__(self, batch: list[Item], users: set[str], dropped: list[Item], kept: list[Item], scanned: int):
        self.batch = batch
        self.users = users
        self.dropped = dropped
        self.kept = kept
        self.scanned = scanned


class SendQueue:
    """The requests waiting, in input order, and the users with a request in flight. Every method
    but `build` is called under `cond`."""

    def __init__(self) -> None:
        self.queue: deque[Item] = deque()
        self.in_flight: set[str] = set()
        self.cond = threading.Condition()
        self.rescan = True       # something changed since the last build found no full Batch
        self.last_put = 0.0      # time.monotonic() of the last put
        self.last_look = 0.0     # ...of the last build that looked for an overdue request

    def build(self, size: int, poisoned: frozenset[str]) -> Built:
        """Choose the next Batch from the front of the queue without changing it (under `cond`):
        the items that may go, in order, and their users; the items of poisoned users, not to be
        sent; the items that stay; how many were looked at. `take` commits the choice. Most items
        wait for nothing: they take the short way."""
        batch: list[Item] = []
        dropped: list[Item] = []
        kept: list[Item] = []
        keys: set[Any] = set()
        users_in: set[str] = set()
        busy = self.in_flight               # users with a request in flight
        blocked: set[str] = set()           # users with an earlier request kept in the queue
        solo_users: set[str] = set()
        scanned = 0
        append = batch.append
        for item in islice(self.queue, SCAN_LIMIT * size):
            scanned += 1
            users = item.users
            if blocked or poisoned or solo_users or item.flags or not busy.isdisjoint(users):
                if poisoned and not poisoned.isdisjoint(users):
                    dropped.append(item)
                    continue
                go = busy.isdisjoint(users) and (not blocked or blocked.isdisjoint(users))
                if go and item.flags & SOLO:
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
            users_in.update(users)
            if item.flags & SOLO:
                solo_users.update(users)
            if len(batch) >= size:
                break
        return Built(batch, users_in, dropped, kept, scanned)

    def take(self, built: Built, *, send: bool = True) -> None:
        """Remove a build's dropped items, and its batch unless not `send` (its users are then in
        flight until `release`), from the queue."""
        queue = self.queue
        if send:
            for _ in range(built.scanned):
                queue.popleft()
            queue.extendleft(reversed(built.kept))
            self.in_flight.update(built.users)
        elif built.dropped:   # rare: only the dropped go
            gone = {id(item) for item in built.dropped}
            self.queue = deque(item for item in queue if id(item) not in gone)

    def release(self, users: set[str]) -> None:
        """A Batch's answers are final and recorded: its users may go again."""
        self.in_flight.difference_update(users)
        self.rescan = True
        self.cond.notify_all()
