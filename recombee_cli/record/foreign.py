"""Inputs that are not Segment exports: a README.txt, a data.csv or someone else's NDJSON found in an
export folder. Their lines still end in an outcome (`invalid`: not JSON; `unmatched`: no Segment
`type`), but a summary of 20,000 invalid lines does not say which file they came from, and 20,000
`unmatched` say nothing at all. So each source is tallied from its translated blocks, and a source
none of whose events looks like a Segment event is named in the report (`not_segment_sources`),
for the summary and a warning (`--exclude GLOB` leaves such files out).

An event looks like Segment's when it is an object with a `type` Segment sends (or an `event`),
or when a mapping matched it; events the window or de-duplication filtered are given the benefit
of the doubt. Counting only uses what `translate_block` already reports, so the hot loop is not
touched.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from typing import Any

from recombee_cli.mapping.compile import SEGMENT_TYPES
from recombee_cli.mapping.translate import MAPPING_OF_INVALID, BlockResult
from recombee_cli.sources.reader import Source, display_name

NAMED_LIMIT = 100   # sources named in the report; the rest are counted


def _foreign_name(name: str) -> bool:
    """An unmatched event's name (outcomes.unmatched_name) that no Segment event has."""
    return name == "(no type)" or (not name.startswith("track: ") and name not in SEGMENT_TYPES)


class ForeignSources:
    """Tallies, per source, events and those that look like Segment's (see the module's doc)."""

    def __init__(self) -> None:
        self.named: list[dict[str, Any]] = []
        self.count = 0
        self._events = self._segment = self._not_json = 0

    def block(self, result: BlockResult) -> None:
        not_events = list(map(MAPPING_OF_INVALID, result.invalid)).count(None) if result.invalid else 0
        foreign = sum(n for name, n in result.unmatched.items() if _foreign_name(name))
        self._events += result.events
        self._not_json += not_events
        self._segment += result.events - not_events - foreign

    def source_done(self, source: Source) -> None:
        events, segment, not_json = self._events, self._segment, self._not_json
        self._events = self._segment = self._not_json = 0
        if not events or segment:
            return
        self.count += 1
        if len(self.named) < NAMED_LIMIT:
            why = (f"none of its {events:,} lines is a JSON object" if not_json == events else
                   f"none of its {events:,} events has a Segment type ({', '.join(SEGMENT_TYPES)})"
                   if not not_json else f"of its {events:,} lines, {not_json:,} are not JSON objects and no "
                                        f"event has a Segment type")
            self.named.append({"source": display_name(source.name), "events": events, "why": why})

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "named": self.named}


def excluded(name: str, patterns: Sequence[str]) -> bool:
    """Whether an input matches one of `--exclude`'s globs: against its base name, its whole name
    and each trailing part of its path (`archive/*` matches exports/archive/a.gz)."""
    if not patterns:
        return False
    parts = name.replace(os.sep, "/").split("/")
    candidates = {name, parts[-1], *("/".join(parts[k:]) for k in range(1, len(parts)))}
    return any(fnmatch.fnmatchcase(candidate, pattern) for pattern in patterns for candidate in candidates)
