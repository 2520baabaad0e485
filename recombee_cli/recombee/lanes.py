"""How many Batch calls a sender keeps in flight: its lanes.

When Recombee is far away, the lanes bound the speed: 16 lanes of 1,000 requests carry about
100,000 requests a second at 150 ms a call, fewer than two workers translate. So a sender may
start with some lanes and double them (GROW_STEP), up to a most, whenever, over GROW_WINDOW
full Batch calls, every lane had a call in flight and a full Batch waited for one (the lanes are
what the sending waits for). Each step is judged on the GROW_WINDOW full calls made with it: calls
that spend their time on the way take as long with more in flight, calls that wait in a queue at
Recombee's end take longer the more are sent (`queued_at_recombee`). A step of the second kind
only lengthened that queue, and cost this side CPU for the requests that wait behind it: it is
taken back, and no more are taken. So is a step after a call that got no answer or a refusal
(429, 5xx): a Recombee that throttles or fails under load is given fewer calls, not more. Only
full calls answered at their first attempt are timed (a smaller Batch, or a retry, says nothing
about the distance).

The medians of GROW_WINDOW calls compare like with like: a single call's duration on a busy
machine is mostly its thread waiting for Python's lock (docs/behaviour.md, "Order"), which moves
the calls before and after a step alike. While a sender sends, Python hands that lock on after
1 ms instead of 5 (`hand_the_lock_sooner`), which shortens the wait.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time

GROW_WINDOW = 16   # full calls judged at a time
GROW_STEP = 2      # a step multiplies the lanes by this (a far Recombee needs them soon)
MALLOC_ARENAS = 2  # see share_malloc_arenas
_M_ARENA_MAX = -8  # glibc's mallopt parameter
SWITCH_SECONDS = 0.001   # Python's switch interval while lanes send (see hand_the_lock_sooner)


def share_malloc_arenas() -> None:
    """Have the lanes' threads share MALLOC_ARENAS malloc arenas (glibc; elsewhere nothing). glibc
    gives every thread that allocates an arena of its own (up to 8 a core), which keeps what it
    freed; each lane allocates its Batch's body and answer there. A 150 ms replay with 32 lanes
    peaked at 153-156 MB against 113 MB with 16; with two arenas, 132-137 MB against 108."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):   # not glibc (musl has no mallopt): its own allocator's way
        pass


def hand_the_lock_sooner() -> float | None:
    """Make Python hand its lock to a waiting thread after SWITCH_SECONDS instead of its default
    5 ms; returns the interval before (to give back), or None when it was that short already.
    A lane waits for the lock after every socket operation of its call (a send, each read), and
    the thread that feeds the queue holds it while it translates: each wait lasted up to the
    whole interval. Against the local emulator, which answers a call in 4-7 ms, the calls took
    29-42 ms at the median (with the lanes grown to 32), and 9-13 ms with this. In interleaved
    runs on a busy hour, the client-path benchmark's CPU per request (165,000 requests, the
    emulator in another process) went from 4.15-4.46 to 3.19-3.98 us with the default lanes (on a
    quiet hour, about 3.0 either way), and 1 million events ran 5-9 % faster at 0 and 50 ms a
    call in two series (a third, at 0 ms, saw no gain). Process-wide, like the garbage
    collector's tuning for a replay: the sender gives it back when it closes, drains or aborts."""
    before = sys.getswitchinterval()
    if before <= SWITCH_SECONDS:
        return None
    sys.setswitchinterval(SWITCH_SECONDS)
    return before


def give_back_the_lock(before: float | None) -> None:
    """Python's switch interval back to `before`, what `hand_the_lock_sooner` returned (None: it
    changed nothing)."""
    if before is not None:
        sys.setswitchinterval(before)


def sleep_where_signals_reach(seconds: float) -> None:
    """Sleep `seconds`, from Python code (this module is never compiled). The kernel gives a
    signal meant for the process (Ctrl-C, SIGTERM) to any of its threads, and Python runs its
    handler in the main thread at that thread's next Python instruction. The feeding thread's wait
    for room in a full queue is compiled, and calls only C (sleep, count, sleep): when a lane had
    the signal, the run went on waiting until the queue had room, which never came while Recombee
    held its calls (a replay ignored Ctrl-C for as long as the test waited, 60 s). Entering this
    function is such an instruction: the handler runs within one wait."""
    time.sleep(seconds)


def queued_at_recombee(before: float, after: float, lanes_before: int, lanes_after: int) -> bool:
    """Whether calls that took `before` seconds (the median) with `lanes_before` lanes and `after`
    with `lanes_after` waited in a queue at Recombee's end: slower by more than half the lanes
    added, in proportion."""
    return after > before * (1 + 0.5 * (lanes_after - lanes_before) / lanes_before)


class Lanes:
    """`allowed`: how many lanes may have a call in flight; `start` to begin with, at most `most`."""

    def __init__(self, start: int, most: int):
        self.start = start
        self.allowed = start
        self.most = max(start, most)
        self._times: list[float] = []                  # full calls made with `allowed` lanes
        self._step: tuple[int, float] | None = None    # the last step, to judge: (lanes, median) before it
        self._lock = threading.Lock()

    @property
    def judging(self) -> bool:
        """Whether answered calls still count (lanes may be taken, or a step is to be judged)."""
        return self.allowed < self.most or self._step is not None

    def answered(self, seconds: float, lanes: int, *, waited_for: bool) -> int:
        """A full Batch's first call, made while `lanes` lanes were allowed, took `seconds`;
        `waited_for`: every lane has a call in flight and a full Batch waits for one (False also
        stops taking lanes: a closing run). Returns the lanes allowed now."""
        with self._lock:
            if lanes != self.allowed:
                return self.allowed   # (made before the last step)
            times = self._times
            times.append(seconds)
            if len(times) < GROW_WINDOW:
                return lanes
            median = sorted(times)[len(times) // 2]
            times.clear()
            if self._step is not None:
                before, then = self._step
                self._step = None
                if queued_at_recombee(then, median, before, lanes):
                    self.allowed = self.most = before
                    return before
            if waited_for and lanes < self.most:
                self._step = (lanes, median)
                self.allowed = min(self.most, lanes * GROW_STEP)
            return self.allowed

    def refused(self) -> int:
        """A whole call got no answer, or a 429 or 5xx: one step back, half the lanes (never below
        `start`), and no more steps this run. Returns the lanes allowed now."""
        with self._lock:
            self.allowed = self.most = max(self.start, self.allowed // GROW_STEP)
            self._times.clear()
            self._step = None
            return self.allowed
