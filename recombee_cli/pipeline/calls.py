"""A sending run's Batch calls over the run's time: calls, answers by status, failed calls (429,
5xx, no answer, refused), retries and latency, for the report's `timeline.sending` and the page
`report` draws.

The sender counts totals (`counters()`: Batch calls, retries...) and, with --verbose, says what each
Batch took; neither is a series over time. `CallLog.watch(sender)` keeps one without changing the
sender: it times each call of its client (`client.batch`, one HTTP call: a Batch or a property
definition), reads the answer's status codes, and notes the sender's own count of retries at each
call. Bounded: at most BUCKETS buckets of the run's time (an eighth of a second each at first; when
a run outlasts them, neighbours merge and a bucket covers twice as long), a latency histogram of fixed
bounds, and answers counted by status code (a few distinct codes).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from recombee_cli.recombee.client import TransportFailure
from recombee_cli.recombee.sender import RecombeeSender

BUCKETS = 240
FIRST_WIDTH = 0.125   # seconds per bucket at first: a short run still shows its course
LATENCY_BOUNDS_MS = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)


class _Bucket:
    __slots__ = ("calls", "requests", "seconds", "slowest", "answers", "failed", "retries")

    def __init__(self) -> None:
        self.calls = self.requests = 0
        self.seconds = self.slowest = 0.0
        self.answers: Counter[str] = Counter()   # per request, by status code, in answered Batches
        self.failed: Counter[str] = Counter()    # whole calls: 429, 5xx, no answer, refused
        self.retries = -1                        # the sender's retries so far, at its last call here

    def merge(self, other: _Bucket) -> None:
        self.calls += other.calls
        self.requests += other.requests
        self.seconds += other.seconds
        self.slowest = max(self.slowest, other.slowest)
        self.answers.update(other.answers)
        self.failed.update(other.failed)
        self.retries = max(self.retries, other.retries)


def failure_kind(exc: BaseException) -> str:
    """How a whole call failed, as the page groups it."""
    if isinstance(exc, TransportFailure):
        return "no answer"
    status = getattr(exc, "status", None)
    if status == 429:
        return "429"
    if isinstance(status, int) and status >= 500:
        return "5xx"
    return "refused"


class CallLog:
    """The calls of one sending run, by time since the log was made (the run's start)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self._clock = clock
        self._start = clock()
        self.started = wall()
        self.width = FIRST_WIDTH                # seconds per bucket
        self.buckets: list[_Bucket] = []
        self.latency = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        self.slowest = 0.0
        self._stats: dict[str, int] | None = None
        self._lock = threading.Lock()

    def watch(self, sender: RecombeeSender) -> CallLog:
        """Time every call of the sender's client from now on, and read its count of retries."""
        client = sender.client
        call = client.batch
        self._stats = sender.stats

        def batch(requests: list[bytes]) -> list[dict[str, Any]]:
            began = self._clock()
            try:
                results = call(requests)
            except Exception as exc:   # noqa: BLE001 - noted, and raised again as it was
                self.record(began, len(requests), failure=failure_kind(exc))
                raise
            self.record(began, len(requests), codes=[result["code"] for result in results])
            return results

        client.batch = batch   # type: ignore[method-assign]  # this client only (an instance attribute)
        return self

    def record(self, began: float, requests: int, *, codes: list[int] | None = None,
               failure: str | None = None) -> None:
        """One call that began at `began` (the clock's time) and ended now."""
        now = self._clock()
        seconds = max(0.0, now - began)
        retries = self._stats.get("retries", 0) if self._stats is not None else 0
        with self._lock:
            index = int(max(0.0, began - self._start) / self.width)
            while index >= BUCKETS:
                self._coarsen()
                index = int(max(0.0, began - self._start) / self.width)
            while len(self.buckets) <= index:
                self.buckets.append(_Bucket())
            bucket = self.buckets[index]
            bucket.calls += 1
            bucket.requests += requests
            bucket.seconds += seconds
            bucket.slowest = max(bucket.slowest, seconds)
            bucket.retries = max(bucket.retries, retries)
            if codes is not None:
                bucket.answers.update(str(code) for code in codes)
            if failure is not None:
                bucket.failed[failure] += 1
            millis = seconds * 1000
            self.latency[sum(1 for bound in LATENCY_BOUNDS_MS if millis > bound)] += 1
            self.slowest = max(self.slowest, seconds)

    def _coarsen(self) -> None:
        merged = []
        for k in range(0, len(self.buckets), 2):
            bucket = self.buckets[k]
            if k + 1 < len(self.buckets):
                bucket.merge(self.buckets[k + 1])
            merged.append(bucket)
        self.buckets = merged
        self.width *= 2

    def percentile(self, share: float) -> int | None:
        """The latency bound (ms) at or under which `share` of the calls took; None: no call, or
        the last, unbounded bucket."""
        total = sum(self.latency)
        if not total:
            return None
        seen = 0
        for k, n in enumerate(self.latency):
            seen += n
            if seen >= share * total:
                return LATENCY_BOUNDS_MS[k] if k < len(LATENCY_BOUNDS_MS) else None
        return None

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            buckets = list(self.buckets)
            codes = sorted({c for b in buckets for c in b.answers}, key=int)
            kinds = sorted({k for b in buckets for k in b.failed})
            retries, before = [], 0
            for bucket in buckets:   # the sender's running count, as retries per bucket
                now = max(before, bucket.retries)
                retries.append(now - before)
                before = now
            return {
                "started": round(self.started, 3),
                "bucket_seconds": self.width,
                "calls": [b.calls for b in buckets],
                "requests": [b.requests for b in buckets],
                "answers": {code: [b.answers.get(code, 0) for b in buckets] for code in codes},
                "failed_calls": {kind: [b.failed.get(kind, 0) for b in buckets] for kind in kinds},
                "retries": retries,
                "latency_mean_ms": [round(1000 * b.seconds / b.calls, 1) if b.calls else None for b in buckets],
                "latency_max_ms": [round(1000 * b.slowest, 1) if b.calls else None for b in buckets],
                "latency_histogram_ms": {"bounds": list(LATENCY_BOUNDS_MS), "calls": list(self.latency)},
                "latency_ms": {"p50_at_most": self.percentile(0.5), "p90_at_most": self.percentile(0.9),
                               "p99_at_most": self.percentile(0.99), "max": round(1000 * self.slowest, 1)},
            }
