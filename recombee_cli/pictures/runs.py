"""What a page draws: runs (from `--report` files, `validate --json` output, or a state file's run
history) and their counts over time added up. Plain data; no charting here."""

from __future__ import annotations

import datetime
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from recombee_cli.errors import PicturesError
from recombee_cli.outcomes import OUTCOMES
from recombee_cli.record.state import StateStore

SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass
class Run:
    """One run: its report (`RunReport.to_dict()`) and, from a state, its row."""

    label: str
    report: dict[str, Any]
    started: float | None = None      # epoch seconds
    finished: float | None = None
    status: str | None = None
    command: str | None = None

    @property
    def timeline(self) -> dict[str, Any] | None:
        timeline = self.report.get("timeline")
        return timeline if isinstance(timeline, dict) and isinstance(timeline.get("days"), dict) else None

    @property
    def seconds(self) -> float | None:
        if self.started is not None and self.finished is not None:
            return self.finished - self.started
        elapsed = self.report.get("elapsed_seconds")
        return float(elapsed) if isinstance(elapsed, (int, float)) else None

    @property
    def when(self) -> str:
        if self.started is None:
            return ""
        return datetime.datetime.fromtimestamp(self.started).strftime("%Y-%m-%d %H:%M")

    @property
    def files(self) -> dict[str, int]:
        """The files the run read (the first ones, with their events), from its timeline."""
        named = ((self.timeline or {}).get("sources") or {}).get("named")
        return dict(named) if isinstance(named, dict) else {}

    def outcome(self, name: str) -> int:
        return int((self.report.get("outcomes") or {}).get(name, 0))


def is_state_file(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def read_report(path: str) -> Run:
    """A report written by `replay --report`, `export --report` or `validate --json`."""
    try:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
    except OSError as exc:
        raise PicturesError(f"cannot read the report {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise PicturesError(f"{path} is not a report of recombee-cli (not JSON)") from None
    if not isinstance(report, dict) or not isinstance(report.get("outcomes"), dict):
        raise PicturesError(f"{path} is not a report of recombee-cli (no outcomes: write one with "
                            f"`replay --report FILE` or `validate --json`)")
    sending = (report.get("timeline") or {}).get("sending") or {}
    started = sending.get("started") if isinstance(sending.get("started"), (int, float)) else None
    if started is None:   # a dry run keeps no clock: the file's own time, when it was written
        try:
            finished = os.stat(path).st_mtime
        except OSError:
            finished = None
        elapsed = report.get("elapsed_seconds")
        if finished is not None and isinstance(elapsed, (int, float)):
            started = finished - elapsed
    return Run(os.path.basename(path), report, started=started)


def read_state(path: str, limit: int) -> list[Run]:
    """The last `limit` runs a state file keeps, oldest first (runs that kept no report are left out:
    a run still going, or one that crashed)."""
    if not os.path.exists(path):
        raise PicturesError(f"no state file at {path} (nothing has been sent with it yet)")
    store = StateStore(path)
    try:
        rows = store.runs(limit)
    finally:
        store.close()
    return [Run(f"run {row['id']}", row["report"], started=row["started"], finished=row["finished"],
                status=row["status"], command=row["command"])
            for row in reversed(rows) if isinstance(row.get("report"), dict)]


def _add(into: list[int], values: list[int]) -> None:
    for k, n in enumerate(values[:len(into)]):
        into[k] += int(n)


def _add_rows(into: dict[str, list[int]], rows: dict[str, list[int]]) -> None:
    for key, row in rows.items():
        _add(into.setdefault(key, [0] * len(row)), row)


@dataclass
class Archive:
    """The runs' counts added up: what the time charts draw."""

    runs: list[Run]
    days: dict[str, list[int]] = field(default_factory=dict)     # ISO day -> events per outcome
    hours: dict[str, list[int]] = field(default_factory=dict)    # ISO day -> events per hour
    no_time: list[int] = field(default_factory=lambda: [0] * len(OUTCOMES))
    left_out: list[int] = field(default_factory=lambda: [0] * len(OUTCOMES))
    kinds: dict[str, dict[str, dict[str, int]]] = field(default_factory=lambda: {"invalid": {}, "failed": {}})
    outcomes: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    mappings: dict[str, list[int]] = field(default_factory=dict)   # name -> matched, built, invalid
    without_timeline: int = 0      # runs of an older recombee-cli: in the totals, not in the time charts

    @classmethod
    def of(cls, runs: list[Run]) -> Archive:
        archive = cls(runs)
        for run in runs:
            report = run.report
            archive.outcomes.update({k: int(v) for k, v in (report.get("outcomes") or {}).items()})
            archive.requests.update({k: int(v) for k, v in (report.get("requests") or {}).items()})
            for name, stats in (report.get("mappings") or {}).items():
                row = archive.mappings.setdefault(name, [0, 0, 0])
                row[0] += int(stats.get("matched", 0))
                row[1] += int(stats.get("built", 0))
                row[2] += sum(int(n) for n in (stats.get("invalid") or {}).values())
            timeline = run.timeline
            if timeline is None:
                archive.without_timeline += 1
                continue
            _add_rows(archive.days, timeline["days"])
            _add_rows(archive.hours, timeline.get("hours") or {})
            _add(archive.no_time, timeline.get("no_time") or [])
            _add(archive.left_out, timeline.get("days_left_out") or [])
            for outcome, kinds in (timeline.get("reason_kinds") or {}).items():
                mine = archive.kinds.setdefault(outcome, {})
                for kind, days in kinds.items():
                    counted = mine.setdefault(kind, {})
                    for day, n in days.items():
                        counted[day] = counted.get(day, 0) + int(n)
        archive.days = dict(sorted(archive.days.items()))
        return archive

    @property
    def span(self) -> list[str]:
        """Every day from the first to the last that holds events, gaps included (ISO dates)."""
        if not self.days:
            return []
        first = datetime.date.fromisoformat(next(iter(self.days)))
        last = datetime.date.fromisoformat(next(reversed(self.days)))
        return [(first + datetime.timedelta(days=k)).isoformat() for k in range((last - first).days + 1)]

    def gaps(self) -> list[tuple[str, str, int]]:
        """Runs of days without events inside the span: (first, last, days)."""
        found: list[tuple[str, str, int]] = []
        start: str | None = None
        previous = ""
        length = 0
        for day in self.span:
            if day in self.days:
                if start is not None:
                    found.append((start, previous, length))
                    start = None
            else:
                if start is None:
                    start, length = day, 0
                length += 1
            previous = day
        return found

    def thin_days(self, share: float = 0.1) -> list[str]:
        """Days with events, but fewer than `share` of the median day's (half a day's data lost?)."""
        totals = sorted(sum(row) for row in self.days.values())
        if len(totals) < 5:
            return []
        median = totals[len(totals) // 2]
        return [day for day, row in self.days.items() if sum(row) < share * median]

    @property
    def sending(self) -> Run | None:
        """The latest run that sent (and kept its calls over time)."""
        for run in reversed(self.runs):
            if isinstance((run.timeline or {}).get("sending"), dict):
                return run
        return None
