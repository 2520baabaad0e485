"""The replay session is the library object the CLI, a notebook or a job drives: the same run, the
same output, the same state and the same account of an aborted run, without the command line."""

from __future__ import annotations

import io
import os
import socket

import pytest
from helpers import ROOT, invoke

import recombee_cli
from recombee_cli.errors import UnreachableError
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config
from recombee_cli.mapping.translate import Translator
from recombee_cli.pipeline.session import ReplaySession
from recombee_cli.recombee.client import RecombeeClient, RetryPolicy
from recombee_cli.recombee.emulator import Emulator
from recombee_cli.recombee.sender import RecombeeSender
from recombee_cli.record.state import StateStore
from recombee_cli.sinks.printer import DryRunPrinter
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
