"""Counts over time: how many events of each day and hour of their own time ended in each outcome,
and the reasons of invalid and failed events by kind and day. What `report` draws (the archive's
coverage and gaps, the outcomes and reasons over time) and the summary's one line per day.

The translate stage notes each event's hour (translate.translate_block: `times` for the outcomes
a block decides, `span_hours` for the events whose requests' answers decide theirs); the replay
loop hands each block and each finished ticket here (`block`, `submitted`, `all_sent`,
`finished`, `count`). The time of an event is the one --since/--until read: `timestamp`, else
`originalTimestamp`, `receivedAt`, `sentAt`, in UTC; an event without any counts under `no_time`.

Bounded for a ten-year archive: one row per day that holds events (six outcome counts and 24 hour
counts, about 150 bytes of JSON), at most DAY_LIMIT days (twenty years; events of further days are
counted under `days_left_out`), at most KIND_LIMIT reason kinds per outcome followed over time
(the rest summed as one), SOURCE_LIMIT files named. The counts of `days`, `no_time` and
`days_left_out` add up to the report's `outcomes`.
"""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any, Protocol

from recombee_cli.mapping.translate import NO_HOUR, REASON_AND_MAPPING, BlockResult, hours_of_spans, span_hour_counts
from recombee_cli.outcomes import OUTCOMES, mapping_error
from recombee_cli.record.reasons import kind_of
from recombee_cli.sinks.protocol import Ticket

DAY_LIMIT = 7320           # days kept (twenty years); events of further days: `days_left_out`
KIND_LIMIT = 12            # reason kinds followed over time per outcome; the rest as OTHER_KINDS
SOURCE_LIMIT = 100         # files named, with their events
OTHER_KINDS = "(other kinds of reason)"
CLOCK = ("UTC, each event's own time: timestamp, else originalTimestamp, receivedAt, sentAt "
         "(as --since/--until read it)")

_CODE = {name: code for code, name in enumerate(OUTCOMES)}
_SENT = _CODE["sent"]
_MAX_HOUR = (datetime.date(9999, 12, 31).toordinal() - datetime.date(1970, 1, 1).toordinal()) * 24
_EPOCH = datetime.date(1970, 1, 1).toordinal()
_FOLD = 4096               # distinct hours noted before they are folded into days


class Series(Protocol):
    """Something else over time a run keeps (the calls of a sending run: pipeline.calls.CallLog)."""

    def to_dict(self) -> dict[str, Any]: ...


def day_name(day: int) -> str:
    """A day number (since 1970-01-01) as an ISO date."""
    return datetime.date.fromordinal(_EPOCH + day).isoformat()


def day_number(name: str) -> int:
    return datetime.date.fromisoformat(name).toordinal() - _EPOCH


class Timeline:
    """One run's counts over time (`RunReport.timeline`; `to_dict` is the report's `timeline`)."""

    def __init__(self) -> None:
        self.days: dict[int, list[int]] = {}     # day -> events per outcome (OUTCOMES order)
        self.hours: dict[int, list[int]] = {}    # day -> events per hour of the day, all outcomes
        self.no_time = [0] * len(OUTCOMES)
        self.left_out = [0] * len(OUTCOMES)
        self.kinds: dict[str, dict[str, dict[int, int]]] = {"invalid": {}, "failed": {}}
        self.sources: dict[str, int] = {}        # the first SOURCE_LIMIT files, with their events
        self.source_count = 0
        self.calls: Series | None = None         # a sending run's calls over time (pipeline.calls)
        self._source: str | None = None
        self._pending: dict[int, list[Any]] = {}   # id(ticket) -> [span hours, events not yet counted]
        # Noted in bulk (Counter.update counts a list in C), folded into days now and then.
        self._decided: Counter[int] = Counter()    # hour * 8 + outcome code -> events

    # -- counting ------------------------------------------------------------------------------
    def count(self, hour: int, outcome: str, reason: str | None = None, n: int = 1) -> None:
        """`n` events of `hour` (hours since 1970; NO_HOUR: no time) ended in `outcome`."""
        self._add(hour, _CODE[outcome], n)
        if reason and outcome in self.kinds:
            self._reason(hour, outcome, reason, n)

    def _add(self, hour: int, code: int, n: int) -> None:
        if hour < 0 or hour >= _MAX_HOUR:
            self.no_time[code] += n
            return
        day, of_day = divmod(hour, 24)
        row = self.days.get(day)
        if row is None:
            if len(self.days) >= DAY_LIMIT:
                self.left_out[code] += n
                return
            row = self.days[day] = [0] * len(OUTCOMES)
            self.hours[day] = [0] * 24
        row[code] += n
        self.hours[day][of_day] += n

    def _reason(self, hour: int, outcome: str, reason: str, n: int) -> None:
        kind = kind_of(reason)
        kinds = self.kinds[outcome]
        days = kinds.get(kind)
        if days is None:
            if len(kinds) >= KIND_LIMIT:
                days = kinds.setdefault(OTHER_KINDS, {})
            else:
                days = kinds[kind] = {}
        day = hour // 24 if 0 <= hour < _MAX_HOUR else NO_HOUR
        days[day] = days.get(day, 0) + n

    def block(self, source: str, result: BlockResult) -> None:
        """What a translated block decided (filtered, unmatched, invalid), by hour, and the
        reasons of its invalid events."""
        if source != self._source:
            self._source = source
            self.source_count += 1
        if source in self.sources or len(self.sources) < SOURCE_LIMIT:
            self.sources[source] = self.sources.get(source, 0) + result.events
        self._decided.update(result.times)
        if len(self._decided) > _FOLD:
            self._fold()
        if result.invalid:   # each distinct (reason, hour) once: a chunk's repeat a few
            for ((reason, mapping), hour), n in Counter(zip(map(REASON_AND_MAPPING, result.invalid),
                                                            result.invalid_hours)).items():
                self._reason(hour, "invalid", mapping_error(mapping, reason) if mapping else reason, n)

    def submitted(self, ticket: Ticket, result: BlockResult) -> None:
        """The hours of a ticket's events, counted when their answers come (`all_sent`, `event`)."""
        if result.span_hours:
            self._pending[id(ticket)] = [result.span_hours, len(result.spans) // 4]

    def all_sent(self, ticket: Ticket) -> None:
        """Every event of the ticket was sent."""
        entry = self._pending.pop(id(ticket), None)
        if entry is not None:
            for hour, n in span_hour_counts(*entry):
                self._add(hour, _SENT, n)

    def _fold(self) -> None:
        for key, n in self._decided.items():
            hour, code = divmod(key, 8)
            self._add(hour, code, n)
        self._decided.clear()

    def finished(self, ticket: Ticket, others: list[tuple[int, tuple[str, str | None] | None]]) -> None:
        """A ticket's events were counted one by one: `others` holds those not simply sent, by
        position (span), with their outcome and reason (None: not answered, so not counted)."""
        entry = self._pending.pop(id(ticket), None)
        hours = hours_of_spans(*entry) if entry is not None else []
        sent = Counter(hours)
        for position, done in others:
            hour = hours[position] if position < len(hours) else NO_HOUR
            sent[hour] -= 1
            if done is not None:
                self.count(hour, *done)
        for hour, n in sent.items():
            if n > 0:
                self._add(hour, _SENT, n)

    # -- the report ----------------------------------------------------------------------------
    def per_day(self) -> dict[int, int]:
        """Events per day (day numbers since 1970-01-01), days with events only."""
        self._fold()
        return {day: sum(row) for day, row in sorted(self.days.items())}

    def to_dict(self) -> dict[str, Any]:
        self._fold()
        order = sorted(self.days)
        out: dict[str, Any] = {
            "clock": CLOCK,
            "outcomes": list(OUTCOMES),
            "first_day": day_name(order[0]) if order else None,
            "last_day": day_name(order[-1]) if order else None,
            "days": {day_name(day): self.days[day] for day in order},
            "hours": {day_name(day): self.hours[day] for day in order},
            "no_time": self.no_time,
            "days_left_out": self.left_out,
            "reason_kinds": {outcome: {kind: {(day_name(day) if day != NO_HOUR else "no time"): n
                                              for day, n in sorted(days.items())}
                                       for kind, days in kinds.items()}
                             for outcome, kinds in self.kinds.items()},
            "sources": {"count": self.source_count, "named": dict(self.sources)},
        }
        if self.calls is not None:
            out["sending"] = self.calls.to_dict()
        return out
