"""Turns finished tickets into the run's report and the rejects file: one outcome per event, from
its requests' answers (outcomes.answered_outcome), counted once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from recombee_cli.mapping.translate import NO_HOUR, REASON_AND_MAPPING
from recombee_cli.outcomes import answered_outcome, mapping_error, request_outcome
from recombee_cli.record.rejects import RejectsWriter
from recombee_cli.record.report import RunReport, bounded_add
from recombee_cli.sinks.protocol import ChunkTicket, EventTicket, Ticket
from recombee_cli.sources.decode import decode
from recombee_cli.sources.reader import Block, Line


def event_at(line: Line, index: int) -> dict[str, Any] | None:
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
                event = event_at(line, index)
            self.rejects.write(line, event, "invalid", text, mapping=mapping, index=index)

    def invalid_of(self, block: Block, invalid: list[tuple[int, int, str, str | None]]) -> None:
        """A translated block's invalid events, each (line, index in the line, reason, mapping):
        written to the rejects file one by one when there is one (a Line is made only for it),
        else counted once per distinct reason (a chunk's are mostly a few, repeated: a page name
        given as an item id; with --workers this process counts what two others translate)."""
        if self.rejects is not None:
            for position, index, reason, mapping in invalid:
                self.invalid(block.line(position), None, reason, mapping, index, decodable=mapping is not None)
            return
        for (reason, mapping), n in Counter(map(REASON_AND_MAPPING, invalid)).items():
            self._count_invalid(reason, mapping, n)

    def _count_invalid(self, reason: str, mapping: str | None, n: int = 1) -> str:
        self.report.outcomes["invalid"] += n
        text = mapping_error(mapping, reason) if mapping else reason
        bounded_add(self.report.invalid_reasons, text, n)
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
            bounded_add(report.invalid_reasons, reason or "")
        elif outcome == "failed":
            bounded_add(report.failed_reasons, reason or "")
        elif outcome == "filtered":
            bounded_add(report.filtered_reasons, reason or "")
            reason = None   # not a reject: the run chose not to express it
        if reason and self.rejects is not None:
            event = ticket.event if ticket.event is not None else event_at(ticket.line, ticket.index)
            self.rejects.write(ticket.line, event, outcome, reason, status=status, index=ticket.index)
        if self.on_done is not None:
            self.on_done(ticket, outcome)
        return outcome, said
