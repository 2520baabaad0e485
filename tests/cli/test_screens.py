"""Screens that read right: plurals, the progress bar's figures, the summary's words within 80
columns, file names cut in the middle, --output names, status's offsets, presets in short
forms, explain of a rejects file, deletes with nothing to do, and how long a run took."""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil

from helpers import MISTAKES, SAMPLES, invoke, ndjson
from rich.console import Console

from recombee_cli.cli import ui
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import load_config
from recombee_cli.recombee.emulator import Emulator
from recombee_cli.record.report import RunReport
from recombee_cli.record.state import FileState, StateStore
from recombee_cli.segment.presets import PRESETS

DB, TOKEN = "demo", "screens-token"


def _summary_lines(stderr: str) -> list[str]:
    """The lines printed under the summary's table."""
    return stderr.split("└")[-1].splitlines()[1:]


def test_one_of_a_thing_is_singular():
    one = invoke(["replay", "--dry-run", str(SAMPLES / "hand-written.ndjson")])
    assert re.search(r"^\d+ lines from 1 input in ", one.stderr, re.M), one.stderr
    assert "1 inputs" not in one.stderr and "1 sources" not in one.stderr
    assert ui.plural(1, "request") == "1 request" and ui.plural(2, "request") == "2 requests"
    assert ui.plural(1, "merge or user deletion", "merges or user deletions") == "1 merge or user deletion"


def test_the_summary_of_a_sending_run_says_its_figures_in_words_within_80_columns(tmp_path):
    with Emulator(DB, TOKEN) as emu:
        result = invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB,
                         "--state", str(tmp_path / "s.sqlite"), "--report", str(tmp_path / "r.json"), str(SAMPLES)],
                        env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    below = _summary_lines(result.stderr)
    text = "\n".join(below)
    assert all(len(line) <= 80 for line in below), below
    assert re.search(r"^\d+ lines from 5 inputs in \d+ ms \([\d,]+ events/s\), \d+ Batch calls?", text, re.M)
    assert " sent" in text and "kept in order" in text
    for word in ("batches", "merges ordered", "http calls", "bytes sent", "resumed sources", "barriers", "held back"):
        assert word not in text
    # what waiting for answers cost the ordering: in the report, for whoever looks into speed
    assert type(json.loads((tmp_path / "r.json").read_text())["held_back"]) is int


def test_deletes_with_nothing_to_do_on_a_first_run_have_a_row_of_their_own():
    with Emulator(DB, TOKEN) as emu:   # an empty database: the samples' removals find nothing
        result = invoke(["replay", "--no-state", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB,
                         str(SAMPLES)], env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        report_row = re.search(r"│ duplicate +│ +(\d+) │ +(\d+) │\n│ +nothing to do +│ +(\d+) │ +(\d+) │",
                               result.stderr)
    assert report_row, result.stderr
    duplicate_events, duplicate_requests, nothing_events, nothing_requests = map(int, report_row.groups())
    assert nothing_events == duplicate_events > 0 and nothing_requests == duplicate_requests
    said = " ".join(result.stderr.split())
    assert f"{nothing_requests} deletes or merges had nothing to do (Recombee answered 404" in said


def test_how_long_a_run_took_reads_right_at_every_scale():
    assert ui.duration(0.0001) == "1 ms" and ui.duration(0.04) == "40 ms"
    assert ui.duration(3.21) == "3.2 s" and ui.duration(245) == "4 min 05 s" and ui.duration(7620) == "2 h 07 min"
    result = invoke(["replay", "--dry-run", str(SAMPLES)])
    assert "in 0.0s" not in result.stderr and re.search(r" in (\d+ ms|\d+\.\d s) \(", result.stderr)


def test_file_names_in_the_bar_are_cut_in_the_middle_keeping_the_files_own_name():
    name = "segment-logs/SRC123/1709251200000/part-0001.gz"
    cut = ui.cut_middle(name, 28)
    assert len(cut) == 28 and cut.startswith("segment") and cut.endswith("part-0001.gz") and "…" in cut
    assert ui.cut_middle("short.gz", 28) == "short.gz"


def test_the_progress_bar_counts_sent_events_as_the_table_does():
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=120)
    bar = ui._ProgressBar(console, total_bytes=1000)
    report = RunReport()
    report.outcomes["sent"], report.requests["sent"], report.requests["duplicate"] = 3, 40, 5
    bar.progress(report, 500)
    fields = bar._bar.tasks[0].fields
    assert fields["sent"] == 3


def test_dry_run_output_files_are_named_after_their_inputs_without_a_doubled_suffix(tmp_path):
    folder = tmp_path / "in"
    (folder / "day").mkdir(parents=True)
    sample = (SAMPLES / "hand-written.ndjson").read_bytes()
    (folder / "day" / "part-0000.gz").write_bytes(gzip.compress(sample))
    (folder / "x.ndjson").write_bytes(sample)
    (folder / "y.ndjson.zst").write_bytes(sample)    # not compressed at all: sniffed, read as it is
    (folder / "twin.ndjson").write_bytes(sample)
    (folder / "twin.ndjson.gz").write_bytes(gzip.compress(sample))
    out = tmp_path / "out"
    result = invoke(["replay", "--dry-run", "--quiet", "--output", str(out), str(folder)])
    assert result.exit_code == 0, result.stderr
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == ["day/part-0000.ndjson", "twin.ndjson.gz.ndjson", "twin.ndjson.ndjson", "x.ndjson",
                     "y.ndjson"]
    assert (out / "x.ndjson").read_bytes() == (out / "day" / "part-0000.ndjson").read_bytes() != b""


def test_status_says_an_offset_is_in_decompressed_bytes(tmp_path):
    state = tmp_path / "s.sqlite"
    store = StateStore(str(state))
    store.save_files([FileState("/data/day.gz", "id", 5_000, False, 0.0, failed=2, reason="Recombee answered 503")],
                     {})
    store.close()
    result = invoke(["status", "--state", str(state)])
    assert "acknowledged up to byte 5,000 of its decompressed content" in result.stdout


def test_presets_are_written_in_the_documented_short_forms_and_read_back_the_same(tmp_path):
    written = invoke(["presets"]).stdout
    fields = [line for line in written.splitlines() if " = " in line and not line.startswith(("#", "name", "trigger",
                                                                                              "action", "use_", "presets"))]
    assert 'userId = ["$.userId", "$.anonymousId"]' in fields
    assert 'itemId = "$.name"' in fields
    top_level_directives = [f for f in fields if re.match(r'^\w+ = \{ "@(path|if)"', f)]
    assert top_level_directives == [], top_level_directives
    config = tmp_path / "presets.toml"
    config.write_text(written)
    again = {m.name: m.spec.fields for m in compile_config(load_config(str(config)))}
    assert again == {p.name: p.mapping() for p in PRESETS}


def test_explain_of_a_rejects_file_cites_the_original_file_and_line(tmp_path):
    rejects = tmp_path / "rejects.ndjson"
    invoke(["replay", "--dry-run", "--quiet", "--rejects", str(rejects), str(MISTAKES)])
    first = json.loads(rejects.read_text().splitlines()[0])
    text = invoke(["explain", str(rejects)]).stdout
    assert text.startswith(f"{first['source']}:{first['line']}: invalid")
    assert f"(from the rejects file {rejects}:1)" in text.splitlines()[1]
    record = ndjson(invoke(["explain", "--json", str(rejects)]).stdout)[0]
    assert (record["source"], record["line"]) == (first["source"], first["line"])
    assert record["rejects_file"] == {"source": str(rejects), "line": 1}


def test_verbose_batch_lines_say_one_request_in_the_singular(tmp_path):
    events = tmp_path / "one.ndjson"
    shutil.copy(SAMPLES / "hand-written.ndjson", events)
    with Emulator(DB, TOKEN) as emu:
        result = invoke(["replay", "--verbose", "--batch-size", "1", "--concurrency", "1", "--no-state",
                         "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, str(events)],
                        env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    batches = [line for line in result.stderr.splitlines() if "Batch of" in line]
    assert batches and all("Batch of 1 request: HTTP 200, 1 attempt, " in line for line in batches)
