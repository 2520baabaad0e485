"""The sender's circuit breaker: when Recombee cannot be reached, or refuses every call, stop the run.

Retrying each Batch 8 times only delays the inevitable by minutes when nothing works. The circuit
counts, across lanes, Batch calls in a row that got no HTTP answer (refused, DNS, TLS, timeouts,
the call's deadline, broken connections; any HTTP answer resets that count), and Batch calls in a
row that Recombee refused whole (5xx, 429: a throttled run gets Batch answers in between, which
reset both counts).
When `Breaker.calls` calls in a row got no answer, or were refused, and the first of them is at
least `Breaker.seconds` old (or a Batch has used all its attempts), the run stops with
`UnreachableError` (exit 3) carrying the true reason. On a refused port that is about 10-20 s
(BREAKER_SECONDS plus the backoff a lane was in), where 8 attempts of every Batch took minutes; a
Recombee answering 503 to everything stops the run as quickly (it took 595 s and ended in `failed`
events). Requests not answered stay unanswered (code 0): nothing is recorded, the file stays pending.
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
    unreached: bool = True   # a Batch that used all its attempts before any call got through opens it too


class _Count:
    """Calls in a row of one kind, and since when (time.monotonic())."""

    __slots__ = ("calls", "since")

    def __init__(self) -> None:
        self.calls = 0
        self.since = 0.0


class Circuit:
    """The counts of calls in a row without an HTTP answer, and refused whole, shared by every
    lane of a sender."""

    def __init__(self, breaker: Breaker):
        self.breaker = breaker
        self._lock = threading.Lock()
        self._silent = _Count()     # calls in a row that got no HTTP answer
        self._refused = _Count()    # calls in a row refused whole (5xx, 429)
        self._ever = False          # any call of the run got an HTTP answer

    def _add(self, count: _Count, exhausted: bool, ever: bool) -> tuple[int, float] | None:
        """Count a call; (calls, seconds) when the breaker opens: enough calls in a row, for long
        enough or with a Batch's attempts used up; or a Batch's attempts used up before any call
        of the run went through (a short run never reaches `Breaker.calls`)."""
        now = time.monotonic()
        with self._lock:
            if not count.calls:
                count.since = now
            count.calls += 1
            calls, since = count.calls, count.since
        if (calls >= self.breaker.calls and (exhausted or now - since >= self.breaker.seconds)) or \
                (exhausted and not ever and self.breaker.unreached):
            return calls, now - since
        return None

    def no_answer(self, reason: str, exhausted: bool) -> None:
        """A call got no HTTP answer: open the circuit breaker (raise UnreachableError) when too
        many in a row did, for long enough or for all the attempts of a Batch (a short run must
        not end in `failed` events for a server that was never reached)."""
        opened = self._add(self._silent, exhausted, self._ever)
        if opened is not None:
            raise UnreachableError(f"{reason} (no answer to {opened[0]} Batch calls in a row over "
                                   f"{opened[1]:.0f} s; stopped)")

    def refused(self, reason: str, exhausted: bool) -> None:
        """Recombee refused a whole call (5xx, 429): open the breaker when it keeps doing so. Also
        an HTTP answer."""
        self.answered()
        opened = self._add(self._refused, exhausted, True)
        if opened is not None:
            raise UnreachableError(f"Recombee keeps refusing Batch calls: {reason} ({opened[0]} calls in a "
                                   f"row refused over {opened[1]:.0f} s; stopped)")

    def answered(self) -> None:
        """A call got an HTTP answer (whatever it said): Recombee can be reached."""
        self._ever = True
        if self._silent.calls:
            with self._lock:
                self._silent.calls = 0

    def accepted(self) -> None:
        """A call got a Batch answer: Recombee can be reached and takes calls."""
        self.answered()
        if self._refused.calls:
            with self._lock:
                self._refused.calls = 0
