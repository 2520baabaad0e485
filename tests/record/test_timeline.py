"""Counts over time (issue 27, part 1 and 4): the report says, per day and hour of the events' own
time, how many events ended in each outcome, and why invalid and failed ones did, by kind; the
counts add up to the summary's; a ten-year archive keeps the report small; the summary on a
terminal shows the days at a glance."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import orjson
from helpers import DATA, ROOT, invoke

from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config
from recombee_cli.mapping.translate import Translator
from recombee_cli.outcomes import OUTCOMES
from recombee_cli.pipeline.engines import Reading
from recombee_cli.pipeline.replay import run
from recombee_cli.recombee.client import RecombeeClient, RetryPolicy
from recombee_cli.recombee.emulator import Emulator, Faults
from recombee_cli.recombee.sender import RecombeeSender
from recombee_cli.record.recorder import Recorder
from recombee_cli.record.report import RunReport
from recombee_cli.record.timeline import DAY_LIMIT, KIND_LIMIT, OTHER_KINDS, Timeline, day_name
from recombee_cli.sources.reader import expand_inputs

EXPORT = DATA / "segment-export-20k.ndjson.gz"


def totals(timeline: dict) -> dict[str, int]:
    """Events per outcome, added up over the days, the events without a time and those left out."""
    sums = [0] * len(timeline["outcomes"])
    for row in [*timeline["days"].values(), timeline["no_time"], timeline["days_left_out"]]:
        for k, n in enumerate(row):
            sums[k] += n
    return dict(zip(timeline["outcomes"], sums))


def test_the_report_counts_each_day_and_hour_and_they_add_up(tmp_path):
    report_path = tmp_path / "run.json"
    result = invoke(["replay", "--dry-run", "--quiet", "--report", str(report_path), str(EXPORT)])
    assert result.exit_code == 1, result.stderr   # the export's page names are invalid, on purpose
    report = json.loads(report_path.read_text())
    timeline = report["timeline"]
    assert totals(timeline) == report["outcomes"]
    assert (timeline["first_day"], timeline["last_day"]) == ("2024-03-01", "2024-05-29")
    assert len(timeline["days"]) == 90 and timeline["no_time"] == [0] * 6
    for day, row in timeline["days"].items():   # the heatmap's hours are the same events
        assert sum(timeline["hours"][day]) == sum(row)
    kinds = timeline["reason_kinds"]["invalid"]
    assert sum(n for days in kinds.values() for n in days.values()) == report["outcomes"]["invalid"]
    assert timeline["sources"]["named"] == {str(EXPORT): 20_000}
    # validate --json says the same of the same inputs
    validated = invoke(["validate", "--json", str(EXPORT)])
    assert json.loads(validated.stdout)["timeline"]["days"] == timeline["days"]


def test_an_events_time_is_its_own_in_utc_and_every_outcome_is_counted(tmp_path):
    def view(user, **clock):
        return {"type": "track", "event": "Product Viewed", "userId": user, "properties": {"product_id": "p1"},
                **clock}
    lines = [
        view("u1", timestamp="2024-03-01T10:00:00.000Z"),
        view("u2", timestamp="2024-03-01T23:30:00-05:00"),            # 2024-03-02 04:30 UTC
        view("u3", originalTimestamp="2024-03-03T01:00:00Z"),         # no timestamp: the next clock
        view("u4", timestamp=1709424000000),                          # epoch ms: 2024-03-03 00:00
        {"type": "identify", "userId": "u5", "timestamp": "2024-03-03T02:00:00.000Z"},   # unmatched
        view("Home Page", timestamp="2024-03-03T03:00:00.000Z"),      # invalid: not a Recombee ID
        {"type": "identify", "userId": "u6"},                         # no time at all
        "not json",
        {"batch": [view("u7", timestamp="2024-02-28T12:00:00Z"), view("u8", timestamp="2024-03-01T11:00:00Z")]},
    ]
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"".join((line.encode() if isinstance(line, str) else orjson.dumps(line)) + b"\n"
                             for line in lines))
    report_path = tmp_path / "run.json"
    invoke(["replay", "--dry-run", "--quiet", "--since", "2024-03-01", "--report", str(report_path), str(path)])
    report = json.loads(report_path.read_text())
    timeline = report["timeline"]
    row = lambda **n: [n.get(outcome, 0) for outcome in OUTCOMES]
    assert timeline["days"] == {
        "2024-02-28": row(filtered=1),                                 # before --since
        "2024-03-01": row(sent=2),
        "2024-03-02": row(sent=1),
        "2024-03-03": row(sent=2, unmatched=1, invalid=1),
    }
    assert timeline["no_time"] == row(filtered=1, invalid=1)           # no time: outside the window; not JSON
    assert timeline["hours"]["2024-03-02"][4] == 1 and timeline["hours"]["2024-03-01"][10:12] == [1, 1]
    assert totals(timeline) == report["outcomes"]
    assert list(timeline["reason_kinds"]["invalid"]) == [
        "mapping 'Ecommerce - Product Viewed': userId … is not a valid Recombee ID (allowed: letters, digits, "
        "_ - : @ .)", "not JSON"]


def test_answers_decide_the_days_of_sent_duplicate_and_failed_events_and_the_calls_are_kept(tmp_path):
    path = tmp_path / "in.ndjson.gz"
    with gzip.open(path, "wb") as out, gzip.open(EXPORT, "rb") as src:
        out.writelines(line for _, line in zip(range(600), src))
    translator = Translator(compile_config(Config()))
    quick = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02, max_total=5)
    from recombee_cli.pipeline.calls import CallLog

    def send(emu: Emulator) -> RunReport:
        client = RecombeeClient("db", "token", emu.base_uri, concurrency=2, timeout=5)
        sender = RecombeeSender(client, batch_size=100, concurrency=2, retry=quick, seed=3)
        report = RunReport()
        report.timeline.calls = CallLog().watch(sender)
        try:
            run(expand_inputs([str(path)]), translator, sender, recorder=Recorder(report, None),
                reading=Reading(chunk_lines=100))
        finally:
            sender.abort()
        report.extra.update(sender.counters())   # as a session does
        return report

    with Emulator("db", "token", faults=Faults(p_sub_5xx=0.2, seed=7)) as emu:
        first = send(emu).to_dict()
        again = send(emu).to_dict()
    for report in (first, again):
        assert totals(report["timeline"]) == report["outcomes"]
    assert first["outcomes"]["failed"] > 0 and again["outcomes"]["duplicate"] > 0
    per_day = {day: row[OUTCOMES.index("failed")] for day, row in first["timeline"]["days"].items()}
    assert sum(per_day.values()) == first["outcomes"]["failed"]
    sending = first["timeline"]["sending"]
    assert sum(sending["calls"]) == first["http_calls"]
    assert sum(sending["retries"]) == first["retries"] > 0
    answered = sum(n for code, counts in sending["answers"].items() for n in counts)
    assert sum(sending["requests"]) >= answered > 0 and sum(sending["answers"]["500"]) > 0
    assert sum(sending["latency_histogram_ms"]["calls"]) == first["http_calls"]


def test_a_ten_year_archive_keeps_the_timeline_small():
    timeline = Timeline()
    for day in range(3653):                      # ten years, every hour, with reasons of 40 kinds
        for hour in range(0, 24, 3):
            timeline.count(day * 24 + hour, "sent", n=100_000)
        timeline.count(day * 24, "invalid", f"mapping 'm{day % 40}': itemId '{day}' is not a valid Recombee ID")
    size = len(orjson.dumps(timeline.to_dict()))
    assert size < 1_200_000, size                # about 300 bytes per day
    kinds = timeline.to_dict()["reason_kinds"]["invalid"]
    assert len(kinds) == KIND_LIMIT + 1
    assert sum(kinds[OTHER_KINDS].values()) == sum(1 for day in range(3653) if day % 40 >= KIND_LIMIT)
    for day in range(DAY_LIMIT):                 # beyond DAY_LIMIT days, new days are counted apart
        timeline.count(day * 24 + 24 * 4000, "sent")
    dump = timeline.to_dict()
    assert len(dump["days"]) == DAY_LIMIT and sum(dump["days_left_out"]) > 0
    assert totals(dump)["sent"] == 3653 * 8 * 100_000 + DAY_LIMIT
    assert day_name(0) == "1970-01-01"


def test_several_workers_count_the_same_days(tmp_path):
    plain = tmp_path / "export.ndjson"
    plain.write_bytes(gzip.decompress(EXPORT.read_bytes()))
    dumps = []
    for workers in ("1", "2"):
        report_path = tmp_path / f"run-{workers}.json"
        invoke(["replay", "--dry-run", "--quiet", "--workers", workers, "--report", str(report_path), str(plain)])
        dumps.append(json.loads(report_path.read_text())["timeline"])
    assert dumps[0] == dumps[1]


def _on_a_terminal(args: list[str], seconds: float = 120) -> str:
    """What a terminal shows when the CLI's stderr is one (stdout thrown away): a pseudo-terminal
    200 columns wide, and no variable that would make rich think otherwise."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {k: v for k, v in os.environ.items()
           if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env["TERM"] = "xterm"
    process = subprocess.Popen([sys.executable, "-m", "recombee_cli", *args], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:   # the child closed the terminal
                break
            if not data:
                break
            shown += data
        assert process.wait(timeout=max(1.0, deadline - time.monotonic())) == 1
    finally:
        process.kill()
        os.close(master)
    return shown.decode("utf-8", "replace")


def test_the_summary_on_a_terminal_shows_the_days_at_a_glance():
    shown = _on_a_terminal(["replay", "--dry-run", str(EXPORT)])
    line = next(line for line in shown.splitlines() if line.startswith("events per day"))
    assert "2024-03-01 to 2024-05-29 (90 days, most " in line
    marks = line.rsplit(": ", 1)[1].strip()
    assert len(marks) == 90 and set(marks) <= set("▁▂▃▄▅▆▇█")
    # not on a terminal (a log file, cron's mail): no such line
    assert "events per day" not in invoke(["replay", "--dry-run", str(EXPORT)]).stderr


def test_a_long_sending_run_keeps_its_calls_in_a_bounded_series():
    from recombee_cli.pipeline.calls import BUCKETS, CallLog

    now = [0.0]
    log = CallLog(clock=lambda: now[0], wall=lambda: 1.7e9)
    for k in range(4 * 3600):   # a call every quarter of a second for an hour, each taking 40 ms
        now[0] = k / 4 + 0.04
        log.record(k / 4, 100, codes=[200] * 99 + [429])
    series = log.to_dict()
    assert len(series["calls"]) <= BUCKETS and series["bucket_seconds"] * len(series["calls"]) >= 3600
    assert sum(series["calls"]) == 4 * 3600 and sum(series["answers"]["429"]) == 4 * 3600
    assert series["latency_ms"] == {"p50_at_most": 50, "p90_at_most": 50, "p99_at_most": 50, "max": 40.0}


def test_a_chunks_repeated_reasons_are_each_counted_for_every_event(tmp_path):
    """The accounting counts a chunk's invalid events once per distinct reason (and hour): each
    count must still be the number of events, in the summary's reasons, the mapping's, the
    timeline's days and the rejects file, with and without workers."""
    def page(name: str, day: int) -> bytes:
        return orjson.dumps({"type": "page", "name": name, "userId": "u1", "properties": {},
                             "timestamp": f"2024-03-0{day}T10:00:00.000Z"})
    # (page name, day, events): names with a space are no Recombee ID, so each such page is invalid.
    plan = [("Home Page", 1, 7), ("Cart Page", 1, 3), ("home", 1, 2), ("Home Page", 2, 5), ("Cart Page", 2, 1)]
    lines = [page(name, day) for name, day, n in plan for _ in range(n)] + [b"not json"] * 4
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    reason = "itemId {!r} is not a valid Recombee ID (allowed: letters, digits, _ - : @ .)".format
    per_reason: dict[str, int] = {}
    per_day: dict[str, int] = {}
    for name, day, n in plan:
        if " " in name:
            per_reason[reason(name)] = per_reason.get(reason(name), 0) + n
            per_day[f"2024-03-0{day}"] = per_day.get(f"2024-03-0{day}", 0) + n
    invalid = sum(per_reason.values()) + 4
    for workers in ("1", "2"):
        report_path, rejects = tmp_path / f"run-{workers}.json", tmp_path / f"rejects-{workers}.ndjson"
        for extra in ([], ["--rejects", str(rejects)]):
            invoke(["replay", "--dry-run", "--quiet", "--workers", workers, "--report", str(report_path), *extra,
                    str(path)])
            report = json.loads(report_path.read_text())
            assert report["outcomes"]["invalid"] == invalid
            assert report["mappings"]["Page - Viewed"]["invalid"] == per_reason
            reasons = report["invalid_reasons"]
            not_json = [text for text in reasons if text.startswith("not JSON")]
            assert len(not_json) == 1 and reasons.pop(not_json[0]) == 4
            assert reasons == {f"mapping 'Page - Viewed': {text}": n for text, n in per_reason.items()}
            kinds = report["timeline"]["reason_kinds"]["invalid"]
            assert sum(kinds.pop("not JSON").values()) == 4
            assert list(kinds.values()) == [per_day]
        assert len(rejects.read_text().splitlines()) == invalid
