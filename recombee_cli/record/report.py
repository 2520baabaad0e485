"""A run's report: what every event ended in, counted (the summary, `--report`, `status`), with
the reasons grouped by kind (record.reasons), per day and hour (record.timeline), and the sources
that hold no Segment event (record.foreign). `record.recorder` fills it as answers come back."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from recombee_cli.outcomes import DEFAULT_FAIL_ON, OUTCOMES
from recombee_cli.record.foreign import ForeignSources
from recombee_cli.record.reasons import ReasonCounter
from recombee_cli.record.timeline import Timeline

REASON_LIMIT = 200   # distinct reasons kept per counter; the rest are summed under "other"


def bounded_add(counter: Counter[str], key: str, n: int = 1) -> None:
    if isinstance(counter, ReasonCounter):   # reasons: also counted by kind (record.reasons)
        counter.add(key, n)
    elif key in counter or len(counter) < REASON_LIMIT:
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
    invalid_reasons: ReasonCounter = field(default_factory=ReasonCounter)   # also by kind (record.reasons)
    failed_reasons: ReasonCounter = field(default_factory=ReasonCounter)
    filtered_reasons: ReasonCounter = field(default_factory=ReasonCounter)   # a sink's (export: not representable)
    mappings: dict[str, MappingStats] = field(default_factory=dict)
    foreign: ForeignSources = field(default_factory=ForeignSources)   # sources with no Segment event
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)   # sink figures: retries, batches, bytes sent...
    fail_on: tuple[str, ...] = DEFAULT_FAIL_ON  # outcomes that make a run unsuccessful (--fail-on)
    timeline: Timeline = field(default_factory=Timeline)   # the same per day and hour (record.timeline)

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
