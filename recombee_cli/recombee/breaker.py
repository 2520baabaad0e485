"""The sender's circuit breaker: when Recombee cannot be reached at all, stop the run.

Retrying each Batch 8 times only delays the inevitable by minutes when nothing answers. The
circuit counts Batch calls that got no HTTP answer (refused, DNS, TLS, timeouts, the call's
deadline, broken connections) in a row, across lanes; any answer (even a 5xx) resets the count.
When `Breaker.calls` calls in a row got none and the first of them is at least `Breaker.seconds`
old (or a Batch has used all its attempts), the run stops with `UnreachableError` (exit 3) carrying
the true reason. On a refused port that is about 10-20 s (BREAKER_SECONDS plus the backoff a lane
was in), where 8 attempts of every Batch took minutes. Requests not answered stay unanswered
(code 0): nothing is recorded, the checkpoint stays before.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from recombee_cli.errors import UnreachableError

__all__ = ["BREAKER_CALLS", "BREAKER_SECONDS", "Breaker", "Circuit"]

BREAKER_CALLS = 6           # calls in a row without an HTTP answer...
BREAKER_SECONDS = 10.0      # ...the first of them at least this old: stop the run


@dataclass(frozen=True)
class Breaker:
    """When to give up on reaching Recombee at all (see the module docstring)."""

    calls: int = BREAKER_CALLS
    seconds: float = BREAKER_SECONDS


class Circuit:
    """The count of calls in a row without an HTTP answer, shared by every lane of a sender."""

    def __init__(self, breaker: Breaker):
        self.breaker = breaker
        self._lock = threading.Lock()
        self._silent_calls = 0                 # calls in a row that got no HTTP answer...
        self._silent_since = 0.0               # ...since the first of them (time.monotonic())

    def no_answer(self, reason: str, exhausted: bool) -> None:
        """A call got no HTTP answer: open the circuit breaker (raise UnreachableError) when too
        many in a row did, for long enough or for all the attempts of a Batch (a short run must
        not end in `failed` events for a server that was never reached)."""
        now = time.monotonic()
        with self._lock:
            if not self._silent_calls:
                self._silent_since = now
            self._silent_calls += 1
            calls, since = self._silent_calls, self._silent_since
        if calls >= self.breaker.calls and (exhausted or now - since >= self.breaker.seconds):
            raise UnreachableError(f"{reason} (no answer to {calls} Batch calls in a row over "
                                   f"{now - since:.0f} s; stopped)")

    def answered(self) -> None:
        """A call got an HTTP answer (whatever it said): Recombee can be reached."""
        if self._silent_calls:
            with self._lock:
                self._silent_calls = 0
