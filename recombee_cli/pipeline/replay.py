"""The replay pipeline, top to bottom: read -> decode -> trigger/map/build -> sink -> record.

`run()` owns the accounting: every line read ends in exactly one outcome per event it holds,
and the counts add up to the events read (a test checks it).
"""

from __future__ import annotations

import gc
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from recombee_cli.errors import RecombeeCliError
from recombee_cli.mapping.translate import NO_HOUR, BlockResult, EventFilter, Seen, Translator
from recombee_cli.outcomes import (
    DEFAULT_FAIL_ON,
    OUTCOMES,
    answered_outcome,
    failure_reason,
    mapping_error,
    refused_for_good,
    request_outcome,
    transient,
)
from recombee_cli.pipeline.engines import Engine, InlineTranslator, Reading, Translated
from recombee_cli.pipeline.foreign import ForeignSources
from recombee_cli.pipeline.reasons import ReasonCounter
from recombee_cli.pipeline.timeline import Timeline
from recombee_cli.record.rejects import RejectsWriter
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.segment.properties import ENTITY_NOUN, PropertyGate
from recombee_cli.sinks.protocol import ChunkTicket, EventTicket, Sink, Ticket
from recombee_cli.sources.decode import decode
from recombee_cli.sources.reader import DEFAULT_MAX_LINE_BYTES, Block, Line, ReadProgress, Source, pieces, read_blocks

if TYPE_CHECKING:
    from recombee_cli.record.checkpoints import Checkpoints

CHUNK_LINES = 2000    # lines translated, sent and acknowledged together (a sender's: about a Batch)
_REASON_LIMIT = 200   # distinct reasons kept per counter; the rest are summed under "other"


class Observer(Protocol):
    """What the pipeline tells the outside world while it runs (progress bars, logs)."""

    def source_started(self, source: Source) -> None: ...
    def progress(self, report: RunReport, raw_bytes_done: int) -> None: ...


class _Silent:
    def source_started(self, source: Source) -> None:
        pass

    def progress(self, report: RunReport, raw_bytes_done: int) -> None:
        pass


def _bounded_add(counter: Counter[str], key: str, n: int = 1) -> None:
    if isinstance(counter, ReasonCounter):   # reasons: also counted by kind (pipeline.reasons)
        counter.add(key, n)
    elif key in counter or len(counter) < _REASON_LIMIT:
        counter[key] += n
    else:
        counter["(other reasons)"] += n


@dataclass
class MappingStats:
    matched: int = 0
    built: int = 0
    invalid: ReasonCounter = field(default_factory=ReasonCounter)


@dataclass
class RunReport:
    dry_run: bool = False
    sources: int = 0
    skipped_sources: int = 0     # already done in an earlier run (state)
    unreadable_sources: int = 0  # could not be opened or read to the end: left pending
    lines: int = 0
    events: int = 0
    outcomes: Counter[str] = field(default_factory=lambda: Counter({k: 0 for k in OUTCOMES}))
    requests: Counter[str] = field(default_factory=lambda: Counter({"sent": 0, "duplicate": 0, "failed": 0}))
    unmatched: Counter[str] = field(default_factory=Counter)
    invalid_reasons: ReasonCounter = field(default_factory=ReasonCounter)   # also by kind (pipeline.reasons)
    failed_reasons: ReasonCounter = field(default_factory=ReasonCounter)
    filtered_reasons: ReasonCounter = field(default_factory=ReasonCounter)   # a sink's (export: not representable)
    mappings: dict[str, MappingStats] = field(default_factory=dict)
    foreign: ForeignSources = field(default_factory=ForeignSources)   # sources with no Segment event
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)   # sink figures: retries, batches, bytes sent...
    fail_on: tuple[str, ...] = DEFAULT_FAIL_ON  # outcomes that make a run unsuccessful (--fail-on)
    timeline: Timeline = field(default_factory=Timeline)   # the same per day and hour (pipeline.timeline)

    @property
    def ok(self) -> bool:
        """No event ended in a `fail_on` outcome, and every input could be read: an unreadable
        file is the machine's problem, which no outcome setting should hide."""
        return self.unreadable_sources == 0 and not any(self.outcomes[k] for k in self.fail_on)

    def to_dict(self) -> dict[str, Any]:
        events_per_s = self.events / self.elapsed if self.elapsed else 0.0
        return {
            "dry_run": self.dry_run,
            "sources": self.sources,
            "skipped_sources": self.skipped_sources,
            "unreadable_sources": self.unreadable_sources,
            "lines": self.lines,
            "events": self.events,
            "outcomes": dict(self.outcomes),
            "requests": dict(self.requests),
            "unmatched_top": dict(self.unmatched.most_common(20)),
            "invalid_reasons": dict(self.invalid_reasons.most_common(50)),
            "failed_reasons": dict(self.failed_reasons.most_common(50)),
            "filtered_reasons": dict(self.filtered_reasons.most_common(50)),
            # the same by kind (values taken out): count, share of the outcome, two examples each
            "invalid_reason_kinds": self.invalid_reasons.by_kind(50),
            "failed_reason_kinds": self.failed_reasons.by_kind(50),
            "filtered_reason_kinds": self.filtered_reasons.by_kind(50),
            "mappings": {name: {"matched": s.matched, "built": s.built, "invalid": dict(s.invalid),
                                "invalid_kinds": s.invalid.by_kind(20)}
                         for name, s in self.mappings.items()},
            "not_segment_sources": self.foreign.to_dict(),
            "elapsed_seconds": round(self.elapsed, 3),
            "events_per_second": round(events_per_s, 1),
            **self.extra,
            "timeline": self.timeline.to_dict(),
        }


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


def _event_at(line: Line, index: int) -> dict[str, Any] | None:
    """The event a line holds at `index`, decoded again (parallel runs keep no event objects)."""
    if not line.data:
        return None
    items = decode(line.data)
    event = items[index] if index < len(items) else None
    return event if isinstance(event, dict) else None


SENT: tuple[str, None] = ("sent", None)   # what Recorder._finished_event says of an event simply sent


class Recorder:
    """Turns finished events into counts and rejects records (single-threaded)."""

    def __init__(self, report: RunReport, rejects: RejectsWriter | None,
                 on_done: Callable[[EventTicket, str], None] | None = None):
        self.report = report
        self.rejects = rejects
        self.on_done = on_done

    def invalid(self, line: Line, event: dict[str, Any] | None, reason: str, mapping: str | None = None,
                index: int = 0, decodable: bool = False) -> None:
        text = self._count_invalid(reason, mapping)
        if self.rejects is not None:
            if event is None and decodable:
                event = _event_at(line, index)
            self.rejects.write(line, event, "invalid", text, mapping=mapping, index=index)

    def invalid_in(self, block: Block, position: int, reason: str, mapping: str | None = None,
                   index: int = 0) -> None:
        """An invalid event of a block's line; the Line is made only for the rejects file."""
        if self.rejects is None:
            self._count_invalid(reason, mapping)
        else:
            self.invalid(block.line(position), None, reason, mapping, index, decodable=mapping is not None)

    def _count_invalid(self, reason: str, mapping: str | None) -> str:
        self.report.outcomes["invalid"] += 1
        text = mapping_error(mapping, reason) if mapping else reason
        _bounded_add(self.report.invalid_reasons, text)
        return text

    def finished(self, ticket: Ticket) -> None:
        """Count a ticket's events. After an abort a ticket may be partly answered (code 0): its
        events with an unanswered request are not counted at all — nothing is reported as sent
        that was not."""
        if isinstance(ticket, ChunkTicket):
            self._finished_chunk(ticket)
        elif isinstance(ticket, EventTicket):
            done = self._finished_event(ticket)
            if done is not None:   # an event handed in alone: its time is not known here
                self.report.timeline.count(NO_HOUR, *done)
        else:
            raise TypeError(f"not a ticket the pipeline made: {type(ticket).__name__}")

    def _finished_chunk(self, ticket: ChunkTicket) -> None:
        """One outcome per event of the chunk."""
        report = self.report
        codes = ticket.codes
        spans = ticket.spans
        if codes.count(200) == len(codes) and not ticket.event_errors:
            report.requests["sent"] += len(codes)
            report.outcomes["sent"] += len(spans) // 4
            report.timeline.all_sent(ticket)
            return
        block, requests, event_errors, messages = ticket.block, ticket.requests, ticket.event_errors, ticket.messages
        others: list[tuple[int, tuple[str, str | None] | None]] = []   # events not simply sent (timeline)
        for k in range(len(spans) // 4):
            number, index, first, end = spans[4 * k:4 * k + 4]
            errors = event_errors.get(k)
            done = self._finished_event(EventTicket(block.line(number), None, requests[first:end],
                                                    [(e[0], e[1]) for e in errors] if errors else None, index,
                                                    codes=codes[first:end], messages=messages[first:end]))
            if done is not SENT:
                others.append((k, done))
        report.timeline.finished(ticket, others)

    def _finished_event(self, ticket: EventTicket) -> tuple[str, str | None] | None:
        """Count one event's outcome; returns it with its reason (None: not answered, not counted)."""
        report = self.report
        codes = ticket.codes
        if 0 in codes:
            return None
        if not ticket.errors and codes.count(200) == len(codes):   # the common case, quickly
            report.requests["sent"] += len(codes)
            report.outcomes["sent"] += 1
            if self.on_done is not None:
                self.on_done(ticket, "sent")
            return SENT
        for code in codes:
            report.requests[request_outcome(code)] += 1
        outcome, reason, status = answered_outcome(codes, ticket.messages, ticket.errors)
        said = reason
        report.outcomes[outcome] += 1
        if outcome == "invalid":
            _bounded_add(report.invalid_reasons, reason or "")
        elif outcome == "failed":
            _bounded_add(report.failed_reasons, reason or "")
        elif outcome == "filtered":
            _bounded_add(report.filtered_reasons, reason or "")
            reason = None   # not a reject: the run chose not to express it
        if reason and self.rejects is not None:
            event = ticket.event if ticket.event is not None else _event_at(ticket.line, ticket.index)
            self.rejects.write(ticket.line, event, outcome, reason, status=status, index=ticket.index)
        if self.on_done is not None:
            self.on_done(ticket, outcome)
        return outcome, said


STREAMING_GC_THRESHOLD = 100_000


@contextmanager
def collector_for_streaming() -> Iterator[None]:
    """Tune the cyclic garbage collector for a long replay. Process-wide, so a session (and the
    export command) turns it on around the run only and puts the thresholds back after. A replay
    makes no reference cycles worth collecting, but while sending it keeps thousands of requests
    alive in the send queue, which the default thresholds walked through hundreds of times: 0.6 s
    of a 4.8 s run (200k events). Objects made before the run (config,
    compiled mappings, modules) are frozen out of the collector's walks, and it runs after
    100,000 net allocations instead of 700; about 60 collections per 200k events instead of 800."""
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.collect()
    gc.freeze()
    gc.set_threshold(STREAMING_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if not frozen:   # unfreezing is all or nothing: leave a caller's own freeze alone
            gc.unfreeze()


def _short(value: Any) -> Any:
    """A dropped value as an example in the report: long strings and lists cut short."""
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    if isinstance(value, list) and len(value) > 5:
        return [_short(v) for v in value[:5]] + ["..."]
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value


def _owner(spans: array[int], request: int) -> tuple[int, int]:
    """(line position in the block, index in the line) of the event that owns a request."""
    for k in range(0, len(spans), 4):
        if spans[k + 2] <= request < spans[k + 3]:
            return spans[k], spans[k + 1]
    raise ValueError(f"no event owns request {request}")


def apply_property_gate(gate: PropertyGate, result: BlockResult, sink: Sink, report: RunReport,
                        block: Block | None = None, rejects: RejectsWriter | None = None) -> None:
    """The main process's part of users' and items' values, per chunk and in input order: each
    value request's types are checked against the run's property types (PropertyGate); a value
    that cannot be sent (the builder's checks, or one that does not fit its property's type) is
    taken out of its request alone, said once per property in the report (`dropped_values`:
    count, reason, an example) and written to the rejects file with its field; nulls of
    properties not known yet are left out; and the definitions of properties seen for the first
    time go to the sink *before* the chunk (the sender sends them and waits for their answers;
    the dry-run printer prints them first). Workers only describe the values; deciding here keeps
    the result independent of --workers. Changes `result` in place."""
    leave: dict[int, list[str]] = {}
    drops: list[tuple[int, str, str, str, str, Any, str]] = []   # request, mapping, entity, field, name, value, why
    definitions: list[dict[str, Any]] = []
    for index, mapping, entity, described, notes in result.values:
        renamed = prefix = None
        if notes:
            renamed = notes.get("renamed")
            prefix = notes.get("field")
            for field_path, name, reason, value in notes.get("dropped", ()):
                drops.append((index, mapping, entity, field_path, name, value, reason))
        dropped, names, new = gate.check(entity, described, renamed)
        if names:
            leave[index] = names
        for name, reason in dropped:
            where = (renamed or {}).get(name, name)
            drops.append((index, mapping, entity, f"{prefix or 'values'}.{where}", name, None, reason))
        definitions.extend(new)
    if definitions:
        extra = report.extra
        counted = extra.get("property_definitions")
        extra["property_definitions"] = (counted or 0) + len(definitions)   # (counted even if sending them fails)
        problems = sink.define(definitions)
        if problems is None:   # the sink has no use for them (a file export): not counted
            if counted is None:
                del extra["property_definitions"]
            else:
                extra["property_definitions"] = counted
        else:
            for problem in problems:
                _bounded_add(extra.setdefault("property_definitions_failed", Counter()), problem)
    if not leave and not drops:
        return
    parts = result.requests.split(b"\n")
    taken: dict[int, dict[str, Any]] = {}
    for index, names in leave.items():
        request = orjson.loads(parts[index])
        taken[index] = {name: request["params"].pop(name, None) for name in names}
        parts[index] = orjson.dumps(request, default=orjson_default)
    result.requests = b"\n".join(parts)
    _record_drops(drops, taken, result, report, block, rejects)


def _record_drops(drops: list[tuple[int, str, str, str, str, Any, str]], taken: dict[int, dict[str, Any]],
                  result: BlockResult, report: RunReport, block: Block | None, rejects: RejectsWriter | None) -> None:
    """Each dropped value: counted per property in the report (the first reason and example kept)
    and written to the rejects file with its field (the event's other values were sent)."""
    if not drops:
        return
    extra = report.extra
    extra["values_dropped"] = extra.get("values_dropped", 0) + len(drops)
    table: dict[str, dict[str, Any]] = extra.setdefault("dropped_values", {})
    for index, mapping, entity, field_path, name, value, reason in drops:
        if value is None:
            value = taken.get(index, {}).get(name)
        number, position = _owner(result.spans, index)
        line = block.line(number) if block is not None else None
        key = f"{ENTITY_NOUN[entity]} property {name!r}"
        entry = table.get(key)
        if entry is None:
            if len(table) >= _REASON_LIMIT:
                key = "(other properties)"
                entry = table.get(key)
            if entry is None:
                entry = table[key] = {"count": 0, "reason": reason, "example": {
                    "value": _short(value), "field": field_path, "mapping": mapping,
                    **({"source": line.source, "line": line.number} if line is not None else {})}}
        entry["count"] += 1
        if rejects is not None and line is not None:
            rejects.write(line, _event_at(line, position), "invalid", f"value dropped: {reason}", mapping=mapping,
                          index=position, field=field_path)


def run(sources: Iterable[Source], translator: Translator, sink: Sink, *, engine: Engine | None = None,
        window_filter: EventFilter | None = None, dedupe: Seen | None = None,
        rejects: RejectsWriter | None = None, observer: Observer | None = None, dry_run: bool = False,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, recorder: Recorder | None = None,
        checkpoints: Checkpoints | None = None, chunk_lines: int = CHUNK_LINES,
        warn: Callable[[str], None] | None = None) -> RunReport:
    """Replay `sources` into `sink`, translating chunks of lines by `engine`: in this process
    (None: an engines.InlineTranslator of `translator`, with `window_filter` and `dedupe`), in
    worker processes (parallel.TranslatorPool) or on a Dask cluster (cluster.DaskEngine), which
    bring their own translator and filter, made from the same configuration. The results, their
    order and every count are the same whatever the engine: accounting, checkpoints and the sink
    stay in this process, fed in input order.

    A chunk is acknowledged as a whole, so `chunk_lines` is also how much a crash can make a run
    send again; senders use about one Batch's worth."""
    if engine is None:
        engine = InlineTranslator(translator, window_filter=window_filter, dedupe=dedupe)
    elif dedupe is not None:
        raise ValueError("--dedupe needs every event in input order: give it to an in-process engine")
    report = recorder.report if recorder else RunReport(dry_run=dry_run)
    recorder = recorder or Recorder(report, rejects)
    observer = observer or _Silent()
    progress = ReadProgress()
    stats = report.mappings
    for mapping in translator.mappings:
        stats.setdefault(mapping.name, MappingStats())
    submit = sink.submit
    outcomes = report.outcomes
    unmatched = report.unmatched
    gate = PropertyGate(translator.property_types, translator.database_types) if translator.sets_values else None

    def finish(tickets: list[Ticket]) -> None:
        for ticket in tickets:
            recorder.finished(ticket)
            if checkpoints is not None and 0 not in ticket.codes:
                undelivered = _undelivered(ticket)
                if undelivered is None:
                    checkpoints.answered(ticket.source, ticket.offset)
                else:   # not delivered: the file stays pending and the next run sends it again
                    checkpoints.failed(ticket.source, ticket.offset, *undelivered)
                refused = _refused_events(ticket)
                if refused:   # final: in the rejects, counted for `status`
                    checkpoints.refused(ticket.source, refused)

    def count_errors(source: Source, block: Block) -> None:
        """Unreadable stretches of a block: counted here, never translated."""
        for position, reason in (block.errors or {}).items():
            report.lines += 1
            report.events += 1
            recorder.invalid(block.line(position), None, reason)
            report.timeline.count(NO_HOUR, "invalid", reason)
            if block.unreadable:   # the machine's fault, not the data's: read it again next run
                report.unreadable_sources += 1
                if checkpoints is not None:
                    checkpoints.unreadable(source.name, block.start_of(position), block.number + position, reason)

    def read(source: Source, start: int, *, split: bool) -> Iterator[Block]:
        for block in read_blocks(source, max_line_bytes=max_line_bytes, start_offset=start, progress=progress,
                                 split=split, warn=warn):
            if block.errors:
                count_errors(source, block)
            yield from pieces(block, chunk_lines)

    def to_read() -> Iterator[tuple[Source, int]]:
        """The sources still to read and where each starts (the state may skip or resume one)."""
        for source in sources:
            start = 0
            if checkpoints is not None:
                begun = checkpoints.begin(source)
                if begun is None:
                    report.skipped_sources += 1
                    continue
                start = begun
            yield source, start

    reading = Reading(chunk_lines=chunk_lines, max_line_bytes=max_line_bytes, routes=sink.lane_count > 0,
                      warn=warn, read=read, read_elsewhere=count_errors, progress=progress)

    def account(source: Source, block: Block, result: BlockResult) -> None:
        if gate is not None and result.values:
            apply_property_gate(gate, result, sink, report, block, recorder.rejects)
        report.lines += block.count - result.blank
        report.events += result.events
        outcomes["filtered"] += result.filtered
        for name, count in result.unmatched.items():
            outcomes["unmatched"] += count
            _bounded_add(unmatched, name, count)
        for name, (matched, built) in result.mappings.items():
            stats[name].matched += matched
            stats[name].built += built
        for name, reason in result.mapping_errors:
            _bounded_add(stats[name].invalid, reason)
        for number, index, reason, mapping in result.invalid:
            recorder.invalid_in(block, number, reason, mapping, index)
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
            submit(ticket)
        finish(sink.poll())
        if checkpoints is not None:
            checkpoints.read_past(source.name, block.end(), block.number + block.count)
            checkpoints.maybe_flush()
        observer.progress(report, progress.done)

    results: Iterator[Translated]
    try:
        for source, results in engine.translate(to_read(), reading):
            report.sources += 1
            observer.source_started(source)
            if recorder.rejects is not None:
                recorder.rejects.source_started(source)
            for block, result in results:
                account(source, block, result)
                report.foreign.block(result)
            report.foreign.source_done(source)
            if checkpoints is not None:
                checkpoints.source_read(source.name)
            progress.finish_source(source.size)
        finish(sink.close())
    except BaseException as exc:
        # Ctrl-C, authentication failure, a crash: what was answered still counts and is saved.
        finish(sink.drain())
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
    observer.progress(report, progress.done)
    return report
