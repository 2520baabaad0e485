"""The Recombee sender: the sink that delivers requests in concurrent, ordered Batch calls.

Order: every request is routed to a *lane* by its user (hash of userId). A lane sends one Batch at
a time, in input order, so one user's requests take effect in input order while `concurrency`
lanes work in parallel. A merge touches two users: it is *held*, with every later request of
either user, in an ordered *group*. When the group holds a Batch's worth, or a few Batches per lane
have gone past it, or it has waited HOLD_SECONDS, or at the end, it is closed: it notes how far
each lane had been given requests, and the *barrier* thread sends it, in input order per user
(see Retries), once every lane has answered that far — everything that came before it.
Meanwhile reading and the lanes go on with everyone else (only the held users wait), so a merge
costs no pause; then those users flow through the lanes again. Groups close every few Batches
per lane at most, so Batches stay full, and a crash re-sends at most about that much.

Retries: a whole call that fails (no answer, 429, 5xx) is sent again, re-signed, with exponential
backoff and jitter; a call with no complete answer by its deadline (client.py: 10 s + 10 ms per
request, in all) got no answer. Recombee executes a Batch request by request, not atomically, so
when one request fails with 429/5xx inside an answered Batch, the same user's later requests in
that Batch have already taken effect. The failed request is sent again *together with every later
request of the same users in that Batch*, in their order: the user's history is applied again from
the failed request on, and ends as if in input order (an add retried after its delete would
otherwise revive it). That holds for adds and deletes, whose last word per interaction wins;
re-sent adds answer 409 and re-sent deletes 404, both `duplicate` (already applied). It does not
hold for a merge: sent again, it would also move what its source user was given after it (an old
anonymous id used again). So a merge never shares a Batch with another request of its two users:
the barrier cuts its groups into Batches in which a merge's users appear in the merge alone
(`merge_safe_batches`, which also packs other users' requests around it, in order per user).

Give-ups are recorded with the truth: the status Recombee last answered (e.g. 503, "gave up after 8
attempts: Service temporarily unavailable"), or `NO_STATUS` (1) with the transport's reason when
there was no answer ("gave up after 8 attempts: cannot connect to https://h: connection refused"),
or when the answer was not a Batch answer (the call's requests fail with what was wrong; three such
calls, or whole-Batch refusals, in a row abort the run).

Circuit breaker (breaker.py): when Recombee cannot be reached at all, the run stops with
`UnreachableError` (exit 3) carrying the true reason, instead of retrying every Batch for minutes.

Memory stays flat: each lane holds at most `2 * batch_size` requests, and at most
MAX_CLOSED_GROUPS groups of about a Batch each wait for the barrier; `submit` waits when either
is full.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from recombee_cli.errors import AuthenticationError, ServiceError
from recombee_cli.recombee.breaker import Breaker, Circuit
from recombee_cli.recombee.client import CallFailed, RecombeeClient, Retryable, RetryPolicy, TransportFailure
from recombee_cli.recombee.routing import DEFAULT_CONCURRENCY, lane_of, lenient_404, merge_safe_batches, request_users
from recombee_cli.recombee.service import MAX_BATCH
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.sinks.protocol import Ticket

DEFAULT_BATCH_SIZE = 1000
LINGER_SECONDS = 0.5        # a partly filled batch waits this long for more requests
HOLD_SECONDS = 2.0          # merges wait at most this long for a barrier...
BATCHES_PER_BARRIER = 4     # ...or until this many Batches per lane have gone past them
MAX_CLOSED_GROUPS = 2       # closed groups waiting for the barrier thread before submit waits
_FAILED_BATCHES_TO_ABORT = 3
# The code recorded for a request whose call got no usable answer (no answer at all, or one that
# was not a Batch answer): `failed`, its message the true reason. Not an HTTP status (those start
# at 100), not 0 (unanswered), not negative (a file sink's verdicts, sinks.REFUSED...).
NO_STATUS = 1


@dataclass
class BatchReport:
    """What one Batch took, for an observer (`on_batch`; `--verbose` prints it): its requests, the
    HTTP status of its last call (None: no answer), the calls made, and the seconds they took."""

    size: int
    attempts: int = 0
    status: int | None = None
    seconds: float = 0.0
    reason: str | None = None       # why the last call failed (no answer, a refusal), else None
    retried: int = 0                # requests sent again after a 429/5xx inside an answered Batch


def classify(lenient: bool, code: int) -> int:
    """Map an answer to the code we record: 404 on a delete or merge means already applied."""
    return 409 if code == 404 and lenient else code


def _message(result: dict[str, Any]) -> str:
    """Recombee's message in a `{code, json}` result."""
    body = result.get("json")
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)


@dataclass(slots=True)
class _Item:
    ticket: Ticket
    index: int
    body: bytes                        # the request, serialised
    users: tuple[str, ...]
    lenient: bool                      # 404 means already done (deletes, merges)
    enqueued: float                    # time.monotonic() when submitted


class _Lane:
    def __init__(self, sender: RecombeeSender, number: int):
        self.sender = sender
        self.number = number
        self.queue: deque[_Item] = deque()
        # Counts since the start, in this lane's order: requests given to it, taken into a Batch,
        # and answered (their Batch finished). A closed group waits until `done` reaches the
        # `given` it noted; `flush_to` makes the lane send a short Batch to get there sooner.
        self.given = 0
        self.taken = 0
        self.done = 0
        self.flush_to = 0
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._work, name=f"recombee-lane-{number}", daemon=True)

    def put(self, items: list[_Item]) -> None:
        """Queue a ticket's requests for this lane, waiting while the lane is full. The lane is
        woken only when it has a Batch's worth (or is full): waking it per request cost more
        than the sending (it finds the batch short and waits again); a partial batch leaves
        after LINGER_SECONDS, or at a barrier or the close, which wake it themselves."""
        sender = self.sender
        queue = self.queue
        with self.cond:
            start = 0
            while start < len(items):
                room = sender.lane_capacity - len(queue)
                if room <= 0 and not sender.stopping:
                    if not self.thread.is_alive():   # cannot happen; if it did, waiting would hang
                        raise RuntimeError(f"sender lane {self.number} stopped unexpectedly")
                    self.cond.notify_all()
                    self.cond.wait(0.1)
                    continue
                end = len(items) if sender.stopping else min(len(items), start + room)
                queue.extend(items[start:end])
                self.given += end - start
                start = end
            if len(queue) >= sender.batch_size:
                self.cond.notify_all()

    def need_up_to(self, given: int) -> None:
        """A closed group waits for this lane to answer its first `given` requests."""
        with self.cond:
            if given > self.flush_to:
                self.flush_to = given
                if self.taken < given:
                    self.cond.notify_all()

    def _take(self) -> list[_Item] | None:
        """Wait for a batch worth sending; None when the sender is closing and the lane is empty."""
        sender = self.sender
        with self.cond:
            while True:
                if sender.stopping:
                    return None
                if self.queue:
                    full = len(self.queue) >= sender.batch_size
                    lingered = time.monotonic() - self.queue[0].enqueued >= LINGER_SECONDS
                    if full or lingered or self.taken < self.flush_to or sender.closing:
                        n = min(len(self.queue), sender.batch_size)
                        batch = [self.queue.popleft() for _ in range(n)]
                        self.taken += n
                        self.cond.notify_all()
                        return batch
                    self.cond.wait(LINGER_SECONDS / 5)
                elif sender.closing:
                    return None
                else:
                    self.cond.wait(0.1)

    def _work(self) -> None:
        try:
            while True:
                batch = self._take()
                if batch is None:
                    return
                size = len(batch)
                try:
                    self.sender.deliver(batch)
                finally:
                    batch = None   # not kept while waiting: each item holds its ticket, a chunk's bytes
                    with self.cond:
                        self.done += size
                        self.cond.notify_all()
                    self.sender.lane_progressed()
        except BaseException as exc:   # noqa: BLE001 - handed to the main thread, never lost
            self.sender.fail(exc)


class RecombeeSender:
    """A Sink: submit tickets, poll finished ones, close to flush and wait."""

    def __init__(self, client: RecombeeClient, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 concurrency: int = DEFAULT_CONCURRENCY, retry: RetryPolicy | None = None,
                 seed: int | None = None, breaker: Breaker | None = None,
                 on_batch: Callable[[BatchReport], None] | None = None):
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch size must be between 1 and {MAX_BATCH:,}")
        self.client = client
        self.on_batch = on_batch      # called from the lane and barrier threads, once per Batch
        self.batch_size = batch_size
        self.lane_capacity = 2 * batch_size
        self.retry = retry or RetryPolicy()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._done: list[Ticket] = []
        self._pending: dict[int, list[Any]] = {}    # id(ticket) -> [ticket, requests not yet answered]
        self._error: BaseException | None = None
        self._failed_in_a_row = 0
        self.breaker = breaker or Breaker()
        self._circuit = Circuit(self.breaker)  # calls in a row that got no HTTP answer
        self.stopping = False
        self.closing = False
        # Merges: the open group collects merges and held users' requests in input order (the
        # main thread's alone); closed groups wait, oldest first, for the barrier thread.
        self._group: list[_Item] = []
        self._group_users: set[str] = set()
        self._group_since = 0.0
        self._passed_since = 0                 # requests sent to lanes since the group opened
        self._closed: deque[tuple[list[_Item], set[str], list[int]]] = deque()  # (items, users, given)
        self._held: set[str] = set()           # users of the open and the closed groups
        self._route_lock = threading.Lock()    # _held and _closed: the main and the barrier thread
        self._barrier_cond = threading.Condition()   # a group closed, a lane answered a Batch
        self.stats = {"batches": 0, "retries": 0, "requests_retried": 0, "barriers": 0, "nothing_to_do": 0}
        self.lanes = [_Lane(self, n) for n in range(concurrency)]
        self.lane_count = concurrency
        self._barrier_thread = threading.Thread(target=self._barrier_work, name="recombee-barrier", daemon=True)
        for lane in self.lanes:
            lane.thread.start()
        self._barrier_thread.start()

    # -- the Sink interface --------------------------------------------------------------------
    def submit(self, ticket: Ticket) -> None:
        self._raise_if_failed()
        n = len(ticket.requests)
        ticket.codes = [0] * n
        ticket.messages = [None] * n
        with self._lock:
            self._pending[id(ticket)] = [ticket, n]
        lanes = self.lanes
        per_lane: list[list[_Item]] = [[] for _ in lanes]
        group = self._group
        routes = ticket.routes
        now = time.monotonic()
        with self._route_lock:   # the barrier thread releases users from _held
            held = self._held
            for index, request in enumerate(ticket.requests):
                if routes is None:
                    users = request_users(request)
                    lenient = lenient_404(request)
                    body = orjson.dumps(request, default=orjson_default)
                else:   # already serialised and routed by the translate stage
                    users, lenient = routes[index]
                    body = request
                item = _Item(ticket, index, body, users, lenient, now)
                if len(users) > 1 or (held and not held.isdisjoint(users)):
                    # A merge, or a later request of a user a waiting merge touches: in order, in
                    # the group, after everything given to the lanes before the group closes.
                    if not group:
                        self._group_since = now
                        self._passed_since = 0
                    group.append(item)
                    held.update(users)
                    self._group_users.update(users)
                else:
                    per_lane[self._lane_of(users[0]) if users else 0].append(item)
                    self._passed_since += 1
        for lane, items in zip(lanes, per_lane):
            if items:
                lane.put(items)
        # A held merge holds back the checkpoint too: do not let more than a few Batches per lane
        # pass it, so that a crash re-sends little.
        if group and (len(group) >= self.batch_size
                      or self._passed_since >= BATCHES_PER_BARRIER * self.batch_size * self.lane_count):
            self._close_group()

    @property
    def database_id(self) -> str:
        return self.client.database_id

    def counters(self) -> dict[str, int]:
        """The run's figures: Batch calls, retries, barriers..., the HTTP calls and bytes sent."""
        with self._lock:
            figures = dict(self.stats)
        figures["http_calls"] = self.client.http_calls
        figures["bytes_sent"] = self.client.bytes_sent
        return figures

    def define(self, requests: list[dict[str, Any]]) -> list[str]:
        """Send property definitions (PUT /users|items/properties/{name}) in calls of their own
        and wait for their answers, before the requests that use them are queued: every lane
        then finds the property there. 200/201 created, 409 already there (both fine); retried
        like a Batch on 429/5xx and no answer. Returns one line per definition refused (the
        values of such a property then fail with Recombee's own answer)."""
        problems: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            problems += self._define_part(requests[start:start + self.batch_size])
        return problems

    def _define_part(self, requests: list[dict[str, Any]]) -> list[str]:
        self._raise_if_failed()
        todo = [(r, orjson.dumps(r, default=orjson_default)) for r in requests]
        problems: list[str] = []
        attempt = 0
        started = time.monotonic()
        policy = self.retry
        while todo and not self.stopping:
            attempt += 1
            self._count("batches")
            exhausted = attempt >= policy.max_attempts
            try:
                results = self.client.batch([body for _, body in todo])
            except Retryable as exc:
                exhausted = exhausted or time.monotonic() - started > policy.max_total
                if isinstance(exc, TransportFailure):
                    self._circuit.no_answer(exc.reason, exhausted)
                else:
                    self._circuit.answered()
                if exhausted:
                    return problems + [f"{r['path']}: gave up after {attempt} attempts: {exc.reason}"
                                       for r, _ in todo]
                self._pause(policy.delay(attempt, exc.retry_after, self._rng))
                continue
            except CallFailed as exc:
                self._circuit.answered()
                return problems + [f"{r['path']}: {exc}" for r, _ in todo]
            self._circuit.answered()
            exhausted = exhausted or time.monotonic() - started > policy.max_total
            again = []
            for (request, body), result in zip(todo, results):
                code = result["code"]
                if code in (200, 201, 409):
                    with self._lock:   # (only when there are any: the default report keeps its keys)
                        self.stats["property_definitions_answered"] = \
                            self.stats.get("property_definitions_answered", 0) + 1
                elif (code == 429 or code >= 500) and not exhausted:
                    again.append((request, body))
                else:
                    problems.append(f"{request['path']}: Recombee answered {code}: {_message(result)}")
            todo = again
            if todo:
                self._pause(policy.delay(attempt, None, self._rng))
        return problems

    def poll(self) -> list[Ticket]:
        self._raise_if_failed()
        if self._group and time.monotonic() - self._group_since >= HOLD_SECONDS:
            self._close_group()
        with self._lock:
            done, self._done = self._done, []
        return done

    def close(self) -> list[Ticket]:
        self._close_group()
        for lane in self.lanes:   # what lanes hold waits for no group (held users' go there): send it now
            lane.need_up_to(lane.given)
        with self._barrier_cond:   # the groups go first: lanes send short Batches to get there
            while self._closed and not self.stopping:
                self._raise_if_failed()
                self._barrier_cond.wait(0.2)
        self.closing = True
        self.lane_progressed()
        for lane in self.lanes:
            with lane.cond:
                lane.cond.notify_all()
        for thread in [*(lane.thread for lane in self.lanes), self._barrier_thread]:
            while thread.is_alive():
                thread.join(0.2)
                if self._error is not None:
                    self.abort()
        self._raise_if_failed()
        self.client.close()
        return self.poll()

    def _close_group(self) -> None:
        """Hand the open group to the barrier thread, noting how far each lane has been given
        requests: it is sent once they are all answered. Waits only while MAX_CLOSED_GROUPS
        groups are waiting already."""
        if not self._group:
            return
        with self._barrier_cond:
            while len(self._closed) >= MAX_CLOSED_GROUPS and not self.stopping:
                self._raise_if_failed()
                self._barrier_cond.wait(0.2)
        given = [lane.given for lane in self.lanes]   # `given` changes in this thread only
        with self._route_lock:
            self._closed.append((self._group, self._group_users, given))
            self._group, self._group_users = [], set()
        for lane, mark in zip(self.lanes, given):
            lane.need_up_to(mark)
        self.lane_progressed()

    def lane_progressed(self) -> None:
        """Wake the barrier thread (and a submit waiting for it): a group, an answer, the end."""
        with self._barrier_cond:
            self._barrier_cond.notify_all()

    def _barrier_work(self) -> None:
        """Send each closed group, oldest first, once every lane has answered what it was given
        before the group closed; then release its users (unless a later group holds them).
        Groups ready together are cut into Batches together (each user's order is that of one
        after the other), so a group's short tail Batches (chains of merges) share calls."""
        lanes, cond = self.lanes, self._barrier_cond
        try:
            while True:
                with cond:
                    while True:
                        if self.stopping:
                            return
                        with self._route_lock:
                            waiting = list(self._closed)
                        ready = 0
                        for _, _, given in waiting:   # a later group's marks are never lower
                            if not all(lane.done >= mark for lane, mark in zip(lanes, given)):
                                break
                            ready += 1
                        if ready:
                            break
                        if not waiting and self.closing:
                            return
                        cond.wait(0.2)
                self._count("barriers", ready)
                items = [item for group, _, _ in waiting[:ready] for item in group]
                waiting = []   # not kept while waiting for the next group: the items hold their tickets
                for part in merge_safe_batches(items, self.batch_size):
                    self.deliver(part)
                items = part = []
                with self._route_lock:
                    for _ in range(ready):
                        self._closed.popleft()
                    self._held = self._group_users.union(*(users for _, users, _ in self._closed))
                self.lane_progressed()
        except BaseException as exc:   # noqa: BLE001 - handed to the main thread, never lost
            self.fail(exc)

    def drain(self) -> list[Ticket]:
        """After an error: stop the lanes and hand back what was answered — finished tickets, and
        tickets partly answered (unanswered requests keep code 0); never raises."""
        self.abort()
        for thread in [*(lane.thread for lane in self.lanes), self._barrier_thread]:
            thread.join(2.0)
        with self._lock:
            done, self._done = self._done, []
            done += [ticket for ticket, left in self._pending.values() if left < len(ticket.codes)]
            self._pending.clear()
        return done

    def abort(self) -> None:
        """Stop every lane now (Ctrl-C, authentication failure); unanswered requests stay unanswered."""
        self.stopping = True
        for lane in self.lanes:
            with lane.cond:
                lane.cond.notify_all()
        self.lane_progressed()

    # -- internals -----------------------------------------------------------------------------
    def _lane_of(self, user: str) -> int:
        return lane_of(user, self.lane_count)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            self.abort()
            raise self._error

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = exc
        self.abort()

    def _answer(self, item: _Item, code: int, message: str | None) -> None:
        ticket = item.ticket
        ticket.codes[item.index] = code
        ticket.messages[item.index] = message
        with self._lock:
            entry = self._pending[id(ticket)]
            entry[1] -= 1
            if not entry[1]:
                del self._pending[id(ticket)]
                self._done.append(ticket)

    def _answer_all(self, answers: list[tuple[_Item, int, str | None]]) -> None:
        """_answer for a whole Batch's answers, taking the lock once (it was per request)."""
        left: dict[int, list[Any]] = {}
        for item, code, message in answers:
            ticket = item.ticket
            ticket.codes[item.index] = code      # each index has one writer: its lane
            ticket.messages[item.index] = message
            counted = left.get(id(ticket))
            if counted is None:
                left[id(ticket)] = [ticket, 1]
            else:
                counted[1] += 1
        with self._lock:
            for key, (ticket, answered) in left.items():
                entry = self._pending[key]
                entry[1] -= answered
                if not entry[1]:
                    del self._pending[key]
                    self._done.append(ticket)

    def deliver(self, batch: list[_Item]) -> None:
        """Send one lane's batch until every request has a final answer (or give up); then tell
        the observer, if any, what it took."""
        if self.on_batch is None:
            self._deliver(batch, None)
            return
        report = BatchReport(len(batch))
        started = time.monotonic()
        try:
            self._deliver(batch, report)
        finally:
            if report.attempts:
                report.seconds = time.monotonic() - started
                self.on_batch(report)

    def _deliver(self, batch: list[_Item], report: BatchReport | None) -> None:
        todo = batch
        attempt = 0
        started = time.monotonic()
        policy = self.retry
        while todo:
            if self.stopping:
                return
            attempt += 1
            self._count("batches")
            if report is not None:
                report.attempts = attempt
            try:
                results = self.client.batch([item.body for item in todo])
            except Retryable as exc:
                if report is not None:
                    report.status, report.reason = exc.status, exc.reason
                exhausted = attempt >= policy.max_attempts or time.monotonic() - started > policy.max_total
                if isinstance(exc, TransportFailure):
                    self._circuit.no_answer(exc.reason, exhausted)     # raises when the circuit breaker opens
                else:
                    self._circuit.answered()
                if exhausted:
                    code = NO_STATUS if exc.status is None else exc.status
                    self._answer_all([(item, code, f"gave up after {attempt} attempts: {exc.reason}")
                                      for item in todo])
                    return
                self._pause(policy.delay(attempt, exc.retry_after, self._rng))
                self._count("retries")
                continue
            except CallFailed as exc:
                if report is not None:
                    report.status, report.reason = exc.status, str(exc)
                self._circuit.answered()
                with self._lock:
                    self._failed_in_a_row += 1
                    in_a_row = self._failed_in_a_row
                if in_a_row >= _FAILED_BATCHES_TO_ABORT:
                    raise ServiceError(f"{exc}; {_FAILED_BATCHES_TO_ABORT} Batch calls in a row failed, "
                                       f"stopping") from None
                code = NO_STATUS if exc.status is None else exc.status
                self._answer_all([(item, code, str(exc)) for item in todo])
                return
            if report is not None:
                report.status, report.reason = 200, None   # a Batch answer is an HTTP 200
            self._circuit.answered()
            if self._failed_in_a_row:
                with self._lock:
                    self._failed_in_a_row = 0
            retry: list[tuple[_Item, dict[str, Any]]] = []
            blocked_users: set[str] = set()
            answers: list[tuple[_Item, int, str | None]] = []
            nothing_to_do = 0    # deletes and merges answered 404: already applied or never there
            for item, result in zip(todo, results):
                code = result["code"]           # an int: the client checked the answer
                if code == 429 or code >= 500 or (blocked_users and not blocked_users.isdisjoint(item.users)):
                    # A failed request, or a later request of a user whose earlier one failed:
                    # both go again, in their order, so the user's history ends in order.
                    retry.append((item, result))
                    blocked_users.update(item.users)
                    continue
                if code == 404 and item.lenient:
                    nothing_to_do += 1
                answers.append((item, classify(item.lenient, code),
                                None if code in (200, 201, 409) else _message(result)))
            if retry and (attempt >= policy.max_attempts or time.monotonic() - started > policy.max_total):
                for item, result in retry:   # what each last answered; a failure says it gave up
                    code = result["code"]
                    if code == 429 or code >= 500:
                        answers.append((item, code, f"gave up after {attempt} attempts: {_message(result)}"))
                    else:
                        nothing_to_do += code == 404 and item.lenient
                        answers.append((item, classify(item.lenient, code),
                                        None if code in (200, 201, 409) else _message(result)))
                retry = []
            if nothing_to_do:   # said in words in the summary: they count as `duplicate`
                self._count("nothing_to_do", nothing_to_do)
            self._answer_all(answers)
            if retry:
                if report is not None:
                    report.retried += len(retry)
                self._count("retries")
                self._count("requests_retried", len(retry))
                self._pause(policy.delay(attempt, None, self._rng))
            todo = [item for item, _ in retry]

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.stats[name] += n

    def _pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))


__all__ = ["RecombeeSender", "DEFAULT_BATCH_SIZE", "DEFAULT_CONCURRENCY", "request_users",
           "classify", "AuthenticationError", "Breaker", "NO_STATUS", "merge_safe_batches"]
