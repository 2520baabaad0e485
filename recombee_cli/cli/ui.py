"""What people see on stderr: the progress bar (terminals only), the summary and reports.

Everything here writes to the stream it is given; data never goes through this module.
"""

from __future__ import annotations

import textwrap
import time
from collections import Counter
from typing import TYPE_CHECKING, BinaryIO, TextIO

import orjson

from recombee_cli.outcomes import OUTCOMES
from recombee_cli.record.reasons import example_values
from recombee_cli.record.report import RunReport
from recombee_cli.record.timeline import day_name
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.sources.reader import Source

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def _console(stream: TextIO) -> Console:
    # rich turns colour and live output off by itself when the stream is not a terminal. (Imported
    # when something is shown: a third of the imports of a --quiet run, where nothing is.)
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=True)


def _table(title: str) -> Table:
    from rich.table import Table

    return Table(title=title, title_justify="left")


WIDTH = 80   # the summary's lines below the table fit a terminal of 80 columns


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 file`, `2 files`, `1,234 requests`."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def duration(seconds: float) -> str:
    """How long, at a precision that reads right: `40 ms`, `3.2 s`, `4 min 05 s`, `2 h 07 min`."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return plural(n, "byte")


def cut_middle(name: str, width: int) -> str:
    """A file name cut in the middle, keeping its start and as much of its end (the file's own
    name) as fits: `segment-logs/S…/1709251200000/part-0001.gz`."""
    if len(name) <= width:
        return name
    tail = min(max(len(name.rsplit("/", 1)[-1]), (width - 1) // 2), width - 4)
    head = width - 1 - tail
    return name[:head] + "…" + name[len(name) - tail:]


def wrap_phrases(phrases: list[str], width: int = WIDTH) -> list[str]:
    """Phrases joined with `, ` into lines of at most `width` columns (a phrase is never cut)."""
    lines: list[str] = []
    for phrase in phrases:
        if lines and len(lines[-1]) + 2 + len(phrase) <= width:
            lines[-1] += ", " + phrase
        else:
            if lines:
                lines[-1] += ","
            lines.append(phrase)
    return lines


# The run's figures (RunReport.extra) in words; zeros are left out. A figure not listed here
# (one a newer sink adds) is shown by its name.
def _figures(extra: dict) -> list[str]:
    said: list[str] = []
    calls, http = extra.get("batches"), extra.get("http_calls")
    if calls:
        sent = f", {size(extra['bytes_sent'])} sent" if extra.get("bytes_sent") else ""
        other = f", {plural(http - calls, 'other call')}" if http and http > calls else ""
        said.append(f"{plural(calls, 'Batch call')}{other}{sent}")
    if extra.get("retries"):
        said.append(f"{plural(extra['retries'], 'call')} sent again "
                    f"({plural(extra.get('requests_retried', 0), 'request')})")
    words = {
        "resumed_sources": lambda n: f"{plural(n, 'file')} resumed from a checkpoint",
        "merges_ordered": lambda n: f"{plural(n, 'merge or user deletion', 'merges or user deletions')} "
                                    f"kept in order",
        "answered_before": lambda n: f"{plural(n, 'request')} answered in an earlier run (not sent again)",
        "property_definitions": lambda n: f"{plural(n, 'property definition')} sent",
        "skipped_folders": lambda n: f"{plural(n, 'day folder')} outside --since/--until skipped",
        "rejects_already_recorded": lambda n: f"{plural(n, 'rejected event')} already in the rejects file",
        "not_answered": lambda n: f"{plural(n, 'event')} not answered (left for the next run)",
    }
    shown = {"batches", "http_calls", "bytes_sent", "retries", "requests_retried", "nothing_to_do",
             "values_dropped", "rows_written", "files_written", "held_back"}   # (held_back: --report only)
    for key, value in extra.items():
        if key in shown or not isinstance(value, int) or isinstance(value, bool) or not value:
            continue
        said.append(words[key](value) if key in words else f"{key.replace('_', ' ')} {value:,}")
    return said


class ProgressView:
    """The replay loop's observer (pipeline.replay.Observer) that the terminal shows; this one shows
    nothing (--quiet, a log file, --log-format json)."""

    def __enter__(self) -> ProgressView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def source_started(self, source: Source) -> None:
        pass

    def progress(self, report: RunReport, raw_bytes_done: int) -> None:
        pass


class _ProgressBar(ProgressView):
    """Bytes read of the known total, events/s, requests sent, failures, ETA."""

    _EVERY = 0.2  # seconds between redraws

    def __init__(self, console: Console, total_bytes: int | None):
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TextColumn("{task.fields[rate]} events/s, sent {task.fields[sent]:,}, invalid {task.fields[invalid]:,}, "
                       "failed {task.fields[failed]:,}"),
            TimeRemainingColumn(), console=console, transient=True)
        self._task = self._bar.add_task("replay", total=total_bytes, rate="-", sent=0, invalid=0, failed=0)
        self._last = 0.0

    def __enter__(self) -> _ProgressBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def source_started(self, source: Source) -> None:
        self._bar.update(self._task, description=cut_middle(source.name, 28))

    def progress(self, report: RunReport, raw_bytes_done: int) -> None:
        now = time.monotonic()
        if now - self._last < self._EVERY:
            return
        self._last = now
        elapsed = now - report.started
        rate = f"{report.events / elapsed:,.0f}" if elapsed > 0 else "-"
        self._bar.update(self._task, completed=raw_bytes_done, rate=rate,
                         sent=report.outcomes["sent"],         # events, as the summary's table counts them
                         invalid=report.outcomes["invalid"],   # events that could not be built
                         failed=report.outcomes["failed"])     # events Recombee refused, or retries ran out


def make_observer(stream: TextIO, *, quiet: bool, total_bytes: int | None) -> ProgressView:
    if quiet:
        return ProgressView()
    console = _console(stream)
    if not console.is_terminal:
        return ProgressView()
    return _ProgressBar(console, total_bytes)


def print_summary(stream: TextIO, report: RunReport, *, rejects_path: str | list[str] | None = None,
                  title: str | None = None) -> None:
    console = _console(stream)
    if report.skipped_sources and not report.lines and not report.events and "aborted" not in report.extra:
        # A repeat run: an all-zero table would hide that the files were skipped on purpose.
        console.print(f"{plural(report.skipped_sources, 'file')} already done (skipped); nothing new. "
                      f"--reprocess reads them again; `recombee-cli status` shows what the state knows.",
                      markup=False)
        return
    title = title or "recombee-cli replay" + (" (dry run: 'sent' = printed)" if report.dry_run else "")
    table = _table(title)
    table.add_column("outcome")
    table.add_column("events", justify="right")
    table.add_column("requests", justify="right")
    nothing = report.extra.get("nothing_to_do") or 0
    for outcome in OUTCOMES:
        requests = report.requests.get(outcome)
        table.add_row(outcome, f"{report.outcomes[outcome]:,}", "" if requests is None else f"{requests:,}")
        if outcome == "duplicate" and nothing:
            # Deletes and merges Recombee answered 404: not "already there" but "nothing to do" (a
            # first run's removal of what was added before the archive began). Their outcome is
            # duplicate; this row says which part of it they are (events only when that is exact).
            every = nothing == report.requests.get("duplicate")
            table.add_row("  nothing to do", f"{report.outcomes['duplicate']:,}" if every else "", f"{nothing:,}",
                          style="dim")
    table.add_row("total", f"{report.events:,}", f"{sum(report.requests.values()):,}", style="bold")
    console.print(table)
    rate = report.events / report.elapsed if report.elapsed else 0
    head = (f"{plural(report.lines, 'line')} from {plural(report.sources, 'input')} in {duration(report.elapsed)}"
            f" ({rate:,.0f} events/s)")
    for line in wrap_phrases([head, *_figures(report.extra)]):
        console.print(line, markup=False)
    glance = days_glance(report.timeline.per_day(), max(20, console.width - 75)) if console.is_terminal else None
    if glance:
        console.print(glance, markup=False)
    if report.skipped_sources:
        console.print(f"{plural(report.skipped_sources, 'file')} already done in earlier runs (skipped)",
                      markup=False)
    if report.foreign.count:
        names = ", ".join(entry["source"] for entry in report.foreign.named[:5])
        more = f" and {report.foreign.count - 5:,} more" if report.foreign.count > 5 else ""
        console.print(f"not Segment exports (no line is a Segment event): {names}{more}; "
                      f"--exclude GLOB leaves them out", markup=False)
    if nothing:
        said = (f"{plural(nothing, 'delete or merge', 'deletes or merges')} had nothing to do (Recombee answered "
                f"404: never there, or done by an earlier run); the table counts them with duplicate")
        console.print(textwrap.fill(said, WIDTH, subsequent_indent="  "), markup=False)
    if report.unmatched:
        top = [f"{name} ({n:,})" for name, n in report.unmatched.most_common(5)]
        for number, line in enumerate(wrap_phrases(["unmatched, top: " + top[0], *top[1:]], WIDTH - 2)):
            console.print(("  " if number else "") + line, markup=False)
    for title, reasons in (("invalid", report.invalid_reasons), ("failed", report.failed_reasons),
                           ("filtered", report.filtered_reasons)):
        if reasons:
            print_kinds(console, f"{title}, by kind of reason:", reasons.by_kind(), "  ")
    dropped = report.extra.get("dropped_values")
    if dropped:
        console.print("values left out (the rest of each event was sent), per property:")
        for name, entry in sorted(dropped.items(), key=lambda kv: -kv[1]["count"])[:10]:
            example = entry["example"]
            where = f" ({example['source']} line {example['line']})" if "line" in example else ""
            console.print(f"  {entry['count']:>8,}  {name}: {entry['reason']}; e.g. {example['field']} = "
                          f"{orjson.dumps(example['value'], default=orjson_default).decode()}{where}", markup=False)
        if len(dropped) > 10:
            console.print(f"  ... and {len(dropped) - 10:,} more properties (see --report)", markup=False)
    if isinstance(rejects_path, str):
        rejects_path = [rejects_path]
    if rejects_path and (report.outcomes["invalid"] or report.outcomes["failed"] or dropped):
        console.print(f"rejected events written to {' and '.join(rejects_path)}", markup=False)


SPARKS = "▁▂▃▄▅▆▇█"
GAP = "·"


def sparkline(values: list[int]) -> str:
    """One character per value, its height in proportion to the largest; 0 is GAP."""
    top = max(values, default=0) or 1
    return "".join(GAP if not v else SPARKS[min(len(SPARKS) - 1, (v * len(SPARKS) - 1) // top)] for v in values)


def days_glance(per_day: dict[int, int], width: int = 60) -> str | None:
    """A run spanning several days at a glance: events per day of the events' own time, one mark
    per day (or per few days, at most `width` marks), days without events marked GAP."""
    if len(per_day) < 2:
        return None
    first, last = min(per_day), max(per_day)
    span = last - first + 1
    step = -(-span // width)
    values = [sum(per_day.get(day, 0) for day in range(start, min(start + step, last + 1)))
              for start in range(first, last + 1, step)]
    empty = sum(1 for day in range(first, last + 1) if day not in per_day)
    unit = "day" if step == 1 else f"{step} days"
    gaps = f"; {empty:,} without events ({GAP})" if empty else ""
    return (f"events per {unit}, {day_name(first)} to {day_name(last)} ({span:,} days{gaps}, "
            f"most {max(values):,}): {sparkline(values)}")


def print_kinds(console: Console, title: str, kinds: list[dict], indent: str, shown: int = 5) -> None:
    """Reasons grouped by kind: count, share, and what two of them held (the values are in the
    rejects file; the kind is what to fix)."""
    console.print(title, markup=False)
    for kind in kinds[:shown]:
        console.print(f"{indent}{kind['count']:>8,}  {kind['share']:>6.1%}  {kind['kind']}", markup=False)
        values = example_values(kind)
        if values:
            console.print(f"{indent}{'':>8}  {'':>6}  e.g. {'; '.join(values)}", markup=False)
    if len(kinds) > shown:
        rest = sum(k["count"] for k in kinds[shown:])
        more = len(kinds) - shown
        console.print(f"{indent}{rest:>8,}  in {more:,} more kind{'s' if more != 1 else ''} (--report lists them)",
                      markup=False)


def print_validation(stream: TextIO, report: RunReport) -> None:
    console = _console(stream)
    table = _table("mappings on these inputs")
    for column in ("mapping", "matched", "built", "invalid"):
        table.add_column(column, justify="left" if column == "mapping" else "right")
    for name, stats in report.mappings.items():
        table.add_row(name, f"{stats.matched:,}", f"{stats.built:,}", f"{sum(stats.invalid.values()):,}")
    console.print(table)
    for name, stats in report.mappings.items():
        if stats.invalid:
            print_kinds(console, f"{name}: invalid, by kind of reason:", stats.invalid.by_kind(), "  ")
    console.print(f"{report.events:,} events: " + ", ".join(
        f"{k} {report.outcomes[k]:,}" for k in OUTCOMES if report.outcomes[k]))
    glance = days_glance(report.timeline.per_day(), max(20, console.width - 75)) if console.is_terminal else None
    if glance:
        console.print(glance, markup=False)
    if report.unmatched:
        console.print("unmatched, top: " + ", ".join(
            f"{name} ({n:,})" for name, n in report.unmatched.most_common(10)), markup=False)
    other = [k for k in report.invalid_reasons.by_kind() if not k["kind"].startswith("mapping ")]
    if other:
        print_kinds(console, "lines that hold no event, by kind of reason:", other, "  ")


def print_explanation(out: BinaryIO, record: dict, traces) -> None:
    via = record.get("rejects_file")
    lines = [f"{record['source']}:{record['line']}: {record['outcome']}"
             + (f" ({record['reason']})" if record.get("reason") else "")
             + (f"\n  (from the rejects file {via['source']}:{via['line']})" if via else "")]
    for trace in traces:
        lines.append(f"  mapping {trace.mapping!r} -> {trace.action}")
        for name, value in trace.resolved.items():
            lines.append(f"    {name} = {orjson.dumps(value, default=orjson_default).decode()}")
        if trace.error:
            lines.append(f"    error: {trace.error}")
        for where, reason in trace.dropped:
            lines.append(f"    value left out: {where}: {reason}")
        for request in trace.requests:
            lines.append(f"    request: {orjson.dumps(request, default=orjson_default).decode()}")
    out.write(("\n".join(lines) + "\n").encode())


def print_status(stream: TextIO, path: str, files, runs, rejects: dict | None = None,
                 owner: tuple[str | None, str | None] = (None, None)) -> None:
    console = _console(stream)
    done = [f for f in files if f.done]
    pending = [f for f in files if not f.done]
    console.print(f"state file {path}: {plural(len(done), 'file')} done, {len(pending):,} not done", markup=False)
    if owner[0]:
        console.print(f"  belongs to database {owner[0]!r}" + (f" at {owner[1]}" if owner[1] else ""), markup=False)
    if rejects is not None:
        if rejects["count"]:
            outcomes = ", ".join(f"{n:,} {outcome}" for outcome, n in sorted(rejects["by_outcome"].items()))
            console.print(f"rejects kept: {rejects['count']:,} events ({outcomes}) in {rejects['path']}; once the "
                          f"mapping is fixed, re-send them: recombee-cli replay [the same options] {rejects['path']}",
                          markup=False)
        else:
            console.print(f"rejects kept: none ({rejects['path']})", markup=False)
    for f in pending[:20]:
        why = f"; {f.failed:,} events failed" if f.failed else ""
        why += f"; {f.reason}" if f.reason else ""
        console.print(f"  not done: {f.path} (acknowledged up to byte {f.offset:,} of its decompressed "
                      f"content{why}); the next run takes it up again", markup=False)
    if len(pending) > 20:
        console.print(f"  ... and {len(pending) - 20:,} more not done (--json lists all)", markup=False)
    refusing = [f for f in files if f.refused]
    if refusing:   # final answers: the files are done; the events wait in the rejects for a fixed mapping
        console.print(f"Recombee refused {sum(f.refused for f in refusing):,} events for good (a 4xx no retry "
                      f"changes; they are in the rejects kept):", markup=False)
        for f in refusing[:20]:
            console.print(f"  {f.refused:,} in {f.path}", markup=False)
        if len(refusing) > 20:
            console.print(f"  ... and {len(refusing) - 20:,} more files (--json lists all)", markup=False)
    if runs:
        table = _table("last runs")
        for column in ("run", "started", "status", "events", "sent", "duplicate", "invalid", "failed"):
            table.add_column(column, justify="left" if column in ("started", "status") else "right")
        totals: Counter[str] = Counter()
        for r in runs:
            outcomes = (r["report"] or {}).get("outcomes", {})
            totals.update(outcomes)
            table.add_row(str(r["id"]), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started"])), r["status"],
                          f"{(r['report'] or {}).get('events', 0):,}",
                          *(f"{outcomes.get(k, 0):,}" for k in ("sent", "duplicate", "invalid", "failed")))
        console.print(table)
        console.print("over these runs: " + ", ".join(f"{k} {v:,}" for k, v in totals.items() if v))
        console.print("mappings each run used:", markup=False)
        for r in runs:
            console.print(f"  run {r['id']}: {mappings_said(r.get('mappings'))}", markup=False)


def mappings_said(mappings: dict | None) -> str:
    """Which mappings a run used: the config (or the presets), how many, their digest."""
    if not mappings:
        return "not recorded (a run of an older recombee-cli, or a dry run)"
    where = mappings["config"] or "Segment's built-in presets"
    return f"{where}, {mappings.get('mappings', '?')} mappings, digest {mappings.get('digest', '?')}"


def print_export(stream: TextIO, manifest: dict, directory: str) -> None:
    """Where the rows went: per table, rows and files."""
    console = _console(stream)
    tables = [f"{name} {plural(t['rows'], 'row')} ({plural(len(t['files']), 'file')})"
              for name, t in manifest["tables"].items() if t["rows"]]
    lines = wrap_phrases([f"written to {directory}: " + (tables[0] if tables else "no rows"), *tables[1:]], WIDTH - 2)
    for number, line in enumerate(lines):
        console.print(("  " if number else "") + line, markup=False)
