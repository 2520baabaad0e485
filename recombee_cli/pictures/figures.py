"""The page's charts, drawn with plotly (the `pictures` extra): each function takes what
pictures.runs read and returns a plotly Figure, or None when there is nothing to draw."""

from __future__ import annotations

import datetime
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from recombee_cli.outcomes import OUTCOMES
from recombee_cli.pictures.runs import Archive, Run

COLORS = {"sent": "#2e7d32", "duplicate": "#81c784", "unmatched": "#b0bec5", "filtered": "#7986cb",
          "invalid": "#f9a825", "failed": "#c62828"}
GAP_COLOR = "rgba(229, 57, 53, 0.16)"
KIND_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728",
               "#2ca02c", "#7f7f7f", "#aec7e8", "#ffbb78", "#c5b0d5")
FAILED_CALL_COLORS = {"429": "#8e24aa", "5xx": "#c62828", "no answer": "#616161", "refused": "#6d4c41"}
GAPS_DRAWN = 300          # ranges of days without events shaded (the heatmap shows every one)
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}


def _style(fig: go.Figure, height: int, **layout: Any) -> go.Figure:
    base: dict[str, Any] = {"template": "plotly_white", "height": height, "font": {"family": FONT, "size": 12},
                            "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
                            "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}}
    fig.update_layout(**{**base, **layout})
    return fig


def _shifted(day: str, hours: int) -> str:
    moment = datetime.datetime.fromisoformat(day) + datetime.timedelta(hours=hours)
    return moment.strftime("%Y-%m-%d %H:%M")


def _short(text: str, size: int = 70) -> str:
    return text if len(text) <= size else text[:size - 1] + "…"


def days(archive: Archive) -> go.Figure | None:
    """Events per day of their own time, stacked by outcome, over the whole span; days without
    events shaded, thin days marked."""
    span = archive.span
    if not span:
        return None
    fig = go.Figure()
    empty = [0] * len(OUTCOMES)
    for k, outcome in enumerate(OUTCOMES):
        fig.add_bar(x=span, y=[archive.days.get(day, empty)[k] for day in span], name=outcome,
                    marker={"color": COLORS[outcome], "line": {"width": 0}},
                    hovertemplate=f"%{{y:,}} {outcome}<extra></extra>")
    gaps = archive.gaps()
    for first, last, _ in gaps[:GAPS_DRAWN]:
        fig.add_vrect(x0=_shifted(first, -12), x1=_shifted(last, 12), fillcolor=GAP_COLOR, line_width=0, layer="below")
    if gaps:   # a legend entry for the shading
        fig.add_scatter(x=[None], y=[None], mode="markers", name=f"no events ({sum(g[2] for g in gaps):,} days)",
                        marker={"symbol": "square", "size": 14, "color": GAP_COLOR}, hoverinfo="skip")
    thin = archive.thin_days()
    if thin:
        fig.add_scatter(x=thin, y=[sum(archive.days[day]) for day in thin], mode="markers",
                        name="thin day (under a tenth of the median day)",
                        marker={"symbol": "triangle-down", "size": 11, "color": "#e53935"},
                        hovertemplate="thin day: %{y:,} events<extra></extra>")
    return _style(fig, 380, barmode="stack", bargap=0.15, hovermode="x unified",
                  xaxis={"type": "date", "title": None}, yaxis={"title": "events", "rangemode": "tozero"})


def heatmap(archive: Archive) -> go.Figure | None:
    """Events per hour of each day (UTC): an outage in the tracking shows as a hole."""
    span = archive.span
    if not span:
        return None
    rows = [[archive.hours[day][hour] if day in archive.hours else None for day in span] for hour in range(24)]
    top = max((n for row in rows for n in row if n is not None), default=0) or 1
    fig = go.Figure(go.Heatmap(
        x=span, y=list(range(24)), z=rows, zmin=0, zmax=top, zauto=False, hoverongaps=False, xgap=0, ygap=0,
        colorscale=[[0.0, "#ffffff"], [1e-6, "#e3f2fd"], [0.35, "#64b5f6"], [0.7, "#1565c0"], [1.0, "#0d2c6b"]],
        colorbar={"title": {"text": "events"}, "thickness": 12},
        hovertemplate="%{x|%Y-%m-%d} %{y:02d}:00 UTC: %{z:,} events<extra></extra>"))
    return _style(fig, 360, plot_bgcolor="#d6d6d6",
                  xaxis={"type": "date", "showgrid": False},
                  yaxis={"title": "hour (UTC)", "autorange": "reversed", "tickvals": [0, 3, 6, 9, 12, 15, 18, 21],
                         "showgrid": False})


def reasons(archive: Archive) -> go.Figure | None:
    """Invalid and failed events per day, by kind of reason: when a tracking plan changed."""
    drawn = [(outcome, kinds) for outcome, kinds in archive.kinds.items()
             if any(n for days in kinds.values() for day, n in days.items() if day in archive.days)]
    if not drawn:
        return None
    fig = make_subplots(rows=len(drawn), cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=[f"{outcome}, by kind of reason" for outcome, _ in drawn])
    for row, (outcome, kinds) in enumerate(drawn, start=1):
        ranked = sorted(kinds.items(), key=lambda item: -sum(item[1].values()))
        for k, (kind, per_day) in enumerate(ranked):
            on_days = sorted(day for day in per_day if day in archive.days)
            fig.add_bar(x=on_days, y=[per_day[day] for day in on_days], name=_short(kind),
                        legendgroup=outcome, legendgrouptitle={"text": outcome},
                        marker={"color": KIND_COLORS[k % len(KIND_COLORS)], "line": {"width": 0}},
                        customdata=[kind] * len(on_days),
                        hovertemplate="%{x|%Y-%m-%d}: %{y:,} %{customdata}<extra></extra>", row=row, col=1)
        fig.update_yaxes(title_text="events", row=row, col=1)
    fig.update_xaxes(type="date", range=[_shifted(archive.span[0], -12), _shifted(archive.span[-1], 12)])
    return _style(fig, 260 + 220 * len(drawn), barmode="stack", bargap=0.15,
                  legend={"orientation": "v", "x": 0, "y": -0.08, "yanchor": "top", "groupclick": "toggleitem"},
                  margin={"l": 60, "r": 20, "t": 40, "b": 20 + 22 * sum(min(len(k), 13) for _, k in drawn)})


def mappings(archive: Archive) -> go.Figure | None:
    """Per mapping: events matched, requests built, events invalid."""
    if not archive.mappings:
        return None
    names = sorted(archive.mappings, key=lambda name: archive.mappings[name][0])
    fig = go.Figure()
    for k, (label, color) in enumerate((("matched", "#546e7a"), ("built", COLORS["sent"]),
                                        ("invalid", COLORS["invalid"]))):
        fig.add_bar(y=names, x=[archive.mappings[name][k] for name in names], name=label, orientation="h",
                    marker={"color": color}, hovertemplate=f"%{{y}}: %{{x:,}} {label}<extra></extra>")
    return _style(fig, 120 + 26 * 3 * len(names) // 2 + 40, barmode="group", bargap=0.25,
                  xaxis={"title": "events (built: events that built requests)"}, yaxis={"automargin": True})


def sending(run: Run) -> go.Figure | None:
    """A sending run's Batch calls over its time: answers by status, calls, failed calls and
    retries, latency."""
    series = (run.timeline or {}).get("sending")
    if not isinstance(series, dict) or not series.get("calls"):
        return None
    width = float(series["bucket_seconds"])
    t = [round(k * width, 3) for k in range(len(series["calls"]))]
    mode = "lines+markers" if len(t) < 20 else "lines"
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.09,
                        subplot_titles=(f"requests answered, by HTTP status (per {width:g} s)",
                                        "Batch calls, failed calls and retries", "latency of a call (ms)"))
    for code, counts in series.get("answers", {}).items():
        status = int(code)
        color = ("#2e7d32" if status < 300 else "#81c784" if status == 409 else "#8e24aa" if status == 429
                 else "#c62828" if status >= 500 else "#f9a825")
        fig.add_bar(x=t, y=counts, name=f"HTTP {code}", marker={"color": color, "line": {"width": 0}},
                    legendgroup="answers", hovertemplate=f"%{{y:,}} answered {code}<extra></extra>", row=1, col=1)
    fig.add_scatter(x=t, y=series["calls"], name="calls", mode=mode, line={"color": "#37474f", "shape": "hv"},
                    hovertemplate="%{y:,} calls<extra></extra>", row=2, col=1)
    for kind, counts in series.get("failed_calls", {}).items():
        fig.add_bar(x=t, y=counts, name=f"failed: {kind}", marker={"color": FAILED_CALL_COLORS.get(kind, "#999")},
                    hovertemplate=f"%{{y:,}} calls failed ({kind})<extra></extra>", row=2, col=1)
    fig.add_scatter(x=t, y=series.get("retries", []), name="retries", mode=mode,
                    line={"color": "#ef6c00", "dash": "dot", "shape": "hv"},
                    hovertemplate="%{y:,} retries<extra></extra>", row=2, col=1)
    fig.add_scatter(x=t, y=series.get("latency_mean_ms", []), name="mean latency", mode=mode,
                    line={"color": "#1565c0"}, connectgaps=True, hovertemplate="mean %{y:,} ms<extra></extra>",
                    row=3, col=1)
    fig.add_scatter(x=t, y=series.get("latency_max_ms", []), name="slowest call", mode=mode,
                    line={"color": "#90caf9"}, connectgaps=True, hovertemplate="slowest %{y:,} ms<extra></extra>",
                    row=3, col=1)
    fig.update_xaxes(title_text="seconds since the run began", row=3, col=1)
    return _style(fig, 620, barmode="stack", bargap=0.1, hovermode="x unified")


def nights(runs: list[Run]) -> go.Figure | None:
    """One bar per run (a night): its events by outcome, its duration, the files it took."""
    if len(runs) < 2:
        return None
    labels = [f"{run.label}<br>{run.when}" if run.when else run.label for run in runs]
    details = []
    for run in runs:
        files = run.files
        names = ", ".join(list(files)[:8]) + (f" and {len(files) - 8:,} more" if len(files) > 8 else "")
        details.append(f"{run.status or 'report'}; {len(files):,} files{': ' + names if names else ''}")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for outcome in OUTCOMES:
        fig.add_bar(x=labels, y=[run.outcome(outcome) for run in runs], name=outcome,
                    marker={"color": COLORS[outcome]}, customdata=details,
                    hovertemplate=f"%{{y:,}} {outcome}<extra></extra>", secondary_y=False)
    fig.add_scatter(x=labels, y=[round(run.seconds, 1) if run.seconds is not None else None for run in runs],
                    name="duration (s)", mode="lines+markers", line={"color": "#37474f"}, customdata=details,
                    hovertemplate="%{y:,} s; %{customdata}<extra></extra>", secondary_y=True)
    fig.update_yaxes(title_text="events", secondary_y=False)
    fig.update_yaxes(title_text="seconds", secondary_y=True, rangemode="tozero", showgrid=False)
    return _style(fig, 380, barmode="stack", hovermode="x unified")
