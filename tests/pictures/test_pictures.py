"""Pictures of an archive and of runs (issue 27, parts 2 and 3): `report` and `validate --report
FILE.html` write one HTML page that a real browser (headless Chromium, tests/browser.py) opens
offline, every chart drawn, no console error, no request; the counts it draws add up to the run's
summary and report. Also: the charting library loads only when a page is drawn."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from browser import render
from helpers import DATA, ROOT, invoke

from recombee_cli.outcomes import OUTCOMES
from recombee_cli.recombee.emulator import Emulator
from recombee_cli.record.state import StateStore

EXPORT = DATA / "segment-export-20k.ndjson.gz"
DB, TOKEN = "pictures-db", "pictures-token-3f1a"
GAP = ("2024-04-10", "2024-04-11", "2024-04-12")          # days the archive below lacks
OUTAGE = ("2024-05-02", range(8, 14))                     # hours of a day it lacks


def charts(probe: dict) -> dict[str, dict]:
    return {chart["id"]: chart for chart in probe["charts"]}


def drawn_totals(chart: dict) -> dict[str, int]:
    """Per outcome, what the chart's bars add up to."""
    return {t["name"]: sum(v or 0 for v in t["y"]) for t in chart["traces"] if t["name"] in OUTCOMES}


def assert_opened_offline(page: Path, expected: set[str]) -> dict:
    """The page opened in the browser with the network off: no request, no error, every chart drawn."""
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", text)   # nothing to fetch
    probe = render(page)
    assert probe["problems"] == [] and probe["resources"] == []
    found = charts(probe)
    assert set(found) == expected
    for chart in found.values():
        assert chart["traces"] and chart["height"] > 100 and (chart["bars"] or chart["heatmap"] or chart["lines"])
    return found


def summary_counts(stderr: str) -> dict[str, int]:
    """The events column of the summary table a run printed."""
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"│ (\w+)\s+│\s+([\d,]+) │", stderr)
            if m[1] in OUTCOMES}


def test_the_page_of_the_20k_export_opens_offline_and_adds_up(tmp_path):
    report_path, page = tmp_path / "run.json", tmp_path / "run.html"
    run = invoke(["replay", "--dry-run", "--report", str(report_path), str(EXPORT)])
    report = json.loads(report_path.read_text())
    summary = summary_counts(run.stderr)
    assert summary == report["outcomes"]
    drawn = invoke(["report", str(report_path), "--output", str(page)])
    assert drawn.exit_code == 0 and drawn.stdout == "" and "wrote" in drawn.stderr
    found = assert_opened_offline(page, {"chart-days", "chart-heatmap", "chart-reasons", "chart-mappings"})
    assert drawn_totals(found["chart-days"]) == summary
    assert len(found["chart-days"]["traces"][0]["x"]) == 90 and found["chart-days"]["bars"] >= 90
    heat = found["chart-heatmap"]["traces"][0]["z"]
    assert sum(n for row in heat for n in row if n) == report["events"] and found["chart-heatmap"]["heatmap"] == 1
    invalid = sum(sum(t["y"]) for t in found["chart-reasons"]["traces"])
    assert invalid == report["outcomes"]["invalid"]
    mappings = {t["name"]: dict(zip(t["y"], t["x"])) for t in found["chart-mappings"]["traces"]}
    for name, stats in report["mappings"].items():
        assert (mappings["matched"][name], mappings["built"][name]) == (stats["matched"], stats["built"])
        assert mappings["invalid"][name] == sum(stats["invalid"].values())
    header = re.search(r'<table class="outcomes">(.*?)</table>', page.read_text()).group(1)
    assert all(f"{o}</td><td>{n:,}</td>" in header for o, n in summary.items())


def _nightly_archive(folder: Path) -> list[Path]:
    """The 20k export as day files (Segment writes hourly ones), less three days and six hours."""
    days: dict[str, list[bytes]] = {}
    with gzip.open(EXPORT, "rb") as src:
        for line in src:
            stamp = orjson.loads(line)["timestamp"]
            day, hour = stamp[:10], int(stamp[11:13])
            if day in GAP or (day == OUTAGE[0] and hour in OUTAGE[1]):
                continue
            days.setdefault(day, []).append(line)
    folder.mkdir()
    paths = []
    for day, lines in sorted(days.items()):
        path = folder / f"{day}.ndjson.gz"
        path.write_bytes(gzip.compress(b"".join(lines), mtime=0))
        paths.append(path)
    return paths


def test_a_state_after_three_nightly_runs_draws_the_nights_and_the_gaps(tmp_path):
    days = _nightly_archive(tmp_path / "all")
    inbox, state = tmp_path / "inbox", tmp_path / "state.sqlite"
    inbox.mkdir()
    env = {"RECOMBEE_PRIVATE_TOKEN": TOKEN}
    with Emulator(DB, TOKEN) as emu:
        for night in range(3):   # each night, a month of files more in the folder
            for path in days[night * len(days) // 3:(night + 1) * len(days) // 3]:
                path.rename(inbox / path.name)
            result = invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB,
                             "--state", str(state), "--quiet", str(inbox)], env=env)
            assert result.exit_code == 1, result.stderr   # the export's invalid page names
    store = StateStore(str(state))
    try:
        runs = list(reversed(store.runs(10)))
    finally:
        store.close()
    assert [r["status"] for r in runs] == ["failed"] * 3
    page = tmp_path / "nights.html"
    assert invoke(["report", "--state", str(state), "-o", str(page)]).exit_code == 0
    found = assert_opened_offline(page, {"chart-days", "chart-heatmap", "chart-reasons", "chart-mappings",
                                         "chart-sending", "chart-nights"})
    # one bar per night, its counts those of the run; the files each night took, in the table
    nights = found["chart-nights"]
    for outcome in OUTCOMES:
        trace = next(t for t in nights["traces"] if t["name"] == outcome)
        assert trace["y"] == [r["report"]["outcomes"][outcome] for r in runs]
    text = page.read_text()
    for night, run in enumerate(runs):
        named = run["report"]["timeline"]["sources"]["named"]
        assert len(named) == len(days[night * len(days) // 3:(night + 1) * len(days) // 3])
        assert all(Path(name).name in text for name in named)
    # the days add up over the nights; the three days missing are shaded, and empty in the heatmap
    total = {o: sum(r["report"]["outcomes"][o] for r in runs) for o in OUTCOMES}
    assert drawn_totals(found["chart-days"]) == total
    legend = [t["name"] for t in found["chart-days"]["traces"]]
    assert "no events (3 days)" in legend and found["chart-days"]["shapes"] >= 1
    heat = found["chart-heatmap"]["traces"][0]
    columns = [str(x)[:10] for x in heat["x"]]
    for day in GAP:
        assert all(row[columns.index(day)] is None for row in heat["z"])
    outage = columns.index(OUTAGE[0])
    assert [heat["z"][hour][outage] for hour in OUTAGE[1]] == [0] * 6 and heat["z"][7][outage] > 0
    # the calls of the last night, over its time
    sending = next(t for t in found["chart-sending"]["traces"] if t["name"] == "calls")
    assert sum(sending["y"]) == runs[-1]["report"]["http_calls"]

    # validate --report draws the same archive before anything is sent (a dry run)
    preview = tmp_path / "preview.html"
    result = invoke(["validate", "--report", str(preview), str(inbox)])
    assert result.exit_code == 1 and preview.exists()
    found = assert_opened_offline(preview, {"chart-days", "chart-heatmap", "chart-reasons", "chart-mappings"})
    assert "no events (3 days)" in [t["name"] for t in found["chart-days"]["traces"]]
    assert sum(drawn_totals(found["chart-days"]).values()) == sum(total.values())


def test_what_cannot_be_drawn_is_one_line_and_exit_2(tmp_path, monkeypatch):
    not_a_report = tmp_path / "config.json"
    not_a_report.write_text('{"mappings": []}')
    result = invoke(["report", str(not_a_report), "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "is not a report of recombee-cli" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert invoke(["report", "-o", str(tmp_path / "x.html")]).exit_code == 2   # nothing to draw
    config = tmp_path / "recombee-cli.toml"
    config.write_text("[replay]\npresets = true\n")
    result = invoke(["report", str(tmp_path / "missing.json"), "-o", str(config)])
    assert result.exit_code == 2 and "not a page of recombee-cli" in result.stderr
    assert config.read_text() == "[replay]\npresets = true\n"
    # without the pictures extra: one line saying how to get it, before any work
    monkeypatch.setitem(sys.modules, "plotly", None)
    result = invoke(["validate", "--report", str(tmp_path / "v.html"), str(EXPORT)])
    assert result.exit_code == 2 and result.stderr.strip().splitlines()[-1] == (
        "recombee-cli: error: drawing a page needs the pictures extra: pip install 'recombee-cli[pictures]'")


@pytest.mark.parametrize("args", [["--version"], ["replay", "--dry-run", "--quiet", "sample_events"],
                                  ["validate", "sample_events"]], ids=["version", "dry-run", "validate"])
def test_the_charting_library_loads_only_to_draw_a_page(args):
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "recombee_cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "recombee_cli.cli.main" in imported
    assert not {name for name in imported if name.split(".")[0] in ("plotly", "narwhals")}
    if args[0] != "validate":   # (validate knows --report FILE.html: it loads the page's module, not plotly)
        assert not {name for name in imported if name.startswith("recombee_cli.pictures")}
