"""Batching: where the sender keeps requests, in input order, until they go out in a Batch.

One queue, and `concurrency` senders that each take the next Batch from it. Requests that do not
commute never have more than one Batch in flight between them: a sender builds its Batch from the
front of the queue, *skipping* what may not go yet, so that a request holds up only what must
follow it (`SendQueue.build`). Each request touches a *part* of its users (request_kinds: an
interaction touches its user's history with one item) or takes them *whole* (a merge, a user
deletion, values). A request waits:

* behind a Batch in flight (until its answers are final and recorded) holding a request of the
  same part, or a request that takes one of its users whole; a request that takes its users whole
  waits behind any Batch in flight holding a request of them. So the requests of one user for one
  item take effect in input order, and every later request of a merge's or a user deletion's users
  waits until that one is answered *and recorded in the state* (request_kinds.SOLO says why);
  requests of one user for other items commute, and go in other Batches meanwhile;
* behind an earlier request it does not commute with that waits in the queue (input order): so a
  merge waits for the earlier requests of both its users;
* beside a solo request of its users in the Batch, or, solo, beside any request of its users (a
  failed neighbour would make the solo be sent again);
* beside a request with its duplicate key in the Batch (request_kinds says why);
* for ever, when a request of its user was not delivered (`poisoned`): it is not sent at all, so
  that nothing overtakes the failed one; the next run sends both, in order. Such a request is not
  delivered either: a merge held back so makes its other user poisoned too (the target's later
  requests would otherwise overtake the merge, and a deletion of the target would come before the
  merge that the next run sends).

A request that waits for a Batch in flight is *parked* beside what it waits for, out of the
queue that every build reads, and comes back (in input order) when that is answered: an
interaction beside its pair (user and item) or its user's whole (a merge of theirs in flight),
each held by one Batch; a merge or user deletion beside a user, when no Batch in flight holds that
user any more (`_unpark`). What waits for a solo request in the Batch being built is parked
beside that Batch's users likewise (it is in flight once it goes): far from Recombee thousands
wait behind merges in flight, and builds no longer look at them again and again.
Parking never reorders: a request is parked only when no earlier request of its users stays in the
queue, and what is parked holds back the later requests of its users exactly as a waiting request
does. Only a build whose Batch goes parks (its Batch then leaves the queue too).

A sender takes a Batch when a Batch's worth may go. It takes a partly filled one only when the
queue was given nothing new for LINGER_SECONDS (the input is slower than the sending), when a
request that may go has waited HOLD_SECONDS, or at the close: requests released by a merge join
the next full Batch instead of leaving in a small one.
"""

from __future__ import annotations

import threading
from collections import deque
from itertools import chain, islice
from operator import attrgetter
from typing import Any

from recombee_cli.recombee.items import Item
from recombee_cli.request_kinds import KEY_OF_PART, SOLO

DEFAULT_CONCURRENCY = 16  # senders, each with at most one Batch call in flight (busy as the latency needs)
MAX_CONCURRENCY = 64      # ...and the most there may be (--concurrency)
GROWN_CONCURRENCY = 32    # the most the default grows to (lanes.py): about 1 MB a lane in flight
LINGER_SECONDS = 0.5   # a queue given nothing new for this long lets a partly filled Batch go...
HOLD_SECONDS = 2.0     # ...as does a request that may go and has waited this long
SCAN_LIMIT = 8         # a build looks at most this many Batches' worth of the queue (unless told)
WHOLE = "\0"           # after a user's id: where what waits for a Batch taking that user whole is parked
_SOLO, _KEY_OF_PART = SOLO, KEY_OF_PART   # (C ints compiled: batching.pxd)
_BY_ORDER = attrgetter("seq")


class Built:
    """What `SendQueue.build` chose: the batch, its users, the users it takes whole, the parts it
    touches, the dropped items, the kept items (of the queue and of the ready list), the items to
    park (each beside what it waits for: SendQueue.parked), and how many it looked at."""

    __slots__ = ("batch", "users", "wholes", "parts", "dropped", "kept", "scanned", "skipped", "blocked", "poisoned",
                 "kept_ready", "ready_scanned", "parking")

    def __init__(self, batch: list[Item], users: set[str], wholes: set[str], parts: set[str],
                 dropped: list[Item], kept: list[Item], scanned: int):
        self.batch = batch
        self.users = users
        self.wholes = wholes
        self.parts = parts
        self.dropped = dropped
        self.kept = kept                          # kept items of the queue (they stay at its front)
        self.scanned = scanned                    # items of the queue looked at (or skipped)
        self.skipped = 0                          # items at the front known to wait, not looked at
        self.blocked: tuple[Any, ...] | None = None   # what the kept items hold back; None: not to be kept
        self.poisoned: frozenset[str] = frozenset()
        self.kept_ready: list[Item] = []          # the ready items that stay ready
        self.ready_scanned = 0                    # ready items looked at (all of them)
        self.parking: list[tuple[str, Item]] = []   # (the user it waits for, the item)

    def clear(self) -> None:
        """Nothing of it goes (only its dropped items are answered)."""
        self.batch, self.users, self.wholes, self.parts = [], set(), set(), set()


class SendQueue:
    """The requests waiting, in input order, and what the Batches in flight hold. Every method but
    `build`, `put` (which takes the lock itself, or hands in without it) and `waiting` (read
    unlocked too, a moment old at worst) is called under `cond`'s lock. Senders wait on `cond` and
    are woken one at a time (one sender builds the next Batch; sixteen woken to find it gone cost
    each call a few context switches); `submit` looks again every few milliseconds while the queue
    is full (never in Condition.wait: see RecombeeSender.submit).

    A request waits in one of three places: `queue` (new ones, and those a build kept), `parked`
    (beside what in flight it waits for) or `ready` (parked ones whose wait may be over, in input
    order; a build looks at them first); a chunk may also wait in `inbox` for a moment (`put`).
    For each user, whatever is in `ready` or `parked` comes before anything of that user in
    `queue` (a request is parked only when no earlier one of its users is kept), so looking at
    `ready` first keeps input order."""

    def __init__(self) -> None:
        self.queue: deque[Item] = deque()
        # Items handed in while a sender held the lock (`put`): whoever takes the lock next moves
        # them to the end of `queue`, in order (`take_in`), before it looks at the queue.
        self.inbox: deque[Item] = deque()
        self.ready: list[Item] = []
        # what in flight items wait for -> those items: a user, a user's whole (user + WHOLE), a pair
        self.parked: dict[str, list[Item]] = {}
        self.parked_count = 0
        self.held_back = 0       # requests parked at least once: what waiting for answers cost (--report)
        # What the parked items hold back (as kept items do in a build): per user, per user taken
        # whole, per part; counts, as a user's items may be parked beside several users.
        self.parked_some: dict[str, int] = {}
        self.parked_whole: dict[str, int] = {}
        self.parked_parts: dict[str, int] = {}
        # user or pair -> where a request of theirs is parked (a key of `parked`): where their
        # later requests wait too (absent when unknown: those are kept in the queue instead)
        self.parked_at: dict[str, str] = {}
        # The Batches in flight (at most one a sender): a user has a request in flight when one of
        # their `users` holds them. Asked only for requests that take their users whole (merges,
        # deletions, values: a few in a hundred), where counting every user of every Batch in and
        # out of a dictionary cost each request two lookups and two stores.
        self.flying: list[Built] = []
        self.whole_in_flight: set[str] = set()            # users a Batch in flight takes whole
        self.parts_in_flight: set[str] = set()            # the pairs (user, part) a Batch in flight touches
        lock = threading.Lock()
        self.cond = threading.Condition(lock)
        self.rescan = True       # something changed since the last build found no full Batch
        self.last_put = 0.0      # time.monotonic() of the last put
        self.last_look = 0.0     # ...of the last build that looked for an overdue request
        # The items a Batch left at the front of the queue all wait for an answer (a Batch in flight
        # holds what they wait on, or an earlier one of them does): until the next `release`, the
        # next build need not look at them again, only start from what they hold back.
        self.releases = 0
        self.held = 0                                 # how many at the front wait so
        self.held_at = -1                             # `releases` when they were found waiting
        self.held_blocked: tuple[Any, ...] = ()       # (users, users whole, parts, users kept) they hold back
        self.held_poisoned: frozenset[str] = frozenset()

    def waiting(self) -> int:
        """How many requests wait to be sent (in the queue, ready, parked or handed in)."""
        return len(self.queue) + len(self.ready) + self.parked_count + len(self.inbox)

    def put(self, items: list[Item], now: float, size: int) -> None:
        """A chunk's items at the end of the queue, from the one thread that feeds it. While less
        than two Batches' worth may go, it does not wait for the lock: while a sender holds it
        (building a Batch, or letting one go, which takes milliseconds far from Recombee, with
        thousands parked), the items wait in `inbox` for the next holder. At 150 ms a call the
        feeding thread waited 1.25 s of a 6.3 s run for that lock, and the translating workers with
        it. With two Batches' worth or more ready it waits its turn: a feeder that never waited
        filled the queue (the client-path benchmark then kept 20,000 requests waiting, not 2,000,
        for 12 % more CPU a request; from one Batch's worth, 1.5 % less than from two, but 1 M
        events took 2-3 % longer at 0-150 ms a call). Wakes a sender when a Batch's worth may go."""
        cond = self.cond
        if cond.acquire(self.available() >= 2 * size):   # (a count read unlocked: a moment old at worst)
            try:
                self.take_in()
                self.queue.extend(items)
                self.last_put = now
                if self.available() >= size:
                    self.rescan = True
                    cond.notify()
            finally:
                cond.release()
        else:   # (deque.extend is one step for the other threads: a holder moves all or none of it)
            self.inbox.extend(items)
            self.last_put = now

    def take_in(self) -> None:
        """Move what `put` handed in to the end of the queue, in order (under `cond`). One item at
        a time: the feeding thread may add to the inbox meanwhile, and what it adds stays there."""
        inbox = self.inbox
        if inbox:
            append = self.queue.append
            popleft = inbox.popleft
            while inbox:
                append(popleft())
            self.rescan = True

    def available(self) -> int:
        """How many requests a build looks at (the parked ones wait for an answer)."""
        return len(self.queue) + len(self.ready)

    def oldest(self) -> Item | None:
        """The oldest request a build looks at, or None."""
        if self.ready:
            return self.ready[0]
        return self.queue[0] if self.queue else None

    def build(self, size: int, poisoned: frozenset[str], limit: int = 0) -> Built:
        """Choose the next Batch without changing anything (under `cond`): from the ready items,
        then the front of the queue, the items that may go, in order, and what they hold; the items
        of poisoned users, not to be sent; the items that stay; the items to park; how many were
        looked at (at most `limit`, else SCAN_LIMIT Batches' worth, of the queue). `take` commits
        the choice."""
        return choose_batch(self, size, poisoned, limit)

    def take(self, built: Built, *, send: bool = True) -> None:
        """Remove a build's dropped items, and its batch unless not `send` (what it holds is then
        in flight until `release`), from where they wait; park what it parks."""
        queue = self.queue
        if send:
            # The ready items looked at: the kept ones stay ready, before those not looked at.
            self.ready = built.kept_ready + self.ready[built.ready_scanned:]
            skipped = built.skipped
            queue.rotate(-skipped)   # (the items known to wait stay where they are)
            popleft = queue.popleft
            for _ in range(built.scanned - skipped):
                popleft()
            queue.extendleft(reversed(built.kept))
            queue.rotate(skipped)
            if built.blocked is not None:   # all these wait for an answer now: their Batch is in flight
                self.held, self.held_at = skipped + len(built.kept), self.releases
                self.held_blocked, self.held_poisoned = built.blocked, built.poisoned
            else:
                self.held = 0
            self.flying.append(built)
            if built.wholes:
                self.whole_in_flight.update(built.wholes)
            self.parts_in_flight.update(built.parts)
            if built.parking:
                self._park(built.parking)
        elif built.dropped:   # rare: only the dropped go
            gone = {id(item) for item in built.dropped}
            self.queue = deque(item for item in queue if id(item) not in gone)
            self.ready = [item for item in self.ready if id(item) not in gone]
            self.held = 0

    def _park(self, parking: list[tuple[str, Item]]) -> None:
        # (typed locals: compiled, the dictionaries' C functions, not their methods)
        parked: dict[str, list[Item]] = self.parked
        some: dict[str, int] = self.parked_some
        whole: dict[str, int] = self.parked_whole
        parts: dict[str, int] = self.parked_parts
        at: dict[str, str] = self.parked_at
        item: Item
        for where, item in parking:
            if not item.held:
                item.held = True
                self.held_back += 1
            beside = parked.get(where)
            if beside is None:
                parked[where] = [item]
            else:
                beside.append(item)
            for one in item.users:
                at[one] = where
                some[one] = some.get(one, 0) + 1
            if item.whole:
                for one in item.wholes:
                    whole[one] = whole.get(one, 0) + 1
            if item.pair is not None:
                at[item.pair] = where
                parts[item.pair] = parts.get(item.pair, 0) + 1
        self.parked_count += len(parking)

    def _unpark(self, built: Built) -> None:
        """The items parked beside what an answered Batch held are ready: beside its pairs, the
        whole of the users it took whole, and its users that no other Batch in flight holds (what
        waits beside a user waits for every Batch of theirs: a merge, and what follows it; at 150 ms
        a call, a merge's target had Batches of other items in flight, and each answer brought the
        merge back only to be parked again, with everything behind it), or of whom an earlier
        request comes back now (it must not wait behind a later one parked). They are looked at
        again, in input order."""
        parked: dict[str, list[Item]] = self.parked
        some: dict[str, int] = self.parked_some
        whole: dict[str, int] = self.parked_whole
        parts: dict[str, int] = self.parked_parts
        at: dict[str, str] = self.parked_at
        ready: list[Item] = self.ready
        item: Item
        before = len(ready)
        flying: list[Built] = self.flying
        wholes = [user + WHOLE for user in built.wholes] if built.wholes else []
        back: set[str] = set()   # the users of what came back beside a pair or a whole
        for group in range(3):
            keys: Any = built.parts if group == 0 else wholes if group == 1 else built.users
            if len(parked) < len(keys):   # (a Batch's thousand users, a few parked beside: those)
                keys = [key for key in parked if key in keys]
            for key in keys:
                if key not in parked:   # (most: a C call, not a method's)
                    continue
                if group == 2 and key not in back and _in_flight(flying, key):
                    continue
                items = parked.pop(key)
                ready += items
                for item in items:
                    if group != 2:
                        back.update(item.users)
                    for one in item.users:
                        if at.get(one) == key:
                            del at[one]
                        _decrement(some, one)
                    if item.whole:
                        for one in item.wholes:
                            _decrement(whole, one)
                    if item.pair is not None:
                        if at.get(item.pair) == key:
                            del at[item.pair]
                        _decrement(parts, item.pair)
            if not parked:
                break
        if len(ready) != before:
            self.parked_count -= len(ready) - before
            ready.sort(key=_BY_ORDER)

    def release(self, built: Built) -> None:
        """A Batch's answers are final and recorded: what it held may go again, and what was
        parked beside its users is looked at again."""
        flying: list[Built] = self.flying
        for k in range(len(flying)):   # (by identity: a Built that was not sent is not there)
            if flying[k] is built:
                del flying[k]
                break
        if built.wholes:
            self.whole_in_flight.difference_update(built.wholes)
        self.parts_in_flight.difference_update(built.parts)
        if self.parked:
            self._unpark(built)
        self.releases += 1
        self.rescan = True
        self.cond.notify()


def choose_batch(queue: SendQueue, size: Any, poisoned: frozenset, limit: Any = 0) -> Built:   # (bare: the .pxd's)
    """SendQueue.build's choice: a function, so that the compiled build types its locals (batching.pxd),
    which a method of SendQueue, a Python class, cannot."""
    batch: list[Item] = []
    dropped: list[Item] = []
    kept: list[Item] = []
    kept_ready: list[Item] = []
    parking: list[tuple[str, Item]] = []
    keys: set[Any] = set()
    pair_keys: dict[str, Any] = {}   # pair -> the duplicate key (or keys) of its requests in the Batch
    users_in: set[str] = set()
    wholes_in: set[str] = set()
    parts_in: set[str] = set()
    flying: list[Built] = queue.flying
    busy_whole: set[str] = queue.whole_in_flight
    busy_parts: set[str] = queue.parts_in_flight
    parked_some: dict[str, int] = queue.parked_some
    parked_whole: dict[str, int] = queue.parked_whole
    parked_parts: dict[str, int] = queue.parked_parts
    parked_at: dict[str, str] = queue.parked_at
    parked_here: dict[str, str] = {}        # user or pair -> where one of theirs is parked by this build
    blocked_some: set[str]                  # users with an earlier request kept or parked
    blocked_whole: set[str]                 # ...kept or parked, that takes them whole
    blocked_parts: set[str]                 # ...kept or parked, of that part
    kept_some: set[str]                     # users with an earlier request kept (not parked)
    skipped = 0
    if queue.held and queue.held_at == queue.releases and queue.held_poisoned is poisoned:
        skipped = queue.held   # nothing answered since they were found waiting: they still wait
        held = queue.held_blocked   # (no generator: the compiled function has no closure)
        blocked_some, blocked_whole, blocked_parts, kept_some = set(held[0]), set(held[1]), set(held[2]), set(held[3])
    else:
        blocked_some, blocked_whole, blocked_parts, kept_some = set(), set(), set(), set()
    reusable = True                                 # every item kept waits for an answer
    solo_users: set[str] = set()                    # users of a solo request in this Batch
    ready = queue.ready
    from_ready = len(ready)
    position = 0
    # Looked at lazily: most builds stop at a full Batch, long before the limit.
    looked = islice(queue.queue, skipped, max(skipped, limit or SCAN_LIMIT * size))
    item: Item   # (typed for the compiled build: its fields are read as a struct's)
    for item in (chain(ready, looked) if ready else looked):
        position += 1   # (the ready items first, then the queue's)
        users = item.users
        if poisoned and not poisoned.isdisjoint(users):
            dropped.append(item)
            if not poisoned.issuperset(users):   # a merge: what comes later for its other user
                poisoned = poisoned.union(users)   # must not overtake it either
            continue
        whole = item.whole
        pair = item.pair
        go = True
        wait_for: str | None = None     # what in flight it waits for, to park it beside (`parked`'s keys)
        waits: str | None = None        # a user or pair of it with an earlier request parked or kept
        if whole:
            wholes = item.wholes
            for user in users:
                if wholes is not users and user not in wholes:
                    # its target, its source gone: waits as their interactions do, for wholes only
                    if (busy_whole and user in busy_whole) or (solo_users and user in solo_users):
                        go = False
                        if wait_for is None:
                            wait_for = user + WHOLE
                    elif (blocked_whole and user in blocked_whole) or (parked_whole and user in parked_whole):
                        go = False
                        waits = user
                elif _in_flight(flying, user):
                    go = False
                    if wait_for is None:
                        wait_for = user
                elif user in blocked_some or (parked_some and user in parked_some):
                    go = False
                    waits = user
                elif user in solo_users:   # (this Batch, in flight when it goes, holds them)
                    go = False
                    if wait_for is None:
                        wait_for = user
            if go and item.flags & _SOLO and not users_in.isdisjoint(wholes):
                go = False
                for user in wholes:   # (the first of its users the Batch holds)
                    if user in users_in:
                        wait_for = user
                        break
        elif pair is not None:   # (the sets are tested only when they hold anything: most are empty)
            user = users[0]
            if busy_whole and user in busy_whole:
                go = False
                wait_for = user + WHOLE
            elif pair in busy_parts:
                go = False
                wait_for = pair
            elif (blocked_whole and user in blocked_whole) or (parked_whole and user in parked_whole):
                go = False
                waits = user
            elif (blocked_parts and pair in blocked_parts) or (parked_parts and pair in parked_parts):
                go = False
                waits = pair
            elif solo_users and user in solo_users:   # (this Batch takes them whole, in flight when it goes)
                go = False
                wait_for = user + WHOLE
        if go:
            key = item.key
            if key is None:
                pass
            elif pair is not None and item.flags & _KEY_OF_PART:
                # Only a request of its pair can have its key: looked up by the pair, whose hash
                # is kept, instead of hashing the key's tuple (a timestamp's float, each time).
                first = pair_keys.setdefault(pair, key)
                if first is not key:   # the Batch holds a request of this pair already
                    if type(first) is set:
                        go = key not in first
                        if go:
                            first.add(key)
                    else:
                        go = first != key
                        if go:
                            pair_keys[pair] = {first, key}
            else:
                known = len(keys)
                keys.add(key)
                go = len(keys) != known   # one key twice: the second waits for the next Batch
        if not go:
            if whole:
                blocked_some.update(users)
                blocked_whole.update(item.wholes)
            elif pair is not None:
                blocked_some.add(users[0])
                blocked_parts.add(pair)
            else:   # (a request of no user kept for its key: nothing in flight holds it back)
                reusable = False
            # Parked beside a user in flight it waits for, or beside an earlier parked request
            # of its users; only when nothing earlier of its users stays in the queue.
            if (wait_for is not None or waits is not None) and kept_some.isdisjoint(users):
                if wait_for is None and waits is not None:
                    wait_for = parked_here.get(waits)
                    if wait_for is None:
                        wait_for = parked_at.get(waits)
                if wait_for is not None:
                    parking.append((wait_for, item))
                    for user in users:
                        parked_here[user] = wait_for
                    if pair is not None:
                        parked_here[pair] = wait_for
                    continue
            kept_some.update(users)
            if position > from_ready:
                kept.append(item)
            else:
                kept_ready.append(item)
            continue
        batch.append(item)
        if whole:
            users_in.update(users)
            wholes_in.update(item.wholes)
            if item.flags & _SOLO:
                solo_users.update(item.wholes)
        elif pair is not None:
            users_in.add(users[0])
            parts_in.add(pair)
        if len(batch) >= size:
            break
    scanned = skipped + max(0, position - from_ready)   # (counted once: an int made per item cost as much)
    built = Built(batch, users_in, wholes_in, parts_in, dropped, kept, scanned)
    built.skipped = skipped
    built.blocked = (blocked_some, blocked_whole, blocked_parts, kept_some) if reusable else None
    built.poisoned = poisoned
    built.kept_ready = kept_ready
    built.ready_scanned = min(position, from_ready)
    built.parking = parking
    return built


def _in_flight(flying: list, user: Any) -> bool:
    """Whether a Batch in flight holds a request of `user`."""
    one: Built
    for one in flying:
        if user in one.users:
            return True
    return False


def _decrement(counts: dict[Any, int], key: Any) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]
