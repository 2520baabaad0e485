"""One self-contained HTML page of runs (pictures.runs): the charts of pictures.figures with
plotly.js inlined, the figures around them in plain HTML. It opens offline: its Content Security
Policy forbids every request (no script, style, font or image from anywhere but the page)."""

from __future__ import annotations

import html
import os
from typing import Any

from recombee_cli.errors import OutputError, PicturesError
from recombee_cli.outcomes import OUTCOMES
from recombee_cli.pictures.runs import Archive, Run
from recombee_cli.private import write_whole

EXTRA = "drawing a page needs the pictures extra: pip install 'recombee-cli[pictures]'"
GENERATOR = '<meta name="generator" content="recombee-cli report">'   # how a page of ours is known
# Nothing may be fetched at view time; plotly.js needs inline scripts and styles, and data: images.
POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
          "img-src data: blob:; font-src data:")
STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; color: #222;
       margin: 0 auto; max-width: 1280px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 17px; margin: 28px 0 4px; }
p.what { color: #555; margin: 2px 0 8px; max-width: 70em; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
td, th { padding: 3px 10px; border-bottom: 1px solid #e0e0e0; text-align: right; }
td:first-child, th:first-child { text-align: left; }
table.files td, table.files th { text-align: left; vertical-align: top; }
table.files td.when, table.files th, table.files td:first-child { white-space: nowrap; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
.numbers { display: flex; flex-wrap: wrap; gap: 8px 28px; margin: 10px 0; }
.numbers div { font-size: 13px; color: #555; } .numbers b { display: block; font-size: 20px; color: #222; }
footer { color: #888; font-size: 12px; margin-top: 36px; }
"""


def plotly_modules() -> tuple[Any, Any]:
    """pictures.figures and plotly.offline, or a one-line error naming the extra."""
    try:
        from plotly import offline

        from recombee_cli.pictures import figures
    except ImportError:
        raise PicturesError(EXTRA) from None
    return figures, offline


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _numbers(archive: Archive) -> str:
    span = archive.span
    gaps = archive.gaps()
    cells = [("events", f"{sum(archive.outcomes.values()):,}")]
    if span:
        cells += [("from", span[0]), ("to", span[-1]), ("days", f"{len(span):,}"),
                  ("days without events", f"{sum(g[2] for g in gaps):,}"),
                  ("thin days", f"{len(archive.thin_days()):,}")]
    cells.append(("runs" if len(archive.runs) != 1 else "run", f"{len(archive.runs):,}"))
    return '<div class="numbers">' + "".join(f"<div><b>{_e(v)}</b>{_e(k)}</div>" for k, v in cells) + "</div>"


def _outcomes_table(archive: Archive) -> str:
    rows = "".join(
        f'<tr><td><span class="swatch" style="background:{_color(o)}"></span>{o}</td>'
        f"<td>{archive.outcomes.get(o, 0):,}</td><td>{_requests(archive, o)}</td></tr>" for o in OUTCOMES)
    total = (f"<tr><th>total</th><th>{sum(archive.outcomes.values()):,}</th>"
             f"<th>{sum(archive.requests.values()):,}</th></tr>")
    return f'<table class="outcomes"><tr><th>outcome</th><th>events</th><th>requests</th></tr>{rows}{total}</table>'


def _color(outcome: str) -> str:
    from recombee_cli.pictures.figures import COLORS

    return COLORS[outcome]


def _requests(archive: Archive, outcome: str) -> str:
    return f"{archive.requests[outcome]:,}" if outcome in archive.requests else ""


def _files_said(files: dict[str, int], count: int) -> str:
    """The files a run took: their names, in their folder when they share one."""
    if not count:
        return "no new file"
    folders = {os.path.dirname(name) for name in files}
    names = [os.path.basename(name) if len(folders) == 1 else name for name in list(files)[:30]]
    where = f" in {_e(next(iter(folders)))}" if len(folders) == 1 and next(iter(folders)) else ""
    more = f" and {count - len(names):,} more" if count > len(names) else ""
    return f"{count:,} file{'s' if count != 1 else ''}{where}: {', '.join(_e(n) for n in names)}{more}"


def _files_table(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        count = (run.report.get("timeline") or {}).get("sources", {}).get("count", len(run.files))
        seconds = f"{run.seconds:,.1f} s" if run.seconds is not None else ""
        skipped = run.report.get("skipped_sources") or 0
        rows.append(f'<tr><td>{_e(run.label)}</td><td class="when">{_e(run.when)}</td><td>{_e(run.status or "")}'
                    f"</td><td>{seconds}</td><td>{run.report.get('events', 0):,}</td>"
                    f"<td>{run.outcome('invalid') + run.outcome('failed'):,}</td>"
                    f"<td>{_files_said(run.files, count)}{f'; {skipped:,} already done' if skipped else ''}</td></tr>")
    return ('<table class="files"><tr><th>run</th><th>started</th><th>status</th><th>took</th><th>events</th>'
            f'<th>invalid, failed</th><th>files</th></tr>{"".join(rows)}</table>')


def _section(key: str, title: str, what: str, chart: str, extra: str = "") -> str:
    return (f'<section id="{key}"><h2>{_e(title)}</h2><p class="what">{what}</p>{chart}{extra}</section>')


def build_page(runs: list[Run], title: str, source: str, made_by: str = "recombee-cli") -> str:
    """The page, as text; `made_by` (the program and its version) is said at its foot."""
    figures, offline = plotly_modules()
    archive = Archive.of(runs)
    sections = []

    def chart(key: str, fig: Any) -> str:
        return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{key}",
                               config=figures.CONFIG))

    span = archive.span
    gaps = archive.gaps()
    fig = figures.days(archive)
    if fig is not None:
        listed = ", ".join(f"{a}" if n == 1 else f"{a} to {b}" for a, b, n in gaps[:12])
        said = (f"{len(span):,} days from {span[0]} to {span[-1]} (UTC, each event's own time); "
                + (f"{sum(g[2] for g in gaps):,} without any event, shaded: {_e(listed)}"
                   + (" …" if len(gaps) > 12 else "") if gaps else "every day has events") + ".")
        if sum(archive.no_time):
            said += f" {sum(archive.no_time):,} events carry no usable time and are not drawn."
        sections.append(_section("days", "Events per day, by outcome", said, chart("days", fig)))
        sections.append(_section(
            "heatmap", "Events per hour of each day",
            "Coverage: each column a day, each row an hour (UTC). A white cell is an hour without events in a "
            "day that has some (an outage of the tracking?); grey, a day without any.",
            chart("heatmap", figures.heatmap(archive))))
    fig = figures.reasons(archive)
    sections.append(_section(
        "reasons", "Invalid and failed events over time, by kind of reason",
        "When a kind appears or disappears, the events' shape or the tracking plan changed."
        if fig is not None else "No invalid or failed event.", chart("reasons", fig) if fig is not None else ""))
    fig = figures.mappings(archive)
    if fig is not None:
        sections.append(_section("mappings", "Per mapping", "Events each mapping's trigger matched, events for "
                                 "which it built requests, and events it found invalid.", chart("mappings", fig)))
    sender = archive.sending
    if sender is not None:
        series = sender.report["timeline"]["sending"]
        latency = series.get("latency_ms", {})
        said = (f"{_e(sender.label)}{' of ' + _e(sender.when) if sender.when else ''}: "
                f"{sender.report.get('http_calls', sum(series['calls'])):,} calls, "
                f"{sender.report.get('retries', sum(series.get('retries', []))):,} retries "
                f"({sender.report.get('requests_retried', 0):,} requests sent again); latency: half the calls took "
                f"at most {latency.get('p50_at_most')} ms, 99 % at most {latency.get('p99_at_most')} ms, the "
                f"slowest {latency.get('max')} ms.")
        sections.append(_section("sending", "Sending: Batch calls over the run's time", said,
                                 chart("sending", figures.sending(sender))))
    fig = figures.nights(runs)
    if fig is not None:
        sections.append(_section("nights", "Runs (one bar each)",
                                 "Events of each run by outcome, and how long it took; the table lists the files "
                                 "each run read.", chart("nights", fig), _files_table(runs)))
    elif len(runs) == 1 and runs[0].status is not None:
        sections.append(_section("nights", "The run", "", "", _files_table(runs)))
    note = (f'<p class="what">{archive.without_timeline:,} of these runs were made by an older recombee-cli that '
            f"kept no counts per day: they are in the totals, not in the charts over time.</p>"
            if archive.without_timeline else "")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">', GENERATOR,
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{STYLE}</style>",
        f'<script type="text/javascript">{offline.get_plotlyjs()}</script>',
        "</head><body>",
        f"<header><h1>{_e(title)}</h1><p class=\"what\">{_e(source)}</p>{_numbers(archive)}"
        f"{_outcomes_table(archive)}{note}</header>",
        *sections,
        f"<footer>Drawn by {_e(made_by)}. Times are UTC. This page makes no request: it works offline.</footer>",
        "</body></html>", ""])


def is_page_path(path: str) -> bool:
    """A file name that asks for a page rather than JSON."""
    return path.lower().endswith((".html", ".htm"))


def check_page_path(path: str) -> None:
    """Refuse now, before any work: a folder that does not exist, or a file there that is not a
    page of ours (a config or a report named by mistake would be overwritten)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise PicturesError(f"{path}: the folder {folder} does not exist")
    if os.path.isfile(path) and os.path.getsize(path):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                ours = GENERATOR in fh.read(4096)
        except OSError:
            ours = False
        if not ours:
            raise PicturesError(f"{path}: the file exists and is not a page of recombee-cli; refusing to "
                                f"overwrite it (name a new file)")


def write_page(path: str, page: str) -> None:
    """Write the page whole or not at all, as every file the tool writes: a new one its owner's
    alone (0600; it names input files and the reasons events failed, as the report does), one
    that exists keeping its mode (private.write_whole)."""
    try:
        write_whole(path, page.encode("utf-8"))
    except OSError as exc:
        raise OutputError(f"cannot write the page {path}: {exc.strerror or exc}") from None
