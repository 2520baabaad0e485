"""Checkpoints while a run goes: per file, how far every event has a final answer, and the journal
of what Recombee answered past that point, so that a resumed run sends nothing twice (SPEC §8).

Two records, written by two kinds of threads:

* the **checkpoint** (main thread, every FLUSH_SECONDS): the byte offset and line number before
  which every event has a final answer. It moves past a chunk of lines once every request of it
  has a final answer; a request not delivered (retries ran out, no usable answer) keeps it — and
  the file pending — until a later run delivers it;
* the **journal** (the sender's threads, after every answered Batch call and before the lane goes
  on, through `record`): the places (request_kinds.sid) of the requests Recombee answered for good
  — accepted, or refused with a 4xx no retry can change. A merge or user deletion is recorded
  before any later request of its users is sent (the sender waits for it), so whatever point a run
  is killed at, the journal holds every answered merge with everything answered before it.

A resumed run reads from the checkpoint and does not send again what the journal holds: those
requests are answered at once (409, counted `duplicate`: Recombee has them). As the checkpoint
passes the journal's rows, they are let go; chunks answered whole past a stuck checkpoint (an
earlier chunk waits for a delivery) are kept as ranges of lines, so the journal stays about as
large as what can be in flight.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Callable

from recombee_cli.record.state import AnsweredRow, FileState, StateStore
from recombee_cli.request_kinds import Route, chunk_sid, sid_line
from recombee_cli.sources.reader import Source, display_name

FLUSH_SECONDS = 1.0   # how often checkpoints are written (what the journal does not hold is re-sent)
ANSWERED_BEFORE = 409  # a request an earlier run had answered: Recombee has it (counted `duplicate`)


class _Answered:
    """What an earlier run's journal holds for a file past its checkpoint."""

    __slots__ = ("sids", "starts", "ends", "last")

    def __init__(self, rows: list[AnsweredRow]):
        self.sids: set[int] = set()
        ranges: list[tuple[int, int]] = []
        for first, last, blob in rows:
            if blob is None:
                ranges.append((first, last))
            else:
                places = array("q")
                places.frombytes(blob)
                self.sids.update(places)
        merged = _merge(ranges)
        self.starts = [first for first, _ in merged]
        self.ends = [last for _, last in merged]
        self.last = max([last for _, last, _ in rows], default=0)

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self.starts, self.ends))

    def has(self, place: int) -> bool:
        if place in self.sids:
            return True
        at = bisect_right(self.starts, sid_line(place)) - 1
        return at >= 0 and self.ends[at] >= sid_line(place)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ranges of lines, sorted and joined where they touch."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


class _FileProgress:
    """Chunks of a file with unanswered events (in read order), how far reading has got, and what
    was answered past the checkpoint."""

    __slots__ = ("source", "identity", "pending", "open", "lines", "frontier", "frontier_line", "read_all",
                 "failed", "refused", "reason", "stuck", "beyond", "before")

    def __init__(self, source: Source, identity: str, start: int, line: int):
        self.source = source
        self.identity = identity             # the source's, as read when the run began
        self.pending: deque[int] = deque()   # offsets of chunks not answered yet, in read order
        self.open: dict[int, int] = {}       # chunk offset -> its tickets still unanswered
        self.lines: dict[int, tuple[int, int]] = {}   # chunk offset -> its first and last line
        self.frontier = start                # every line starting before this has been read...
        self.frontier_line = line            # ...and this is the next line's number
        self.read_all = False
        self.failed = 0                      # events of this file not delivered in this run
        self.refused = 0                     # events Recombee refused for good (this run and earlier)
        self.reason: str | None = None       # why the file is not done (the first failure)
        self.stuck: tuple[int, int] | None = None   # where reading failed (I/O): never past it
        self.beyond: list[tuple[int, int]] = []     # lines past the checkpoint answered whole
        self.before: _Answered | None = None        # what an earlier run answered past it

    def checkpoint(self) -> tuple[int, int]:
        """(offset, line) before which every event has a final answer."""
        if self.pending:
            at = self.pending[0]
            point = (at, self.lines[at][0])
        else:
            point = (self.frontier, self.frontier_line)
        return point if self.stuck is None else min(point, self.stuck)

    def done(self) -> bool:
        return self.read_all and not self.pending and self.stuck is None


class Checkpoints:
    """Tracks answered positions while a run goes, and writes them to the state store; its
    `record` is the sender's journal (sinks.protocol.AnswerJournal)."""

    def __init__(self, store: StateStore, *, reprocess: bool = False,
                 warn: Callable[[str], None] = lambda message: None, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.reprocess = reprocess
        self.warn = warn
        self._clock = clock
        self._files: dict[str, _FileProgress] = {}
        self._keys: dict[str, str] = {}      # source name -> its key in the state (the journal's)
        self._last_flush = clock()
        self.skipped = 0
        self.resumed = 0

    def begin(self, source: Source) -> int | None:
        """Where to start reading a source; None to skip it (done before, unchanged)."""
        if source.identity is None:
            return 0   # stdin, a pipe: nothing to resume
        key = source.state_key
        known = self.store.file(key)
        resuming = known is not None and not self.reprocess and known.identity == display_name(source.identity)
        if known is not None and not resuming:
            if not self.reprocess:
                self.warn(f"{display_name(source.name)} changed since it was last read; processing it again "
                          f"from the start")
            self.store.forget_answered(key)
        if resuming and known is not None and known.done:
            self.skipped += 1
            return None
        start, line = (known.offset, known.line) if resuming and known is not None else (0, 1)
        rows = self.store.answered_rows(key, line) if resuming else []
        if not resuming or start == 0:   # its identity is in the state before any journal row of it
            self.store.save_files([FileState(key, source.identity, 0, False, 0.0, line=1,
                                             refused=known.refused if resuming and known else 0)], {})
        progress = self._files[source.name] = _FileProgress(source, source.identity, start, line)
        if resuming and known is not None:
            progress.refused = known.refused
            if start > 0 or rows:
                self.resumed += 1
        if rows:
            progress.before = _Answered(rows)
            progress.beyond = progress.before.ranges()
        self._keys[source.name] = key
        return start

    # -- what the main thread learns --------------------------------------------------------------
    def submitted(self, source: str, offset: int, first_line: int, last_line: int) -> None:
        progress = self._files.get(source)
        if progress is None:
            return
        if offset in progress.open:
            progress.open[offset] += 1
        else:
            progress.open[offset] = 1
            progress.pending.append(offset)
            progress.lines[offset] = (first_line, last_line)

    def answered_before(self, source: str, first_line: int, routes: list[Route]) -> list[int] | None:
        """For a chunk of a resumed file about to be sent: its requests' codes, ANSWERED_BEFORE
        where an earlier run's journal holds them and 0 elsewhere; None when it holds none."""
        progress = self._files.get(source)
        before = progress.before if progress is not None else None
        if before is None:
            return None
        if first_line > before.last:   # read past all of it
            assert progress is not None
            progress.before = None
            return None
        base = chunk_sid(first_line)
        codes = [ANSWERED_BEFORE if place >= 0 and before.has(base + place) else 0 for _, _, _, place, _ in routes]
        return codes if any(codes) else None

    def read_past(self, source: str, end: int, next_line: int) -> None:
        """Every line of `source` before byte `end` (line `next_line`) has been read."""
        progress = self._files.get(source)
        if progress is not None:
            progress.frontier = end
            progress.frontier_line = next_line

    def source_read(self, source: str) -> None:
        progress = self._files.get(source)
        if progress is not None:
            progress.read_all = True

    def answered(self, source: str, offset: int) -> None:
        """Every request of the chunk at `offset` has a final answer."""
        progress = self._files.get(source)
        if progress is None:
            return
        left = progress.open[offset] - 1
        if left:
            progress.open[offset] = left
            return
        del progress.open[offset]
        pending = progress.pending
        if pending[0] != offset:   # past the checkpoint: remembered as a range of answered lines
            progress.beyond = _merge(progress.beyond + [progress.lines[offset]])
        while pending and pending[0] not in progress.open:
            del progress.lines[pending.popleft()]

    def failed(self, source: str, offset: int, events: int, reason: str) -> None:
        """Events of the chunk at `offset` were not delivered (transient: retries ran out, no
        usable answer): it stays open, so the checkpoint never passes it and the file stays
        pending for the next run, which sends what the journal does not hold."""
        progress = self._files.get(source)
        if progress is None:
            return
        progress.failed += events
        if progress.reason is None:
            progress.reason = reason

    def refused(self, source: str, events: int) -> None:
        """Events Recombee refused for good: final (kept in the rejects), counted for `status`."""
        progress = self._files.get(source)
        if progress is not None:
            progress.refused += events

    def unreadable(self, source: str, offset: int, line: int, reason: str) -> None:
        """Reading stopped at `offset` (line `line`) for a reason of the machine's."""
        progress = self._files.get(source)
        if progress is None:
            return
        progress.stuck = (offset, line) if progress.stuck is None else min(progress.stuck, (offset, line))
        progress.reason = progress.reason or reason

    def stopped(self, reason: str) -> None:
        """The run was aborted or interrupted: files not done say why, for `status`."""
        for progress in self._files.values():
            if progress.reason is None and not progress.done():
                progress.reason = reason

    # -- the journal (the sender's threads) --------------------------------------------------------
    def record(self, answered: dict[str, tuple[list[int], int]]) -> None:
        """Record, before this returns, what Recombee answered for good: per source, the places of
        the requests and how many merges or user deletions it applied."""
        rows: list[tuple[str, int, int, bytes]] = []
        solos: dict[str, int] = {}
        for source, (places, applied) in answered.items():
            key = self._keys.get(source)
            if key is None:   # a stream: nothing to resume
                continue
            rows.append((key, sid_line(min(places)), sid_line(max(places)), array("q", places).tobytes()))
            if applied:
                solos[key] = applied
        if rows:
            self.store.record_answered(rows, solos)

    # -- writing ------------------------------------------------------------------------------------
    def maybe_flush(self) -> None:
        if self._clock() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        rows: list[FileState] = []
        prune: dict[str, tuple[int, list[tuple[int, int]]]] = {}
        finished = []
        for name, progress in self._files.items():
            done = progress.done()
            offset, line = progress.checkpoint()
            key = progress.source.state_key
            rows.append(FileState(key, progress.identity, offset, done, 0.0, progress.failed,
                                  None if done else progress.reason, line, progress.refused))
            if done:
                finished.append(name)
            else:
                progress.beyond = [(first, last) for first, last in progress.beyond if last >= line]
                prune[key] = (line, progress.beyond)
        if rows:
            self.store.save_files(rows, prune)
        for name in finished:   # done files need no more tracking
            del self._files[name]
        self._last_flush = self._clock()
