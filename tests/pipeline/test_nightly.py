"""Nightly runs you can leave alone: a file is done only when it is really done, failures are one
line with a documented exit code, and cron's habits (SIGTERM, env vars, --fail-on) are honoured.

Everything runs for real: files on disk, the SQLite state, the emulator over 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys

import orjson
import pytest
from helpers import MISTAKES, SAMPLES, invoke, ndjson, wait_for, write_archive, write_gz

from recombee_cli.errors import ConfigError
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config, load_config
from recombee_cli.mapping.translate import Translator
from recombee_cli.pipeline.engines import Reading
from recombee_cli.pipeline.replay import run
from recombee_cli.recombee.client import RecombeeClient, RetryPolicy
from recombee_cli.recombee.emulator import Emulator, Faults
from recombee_cli.recombee.sender import RecombeeSender
from recombee_cli.record.checkpoints import Checkpoints
from recombee_cli.record.recorder import Recorder
from recombee_cli.record.report import RunReport
from recombee_cli.record.state import StateStore
from recombee_cli.sources.reader import Source, expand_inputs

DB = "nightly-db"
TOKEN = "nightly-token-5d1e"
QUICK_GIVE_UP = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02, max_total=5)
PATIENT = RetryPolicy(max_attempts=30, base_delay=0.01, max_delay=0.1, max_total=60)


def _replay(emu: Emulator, sources, state_path, *, retry=PATIENT, rejects=None) -> RunReport:
    """One sending run as the CLI wires it: state, checkpoints, sender, recorder."""
    store = StateStore(str(state_path))
    store.lock("test")
    client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=2, timeout=5)
    sender = RecombeeSender(client, batch_size=100, concurrency=2, retry=retry, seed=3)
    report = RunReport()
    try:
        run(sources, Translator(compile_config(Config())), sender, recorder=Recorder(report, rejects),
            checkpoints=Checkpoints(store), reading=Reading(chunk_lines=100))
    finally:
        sender.abort()
        store.close()
    return report


def _files(state_path) -> dict:
    store = StateStore(str(state_path))
    try:
        return {f.path: f for f in store.files()}
    finally:
        store.close()


def _clean_store(sources) -> dict:
    with Emulator(DB, TOKEN) as emu:
        _replay(emu, sources, str(sources[0].name) + ".clean.sqlite")
        return emu.snapshot()


# -- 1. failed events are not forgotten ---------------------------------------------------------

def test_a_file_with_failed_events_stays_pending_and_the_next_run_delivers_them(tmp_path):
    paths = write_archive(tmp_path / "in", 2, 300, seed=21)
    expected = _clean_store(expand_inputs(paths))
    state = tmp_path / "state.sqlite"
    with Emulator(DB, TOKEN, faults=Faults(p_sub_5xx=0.3, seed=4)) as emu:
        outage = _replay(emu, expand_inputs(paths), state, retry=QUICK_GIVE_UP)
        assert outage.outcomes["failed"] > 0
        files = _files(state)
        assert len(files) == 2 and not any(f.done for f in files.values())
        assert all(f.failed > 0 and "Recombee answered" in f.reason for f in files.values())
        emu.faults = Faults()
        healthy = _replay(emu, expand_inputs(paths), state)
        assert healthy.outcomes["failed"] == 0 and healthy.skipped_sources == 0
        assert all(f.done and f.failed == 0 and f.reason is None for f in _files(state).values())
        assert emu.snapshot() == expected               # everything the outage did not deliver
        third = _replay(emu, expand_inputs(paths), state)
    assert third.skipped_sources == 2                   # and now they really are done


def test_status_shows_a_file_with_failures_as_not_done_and_why(tmp_path):
    paths = write_archive(tmp_path / "in", 1, 200, seed=22)
    state = tmp_path / "state.sqlite"
    with Emulator(DB, TOKEN, faults=Faults(p_sub_5xx=1.0)) as emu:
        _replay(emu, expand_inputs(paths), state, retry=QUICK_GIVE_UP)
    human = invoke(["status", "--state", str(state)])
    assert "0 files done, 1 not done" in human.stdout
    assert "events failed" in human.stdout and "Recombee answered" in human.stdout
    data = json.loads(invoke(["status", "--state", str(state), "--json"]).stdout)
    assert data["files"][0]["done"] is False and data["files"][0]["failed"] > 0


# -- 2. unreadable inputs stay pending ----------------------------------------------------------

def test_a_file_that_cannot_be_opened_stays_pending_and_is_read_once_it_can_be(tmp_path):
    (path,) = write_archive(tmp_path / "in", 1, 150, seed=23)
    allowed = {"yes": False}

    def opener():   # permission denied until the operator fixes it (root ignores chmod, so say it here)
        if not allowed["yes"]:
            raise PermissionError(13, "Permission denied", path)
        return open(path, "rb")

    (real,) = expand_inputs([path])
    source = Source(real.name, opener, real.size, real.identity, real.key)
    state = tmp_path / "state.sqlite"
    with Emulator(DB, TOKEN) as emu:
        first = _replay(emu, [source], state)
        assert first.outcomes["invalid"] == 1 and first.unreadable_sources == 1 and not first.ok
        (entry,) = _files(state).values()
        assert not entry.done and "Permission denied" in entry.reason
        allowed["yes"] = True
        second = _replay(emu, [source], state)
    assert second.skipped_sources == 0 and second.events == 150
    assert second.outcomes["sent"] > 0 and _files(state)[real.key].done


def test_an_unreadable_input_fails_the_run_whatever_fail_on_says():
    result = invoke(["replay", "--dry-run", "--fail-on", "failed", "/proc/self/mem"])
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr


# -- 4. one file, one entry, however it is spelled ----------------------------------------------

def test_the_same_file_under_another_spelling_is_not_sent_again(tmp_path, monkeypatch):
    folder = tmp_path / "exports"
    (path,) = write_archive(folder, 1, 120, seed=24)
    state = tmp_path / "state.sqlite"
    with Emulator(DB, TOKEN) as emu:
        monkeypatch.chdir(folder)
        _replay(emu, expand_inputs([os.path.basename(path)]), state)
        monkeypatch.chdir(tmp_path)
        again = _replay(emu, expand_inputs(["./exports/" + os.path.basename(path)]), state)
        absolute = _replay(emu, expand_inputs([path]), state)
    assert again.skipped_sources == 1 and absolute.skipped_sources == 1
    assert list(_files(state)) == [os.path.realpath(path)]


def test_a_state_file_of_schema_1_is_read_with_its_files_done(tmp_path, monkeypatch):
    (path,) = write_archive(tmp_path / "in", 1, 50, seed=25)
    st = os.stat(path)
    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE files (path TEXT PRIMARY KEY, identity TEXT NOT NULL, offset INTEGER NOT NULL DEFAULT 0,
                            done INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL);
        CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, finished REAL,
                           status TEXT NOT NULL, command TEXT NOT NULL, report TEXT);
        INSERT INTO meta VALUES ('schema_version', '1');""")
    # schema 1 kept the path as typed on the command line, relative to wherever cron ran it
    db.execute("INSERT INTO files VALUES (?, ?, 0, 1, 0)",
               ("in/part-0.gz", f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"))
    db.commit()
    db.close()
    with Emulator(DB, TOKEN) as emu:
        report = _replay(emu, expand_inputs([path]), old)
        assert emu.stats.sub_requests == 0
    assert report.skipped_sources == 1


# -- 5. a resumed run does not write a reject twice ---------------------------------------------

def test_a_rerun_does_not_write_the_same_reject_twice(tmp_path):
    events = [{"type": "page", "name": "Home Page", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z"},
              {"type": "track", "event": "Product Viewed", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z",
               "properties": {"product_id": "p1"}},
              {"batch": [{"type": "page", "name": "Other Page", "userId": "u2",
                          "timestamp": "2024-01-01T00:00:00Z"},
                         {"type": "page", "name": "Third Page", "userId": "u3",
                          "timestamp": "2024-01-01T00:00:00Z"}]}]
    path = write_gz(tmp_path / "e.gz", events)
    rejects = tmp_path / "rejects.ndjson"
    for _ in range(3):   # --reprocess, or a resume that reads the same lines again
        result = invoke(["replay", "--dry-run", "--rejects", str(rejects), path])
        assert result.exit_code == 1
    records = ndjson(rejects.read_text())
    assert len(records) == 3                                   # three invalid events, each once
    assert sorted(r.get("index", 0) for r in records) == [0, 0, 1]


# -- 11/12. odd names and outputs: one line, a documented code, no traceback --------------------

def test_a_non_utf8_file_name_with_bad_lines_goes_to_rejects_and_state(tmp_path):
    folder = os.fsencode(tmp_path)
    name = os.path.join(folder, b"caf\xe9.ndjson")
    with open(name, "wb") as fh:
        fh.write(b'{"type": "page", "name": "Home Page", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z"}\n'
                 b"not json\n")
    rejects = tmp_path / "r.ndjson"
    state = tmp_path / "s.sqlite"
    with Emulator(DB, TOKEN) as emu:
        result = invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB,
                         "--state", str(state), "--rejects", str(rejects), os.fsdecode(name)],
                        env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    records = ndjson(rejects.read_text())
    assert len(records) == 2 and all(r["source"].endswith("caf\\xe9.ndjson") for r in records)
    (entry,) = _files(state).values()
    assert entry.done and entry.path.endswith("caf\\xe9.ndjson")


@pytest.mark.parametrize("args, code, words", [
    (["--dry-run", str(SAMPLES / "hand-written.ndjson")], 3, "cannot write the requests"),
    (["--dry-run", "--rejects", "/dev/full", str(MISTAKES)], 3, "cannot write the rejects file /dev/full"),
    (["--dry-run", "--rejects", "/no/such/folder/r.ndjson", str(MISTAKES)], 2, "cannot write the rejects file"),
    (["--dry-run", "--report", "/no/such/folder/r.json", str(SAMPLES)], 2, "does not exist"),
    (["--database-id", DB, "--state", "/dev/null/s.sqlite", str(SAMPLES)], 2, "cannot create the state folder"),
])
def test_output_and_state_errors_are_one_line_and_a_documented_code(args, code, words):
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, "-m", "recombee_cli", "replay", *args], stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=60,
                                env={**os.environ, "RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert words in result.stderr.strip().splitlines()[-1]


def test_a_run_that_died_is_not_left_running_in_the_state(tmp_path):
    state = tmp_path / "s.sqlite"
    store = StateStore(str(state))
    store.lock("first")
    store.start_run("first")   # and then kill -9: nobody finishes it
    store.close()
    store = StateStore(str(state))
    store.lock("second")
    store.start_run("second")
    statuses = [r["status"] for r in store.runs()]
    store.close()
    assert statuses == ["running", "crashed"]


# -- 13. the TOML file is checked as the command line is ----------------------------------------

@pytest.mark.parametrize("line, words", [
    ("concurrency = -3", "replay.concurrency must be between 1 and 64"),
    ("concurrency = 3000", "replay.concurrency must be between 1 and 64"),
    ("batch_size = 20000", "replay.batch_size must be between 1 and 10000"),
    ('fail_on = ["invalid", "sent"]', "'sent' is not an outcome that can fail a run"),
])
def test_the_config_file_is_checked_like_the_command_line(tmp_path, line, words):
    config = tmp_path / "c.toml"
    config.write_text(f"[replay]\n{line}\n")
    with pytest.raises(ConfigError, match=words):
        load_config(str(config))
    result = invoke(["replay", "--dry-run", "--config", str(config), str(SAMPLES)])
    assert result.exit_code == 2 and f"{config}:2" in result.stderr and "Traceback" not in result.stderr


# -- 15. --fail-on -------------------------------------------------------------------------------

def test_fail_on_lets_a_nightly_job_accept_invalid_events(tmp_path):
    events = [{"type": "page", "name": "Home Page", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z"},
              {"type": "track", "event": "Product Viewed", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z",
               "properties": {"product_id": "p1"}}]
    path = write_gz(tmp_path / "e.gz", events)
    default = invoke(["replay", "--dry-run", "--quiet", path])
    relaxed = invoke(["replay", "--dry-run", "--quiet", "--fail-on", "failed", path])
    config = tmp_path / "c.toml"
    config.write_text('[replay]\nfail_on = ["failed"]\n')
    from_file = invoke(["replay", "--dry-run", "--quiet", "--config", str(config), path])
    strict = invoke(["replay", "--dry-run", "--quiet", "--fail-on", "invalid,unmatched", path])
    assert default.exit_code == 1 and "invalid" in default.stderr
    assert relaxed.exit_code == 0 and relaxed.stderr == ""
    assert from_file.exit_code == 0 and from_file.stderr == ""
    assert strict.exit_code == 1
    bad = invoke(["replay", "--dry-run", "--fail-on", "sent", path])
    assert bad.exit_code == 2 and "not an outcome" in bad.stderr


# -- 16. cron manners ----------------------------------------------------------------------------

def _progress_saved(state) -> bool:
    if not os.path.exists(state):
        return False
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT 1 FROM files WHERE offset > 0 OR done").fetchone() is not None
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


def test_sigterm_saves_the_checkpoint_and_exits_143(tmp_path):
    paths = write_archive(tmp_path / "in", 2, 2000, seed=26)
    state = tmp_path / "state.sqlite"
    with Emulator(DB, TOKEN, latency=2000) as emu:   # 40 calls of 2 s on 4 lanes: it cannot finish first
        proc = subprocess.Popen(
            [sys.executable, "-m", "recombee_cli", "replay", "--base-uri", emu.base_uri, "--allow-http",
             "--database-id", DB, "--state", str(state), "--batch-size", "100", "--concurrency", "4", *paths],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RECOMBEE_PRIVATE_TOKEN": TOKEN})
        assert wait_for(lambda: _progress_saved(state) or proc.poll() is not None)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    store = StateStore(str(state))
    try:
        assert store.runs(1)[0]["status"] == "interrupted"
    finally:
        store.close()


def test_every_option_can_come_from_the_environment_and_help_says_so(tmp_path):
    events = [{"type": "page", "name": "Home Page", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z"}]
    path = write_gz(tmp_path / "e.gz", events)
    result = invoke(["replay", path], env={"RECOMBEE_CLI_REPLAY_DRY_RUN": "1", "RECOMBEE_CLI_REPLAY_FAIL_ON": "none"})
    assert result.exit_code == 0, result.stderr   # a dry run without a token, failing on nothing
    help_text = invoke(["replay", "--help"]).stdout
    assert "RECOMBEE_CLI_REPLAY_BATCH_SIZE" in help_text and "RECOMBEE_CLI_REPLAY_FAIL_ON" in help_text


def test_a_broken_liquid_template_fails_validate_with_file_line_and_field(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[replay]\npresets = false\n\n[[mappings]]\nname = "liquid views"\n'
                      'trigger = \'type = "track"\'\naction = "addDetailView"\n'
                      'fields = { itemId = { "@liquid" = "{{ properties.sku | upcase " } }\n')
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 2, result.stdout
    message = result.stderr.strip()
    assert f"{config}:4" in message and "'liquid views'" in message and "'itemId'" in message
    assert "cannot be parsed" in message


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", -5])
def test_a_timestamp_recombee_refuses_is_invalid_before_sending(stamp):
    event = {"type": "track", "event": "Product Viewed", "userId": "u1", "timestamp": stamp,
             "properties": {"product_id": "p1"}}
    result = invoke(["replay", "--dry-run", "-"], input=orjson.dumps(event))
    assert result.exit_code == 1 and result.stdout == ""
    assert "before 1970" in result.stderr or "cannot be negative" in result.stderr


@pytest.mark.parametrize("args, words", [
    (["--latency-ms", "-5"], "--latency-ms"),
    (["--port", "70000"], "--port"),
    (["--p-5xx", "0.8", "--p-429", "0.5"], "must not exceed 1"),
    (["--database-id", "a/b"], "--database-id"),
    (["--store", "/no/such/folder/s.sqlite"], "does not exist"),
])
def test_sandbox_arguments_are_checked(args, words):
    result = invoke(["sandbox", *args])
    assert result.exit_code == 2 and words in result.stderr and "Traceback" not in result.stderr


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:   # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_after_an_outage_status_shows_the_file_pending_and_the_next_run_delivers_it(tmp_path):
    """The issue's own example: --base-uri to a refused port with --state, then a healthy night."""
    paths = write_archive(tmp_path / "in", 1, 300, seed=27)
    state = tmp_path / "s.sqlite"
    args = ["replay", "--allow-http", "--database-id", DB, "--state", str(state), "--batch-size", "100", *paths]
    env = {**os.environ, "RECOMBEE_PRIVATE_TOKEN": TOKEN}
    port = _closed_port()   # Recombee's address: down tonight, back tomorrow (a state belongs to one address)
    outage = subprocess.run([sys.executable, "-m", "recombee_cli", *args, "--base-uri",
                             f"http://127.0.0.1:{port}"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert outage.returncode == 3, outage.stderr
    assert "connection refused" in outage.stderr.strip().splitlines()[-1]
    status = invoke(["status", "--state", str(state)])
    assert "0 files done, 1 not done" in status.stdout and "connection refused" in status.stdout
    expected = _clean_store(expand_inputs(paths))
    with Emulator(DB, TOKEN, port=port) as emu:
        healthy = subprocess.run([sys.executable, "-m", "recombee_cli", *args, "--base-uri", emu.base_uri],
                                 capture_output=True, text=True, env=env, timeout=300)
        assert healthy.returncode in (0, 1), healthy.stderr
        assert emu.snapshot() == expected
    assert all(f.done for f in _files(state).values())


# -- wiring: what the reader finds reaches the operator --------------------------------------------

def test_trailing_garbage_is_a_warning_on_stderr_and_every_line_is_replayed(tmp_path):
    events = [{"type": "track", "event": "Product Viewed", "userId": f"u{n}", "timestamp": "2024-01-01T00:00:00Z",
               "properties": {"product_id": f"p{n}"}} for n in range(50)]
    path = tmp_path / "g.gz"
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in events)) + b"garbage after the member")
    result = invoke(["replay", "--dry-run", str(path)])
    assert result.exit_code == 0, result.stderr
    assert len(ndjson(result.stdout)) == 50
    assert "warning" in result.stderr and "trailing garbage ignored" in result.stderr


def test_since_skips_day_folders_received_before_it_and_says_so(tmp_path):
    source = tmp_path / "segment-logs" / "SRC"
    old_day, new_day = "1704067200000", "1706745600000"   # 2024-01-01 and 2024-02-01, UTC midnights
    for day, stamp in ((old_day, "2024-01-01T10:00:00Z"), (new_day, "2024-02-01T10:00:00Z")):
        (source / day).mkdir(parents=True)
        write_gz(source / day / "part.gz", [{"type": "track", "event": "Product Viewed", "userId": "u1",
                                               "timestamp": stamp, "properties": {"product_id": "p1"}}])
    report = tmp_path / "r.json"
    result = invoke(["replay", "--dry-run", "--since", "2024-01-15", "--report", str(report), str(source)])
    assert result.exit_code == 0, result.stderr
    assert "1 day folders skipped" in result.stderr
    figures = json.loads(report.read_text())
    assert figures["sources"] == 1 and figures["skipped_folders"] == 1 and len(ndjson(result.stdout)) == 1


def test_rejects_of_stdin_are_written_every_run(tmp_path):
    line = b'{"type": "page", "name": "Home Page", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z"}\n'
    rejects = tmp_path / "r.ndjson"
    for _ in range(2):   # two nights of piped data: the same offsets, other events
        invoke(["replay", "--dry-run", "--rejects", str(rejects), "-"], input=line)
    assert len(ndjson(rejects.read_text())) == 2
