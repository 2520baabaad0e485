"""The replay session is the library object the CLI, a notebook or a job drives: the same run, the
same output, the same state and the same account of an aborted run, without the command line."""

from __future__ import annotations

import io
import json
import os
import socket

import pytest
from helpers import ROOT, invoke

import recombee_cli
from recombee_cli.errors import PayloadInvalid, UnreachableError
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config
from recombee_cli.mapping.translate import Translator
from recombee_cli.pipeline.session import ExportSession, ReplaySession
from recombee_cli.recombee.client import RecombeeClient, RetryPolicy
from recombee_cli.recombee.emulator import Emulator
from recombee_cli.recombee.sender import RecombeeSender
from recombee_cli.record.state import StateStore
from recombee_cli.segment.actions import check_id
from recombee_cli.sinks.files import ExportSink, FileExporter
from recombee_cli.sinks.printer import DryRunPrinter
from recombee_cli.sinks.reco_interactions import RecoInteractions
from recombee_cli.sources.reader import expand_inputs

DB = "session-db"
TOKEN = "session-secret-token"
SAMPLES = ROOT / "sample_events"
GIVE_UP_SOON = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02, max_total=5)


def translator() -> Translator:
    return Translator(compile_config(Config()))


def sender(base_uri: str, retry: RetryPolicy | None = None) -> RecombeeSender:
    client = RecombeeClient(DB, TOKEN, base_uri, concurrency=2, timeout=5)
    extra = {"retry": retry} if retry else {}
    return RecombeeSender(client, batch_size=50, concurrency=2, seed=3, **extra)


def test_a_dry_run_session_prints_what_the_command_prints():
    out = io.BytesIO()
    report = ReplaySession(translator(), DryRunPrinter(out)).run(expand_inputs([str(SAMPLES)]))
    cli = invoke(["replay", "--dry-run", str(SAMPLES)])
    assert cli.exit_code == 0, cli.stderr
    assert out.getvalue() == cli.stdout_bytes and out.getvalue().count(b"\n") == report.requests["sent"] > 0


def test_the_session_is_reachable_from_the_package():
    assert recombee_cli.ReplaySession is ReplaySession


def test_a_sending_session_records_its_files_and_the_next_one_skips_them(tmp_path):
    state = str(tmp_path / "state.sqlite")
    with Emulator(DB, TOKEN) as emu:
        first = ReplaySession(translator(), sender(emu.base_uri), dry_run=False, state_path=state)
        report = first.run(expand_inputs([str(SAMPLES)]))
        calls = emu.stats.batch_calls
        again = ReplaySession(translator(), sender(emu.base_uri), dry_run=False, state_path=state)
        second = again.run(expand_inputs([str(SAMPLES)]))
        assert emu.stats.batch_calls == calls   # nothing sent twice
    assert report.outcomes["sent"] > 0 and report.ok
    assert second.events == 0 and second.skipped_sources == len(expand_inputs([str(SAMPLES)]))
    store = StateStore(state)
    try:
        assert [r["status"] for r in store.runs()] == ["done", "done"]
        assert all(f.done for f in store.files())
    finally:
        store.close()


def test_a_session_that_cannot_reach_recombee_says_what_was_done_and_records_the_run_as_aborted(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    state = str(tmp_path / "state.sqlite")
    session = ReplaySession(translator(), sender(f"http://127.0.0.1:{port}", GIVE_UP_SOON), dry_run=False,
                            state_path=state)
    with pytest.raises(UnreachableError):
        session.run(expand_inputs([str(SAMPLES)]))
    assert session.report.extra["aborted"] == "UnreachableError"
    assert session.report.extra["not_answered"] > 0
    store = StateStore(state)
    try:
        assert [r["status"] for r in store.runs()] == ["aborted"]
        done = {os.path.basename(f.path) for f in store.files() if f.done}
        assert "hand-written.ndjson" not in done   # its requests were never answered: the next run sends them
    finally:
        store.close()


def test_a_session_runs_once_and_says_so_when_run_again(tmp_path):
    rejects = tmp_path / "rejects.ndjson"
    session = ReplaySession(translator(), DryRunPrinter(io.BytesIO()), rejects_path=str(rejects))
    session.run(expand_inputs([str(ROOT / "sample_events_with_mistakes")]))
    written = rejects.read_bytes()
    with pytest.raises(RuntimeError, match="runs once"):
        session.run(expand_inputs([str(ROOT / "sample_events_with_mistakes")]))
    assert written and rejects.read_bytes() == written


def test_a_session_that_sends_values_reads_the_databases_types_first(tmp_path):
    """The Python API gets what the command line gets: the session reads the database's property
    types before sending, so a value that does not fit one is left out before sending."""
    from recombee_api_client.api_client import RecombeeClient as SDK
    from recombee_api_client.api_requests import AddUserProperty, GetUserValues

    config = Config()
    config.enable(["Identify - User Traits"])
    values = Translator(compile_config(config))
    values.property_types = config.property_types()
    path = tmp_path / "e.ndjson"
    path.write_text('{"type":"identify","userId":"u1","traits":{"seats":"many","plan":"pro"},'
                    '"timestamp":"2024-03-01T00:00:00Z"}\n')
    warnings: list[str] = []
    with Emulator(DB, TOKEN) as emu:
        sdk = SDK(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})
        sdk.send(AddUserProperty("seats", "int"))
        session = ReplaySession(values, sender(emu.base_uri), dry_run=False, warn=warnings.append)
        report = session.run(expand_inputs([str(path)]))
        assert report.outcomes["sent"] == 1 and report.outcomes["failed"] == 0 and warnings == []
        assert report.extra["dropped_values"]["user property 'seats'"]["reason"] == \
            "user property 'seats' is int (in the database); the value (string) does not fit"
        assert sdk.send(GetUserValues("u1")) == {"seats": None, "plan": "pro"}
        assert emu.stats.sub_codes.get(400, 0) == 0


# ---------------------------------------------------------------------------------------------
# The export: the same lifecycle, into files

def export_session(out, **options) -> ExportSession:
    fmt = RecoInteractions()
    return ExportSession(translator(), ExportSink(fmt, FileExporter(str(out), fmt)), **options)


def _files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _figures(report: dict) -> dict:
    timing = ("elapsed_seconds", "events_per_second")
    return {k: ({**v, "output": "OUT"} if k == "export" else v) for k, v in report.items() if k not in timing}


def test_an_export_session_writes_and_reports_what_the_export_command_does(tmp_path):
    mistakes = ROOT / "sample_events_with_mistakes"
    rejects = tmp_path / "session.rejects.ndjson"
    report = export_session(tmp_path / "session", rejects_path=str(rejects)).run(expand_inputs([str(mistakes)]))
    cli = invoke(["export", "-o", str(tmp_path / "cli"), "--report", str(tmp_path / "cli.json"),
                  "--rejects", str(tmp_path / "cli.rejects.ndjson"), str(mistakes)])
    assert cli.exit_code == 1 and report.outcomes["invalid"] > 0, cli.stderr
    assert _files(tmp_path / "session") == _files(tmp_path / "cli")
    assert rejects.read_bytes() == (tmp_path / "cli.rejects.ndjson").read_bytes()
    assert _figures(report.to_dict()) == _figures(json.loads((tmp_path / "cli.json").read_text()))
    assert report.extra["rows_written"] == report.requests["sent"] > 0


def test_the_export_command_runs_its_whole_run_through_an_export_session(tmp_path, monkeypatch):
    """One lifecycle for both commands: the CLI wires the sink and the session, nothing else."""
    ran = []
    real_run = ExportSession.run

    def spy(self, sources, **kwargs):
        ran.append(self)
        return real_run(self, sources, **kwargs)

    monkeypatch.setattr(ExportSession, "run", spy)
    result = invoke(["export", "-o", str(tmp_path / "out"), "--quiet", str(SAMPLES / "hand-written.ndjson")])
    assert result.exit_code == 0, result.stderr
    assert len(ran) == 1 and ran[0].manifest is not None and ran[0].state_path is None   # an export keeps no state


def test_an_export_session_applies_the_formats_contract_not_recombees_id_rule_in_its_workers_too(tmp_path):
    """A notebook's export needs no context of its own: a page named like a search is a row (the
    contract has no ID rule), translated here or in the forked workers, and afterwards the rule
    is back for a replay in the same process."""
    path = tmp_path / "e.ndjson"
    path.write_text("".join(json.dumps({"type": "page", "name": f"Search {i}", "userId": f"u {i}",
                                        "timestamp": "2024-03-01T00:00:00Z"}) + "\n" for i in range(300)))
    for workers in (1, 2):
        report = export_session(tmp_path / f"out{workers}", workers=workers).run(expand_inputs([str(path)]))
        assert report.outcomes["sent"] == 300 and report.outcomes["invalid"] == 0, report.invalid_reasons
        with pytest.raises(PayloadInvalid, match="not a valid Recombee ID"):
            check_id("itemId", "Search 1")
    assert _files(tmp_path / "out1") == _files(tmp_path / "out2")


def test_the_export_session_is_reachable_from_the_package():
    assert recombee_cli.ExportSession is ExportSession
