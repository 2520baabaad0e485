"""The replay pipeline, top to bottom: read -> decode -> trigger/map/build -> sink -> record.

`run()` owns the accounting: every line read ends in exactly one outcome per event it holds,
and the counts add up to the events read (a test checks it). The engine translates; the sink
answers; `record.recorder` turns answers into outcomes; the state's checkpoints follow.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from recombee_cli.errors import RecombeeCliError
from recombee_cli.mapping.translate import NO_HOUR, BlockResult, Translator
from recombee_cli.outcomes import (
    failure_reason,
    refused_for_good,
    transient,
)
from recombee_cli.pipeline.engines import Engine, InlineEngine, Reading, Translated
from recombee_cli.pipeline.values import apply_property_gate
from recombee_cli.record.recorder import Recorder
from recombee_cli.record.report import MappingStats, RunReport, bounded_add
from recombee_cli.segment.properties import PropertyGate
from recombee_cli.sinks.protocol import ChunkTicket, Sink, Ticket
from recombee_cli.sources.reader import Block, ReadProgress, Source

if TYPE_CHECKING:
    from recombee_cli.record.checkpoints import Checkpoints



class Observer(Protocol):
    """What the pipeline tells the outside world while it runs (progress bars, logs)."""

    def source_started(self, source: Source) -> None: ...
    def progress(self, report: RunReport, raw_bytes_done: int) -> None: ...


class _Silent:
    def source_started(self, source: Source) -> None:
        pass

    def progress(self, report: RunReport, raw_bytes_done: int) -> None:
        pass


def _events_with(ticket: Ticket, which: set[int]) -> int:
    """How many of a ticket's events own one of the requests `which`."""
    if not isinstance(ticket, ChunkTicket):
        return 1
    spans = ticket.spans
    return sum(1 for k in range(len(spans) // 4) if any(r in which for r in range(spans[4 * k + 2], spans[4 * k + 3])))


def _undelivered(ticket: Ticket) -> tuple[int, str] | None:
    """(events, why) when requests of a ticket were not delivered for a reason that may pass (no
    usable answer, 429 or 5xx after the retries): its file stays pending, the next run sends them."""
    codes = ticket.codes
    if codes.count(200) == len(codes):
        return None
    # Recombee's answers only: a file sink's verdicts (negative codes) are final.
    lost = {k for k, code in enumerate(codes) if code > 0 and transient(code)}
    if not lost:
        return None
    first = min(lost)
    return _events_with(ticket, lost), failure_reason(codes[first], ticket.messages[first])


def _refused_events(ticket: Ticket) -> int:
    """Events with a request Recombee refused for good (a 4xx no retry changes): final answers."""
    codes = ticket.codes
    if codes.count(200) == len(codes):
        return 0
    refused = {k for k, code in enumerate(codes) if refused_for_good(code)}
    return _events_with(ticket, refused) if refused else 0


STREAMING_GC_THRESHOLD = 100_000


@contextmanager
def collector_for_streaming() -> Iterator[None]:
    """Tune the cyclic garbage collector for a long replay. Process-wide, so a session (and the
    export command) turns it on around the run only and puts the thresholds back after. A replay
    makes no reference cycles worth collecting, but while sending it keeps thousands of requests
    alive in the send queue, which the default thresholds walked through hundreds of times: 0.6 s
    of a 4.8 s run (200k events). Objects made before the run (config,
    compiled mappings, modules) are frozen out of the collector's walks, and it runs after
    100,000 net allocations instead of 700; about 60 collections per 200k events instead of 800.

    No collection before the freeze: it walked every object of the process to find the little
    garbage a start-up leaves (11 ms in a fresh CLI process; 270 ms a run in the test suite's
    process, 30 % of the suite). What garbage there is stays frozen for the run and is collected
    after it, when this unfreezes."""
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.freeze()
    gc.set_threshold(STREAMING_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if not frozen:   # unfreezing is all or nothing: leave a caller's own freeze alone
            gc.unfreeze()


def run(sources: Iterable[Source], translator: Translator, sink: Sink, *, engine: Engine | None = None,
        recorder: Recorder | None = None, checkpoints: Checkpoints | None = None,
        observer: Observer | None = None, reading: Reading | None = None) -> RunReport:
    """Replay `sources` into `sink`, translating chunks of lines by `engine`: in this process
    (None: an engines.InlineEngine of `translator`, without --since/--until or --dedupe), in
    worker processes (parallel.TranslatorPool) or on a Dask cluster (cluster.DaskEngine), which
    bring their own translator and filter, made from the same configuration. The results, their
    order and every count are the same whatever the engine: accounting, checkpoints and the sink
    stay in this process, fed in input order. `recorder` counts into its report and writes its
    rejects (None: a report of its own, no rejects); `checkpoints` records progress in a state;
    `reading` says how sources are read (chunk size, longest line, warnings)."""
    replay = _Replay(translator, sink, recorder or Recorder(RunReport(), None), checkpoints, observer or _Silent())
    return replay.run(sources, engine or InlineEngine(translator), reading or Reading())


class _Replay:
    """One run of the loop: each chunk an engine gives back is accounted for (its counts, its
    invalid events, its requests to the sink), and each ticket the sink hands back finished
    (outcomes, rejects, checkpoints), in input order."""

    def __init__(self, translator: Translator, sink: Sink, recorder: Recorder, checkpoints: Checkpoints | None,
                 observer: Observer) -> None:
        self.sink = sink
        self.recorder = recorder
        self.report = report = recorder.report
        self.checkpoints = checkpoints
        self.observer = observer
        self.progress = ReadProgress()
        for mapping in translator.mappings:
            report.mappings.setdefault(mapping.name, MappingStats())
        self.gate = PropertyGate(translator.property_types, translator.database_types) \
            if translator.sets_values else None

    def run(self, sources: Iterable[Source], engine: Engine, reading: Reading) -> RunReport:
        report, checkpoints, sink, progress = self.report, self.checkpoints, self.sink, self.progress
        reading.routes = sink.lane_count > 0
        reading.progress = progress
        results: Iterator[Translated]
        try:
            for source, results in engine.translate(self._to_read(sources), reading):
                report.sources += 1
                self.observer.source_started(source)
                if self.recorder.rejects is not None:
                    self.recorder.rejects.source_started(source)
                for block, result in results:
                    self._account(source, block, result)
                    report.foreign.block(result)
                report.foreign.source_done(source)
                if checkpoints is not None:
                    checkpoints.source_read(source.name)
                progress.finish_source(source.size)
            self._finish(sink.close())
        except BaseException as exc:
            # Ctrl-C, authentication failure, a crash: what was answered still counts and is saved.
            self._finish(sink.drain())
            if checkpoints is not None:
                checkpoints.stopped("interrupted" if isinstance(exc, KeyboardInterrupt) else f"run aborted: {exc}")
                try:
                    checkpoints.flush()
                except RecombeeCliError as state_exc:   # the state cannot be written: the first error wins
                    checkpoints.warn(str(state_exc))
            report.elapsed = time.monotonic() - report.started
            raise
        if checkpoints is not None:
            checkpoints.flush()
        report.elapsed = time.monotonic() - report.started
        self.observer.progress(report, progress.done)
        return report

    def _to_read(self, sources: Iterable[Source]) -> Iterator[tuple[Source, int]]:
        """The sources still to read and where each starts (the state may skip or resume one)."""
        checkpoints = self.checkpoints
        for source in sources:
            start = 0
            if checkpoints is not None:
                begun = checkpoints.begin(source)
                if begun is None:
                    self.report.skipped_sources += 1
                    continue
                start = begun
            yield source, start

    def _unreadable(self, source: Source, block: Block) -> None:
        """Unreadable stretches of a chunk (`Block.errors`, wherever it was read): counted here,
        never translated."""
        report, recorder, checkpoints = self.report, self.recorder, self.checkpoints
        for position, reason in (block.errors or {}).items():
            report.lines += 1
            report.events += 1
            recorder.invalid(block.line(position), None, reason)
            report.timeline.count(NO_HOUR, "invalid", reason)
            if block.unreadable:   # the machine's fault, not the data's: read it again next run
                report.unreadable_sources += 1
                if checkpoints is not None:
                    checkpoints.unreadable(source.name, block.start_of(position), block.number + position, reason)

    def _account(self, source: Source, block: Block, result: BlockResult) -> None:
        report, checkpoints, sink = self.report, self.checkpoints, self.sink
        if block.errors:
            self._unreadable(source, block)
        if self.gate is not None and result.values:
            apply_property_gate(self.gate, result, sink, report, block, self.recorder.rejects)
        report.lines += block.count - result.blank
        report.events += result.events
        outcomes = report.outcomes
        outcomes["filtered"] += result.filtered
        for name, count in result.unmatched.items():
            outcomes["unmatched"] += count
            bounded_add(report.unmatched, name, count)
        stats = report.mappings
        for name, (matched, built) in result.mappings.items():
            stats[name].matched += matched
            stats[name].built += built
        if result.mapping_errors:   # counted once per distinct failure (a chunk repeats a few)
            for (name, reason), n in Counter(result.mapping_errors).items():
                bounded_add(stats[name].invalid, reason, n)
        if result.invalid:
            self.recorder.invalid_of(block, result.invalid)
        report.timeline.block(source.name, result)
        if result.requests:   # the serialised requests, joined by newlines
            ticket = ChunkTicket(block, result.requests, result.spans, result.event_errors, result.routes or None)
            report.timeline.submitted(ticket, result)
            if checkpoints is not None:
                checkpoints.submitted(source.name, block.offset, block.number, block.number + block.count - 1)
                if result.routes:   # a resumed file: what an earlier run had answered is not sent again
                    before = checkpoints.answered_before(source.name, block.number, result.routes)
                    if before is not None:
                        ticket.codes, ticket.messages = before, [None] * len(before)
                        report.extra["answered_before"] = report.extra.get("answered_before", 0) + \
                            len(before) - before.count(0)
            sink.submit(ticket)
        self._finish(sink.poll())
        if checkpoints is not None:
            checkpoints.read_past(source.name, block.end(), block.number + block.count)
            checkpoints.maybe_flush()
        self.observer.progress(report, self.progress.done)

    def _finish(self, tickets: list[Ticket]) -> None:
        checkpoints = self.checkpoints
        for ticket in tickets:
            self.recorder.finished(ticket)
            if checkpoints is not None and 0 not in ticket.codes:
                undelivered = _undelivered(ticket)
                if undelivered is None:
                    checkpoints.answered(ticket.source, ticket.offset)
                else:   # not delivered: the file stays pending and the next run sends it again
                    checkpoints.failed(ticket.source, ticket.offset, *undelivered)
                refused = _refused_events(ticket)
                if refused:   # final: in the rejects, counted for `status`
                    checkpoints.refused(ticket.source, refused)
