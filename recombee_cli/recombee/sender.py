"""The Recombee sender: the sink that delivers requests in concurrent, ordered Batch calls.

Order (SPEC §7): requests wait in one queue, in input order, and the senders (lanes: `concurrency`,
or by default 16 and more while far from Recombee, lanes.py) each take the next Batch from it
(batching.py): requests that do not commute (one user's requests for one item; anything and a
request that takes the user whole) never have two Batches in flight, and a Batch skips what may
not go yet, so each user's history takes effect as in input order while everything else keeps
flowing. `mergeUsers(source -> target)` orders the two users it touches and nothing else: it waits
for what came before for either, and what comes later for either waits for it; `deleteUser` does
the same for its one user. Batches stay full.

Exactly once for what was answered (SPEC §7, §8): after every answered call, the requests Recombee
answered for good are written to the state's journal (`journal`) before their users may go again,
so a merge or user deletion is recorded before any later request of its users is sent; a run
killed at any point resumes without applying a merge or a user deletion twice, and without sending
again what was answered.

Retries: a whole call that fails (no answer, 429, 5xx) is sent again, re-signed, with exponential
backoff and jitter; a call with no complete answer by its deadline (client.py) got no answer.
Recombee executes a Batch request by request, so when one request fails with 429/5xx inside an
answered Batch, the later requests of its users in that Batch have taken effect already: the failed
request is sent again together with them, in their order, so each user's history ends as in input
order (adds and deletes: the last word per interaction wins; re-sent adds answer 409, re-sent
deletes 404, both counted `duplicate`). Two requests with one duplicate key never share a Batch,
and a merge or user deletion shares a Batch with no other request of its users, so neither is ever
re-sent behind a later request (request_kinds.py). A request whose retries run out, or whose call
got no usable answer, is not delivered: the later requests of its users are not sent either
(`not sent: ...`), and those after it in its Batch, which Recombee applied, are not delivered
either; so nothing overtakes it, and the next run sends them all in order.

Give-ups are recorded with the truth: the status Recombee last answered (e.g. 503, "gave up after
8 attempts: Service temporarily unavailable"), or NO_ANSWER with the transport's reason ("gave up
after 8 attempts: cannot connect to https://h: connection refused"), or what was wrong with an
answer that was not a Batch answer. Circuit breaker (breaker.py): when Recombee cannot be reached,
or refuses call after call, the run stops with `UnreachableError` (exit 3) and the true reason.

Memory stays flat: `submit` waits while QUEUED_BATCHES + `concurrency` Batches' worth of requests
wait (requests held back behind merges in flight, the more the farther Recombee is, must leave
room for full Batches of everyone else's), and each lane holds one Batch in flight (at most
GROWN_CONCURRENCY lanes by default).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from recombee_cli.errors import AuthenticationError, ServiceError
from recombee_cli.outcomes import NO_ANSWER, accepted, retryable, transient
from recombee_cli.recombee.answers import BatchAnswer, message_of
from recombee_cli.recombee.batching import (
    DEFAULT_CONCURRENCY,
    GROWN_CONCURRENCY,
    HOLD_SECONDS,
    LINGER_SECONDS,
    Built,
    SendQueue,
)
from recombee_cli.recombee.breaker import Breaker, Circuit
from recombee_cli.recombee.client import CallFailed, RecombeeClient, Retryable, RetryPolicy, TransportFailure
from recombee_cli.recombee.items import Item, bodies_of, mark_gone_sources, queued_items, solo_count
from recombee_cli.recombee.lanes import (
    Lanes,
    give_back_the_lock,
    hand_the_lock_sooner,
    share_malloc_arenas,
    sleep_where_signals_reach,
)
from recombee_cli.recombee.service import MAX_BATCH
from recombee_cli.request_kinds import SOLO, chunk_sid, route, sid
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.sinks.protocol import AnswerJournal, Ticket
from recombee_cli.sources.lines import cut_lines

DEFAULT_BATCH_SIZE = 1000
_NO_TICKET = object()      # (what no item's ticket is)
QUEUED_BATCHES = 8         # Batches' worth of requests waiting, beyond one per lane, before `submit` waits
ROOM_POLL_SECONDS = 0.005  # how often a `submit` that waits for room looks again (a Batch is 1,000 of 24,000)
IDLE_WAIT_SECONDS = 0.1    # how long a sender with nothing to look at waits before it looks again
_FAILED_BATCHES_TO_ABORT = 3


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


class RecombeeSender:
    """A Sink: submit tickets, poll finished ones, close to flush and wait."""

    def __init__(self, client: RecombeeClient, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 concurrency: int | None = None, retry: RetryPolicy | None = None,
                 seed: int | None = None, breaker: Breaker | None = None,
                 on_batch: Callable[[BatchReport], None] | None = None, grow_to: int | None = None):
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch size must be between 1 and {MAX_BATCH:,}")
        self.client = client
        self.on_batch = on_batch      # called from the senders' threads, once per Batch
        self.batch_size = batch_size
        # `concurrency` lanes, fixed; by default DEFAULT_CONCURRENCY, and more, up to `grow_to`
        # (GROWN_CONCURRENCY unless told), while they are what the sending waits for (lanes.py)
        if concurrency is None:
            concurrency, grow_to = DEFAULT_CONCURRENCY, grow_to or GROWN_CONCURRENCY
        self.capacity = (QUEUED_BATCHES + concurrency) * batch_size   # a sender looks that far
        self.retry = retry or RetryPolicy()
        self.journal: AnswerJournal | None = None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._done: list[Ticket] = []
        self._pending: dict[int, list[Any]] = {}    # id(ticket) -> [ticket, requests not yet answered]
        self._error: BaseException | None = None
        self._failed_in_a_row = 0
        self.breaker = breaker or Breaker()
        self._circuit = Circuit(self.breaker)
        self.stopping = False
        self.closing = False
        self.queue = SendQueue()
        # Users one of whose requests was not delivered (copied on write: builds read it unlocked).
        self._poisoned: frozenset[str] = frozenset()
        self._gone: dict[str, None] = {}   # users surely absent from the store (items.mark_gone_sources)
        self.stats = {"batches": 0, "retries": 0, "requests_retried": 0, "merges_ordered": 0, "nothing_to_do": 0}
        self.lane_count = concurrency
        self.lanes = Lanes(concurrency, grow_to or concurrency)   # (a step taken back leaves some idle)
        share_malloc_arenas()   # (before the lanes' threads allocate)
        self._switch_before = hand_the_lock_sooner()   # (given back by close, drain and abort)
        self.threads: list[threading.Thread] = []
        self._start_lanes(concurrency)

    # -- the Sink interface --------------------------------------------------------------------
    def submit(self, ticket: Ticket) -> None:
        self._raise_if_failed()
        requests = ticket.requests
        n = len(requests)
        codes = ticket.codes
        if len(codes) != n:   # else: some were answered by an earlier run (a resumed file)
            codes = ticket.codes = [0] * n
            ticket.messages = [None] * n
        routes = ticket.routes
        if routes is None:   # an event's requests as objects (the Python API, tests): as the
            # translate stage does, serialised once and cut from one joined blob, each its size
            # (orjson gives every result a buffer of at least 4 KB)
            index_in_line = ticket.index_in_line
            routes = [route(request, sid(0, index_in_line, k)) for k, request in enumerate(requests)]
            bodies = cut_lines(b"\n".join([orjson.dumps(r, default=orjson_default) for r in requests]))
        else:                # serialised and routed by the translate stage
            bodies = requests
        mark_gone_sources(routes, self._gone)   # (all: what was answered before is in the store too)
        left = codes.count(0)
        if not left:
            with self._lock:
                self._done.append(ticket)
            return
        with self._lock:
            self._pending[id(ticket)] = [ticket, left]
        base = chunk_sid(ticket.first_line)
        now = time.monotonic()
        items = queued_items(ticket, bodies, routes, codes, base, now)
        ticket.routes = None   # each item holds its own (a ticket waits for its last answer)
        solos = solo_count(items)
        if solos:
            self._count("merges_ordered", solos)
        queue = self.queue
        queue.put(items, now, self.batch_size)
        # Memory stays flat: while the queue is full, look again every few ms, holding no lock
        # (a count read unlocked is a moment old at worst). Not Condition.wait: it takes the lock
        # back on its way out, and a signal's exception (Ctrl-C, SIGTERM; this is the main thread)
        # raised in that moment left it without the lock, so that leaving `with` released the
        # lock of the sender holding it: a run hung.
        while queue.waiting() > self.capacity and not self.stopping:
            self._raise_if_failed()
            sleep_where_signals_reach(ROOM_POLL_SECONDS)   # (not time.sleep: see there)

    @property
    def database_id(self) -> str:
        return self.client.database_id

    def keep_answers(self, journal: AnswerJournal) -> None:
        """Record what Recombee accepts in `journal` (a state's) before anything that depends on
        it goes (see the module docstring)."""
        self.journal = journal

    def counters(self) -> dict[str, int]:
        """The run's figures: Batch calls, retries, merges ordered..., the HTTP calls and bytes sent."""
        with self._lock:
            figures = dict(self.stats)
        figures["http_calls"] = self.client.http_calls
        figures["bytes_sent"] = self.client.bytes_sent
        # requests that waited for an answer about their user (a merge, the same item, in flight):
        # what distance costs the ordering; in --report, not in the summary
        figures["held_back"] = self.queue.held_back
        figures["lanes"] = self.lanes.allowed   # the Batch calls that could be in flight at once, at the end
        return figures

    def define(self, requests: list[dict[str, Any]]) -> list[str]:
        """Send property definitions (PUT /users|items/properties/{name}) in calls of their own
        and wait for their answers, before the requests that use them are queued: every sender
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
                self._not_answered(exc, exhausted)
                if exhausted:
                    return problems + [f"{r['path']}: gave up after {attempt} attempts: {exc.reason}"
                                       for r, _ in todo]
                self._pause(policy.delay(attempt, exc.retry_after, self._rng))
                continue
            except CallFailed as exc:
                self._circuit.answered()
                return problems + [f"{r['path']}: {exc}" for r, _ in todo]
            self._circuit.accepted()
            exhausted = exhausted or time.monotonic() - started > policy.max_total
            again = []
            for (request, body), result in zip(todo, results):
                code = result["code"]
                if accepted(code):
                    with self._lock:   # (only when there are any: the default report keeps its keys)
                        self.stats["property_definitions_answered"] = \
                            self.stats.get("property_definitions_answered", 0) + 1
                elif retryable(code) and not exhausted:
                    again.append((request, body))
                else:
                    problems.append(f"{request['path']}: Recombee answered {code}: {message_of(result)}")
            todo = again
            if todo:
                self._pause(policy.delay(attempt, None, self._rng))
        return problems

    def poll(self) -> list[Ticket]:
        self._raise_if_failed()
        with self._lock:
            done, self._done = self._done, []
        return done

    def close(self) -> list[Ticket]:
        """Send what the queue holds (partly filled Batches too), wait for every answer."""
        self.closing = True
        self._wake()
        for thread in self.threads:
            while thread.is_alive():
                thread.join(0.2)
                if self._error is not None:
                    self.abort()
        self._give_back_the_lock()
        self._raise_if_failed()
        self.client.close()
        return self.poll()

    def drain(self) -> list[Ticket]:
        """After an error: stop the senders and hand back what was answered — finished tickets, and
        tickets partly answered (unanswered requests keep code 0); never raises."""
        self.abort()
        for thread in self.threads:
            thread.join(2.0)
        with self._lock:
            done, self._done = self._done, []
            done += [ticket for ticket, left in self._pending.values() if left < len(ticket.codes)]
            self._pending.clear()
        return done

    def abort(self) -> None:
        """Stop every sender now (Ctrl-C, authentication failure); unanswered requests stay unanswered."""
        self.stopping = True
        self._wake()
        self._give_back_the_lock()

    # -- the senders' threads -------------------------------------------------------------------
    def _work(self) -> None:
        queue = self.queue
        try:
            while True:
                built = self._take()
                if built is None:
                    return
                try:
                    if built.batch:
                        self.deliver(built.batch)
                finally:
                    with queue.cond:
                        queue.release(built)
                built = None   # not kept while waiting: each item holds its ticket, a chunk's bytes
        except BaseException as exc:   # noqa: BLE001 - handed to the main thread, never lost
            self.fail(exc)

    def _take(self) -> Built | None:
        """Wait for a Batch worth sending (see batching.py) and take it (its users are in flight
        until released); None when the sender stops or closes with nothing left. Items of users
        whose earlier request was not delivered are answered `not sent` here (the Built that
        comes back may hold no batch)."""
        size = self.batch_size
        queue = self.queue
        with queue.cond:
            while True:
                if self.stopping:
                    return None
                closed = self.closing   # (read before the inbox: nothing is handed in after closing)
                queue.take_in()
                oldest = queue.oldest()
                if oldest is None:   # nothing to look at (what is parked comes back with an answer)
                    if queue.inbox:   # handed in just now
                        continue
                    if closed and not queue.parked_count:
                        # Nothing more will come: the other senders, waiting for work, end now
                        # too (not when their wait times out: every run ended 0.1 s late).
                        queue.cond.notify_all()
                        return None
                    queue.cond.wait(IDLE_WAIT_SECONDS)
                    continue
                now = time.monotonic()
                # Closing, or the queue full (reading waits for room: no fuller Batch will come).
                closing = closed or queue.waiting() >= self.capacity
                idle = now - queue.last_put >= LINGER_SECONDS   # the input is slower than the sending
                # Look for an overdue request at most every LINGER_SECONDS: the oldest may be one
                # that waits for its user's Batch in flight, while the rest fill the next Batch.
                overdue = now - oldest.enqueued >= HOLD_SECONDS and now - queue.last_look >= LINGER_SECONDS
                if len(queue.flying) >= self.lanes.allowed:   # (lanes taken back: lanes.py)
                    queue.cond.wait(LINGER_SECONDS / 5)
                    continue
                if closing or idle or overdue or (queue.rescan and queue.available() >= size):
                    queue.rescan = False
                    if overdue:
                        queue.last_look = now
                    built: Built | None = queue.build(size, self._poisoned, self.capacity)
                    assert built is not None
                    batch: list[Item] | None = built.batch
                    assert batch is not None
                    worth = bool(batch) and (len(batch) >= size or closing or idle
                                             or now - batch[0].enqueued >= HOLD_SECONDS)
                    if worth or built.dropped:
                        queue.take(built, send=worth)
                        if not worth:
                            built.clear()
                        if built.dropped:
                            self._not_sent(built.dropped)
                        return built
                    built = batch = None   # not kept while waiting: another sender may send them
                queue.cond.wait(LINGER_SECONDS / 5)

    def _start_lanes(self, count: int) -> None:
        for _ in range(count):
            thread = threading.Thread(target=self._work, name=f"recombee-sender-{len(self.threads)}", daemon=True)
            self.threads.append(thread)
            thread.start()

    def _timed(self, seconds: float, lanes: int) -> None:
        """A full Batch's first call, made while `lanes` lanes were allowed, took `seconds`: start
        the lanes that lanes.py allows now (every lane busy and a full Batch waiting for one)."""
        queue = self.queue
        waited_for = (not (self.closing or self.stopping) and len(queue.flying) >= lanes - 1
                      and queue.available() >= self.batch_size)   # (this lane is about to be free)
        allowed = self.lanes.answered(seconds, lanes, waited_for=waited_for)
        if allowed != lanes:
            self._lanes_now(allowed)

    def _lanes_now(self, allowed: int) -> None:
        """`allowed` lanes from now on (lanes.py): what a send holds stays what it held with the
        lanes it started with (each lane added holds a Batch in flight, so the queue holds one
        Batch's worth less, and one taken back gives it back), and lanes not yet started start."""
        self.capacity = max(QUEUED_BATCHES, QUEUED_BATCHES + 2 * self.lanes.start - allowed) * self.batch_size
        if allowed > len(self.threads):
            with self._lock:
                self._start_lanes(allowed - len(self.threads))

    def _wake(self) -> None:
        with self.queue.cond:
            self.queue.rescan = True
            self.queue.cond.notify_all()

    # -- delivering one Batch ------------------------------------------------------------------
    def deliver(self, batch: list[Item]) -> None:
        """Send one Batch until every request has a final answer (or give up); then tell
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

    def _deliver(self, batch: list[Item], report: BatchReport | None) -> None:
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
            called = time.monotonic()
            lanes = self.lanes.allowed
            try:
                results = self.client.batch(bodies_of(todo))
            except Retryable as exc:
                if report is not None:
                    report.status, report.reason = exc.status, exc.reason
                exhausted = attempt >= policy.max_attempts or time.monotonic() - started > policy.max_total
                self._not_answered(exc, exhausted)   # raises when the circuit breaker opens
                if exhausted:   # the status stands beside the message: it is not repeated in it
                    code = NO_ANSWER if exc.status is None else exc.status
                    why = f"gave up after {attempt} attempts: {exc.detail}"
                    self._settle(todo, [code] * len(todo), [why] * len(todo))
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
                # Not delivered (refused whole, or an answer that says nothing trustworthy about
                # what was applied): not final, and the later requests of these users are held back.
                self._settle(todo, [NO_ANSWER] * len(todo), [str(exc)] * len(todo))
                return
            if attempt == 1 and len(todo) == self.batch_size and self.lanes.judging:
                self._timed(time.monotonic() - called, lanes)
            if report is not None:
                report.status, report.reason = 200, None   # a Batch answer is an HTTP 200
            self._circuit.accepted()
            if self._failed_in_a_row:
                with self._lock:
                    self._failed_in_a_row = 0
            todo = self._answered(todo, results, attempt, started, report)

    def _answered(self, todo: list[Item], results: list[dict[str, Any]], attempt: int, started: float,
                  report: BatchReport | None) -> list[Item]:
        """Read one answered call: settle what is final, return what goes again."""
        codes: list[int] = []   # ints: the client checked the answer
        accepted_all = True     # the common cases: stored, or there already (a request sent again)
        for result in results:  # (one pass, where three `count`s compared each code three times)
            code = result["code"]
            codes.append(code)
            if code != 200 and code != 201 and code != 409:
                accepted_all = False
        if accepted_all:   # final as answered, no message (as BatchAnswer)
            self._settle(todo, codes, None, accepted_all=True)
            return []
        policy = self.retry
        give_up = attempt >= policy.max_attempts or time.monotonic() - started > policy.max_total
        answer = BatchAnswer(todo, results, codes, attempt=attempt, give_up=give_up)
        if answer.nothing_to_do:   # said in words in the summary: they count as `duplicate`
            self._count("nothing_to_do", answer.nothing_to_do)
        self._settle(answer.items, answer.codes, answer.messages)
        if answer.again:
            if report is not None:
                report.retried += len(answer.again)
            self._count("retries")
            self._count("requests_retried", len(answer.again))
            self._pause(policy.delay(attempt, None, self._rng))
        return answer.again

    def _settle(self, items: list[Item], codes: list[int], messages: list[str | None] | None,
                accepted_all: bool = False) -> None:
        """Final answers (`messages` None: none has one; `accepted_all`: every code is 200, 201 or
        409): what Recombee answered for good is recorded first (the journal: the Batch's users are
        released only after it, so a merge's or user deletion's later requests go once it is
        recorded), users with a request not delivered are held back for the rest of the run, and
        the tickets get their codes."""
        journal = self.journal
        lost: set[str] = set()
        item: Item
        k = 0
        if journal is not None:
            answered: dict[str, tuple[list[int], list[int]]] = {}   # source -> (places, [solos applied])
            for item in items:
                code = codes[k]
                k += 1
                if not accepted_all and transient(code):
                    lost.update(item.users)
                elif item.sid >= 0:
                    source = item.ticket.source
                    entry = answered.get(source)
                    if entry is None:
                        entry = answered[source] = ([], [0])
                    entry[0].append(item.sid)
                    if item.whole and item.flags & SOLO and (code == 200 or code == 201):   # (whole: a C test first)
                        entry[1][0] += 1
            if answered:
                journal.record({source: (places, solos[0]) for source, (places, solos) in answered.items()})
        elif not accepted_all:
            for item in items:
                if transient(codes[k]):
                    lost.update(item.users)
                k += 1
        if lost:
            self._hold_back(lost)
        self._answer_all(items, codes, messages)

    def _not_sent(self, items: list[Item]) -> None:
        """Requests of users with an earlier request not delivered: held back, so that nothing
        overtakes it (the next run sends them all, in order). They are not delivered either: all
        their users are held back from now on (a merge's other user too)."""
        poisoned = self._hold_back({user for item in items for user in item.users})
        self._answer_all(items, [NO_ANSWER] * len(items), [
            f"not sent: an earlier request of user {next((u for u in item.users if u in poisoned), item.users[0])!r} "
            "was not delivered" for item in items])

    def _hold_back(self, users: set[str]) -> frozenset[str]:
        """Hold `users` back for the rest of the run (a request of theirs was not delivered);
        returns the users held back before (a `not sent` message names the one that held it)."""
        with self._lock:
            before = self._poisoned
            if not before.issuperset(users):
                self._poisoned = before | users
        return before

    def _not_answered(self, exc: Retryable, exhausted: bool) -> None:
        """A whole call failed: count it toward the circuit breaker (which raises when it opens),
        and give Recombee no more lanes than it had before it was given more (lanes.py)."""
        self._lanes_now(self.lanes.refused())   # (fixed lanes: the same lanes, the same room)
        if isinstance(exc, TransportFailure):
            self._circuit.no_answer(exc.reason, exhausted)
        else:   # 5xx, or 429 (its Retry-After honoured): a throttled run gets Batch answers in between
            self._circuit.refused(exc.reason, exhausted)

    # -- internals -----------------------------------------------------------------------------
    def _raise_if_failed(self) -> None:
        if self._error is not None:
            self.abort()
            raise self._error

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = exc
        self.abort()

    def _answer_all(self, items: list[Item], codes: list[int], messages: list[str | None] | None) -> None:
        """Give a Batch's answers to their tickets; a ticket with all its answers is done."""
        runs: list[Any] = []   # [ticket, answers] per run of items of one ticket (a chunk's are adjacent)
        item: Item
        ticket: Any = _NO_TICKET
        run: list[Any] = []
        k = 0
        with self._lock:
            for item in items:
                if item.ticket is not ticket:
                    ticket = item.ticket
                    ticket_codes, ticket_messages = ticket.codes, ticket.messages
                    run = [ticket, 0]
                    runs.append(run)
                ticket_codes[item.index] = codes[k]
                if messages is not None:
                    ticket_messages[item.index] = messages[k]
                run[1] += 1
                k += 1
            pending = self._pending
            for ticket, answered in runs:
                entry = pending[id(ticket)]
                entry[1] -= answered
                if not entry[1]:
                    del pending[id(ticket)]
                    self._done.append(ticket)

    def _give_back_the_lock(self) -> None:
        """Python's switch interval as it was before this sender (once, whoever asks first)."""
        before, self._switch_before = self._switch_before, None
        give_back_the_lock(before)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.stats[name] += n

    def _pause(self, seconds: float) -> None:   # (the main thread's too, in `define`: see lanes.py)
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            sleep_where_signals_reach(min(0.05, max(0.0, end - time.monotonic())))


__all__ = ["RecombeeSender", "DEFAULT_BATCH_SIZE", "DEFAULT_CONCURRENCY", "AuthenticationError",
           "Breaker", "AnswerJournal", "BatchReport"]
