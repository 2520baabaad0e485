"""Trigger, map and build stages: Segment events -> the Recombee requests they produce.

One function decides what an event becomes: `Translator.apply` (the triggers that match, the
requests each mapping builds, the reasons it could not). `translate_block` runs it over a block
of lines for a replay, wherever the block is translated (in this process, in a worker process of
`--workers`, on a Dask worker); `Translator.translate` runs it for one event (the Python API,
the conformance and differential tests). `Translator.explain` shows the same mappings field by
field for the `explain` command.

Mappings are indexed on the `event`/`type` equality their trigger guarantees, so an event is only
tested against the mappings that can match it: 50 mappings cost about as much as one.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

import orjson

from recombee_cli.errors import MappingError, PayloadInvalid
from recombee_cli.mapping.compile import CompiledMapping
from recombee_cli.mapping.filters import WindowFilter
from recombee_cli.mapping.mapcore import clocks_given
from recombee_cli.mapping.reads import decode_tables
from recombee_cli.outcomes import unmatched_name
from recombee_cli.request_kinds import Route, route, sid
from recombee_cli.segment.jsvalues import UNDEFINED, orjson_default
from recombee_cli.segment.properties import NOTES, describe_values
from recombee_cli.segment.timestamps import fast_canonical, first_epoch_seconds
from recombee_cli.segment.trigger_programs import Program, compile_selector, decided_results, select
from recombee_cli.segment.triggers import key_only
from recombee_cli.sources import scan
from recombee_cli.sources.decode import REJECT_MARKER, decode
from recombee_cli.sources.scan import Reads, decoded_key, restrict

_CACHE_LIMIT = 4096
VALUE_ACTIONS = ("setUserValues", "setUserValue", "setItemValues")
NOTHING_TO_SEND = "nothing to send (e.g. an order with no products)"

Request = dict[str, Any]
MappingFailure = tuple[str, str]            # (mapping name, reason)
# A value request described for the main process's PropertyGate: (request index, mapping name,
# entity, (name, value class) each, its notes: values dropped and keys renamed, or None).
ValueEntry = tuple[int, str, str, tuple[tuple[str, str], ...], "dict[str, Any] | None"]
# What `Translator.apply` makes of a matched event: its requests (None: none built), its mappings'
# failures (None: none), and, when the mappings set values, the value requests described (the
# request index being the index in the event).
Applied = tuple["list[Request] | None", "list[MappingFailure] | None", "list[ValueEntry] | None"]
EventFilter = Callable[[dict[str, Any]], "str | None"]
# Decoding only what is read pays where most of a line is left out (a browser event's context); where
# the mappings read most of it (a server event's properties), checking the line first costs more than
# it saves. A block stops decoding in part when the first PROBE_LINES lines it did kept more than
# half their bytes (the break-even measured in instructions: bench/README.md). Translator.probe
# holds it (0: never stop, as the tests compare both decodes on every line).
PROBE_LINES = 32

# An event's own time (as --since/--until read it): `timestamp`, else the other clocks Segment keeps.
EVENT_TIME_FIELDS = ("timestamp", "originalTimestamp", "receivedAt", "sentAt")
# BlockResult.times notes each event whose outcome the block decides by (hour, outcome) as one
# integer, hour * 8 + code: the hour since the epoch of the event's time (NO_HOUR: none usable) and
# the outcome's position in outcomes.OUTCOMES. Events with requests, whose answers decide their
# outcome, have theirs in BlockResult.span_hours, run-length encoded (the events of an archive come
# hour after hour): (first span, hour) for each run of spans of one hour, flat. record.timeline
# counts both (`times` is a list appended here and counted there by Counter.update, in C: cheaper
# than a dict per event).
UNMATCHED, FILTERED, INVALID = 2, 3, 4
NO_HOUR = -1
HourKeys = tuple[int, int, int]   # an hour's keys in `times`: filtered, unmatched, invalid


def hour_keys(hour: int) -> HourKeys:
    return hour * 8 + FILTERED, hour * 8 + UNMATCHED, hour * 8 + INVALID


NO_HOUR_KEYS = hour_keys(NO_HOUR)


def span_hour_counts(runs: list[int], spans: int) -> list[tuple[int, int]]:
    """(hour, events) of each run of BlockResult.span_hours, `spans` being the number of spans."""
    return [(runs[k + 1], (runs[k + 2] if k + 2 < len(runs) else spans) - runs[k]) for k in range(0, len(runs), 2)]


def hours_of_spans(runs: list[int], spans: int) -> list[int]:
    """The hour of every span (BlockResult.span_hours decoded)."""
    hours: list[int] = []
    for hour, n in span_hour_counts(runs, spans):
        hours += [hour] * n
    return hours


def event_hour(event: dict[str, Any], stamp: object) -> tuple[int, str | None]:
    """The hour (since the epoch) of an event's time, and the 13-character prefix
    (`2024-03-01T12`) that names it when the time is in Segment's own format, UTC (`...Z` or
    `+00:00`), so that the next events of that hour are known by their prefix alone. Any other form
    goes through the full parse (as --since/--until read it); NO_HOUR when no field holds a time."""
    seconds = fast_canonical(stamp) if type(stamp) is str else None
    if seconds is not None:
        assert isinstance(stamp, str)
        return int(seconds // 3600), stamp[:13]
    seconds = first_epoch_seconds(event, EVENT_TIME_FIELDS)
    return (NO_HOUR if seconds is None else int(seconds // 3600)), None


class Seen(Protocol):
    """What `translate_block` asks of a de-duplicator (mapping.filters.Deduplicator)."""

    def seen(self, message_id: str) -> bool: ...


@dataclass(slots=True)
class Translation:
    """One event translated (`Translator.translate`)."""

    matched: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    errors: list[MappingFailure] = field(default_factory=list)   # (mapping name, reason)
    built: list[str] = field(default_factory=list)                # mappings that built requests


@dataclass(slots=True)
class BlockResult:
    """A block of lines translated (`translate_block`): counts, not events, so that what goes
    between processes and into the accounting stays small, and the requests already serialised.

    Lines are named by their position in the block. An event that ends here (invalid, filtered,
    unmatched) is only counted; an event with requests has a span in `spans`, four numbers per
    event in one flat array: (line, index in the line, first request, end), requests being the
    lines of `requests`."""

    events: int = 0                      # events read (an envelope line holds several)
    blank: int = 0                       # blank lines: no event
    filtered: int = 0                    # events the window filter or the de-duplicator left out
    unmatched: dict[str, int] = field(default_factory=dict)         # by unmatched_name()
    mappings: dict[str, tuple[int, int]] = field(default_factory=dict)   # name -> (matched, built)
    mapping_errors: list[MappingFailure] = field(default_factory=list)   # every failure, in order
    invalid: list[tuple[int, int, str, str | None]] = field(default_factory=list)  # line, index, why, mapping
    spans: array[int] = field(default_factory=lambda: array("l"))
    event_errors: dict[int, list[MappingFailure]] = field(default_factory=dict)   # span number -> failures
    routes: list[Route] = field(default_factory=list)   # per request: request_kinds.route (a sender's)
    values: list[ValueEntry] = field(default_factory=list)   # the value requests, index in the block
    requests: bytes = b""                # the requests as JSON, joined by newlines
    # Each event decided here by the hour of its time and its outcome (hour * 8 + code, see
    # UNMATCHED), the hours of the events with requests (runs: first span, hour), and the hour of
    # each invalid one (as `invalid`).
    times: list[int] = field(default_factory=list)
    span_hours: list[int] = field(default_factory=list)
    invalid_hours: list[int] = field(default_factory=list)
    in_part: int = 0                     # lines decoded with only the members read (Translator.reads)

    @property
    def request_count(self) -> int:
        return self.spans[-1] if self.spans else 0


# Of an invalid event as `BlockResult.invalid` holds it: its (reason, mapping), and its mapping (None:
# the line holds no event), taken in C (the accounting counts a chunk's by distinct reason).
REASON_AND_MAPPING = itemgetter(2, 3)
MAPPING_OF_INVALID = itemgetter(3)

_MISSING = object()
# The keys read of every event, as the objects orjson makes of them (scan.decoded_key: found by identity)
_EVENT, _TYPE, _TIMESTAMP = decoded_key("event"), decoded_key("type"), decoded_key("timestamp")

# A step of a plan: (mapping position, its trigger or None when the key already decided it, the
# mapping's compiled function). A plan: its steps, and a selector of their triggers
# (segment/trigger_programs.py) that gives the steps whose triggers match, as steps the key
# decided, in one call; None: the key decided every step, or the steps' triggers are asked.
Step = tuple[int, "Callable[[dict[str, Any]], bool] | None", "Callable[[dict[str, Any]], list[Request]]"]
Plan = tuple[tuple[Step, ...], "Program | None"]


@dataclass
class FieldTrace:
    """How one mapping resolved an event, for `explain`."""

    mapping: str
    action: str
    resolved: dict[str, Any]
    payload: dict[str, Any] | None
    requests: list[Request]
    error: str | None
    dropped: list[tuple[str, str]] = field(default_factory=list)   # values left out: (field, reason)


class Translator:
    def __init__(self, mappings: list[CompiledMapping]):
        self.mappings = mappings
        self.names = [m.name for m in mappings]
        # Mappings that set users' or items' values: their requests go through the main
        # process's PropertyGate (types, definitions); declared types: {"users": {name: type}, ...}
        self.sets_values = any(m.action.slug in VALUE_ACTIONS for m in mappings)
        self.property_types: dict[str, dict[str, str]] = {"users": {}, "items": {}}
        # The types the database already has, read when a sending run starts (None: not known, as
        # in a dry run): values must fit them, and they need no definition.
        self.database_types: dict[str, dict[str, str]] | None = None
        self._runs: list[Callable[[dict[str, Any]], list[Request]]] = []
        # Each mapping's run where a replay wants only the requests' bytes (apply's `written`)
        self._writes: list[Callable[[dict[str, Any]], list[Any]]] = []
        for mapping in mappings:
            if mapping.run is None:
                raise ValueError(f"mapping {mapping.name!r} is not compiled (use mapping.config.compile_config)")
            self._runs.append(mapping.run)
            self._writes.append(mapping.write or mapping.run)
        self._by_event: dict[str, list[int]] = {}
        self._by_type: dict[str, list[int]] = {}
        self._always: list[int] = []
        for position, mapping in enumerate(mappings):
            hint = mapping.trigger.index_hint
            if hint is None:
                self._always.append(position)
                continue
            table = self._by_event if hint[0] == "event" else self._by_type
            for value in hint[1]:
                table.setdefault(value, []).append(position)
        # Plans by `type`, then `event` (two lookups of a str each: a tuple of the two, fresh from
        # every event, was made, hashed, compared and freed per event), and how many are kept.
        self._plans: dict[object, dict[object, Plan]] = {}
        self._plan_count = 0
        self._key_only = [key_only(m.trigger.ast) for m in mappings]
        # Whether a cached plan decides its triggers by a selector (segment/trigger_programs.py),
        # rather than by asking each trigger's closure: the faster in both builds (in C compiled;
        # in pure Python too, as it looks at a value's type once for all the tests of it).
        self.programs = True
        # What a replay reads of an event (mapping/reads.py), for decoding only that: where
        # sources/scan runs compiled (in pure Python, decoding whole lines is the faster); None:
        # whole events. `lean`: the leaner table of a run with no --dedupe and no --since/--until,
        # with the mapped timestamps that tell when an event needs more (reads.lean_reads);
        # None: `reads` is the table.
        self.reads: Reads | None
        self.lean: tuple[Reads, tuple[tuple[Any, ...], ...]] | None
        self.reads, self.lean = decode_tables(mappings) if scan.COMPILED else (None, None)
        self.probe = PROBE_LINES

    def _positions(self, name: object, kind: object) -> list[int]:
        positions = set(self._always)
        if type(name) is str:
            positions.update(self._by_event.get(name, ()))
        if type(kind) is str:
            positions.update(self._by_type.get(kind, ()))
        return sorted(positions)

    def plan(self, event: dict[str, Any]) -> Plan:
        """The mappings to run for an event, as a plan cached per (event, type). Triggers that
        read nothing but `event` and `type` are decided once per key, not per event."""
        name = event.get("event", _MISSING)
        kind = event.get("type", _MISSING)
        runs = self._runs
        if not ((type(name) is str or name is _MISSING) and (type(kind) is str or kind is _MISSING)):
            # a null, number, list... as event or type: no cache, every candidate's trigger asked
            return tuple((p, self.mappings[p].trigger.matches, runs[p]) for p in self._positions(name, kind)), None
        by_event = self._plans.get(kind)
        plan = None if by_event is None else by_event.get(name)
        if plan is None:
            probe = {k: v for k, v in (("event", name), ("type", kind)) if v is not _MISSING}
            steps: list[Step] = []
            for position in self._positions(name, kind):
                mapping = self.mappings[position]
                if not self._key_only[position]:
                    steps.append((position, mapping.trigger.matches, runs[position]))
                elif mapping.trigger.matches(probe):
                    steps.append((position, None, runs[position]))
            plan = self._decided(steps, name, kind)
            if self._plan_count < _CACHE_LIMIT:
                self._plans.setdefault(kind, {})[name] = plan
                self._plan_count += 1
        return plan

    def _decided(self, steps: list[Step], name: object, kind: object) -> Plan:
        """A plan of the steps: where triggers run as programs, their selector, the plan's key
        (`event`, `type`) decided in it (a trigger that reads the key and more is then decided
        where the key settles it; where that decides every trigger, no selector is needed)."""
        if not self.programs or all(matches is None for _, matches, _ in steps):
            return tuple(steps), None
        known = {"event": None if name is _MISSING else name, "type": None if kind is _MISSING else kind}
        selector = compile_selector([(None if matches is None else self.mappings[position].trigger.ast,
                                      (position, None, run)) for position, matches, run in steps], known)
        decided = decided_results(selector)
        return (tuple(steps), selector) if decided is None else (decided, None)

    def apply(self, event: dict[str, Any], counts: list[list[int]], written: bool = False) -> Applied | None:
        """What an event becomes: None when no trigger matches it; else its requests (None when
        no mapping built any), its mappings' failures (None when none failed; a mapping that
        built nothing fails with NOTHING_TO_SEND), and its value requests described for the
        PropertyGate when the mappings set values. `counts[position]` (matched, built) is
        counted per mapping. `written`: a request may come as the JSON bytes orjson.dumps would
        make of it (mapcore.run_written), for a caller that wants only those and sets no values.
        Every translation of an event comes here: keep it quick."""
        fields: dict[str, Any] = event   # (typed for the compiled build: its lookups are then C calls)
        plans: dict[object, dict[object, Plan]] = self._plans
        try:   # the plan cached for the event's (type, event), without a call
            plan = plans[fields.get(_TYPE, _MISSING)][fields.get(_EVENT, _MISSING)]
        except (KeyError, TypeError):
            plan = self.plan(event)
        steps: tuple[Step, ...] = plan[0]
        if plan[1] is not None:   # every candidate trigger in one call: the steps whose trigger matches
            steps = select(plan[1], fields)
        if not steps:
            return None
        writes = self._writes if written else None
        matched = False
        requests: list[Request] | None = None
        errors: list[MappingFailure] | None = None
        described: list[ValueEntry] | None = None
        for position, matches, run in steps:
            if matches is not None and not matches(event):
                continue
            matched = True
            entry: list[int] = counts[position]
            entry[0] += 1
            try:
                built = run(event) if writes is None else writes[position](event)
            except (PayloadInvalid, MappingError) as exc:
                (errors := errors or []).append((self.names[position], str(exc)))
                continue
            if built:
                entry[1] += 1
                if self.sets_values:
                    names = self.names
                    base = 0 if requests is None else len(requests)
                    for j, request in enumerate(built):
                        d = describe_values(request)
                        if d is not None:
                            (described := described or []).append((base + j, names[position], *d))
                requests = built if requests is None else requests + built
            else:
                (errors := errors or []).append((self.names[position], NOTHING_TO_SEND))
        if not matched:
            return None
        return requests, errors, described

    def translate(self, event: dict[str, Any]) -> Translation:
        """One event translated: the mappings that matched and built, its requests, and each
        failure (mapping name, reason), by the same rules as a replay (`apply`)."""
        if not isinstance(event, dict):   # (compiled, the annotation is checked: a TypeError either way)
            raise TypeError(f"an event is a JSON object (a dict), not {type(event).__name__}")
        counts = [[0, 0] for _ in self.mappings]
        applied = self.apply(event, counts)
        if applied is None:
            return Translation()
        requests, errors, _ = applied
        return Translation(matched=[self.names[p] for p, (m, _) in enumerate(counts) if m],
                           requests=list(requests or ()), errors=errors or [],
                           built=[self.names[p] for p, (_, b) in enumerate(counts) if b])

    def explain(self, event: dict[str, Any]) -> list[FieldTrace]:
        """Every matching mapping with its resolved fields, prepared payload and requests."""
        traces = []
        for mapping in self.mappings:
            if not mapping.trigger.matches(event):
                continue
            resolved: dict[str, Any] = {}
            payload = None
            requests: list[Request] = []
            error = None
            try:
                for name, resolve in mapping.resolvers:   # for display: each field as resolved
                    value = resolve(event)
                    if value is not UNDEFINED:
                        resolved[name] = value
                payload = mapping.prepare(event)          # the very path a replay takes
                requests = mapping.action.build(payload, event)
            except (PayloadInvalid, MappingError) as exc:
                error = str(exc)
            dropped = [(where, reason) for r in requests
                       for where, _, reason, _ in (r.pop(NOTES, None) or {}).get("dropped", ())]
            traces.append(FieldTrace(mapping.name, mapping.action.slug, resolved, payload, requests, error, dropped))
        return traces


def translate_block(lines: Iterable[bytes], translator: Translator, *, window_filter: EventFilter | None = None,
                    dedupe: Seen | None = None, routes: bool = False) -> BlockResult:
    """Translate a block of lines (the unit of a replay) by `Translator.apply`: what becomes of
    each event, counted, and the requests serialised once (the printer and the sender use bytes).
    `routes`: note each request's users, for a sender's lanes. This is the hot loop of a replay.

    A line is decoded with only the members the translator reads (`Translator.reads`,
    sources/scan.py) where it holds one plain event; any other line, or any doubt, is decoded
    whole, as it always was (so invalid JSON is told by orjson, with its reasons)."""
    apply = translator.apply
    # Requests wanted only as bytes (no routes to read, no values to describe): the add-type ones
    # written directly by their programs, without their dicts (mapcore.run_written)
    written = not routes and not translator.sets_values
    loads, dumps, decode_error = orjson.loads, orjson.dumps, orjson.JSONDecodeError
    # The lean table where nothing but the mappings and the event's hour reads the event; an event
    # decoded with it that may need a stand-in clock (or `messageId`: never, without --dedupe) is
    # decoded again whole, before anything reads it.
    lean = translator.lean if window_filter is None and dedupe is None else None
    stamps: tuple[Any, ...] | None = None   # the mapped timestamps to look at (lean lines only)
    reads: Reads | None
    if lean is not None:
        reads, stamps = lean
    else:
        reads = translator.reads if window_filter is None or type(window_filter) is WindowFilter else None
    lean_part: bool = False   # this line was decoded with the lean table
    in_part = kept = read = 0   # lines decoded in part; the bytes kept of the first `probe`, of all
    probe: int = translator.probe
    result = BlockResult()
    n = filtered = blank = 0
    unmatched = result.unmatched
    counts = [[0, 0] for _ in translator.mappings]   # per mapping position: matched, built
    mapping_errors = result.mapping_errors
    invalid = result.invalid
    spans: list[int] = []   # an array at the end: array.extend takes a tuple an item at a time
    event_errors = result.event_errors
    request_routes = result.routes
    values = result.values
    bodies: list[bytes] = []
    times = result.times
    span_hours = result.span_hours
    span_hour: object = None    # the hour of the current run of spans
    invalid_hours = result.invalid_hours
    # The last hour seen in Segment's own format: its prefix, the hour and its keys in `times`. An
    # event of the same hour costs a few comparisons; another hour or form goes to event_hour.
    last_prefix: str = "\x00"
    last_hour = NO_HOUR
    last_keys: HourKeys = NO_HOUR_KEYS
    keys: HourKeys
    text: str
    fields: dict[str, Any]   # (typed for the compiled build: a C lookup)
    for number, data in enumerate(lines):
        if not data or data == b"\r":   # a blank line: told apart before orjson's costly error for it
            blank += 1
            continue
        lean_part = False
        try:
            if reads is not None and type(data) is bytes:
                part = restrict(data, reads)
                if part is None:
                    value = loads(data)
                else:
                    value = loads(part)
                    if stamps is not None and not clocks_given(stamps, value):
                        value = loads(data)    # a builder may read a stand-in clock: the whole event
                    else:
                        lean_part = stamps is not None
                        in_part += 1
                        if in_part <= probe:
                            kept += len(part)
                            read += len(data)
                            if in_part == probe and kept * 2 > read:
                                reads = None   # most of each line is read: whole lines are cheaper
            else:
                value = loads(data)
        except decode_error:
            value = None
        if type(value) is dict and "batch" not in value and REJECT_MARKER not in value:
            items: list[Any] | tuple[dict[str, Any]] = (value,)   # one plain event: the common case
        elif value is None and (not data or data.isspace()):
            blank += 1         # blank lines (and unreadable ones, which the reader reported) are no events
            continue
        else:
            items = decode(data[:-1] if data[-1:] == b"\r" else data)
        for index, event in enumerate(items):
            n += 1
            if type(event) is str:
                invalid.append((number, index, event, None))
                invalid_hours.append(NO_HOUR)
                times.append(NO_HOUR_KEYS[2])
                continue
            # The event's hour, read from the text when it is Segment's own UTC form of the last hour.
            fields = event   # (a dict: decode gives dicts and the reasons, str, of what is none)
            stamp = fields.get(_TIMESTAMP)
            if type(stamp) is str and len(stamp) >= 20:
                text = stamp
                if text[13] == ":" and text.startswith(last_prefix) and (
                        text[-1] == "Z" or text.endswith("+00:00")):
                    hour, keys = last_hour, last_keys
                else:
                    if lean_part and fast_canonical(text) is None:   # its hour from a stand-in clock
                        event = fields = loads(data)
                        in_part -= 1
                    hour, prefix = event_hour(event, stamp)
                    keys = hour_keys(hour)
                    if prefix is not None:
                        last_prefix, last_hour, last_keys = prefix, hour, keys
            else:
                if lean_part:   # no time of its own in Segment's form: its hour may be a stand-in clock's
                    event = fields = loads(data)
                    in_part -= 1
                hour = event_hour(event, stamp)[0]
                keys = hour_keys(hour)
            if window_filter is not None and window_filter(event) is not None:
                filtered += 1
                times.append(keys[0])
                continue
            if dedupe is not None:
                mid = event.get("messageId")
                if type(mid) is str and dedupe.seen(mid):
                    filtered += 1
                    times.append(keys[0])
                    continue
            applied = apply(event, counts, written)
            if applied is None:
                name = unmatched_name(event)
                unmatched[name] = unmatched.get(name, 0) + 1
                times.append(keys[1])
                continue
            requests, errors, described = applied
            if errors:
                mapping_errors.extend(errors)
                if requests is None:
                    invalid.append((number, index, errors[0][1], errors[0][0]))
                    invalid_hours.append(hour)
                    times.append(keys[2])
                    continue
            assert requests is not None   # a matched event built requests or failed
            first = len(bodies)
            if described:
                values.extend((first + j, mapping, entity, pairs, notes)
                              for j, mapping, entity, pairs, notes in described)
            for ordinal, request in enumerate(requests):
                made: Any = request   # (written, an add-type request comes as its bytes: mapcore.run_written)
                bodies.append(made if type(made) is bytes else dumps(request, default=orjson_default))
                if routes:   # its place: the line (in the block), the event's index there, its own
                    request_routes.append(route(request, sid(number, index, ordinal)))
            if errors:
                event_errors[len(spans) // 4] = errors
            if hour is not span_hour:   # (one hour's events share its int: usually the same object)
                span_hours += (len(spans) // 4, hour)
                span_hour = hour
            spans += (number, index, first, len(bodies))
    result.events, result.blank, result.filtered, result.in_part = n, blank, filtered, in_part
    result.mappings = {name: (matched, built) for name, (matched, built) in zip(translator.names, counts) if matched}
    result.requests = b"\n".join(bodies)
    result.spans = array("l", spans)
    return result
