"""The command line, through click's CliRunner: every command, its help, its exit codes."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tomllib

import click
import pytest
from helpers import MISTAKES, ROOT, SAMPLES, invoke, ndjson

from recombee_cli.cli.main import ExitCode, main


def test_every_command_has_help_text():
    context = click.Context(main)
    names = main.list_commands(context)
    assert {"replay", "validate", "explain", "presets", "import-segment", "sandbox", "status", "export"} <= set(names)
    for name in names:
        command = main.get_command(context, name)
        result = invoke([name, "--help"])
        assert result.exit_code == 0, name
        assert command.help and len(command.help.strip()) > 20, f"{name} has no real help text"
    top = invoke(["--help"])
    for code in ("0 ", "1 ", "2 ", "3 ", "130"):
        assert code in top.stdout   # exit codes are documented in --help


def test_exit_codes_are_the_documented_ones():
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 130, 143]


def test_dry_run_on_the_samples_prints_batch_request_objects():
    result = invoke(["replay", "--dry-run", str(MISTAKES)])
    requests = ndjson(result.stdout)
    assert result.exit_code == 1          # sample_events_with_mistakes holds a few bad lines on purpose
    assert requests and all(set(r) == {"method", "path", "params"} for r in requests)
    paths = {r["path"].split("/")[1] if r["path"].startswith("/users") else r["path"] for r in requests}
    assert {"/detailviews/", "/purchases/", "/cartadditions/", "/bookmarks/", "/viewportions/", "users"} <= paths
    assert "outcome" in result.stderr and "invalid" in result.stderr   # the summary goes to stderr
    assert "{" not in result.stderr.split("outcome")[0]                # no data on stderr


def test_a_replay_leaves_the_garbage_collector_as_it_found_it():
    """The replay tunes Python's collector for streaming; whoever runs the command in-process
    (tests, other Python programs) gets the settings back."""
    import gc

    before = gc.get_threshold(), gc.get_freeze_count()
    assert invoke(["replay", "--dry-run", str(MISTAKES)]).exit_code == 1
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_dry_run_from_stdin_and_gzip_give_the_same_requests(tmp_path):
    lines = (SAMPLES / "hand-written.ndjson").read_bytes()
    plain = invoke(["replay", "--dry-run", "-"], input=lines)
    (tmp_path / "x.bin").write_bytes(gzip.compress(lines))
    zipped = invoke(["replay", "--dry-run", str(tmp_path / "x.bin")])
    assert plain.stdout == zipped.stdout and ndjson(plain.stdout)


def test_report_counts_add_up_and_rejects_are_replayable(tmp_path):
    rejects = tmp_path / "rejects.ndjson"
    report_path = tmp_path / "report.json"
    result = invoke(["replay", "--dry-run", "--quiet", "--rejects", str(rejects), "--report", str(report_path),
                     str(MISTAKES / "hand-written.ndjson")])
    assert result.exit_code == ExitCode.FINISHED_WITH_ERRORS
    report = json.loads(report_path.read_text())
    assert sum(report["outcomes"].values()) == report["events"]
    assert report["lines"] == 10 and report["events"] == 11          # one envelope line holds two
    records = ndjson(rejects.read_text())
    assert len(records) == report["outcomes"]["invalid"] == 4
    for record in records:
        assert record["source"].endswith("hand-written.ndjson") and record["line"] > 0 and record["reason"]
    # Replaying the rejects reproduces the same reasons: nothing is lost on the way back.
    again = invoke(["replay", "--dry-run", "--quiet", "--report", str(report_path), str(rejects)])
    assert json.loads(report_path.read_text())["outcomes"]["invalid"] == 4
    assert again.exit_code == 1


def test_an_event_one_mapping_builds_and_another_refuses_is_invalid_and_rejected(tmp_path):
    """Two mappings match; one builds, the other refuses: the request is printed, and the event
    still counts as invalid and goes to the rejects file (nothing refused goes unreported)."""
    config = tmp_path / "two.toml"
    config.write_text('[replay]\npresets = false\n'
                      '[[mappings]]\nname = "Good"\naction = "addBookmark"\ntrigger = \'type = "track"\'\n'
                      '[[mappings]]\nname = "Rated"\naction = "addRating"\ntrigger = \'type = "track"\'\n')
    events = tmp_path / "events.ndjson"
    event = {"type": "track", "event": "Product Shared", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z",
             "properties": {"product_id": "p1"}}
    events.write_text(json.dumps(event) + "\n" + json.dumps(dict(event, properties={"product_id": "p2", "rating": 1}))
                      + "\n")
    rejects, report_path = tmp_path / "rejects.ndjson", tmp_path / "report.json"
    result = invoke(["replay", "--dry-run", "--quiet", "--config", str(config), "--rejects", str(rejects),
                     "--report", str(report_path), str(events)])
    assert result.exit_code == ExitCode.FINISHED_WITH_ERRORS
    assert [r["path"] for r in ndjson(result.stdout)] == ["/bookmarks/", "/bookmarks/", "/ratings/"]
    report = json.loads(report_path.read_text())
    assert report["outcomes"]["invalid"] == 1 and report["outcomes"]["sent"] == 1
    [record] = ndjson(rejects.read_text())
    assert record["line"] == 1 and "Rated" in record["reason"] and "rating" in record["reason"]


def test_quiet_run_prints_nothing_on_success(tmp_path):
    good = tmp_path / "good.ndjson"
    good.write_text(json.dumps({"type": "page", "name": "home", "userId": "u1",
                                "timestamp": "2024-01-01T00:00:00Z"}) + "\n")
    result = invoke(["replay", "--dry-run", "--quiet", str(good)])
    assert result.exit_code == 0 and result.stderr == ""
    assert len(ndjson(result.stdout)) == 1


def test_bad_inputs_each_get_a_reason_and_the_run_goes_on(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a-truncated-json.ndjson").write_bytes(b'{"type":"page","name":"home"\n')
    (folder / "b-not-object.ndjson").write_bytes(b'[1,2,3]\n')
    (folder / "c-bad-utf8.ndjson").write_bytes(b'{"type":"page","name":"\xff"}\n')
    data = gzip.compress(b"".join(b'{"type":"page","name":"p%d","userId":"u","timestamp":"2024-01-01T00:00:00Z"}\n'
                                  % i for i in range(20000)))
    (folder / "d-truncated.gz").write_bytes(data[: len(data) // 2])
    (folder / "e-empty.ndjson").write_bytes(b"")
    (folder / "f-good.ndjson").write_bytes(
        b'{"type":"page","name":"home","userId":"u","timestamp":"2024-01-01T00:00:00Z"}\n')
    big = b'{"type":"page","name":"big","userId":"u","timestamp":"2024-01-01T00:00:00Z","properties":{"x":"' \
        + b"y" * 5_000_000 + b'"}}\n'
    (folder / "g-big-line.ndjson").write_bytes(big)
    rejects = tmp_path / "rejects.ndjson"
    result = invoke(["replay", "--dry-run", "--rejects", str(rejects), str(folder)])
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    reasons = {r["source"].rsplit("/", 1)[-1]: r["reason"] for r in ndjson(rejects.read_text())}
    assert reasons["a-truncated-json.ndjson"].startswith("truncated JSON")
    assert reasons["b-not-object.ndjson"] == "not a JSON object (got an array)"
    assert reasons["c-bad-utf8.ndjson"].startswith("invalid UTF-8")
    assert "truncated" in reasons["d-truncated.gz"]
    printed = ndjson(result.stdout)
    assert {"home", "big"} <= {r["params"]["itemId"] for r in printed}   # later files still ran


def test_folder_with_no_events_is_fine(tmp_path):
    (tmp_path / "empty.ndjson").write_text("\n\n")
    result = invoke(["replay", "--dry-run", str(tmp_path)])
    assert result.exit_code == 0 and result.stdout == ""


def test_missing_input_is_exit_2_with_one_line():
    result = invoke(["replay", "--dry-run", "/nonexistent/exports"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "no such file" in result.stderr


def test_config_errors_name_file_line_mapping_and_field(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[replay]\npresets = false\n\n[[mappings]]\nname = "Rated"\naction = "addRating"\n'
                      'trigger = \'type = "track" and event = "Rated"\'\n[mappings.fields]\n'
                      'rating = { "@path" = 5 }\n')
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert str(config) + ":4" in message and "'Rated'" in message and "'rating'" in message
    assert "Traceback" not in message


def test_unparseable_trigger_is_a_configuration_error(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[replay]\npresets = false\n[[mappings]]\nname = "Broken"\naction = "addBookmark"\ntrigger = \'type = "track\'\n')
    result = invoke(["replay", "--dry-run", "--config", str(config), str(SAMPLES)])
    assert result.exit_code == 2 and "Segment cannot parse" in result.stderr and "'Broken'" in result.stderr


def test_invalid_toml_names_the_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[replay]\npresets = tru\n")
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 2 and f"{config}:2" in result.stderr


def test_quirky_trigger_warns_and_behaves_like_segment(tmp_path):
    config = tmp_path / "quirk.toml"
    config.write_text('[replay]\npresets = false\n[[mappings]]\nname = "Mixed"\naction = "addBookmark"\n'
                      'trigger = \'type = "track" and event = "A" or event = "B"\'\n')
    events = tmp_path / "e.ndjson"
    events.write_text(json.dumps({"type": "identify", "event": "B", "userId": "u",
                                  "properties": {"product_id": "p"}, "timestamp": 1}) + "\n")
    result = invoke(["replay", "--dry-run", "--config", str(config), str(events)])
    assert "warning" in result.stderr and "Mixed" in result.stderr
    assert len(ndjson(result.stdout)) == 1   # Segment reads it as an OR of all three


def test_validate_reports_per_mapping(tmp_path):
    result = invoke(["validate", "--json", str(SAMPLES)])
    report = json.loads(result.stdout)
    pages = report["mappings"]["Page - Viewed"]
    assert pages["matched"] > 0 and pages["built"] > 0
    assert report["unmatched_top"]
    human = invoke(["validate", str(SAMPLES)])
    # the report is data: stdout; stderr keeps only messages for people (here: none)
    assert "Page - Viewed" in human.stdout and "unmatched" in human.stdout
    assert "Page - Viewed" not in human.stderr


def test_validate_without_inputs_checks_the_config():
    result = invoke(["validate", "--config", str(ROOT / "mappings.example.toml")])
    assert result.exit_code == 0, result.stderr
    assert "OK" in result.stdout


def test_explain_json_names_origin_mappings_requests_and_outcome():
    result = invoke(["explain", "--json", str(MISTAKES / "hand-written.ndjson")])
    records = ndjson(result.stdout)
    assert len(records) == 11
    first = records[0]
    assert first["source"].endswith("hand-written.ndjson") and first["line"] == 1
    assert first["matched"] == ["Ecommerce - Product Viewed"]
    assert first["requests"][0]["path"] == "/detailviews/" and first["outcome"] == "sent"
    by_line = {r["line"]: r for r in records}
    assert by_line[8]["outcome"] == "invalid" and "userId" in by_line[8]["reason"]
    assert by_line[11]["outcome"] == "unmatched"
    human = invoke(["explain", str(SAMPLES / "hand-written.ndjson")])
    assert "itemId = " in human.stdout


def test_presets_output_is_a_config_that_reproduces_the_presets(tmp_path):
    result = invoke(["presets"])
    config = tmp_path / "presets.toml"
    config.write_text(result.stdout)
    assert len(tomllib.loads(result.stdout)["mappings"]) == 14
    builtin = invoke(["replay", "--dry-run", "--quiet", str(SAMPLES)])
    written = invoke(["replay", "--dry-run", "--quiet", "--config", str(config), str(SAMPLES)])
    assert written.stdout == builtin.stdout and builtin.stdout


def test_import_segment_writes_a_working_config(tmp_path):
    result = invoke(["import-segment", str(ROOT / "docs" / "segment-subscriptions.example.json")])
    assert result.exit_code == 0
    config = tmp_path / "imported.toml"
    config.write_text(result.stdout)
    events = tmp_path / "e.ndjson"
    events.write_text(json.dumps({"type": "track", "event": "Checkout Step Viewed", "userId": "u1",
                                  "properties": {"step": 2}, "timestamp": "2024-01-01T00:00:00Z"}) + "\n")
    out = invoke(["replay", "--dry-run", "--config", str(config), str(events)])
    (request,) = ndjson(out.stdout)
    assert request["params"]["itemId"] == "checkout-step-2"


def test_runtime_shape_subscriptions_are_accepted_by_reference(tmp_path):
    subs = tmp_path / "subs.json"
    subs.write_text(json.dumps([{"name": "Viewed", "partnerAction": "addDetailView",
                                 "subscribe": 'type = "track" and event = "Seen"',
                                 "mapping": {"userId": {"@path": "$.userId"},
                                             "itemId": {"@path": "$.properties.sku"},
                                             "timestamp": {"@path": "$.timestamp"}}}]))
    config = tmp_path / "c.toml"
    config.write_text('segment_subscriptions = ["subs.json"]\n[replay]\npresets = false\n')
    events = tmp_path / "e.ndjson"
    events.write_text(json.dumps({"type": "track", "event": "Seen", "userId": "u1", "properties": {"sku": 7},
                                  "timestamp": "2024-01-01T00:00:00Z"}) + "\n")
    (request,) = ndjson(invoke(["replay", "--dry-run", "--config", str(config), str(events)]).stdout)
    assert request["params"]["itemId"] == "7"            # a number in a string field becomes a string
    assert request["params"]["additionalData"] == {"segmentEventType": "track", "segmentEventName": "Seen"}


def test_python_api():
    import recombee_cli

    event = {"type": "track", "event": "Product Viewed", "userId": "u1", "properties": {"sku": "s-1"},
             "timestamp": "2024-03-01T12:00:00Z"}
    assert recombee_cli.compile_trigger('event = "Product Viewed"').matches(event)
    assert recombee_cli.resolve_mapping({"@path": "$.properties.sku"}, event) == "s-1"
    (request,) = recombee_cli.translate_event(event)
    assert request["params"]["itemId"] == "s-1" and request["params"]["timestamp"] == 1709294400
    with pytest.raises(recombee_cli.PayloadInvalid, match="itemId"):
        recombee_cli.translate_event({**event, "properties": {}})
    with pytest.raises(recombee_cli.MappingError):
        recombee_cli.resolve_mapping({"@path": 5}, event)


def test_python_module_entry_point():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "recombee_cli", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "recombee-cli" in result.stdout


def _report_without_timing(path):
    report = json.loads(path.read_text())
    for key in ("elapsed_seconds", "events_per_second"):
        report.pop(key)
    return report


@pytest.mark.parametrize("inputs", [[str(MISTAKES)], [str(ROOT / "tests" / "data" / "segment-export-dirty-20k.ndjson.gz")]],
                         ids=["samples", "dirty-20k"])
def test_workers_give_identical_output_counts_and_rejects(tmp_path, inputs):
    runs = {}
    for workers in ("1", "2"):
        report = tmp_path / f"r{workers}.json"
        rejects = tmp_path / f"x{workers}.ndjson"
        result = invoke(["replay", "--dry-run", "--quiet", "--workers", workers, "--report", str(report),
                         "--rejects", str(rejects), *inputs])
        runs[workers] = (result.exit_code, result.stdout, _report_without_timing(report), rejects.read_text())
    assert runs["1"] == runs["2"]
    assert runs["1"][2]["outcomes"]["invalid"] > 0 and runs["1"][1]


@pytest.mark.parametrize("failure", ["dies", "raises"])
def test_a_failing_translator_worker_stops_the_run_with_one_line(tmp_path, monkeypatch, failure):
    """Workers are forked from this process, so they run the patched function."""
    from recombee_cli.pipeline import parallel

    def broken(*args, **kwargs):
        if failure == "dies":
            os._exit(9)
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(parallel, "translate_block", broken)
    result = invoke(["replay", "--dry-run", "--quiet", "--workers", "2", str(SAMPLES)])
    assert result.exit_code == ExitCode.ABORTED
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]   # after the summary of what was done
    assert message.startswith("recombee-cli: error: a translator worker")
    assert ("process died" in message) if failure == "dies" else ("ZeroDivisionError: a bug" in message)


def test_workers_on_a_system_without_fork_is_a_usage_error_in_one_line(monkeypatch):
    """Where processes cannot be forked (Windows), --workers says so and what to use instead;
    it was a RuntimeError's traceback."""
    from recombee_cli.pipeline import parallel

    def no_fork(method=None):
        raise ValueError(f"cannot find context for {method!r}")

    monkeypatch.setattr(parallel.multiprocessing, "get_context", no_fork)
    result = invoke(["replay", "--dry-run", "--quiet", "--workers", "2", str(SAMPLES)])
    assert result.exit_code == ExitCode.USAGE
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "recombee-cli: error: --workers needs the 'fork' start method, which this system does not have "
        "(it runs on Linux and macOS): use --workers 1"]
    assert result.stdout == ""


@pytest.mark.parametrize("size, expected", [(10**12, "one"), (1, "cores")], ids=["small input", "large input"])
def test_workers_auto_forks_one_per_core_only_for_large_inputs(monkeypatch, size, expected):
    """`--workers auto` (the default): the cores of this machine for a large input, one process
    for a small one (forking costs more than it gains), with the same output either way."""
    import multiprocessing

    from recombee_cli.cli import common
    from recombee_cli.pipeline import parallel

    made = []

    class Spy(parallel.TranslatorPool):
        def __init__(self, translator, workers, **kwargs):
            made.append(workers)
            super().__init__(translator, workers, **kwargs)

    monkeypatch.setattr(parallel, "TranslatorPool", Spy)   # (the replay imports it when it forks)
    monkeypatch.setattr(common, "AUTO_WORKERS_BYTES", size)   # the samples are a few KB
    cores = min(len(os.sched_getaffinity(0)), common.AUTO_WORKERS_MAX)
    result = invoke(["replay", "--dry-run", "--quiet", str(SAMPLES)])
    explicit = invoke(["replay", "--dry-run", "--quiet", "--workers", "1", str(SAMPLES)])
    assert result.exit_code == explicit.exit_code == 0 and result.stdout == explicit.stdout
    if expected == "one" or cores == 1 or "fork" not in multiprocessing.get_all_start_methods():
        assert made == []
    else:
        assert made == [cores]


@pytest.mark.parametrize("command", [["replay", "--dry-run"], ["export", "-o", "OUT"]])
@pytest.mark.parametrize("since, until", [("2024-02-01", "2024-01-01"), ("2024-01-01", "2024-01-01"),
                                          ("1706745600", "2024-01-01T00:00:00Z")])
def test_a_time_window_with_nothing_in_it_is_a_usage_error(tmp_path, command, since, until):
    args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
    result = invoke([*args, "--since", since, "--until", until, str(SAMPLES)])
    assert result.exit_code == 2, result.stderr
    assert "is not before --until" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("args", [["--version"], ["replay", "--dry-run", "--quiet", str(SAMPLES)], ["validate"]],
                         ids=["version", "dry-run", "validate"])
def test_what_sends_nothing_loads_no_http_stack(args):
    """--version, a dry run and validate send nothing: they load neither httpx, nor ssl, nor the
    sender (start-up was 0.3 s of imports, for every command); showing nothing (--quiet, or a
    command that only prints a line), they load no rich (40 ms of a quiet dry run's start-up); and
    forking no worker (a small input), no multiprocessing (10 ms)."""
    probe = ("import sys\nfrom recombee_cli.cli.main import main\n"
             f"try:\n    main({args!r}, prog_name='recombee-cli')\nexcept SystemExit:\n    pass\n"
             "loaded = [m for m in ('httpx', 'ssl', 'recombee_cli.recombee.sender', 'recombee_cli.recombee.client',"
             " 'rich', 'recombee_cli.pipeline.parallel', 'multiprocessing') if m in sys.modules]\nprint('LOADED', loaded, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "LOADED []" in result.stderr, result.stderr[-500:]


def test_a_quiet_sending_run_loads_no_command_line_of_httpx():
    """httpx imports its own command line (click, rich, pygments) whenever they are installed, as
    they are with this tool: 30-40 ms of every sending run's start, for a command line the tool
    never runs. A quiet run that sends loads httpx, but neither rich nor pygments."""
    from recombee_cli.recombee.emulator import Emulator

    with Emulator("startup-db", "startup-token") as emu:
        args = ["replay", "--quiet", "--no-state", "--database-id", "startup-db", "--base-uri", emu.base_uri,
                "--allow-http", str(SAMPLES)]
        probe = ("import sys\nfrom recombee_cli.cli.main import main\n"
                 f"try:\n    main({args!r}, prog_name='recombee-cli')\nexcept SystemExit as exc:\n"
                 "    print('EXIT', exc.code, file=sys.stderr)\n"
                 "loaded = [m for m in ('httpx', 'rich', 'pygments') if m in sys.modules]\n"
                 "print('LOADED', loaded, file=sys.stderr)\n")
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                                cwd=ROOT, env=dict(os.environ, RECOMBEE_PRIVATE_TOKEN="startup-token"))
        assert emu.stats.sub_requests > 0, result.stderr[-500:]   # it did send
    assert "EXIT 0" in result.stderr and "LOADED ['httpx']" in result.stderr, result.stderr[-500:]


def test_a_report_that_cannot_be_written_whole_leaves_the_previous_one(tmp_path):
    """A monitor reads the --report file after each nightly run. It used to be emptied, then
    written: a run stopped in between (killed, or the disk full) left it empty or torn. Here the
    disk is full past 1 KB (the process's file-size limit): the run says it cannot write the
    report, and the previous report is still there, whole, with nothing else left beside it."""
    report = tmp_path / "run.json"
    args = ["replay", "--dry-run", "--quiet", "--report", str(report), str(SAMPLES)]
    assert invoke(args).exit_code == 0
    before = report.read_bytes()
    assert len(before) > 1024   # (the limit falls inside the report)
    limited = ("import resource, runpy, signal, sys\n"
               "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails instead\n"
               "resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))\n"
               f"sys.argv = ['recombee-cli'] + {args!r}\n"
               "runpy.run_module('recombee_cli', run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", limited], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == int(ExitCode.ABORTED), result.stderr[-500:]
    assert "cannot write the report" in result.stderr and "Traceback" not in result.stderr
    assert report.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
