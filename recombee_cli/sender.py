"""The Recombee sender: the sink that delivers requests in concurrent, ordered Batch calls.

Order: every request is routed to a *lane* by its user (hash of userId). A lane sends one Batch at
a time, in input order, so one user's requests take effect in input order while `concurrency`
lanes work in parallel. A merge touches two users: it is *held*, with every later request of
either user, in one ordered queue. When that queue holds a Batch's worth, or a few Batches per
lane have gone past it, or it has waited HOLD_SECONDS, or at the end, a *barrier* lets every lane
finish what it was given — everything that came before — and sends the held requests in input
order; then those users flow through the lanes again. Barriers come every few Batches per lane at
most, so Batches stay full, and a crash re-sends at most about that much.

Retries: a whole call that fails (connection, timeout, 429, 5xx) is sent again, re-signed, with
exponential backoff and jitter. A request that fails with 429/5xx inside an answered Batch is sent
again *together with every later request of the same user in that Batch*, so that the user's
requests still take effect in input order (an add retried after its delete would revive it).
Re-sent adds answer 409 and re-sent deletes 404; both count as `duplicate` (already applied).

Memory stays flat: each lane holds at most `2 * batch_size` requests; `submit` waits when full.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass

import orjson

from .client import RecombeeClient, Retryable, RetryPolicy
from .jsvalues import orjson_default
from .routing import DEFAULT_CONCURRENCY, lane_of, lenient_404, request_users
from .errors import AuthenticationError, ServiceError
from .sinks import Ticket

DEFAULT_BATCH_SIZE = 1000
LINGER_SECONDS = 0.5        # a partly filled batch waits this long for more requests
HOLD_SECONDS = 2.0          # merges wait at most this long for a barrier...
BATCHES_PER_BARRIER = 4     # ...or until this many Batches per lane have gone past them
_FAILED_BATCHES_TO_ABORT = 3


def classify(lenient: bool, code: int) -> int:
    """Map an answer to the code we record: 404 on a delete or merge means already applied."""
    return 409 if code == 404 and lenient else code


@dataclass(slots=True)
class _Item:
    ticket: Ticket
    index: int
    body: bytes                        # the request, serialised
    users: tuple[str, ...]
    lenient: bool                      # 404 means already done (deletes, merges)
    enqueued: float                    # time.monotonic() when submitted


class _Lane:
    def __init__(self, sender: "RecombeeSender", number: int):
        self.sender = sender
        self.number = number
        self.queue: deque[_Item] = deque()
        self.busy = False
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
                end = len(items) if sender.stopping else start + room
                queue.extend(items[start:end])
                start = end
            if len(queue) >= sender.batch_size:
                self.cond.notify_all()

    def idle(self) -> bool:
        with self.cond:
            return not self.queue and not self.busy

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
                    if full or lingered or sender.flushing or sender.closing:
                        n = min(len(self.queue), sender.batch_size)
                        batch = [self.queue.popleft() for _ in range(n)]
                        self.busy = True
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
                try:
                    self.sender.deliver(batch)
                finally:
                    with self.cond:
                        self.busy = False
                        self.cond.notify_all()
        except BaseException as exc:   # noqa: BLE001 - handed to the main thread, never lost
            self.sender.fail(exc)


class RecombeeSender:
    """A Sink: submit tickets, poll finished ones, close to flush and wait."""

    def __init__(self, client: RecombeeClient, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 concurrency: int = DEFAULT_CONCURRENCY, retry: RetryPolicy | None = None,
                 seed: int | None = None):
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch size must be between 1 and 10,000")
        self.client = client
        self.batch_size = batch_size
        self.lane_capacity = 2 * batch_size
        self.retry = retry or RetryPolicy()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._done: list[Ticket] = []
        self._pending: dict[int, list] = {}    # id(ticket) -> [ticket, requests not yet answered]
        self._error: BaseException | None = None
        self._failed_in_a_row = 0
        self.stopping = False
        self.closing = False
        self.flushing = False                  # lanes send partial batches at once (a barrier)
        self._held: set[str] = set()           # users whose requests wait for the next barrier
        self._barrier: list[_Item] = []        # merges and held users' requests, in input order
        self._barrier_since = 0.0
        self._passed_since = 0                 # requests sent to lanes since the oldest held one
        self.stats = {"batches": 0, "retries": 0, "requests_retried": 0, "barriers": 0}
        self.lanes = [_Lane(self, n) for n in range(concurrency)]
        self.lane_count = concurrency
        for lane in self.lanes:
            lane.thread.start()

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
        held = self._held
        routes = ticket.routes
        now = time.monotonic()
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
                # A merge, or a later request of a user a pending merge touches: in order, at the
                # next barrier, after everything sent before it.
                if not self._barrier:
                    self._barrier_since = time.monotonic()
                    self._passed_since = 0
                self._barrier.append(item)
                held.update(users)
            else:
                per_lane[self._lane_of(users[0]) if users else 0].append(item)
                self._passed_since += 1
        for lane, items in zip(lanes, per_lane):
            if items:
                lane.put(items)
        # A held merge holds back the checkpoint too: do not let more than a few Batches per lane
        # pass it, so that a crash re-sends little.
        if self._barrier and (len(self._barrier) >= self.batch_size
                              or self._passed_since >= BATCHES_PER_BARRIER * self.batch_size * self.lane_count):
            self._run_barrier()

    def poll(self) -> list[Ticket]:
        self._raise_if_failed()
        if self._barrier and time.monotonic() - self._barrier_since >= HOLD_SECONDS:
            self._run_barrier()
        with self._lock:
            done, self._done = self._done, []
        return done

    def close(self) -> list[Ticket]:
        self._run_barrier()
        self.closing = True
        for lane in self.lanes:
            with lane.cond:
                lane.cond.notify_all()
        for lane in self.lanes:
            while lane.thread.is_alive():
                lane.thread.join(0.2)
                if self._error is not None:
                    self.abort()
        self._raise_if_failed()
        self.client.close()
        return self.poll()

    def _run_barrier(self) -> None:
        """Let every lane finish what it holds, then send the held requests in input order."""
        if not self._barrier:
            return
        self.flushing = True
        try:
            for lane in self.lanes:
                with lane.cond:
                    lane.cond.notify_all()
            while not all(lane.idle() for lane in self.lanes):
                self._raise_if_failed()
                if self.stopping:
                    return
                time.sleep(0.002)
        finally:
            self.flushing = False
        held, self._barrier = self._barrier, []
        self._held = set()
        self._count("barriers")
        for start in range(0, len(held), self.batch_size):
            self.deliver(held[start:start + self.batch_size])
        self._raise_if_failed()

    def drain(self) -> list[Ticket]:
        """After an error: stop the lanes and hand back what was answered — finished tickets, and
        tickets partly answered (unanswered requests keep code 0); never raises."""
        self.abort()
        for lane in self.lanes:
            lane.thread.join(2.0)
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
        left: dict[int, list] = {}
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
        """Send one lane's batch until every request has a final answer (or give up)."""
        todo = batch
        attempt = 0
        started = time.monotonic()
        policy = self.retry
        while todo:
            if self.stopping:
                return
            attempt += 1
            self._count("batches")
            try:
                results = self.client.batch([item.body for item in todo])
                self._failed_in_a_row = 0
            except Retryable as exc:
                if attempt >= policy.max_attempts or time.monotonic() - started > policy.max_total:
                    for item in todo:
                        self._answer(item, 503, f"gave up after {attempt} attempts: {exc}")
                    return
                self._pause(policy.delay(attempt, exc.retry_after, self._rng))
                self._count("retries")
                continue
            except ServiceError as exc:
                self._failed_in_a_row += 1
                if self._failed_in_a_row >= _FAILED_BATCHES_TO_ABORT:
                    raise ServiceError(f"{exc}; {_FAILED_BATCHES_TO_ABORT} Batch calls in a row were "
                                       f"refused, stopping") from None
                for item in todo:
                    self._answer(item, 400, str(exc))
                return
            retry: list[_Item] = []
            blocked_users: set[str] = set()
            retry_after = None
            answers: list[tuple[_Item, int, str | None]] = []
            for item, result in zip(todo, results):
                code = result.get("code", 500) if type(result) is dict else 500
                if code == 429 or code >= 500 or (blocked_users and not blocked_users.isdisjoint(item.users)):
                    # A failed request, or a later request of a user whose earlier one failed:
                    # both go again, in their order, so the user's history stays in order.
                    retry.append(item)
                    blocked_users.update(item.users)
                    continue
                message = None
                if code not in (200, 201, 409):
                    body = result.get("json") if isinstance(result, dict) else None
                    message = str(body.get("error", body)) if isinstance(body, dict) else str(body)
                answers.append((item, classify(item.lenient, code), message))
            self._answer_all(answers)
            if retry:
                if attempt >= policy.max_attempts or time.monotonic() - started > policy.max_total:
                    for item in retry:
                        self._answer(item, 503, f"gave up after {attempt} attempts")
                    return
                self._count("retries")
                self._count("requests_retried", len(retry))
                self._pause(policy.delay(attempt, retry_after, self._rng))
            todo = retry

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.stats[name] += n

    def _pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))


__all__ = ["RecombeeSender", "DEFAULT_BATCH_SIZE", "DEFAULT_CONCURRENCY", "request_users",
           "classify", "AuthenticationError"]
