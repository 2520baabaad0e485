"""`recombee-cli doctor`: every check against the local emulator over 127.0.0.1, with real
signatures: a wrong token, a wrong database, a skewed clock, an unreachable port, a read-only
state folder, a state of another database, a config with a problem, inputs that cannot be listed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from email.utils import formatdate
from pathlib import Path

import boto3
import pytest
from helpers import SAMPLES, invoke
from moto.server import ThreadedMotoServer

from recombee_cli.pipeline.doctor import check_clock, clock_skew
from recombee_cli.recombee.client import Answer
from recombee_cli.recombee.emulator import Emulator

DB, TOKEN = "demo", "doctor-secret-token"


SERVER_AHEAD = 120.0   # seconds the emulator's clock is set ahead of ours in the clock test

def doctor(emu_or_url, *extra, token=TOKEN, database=DB, env=None):
    url = emu_or_url if isinstance(emu_or_url, str) else emu_or_url.base_uri
    environ = {"RECOMBEE_PRIVATE_TOKEN": token} if token else {}
    environ.update(env or {})
    args = ["doctor", "--base-uri", url, "--allow-http", *(["--database-id", database] if database else []), *extra]
    result = invoke(args, env=environ)
    assert "Traceback" not in result.stderr and TOKEN not in result.stdout + result.stderr
    return result


def lines(result) -> dict[str, str]:
    """Each check's line (and its fix line after it), by check name."""
    found: dict[str, str] = {}
    last = None
    for line in result.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0] in ("✔", "✗", "–"):
            last = parts[1]
            found[last] = found.get(last, "") + line + "\n"
        elif last and line.strip().startswith("fix:"):
            found[last] += line.strip() + "\n"
    return found


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_everything_in_place_passes_every_check_and_exits_0(tmp_path):
    with Emulator(DB, TOKEN) as emu:
        result = doctor(emu, "--state", str(tmp_path / "s.sqlite"), str(SAMPLES))
    assert result.exit_code == 0, result.stdout
    checks = lines(result)
    assert list(checks) == ["config", "address", "clock", "credentials", "state", "inputs", "extras"]
    assert all(line.startswith("✔") for line in checks.values()), result.stdout
    assert "database 'demo' accepts the token (from RECOMBEE_PRIVATE_TOKEN)" in checks["credentials"]
    assert "none yet at" in checks["state"] and "5 files" in checks["inputs"]
    assert result.stdout.rstrip().endswith("every check passed")


def test_a_wrong_token_fails_the_credentials_check_with_the_fix():
    with Emulator(DB, TOKEN) as emu:
        result = doctor(emu, token="not-the-token")
    assert result.exit_code == 1
    checks = lines(result)
    assert checks["credentials"].startswith("✗") and "401: Invalid HMAC signature" in checks["credentials"]
    assert "fix: check the private token (from RECOMBEE_PRIVATE_TOKEN)" in checks["credentials"]
    assert checks["address"].startswith("✔") and checks["clock"].startswith("✔")
    assert "not-the-token" not in result.stdout


def test_a_wrong_database_id_is_named_with_its_fix():
    with Emulator(DB, TOKEN) as emu:
        result = doctor(emu, database="shop-prdo")
    assert result.exit_code == 1
    credentials = lines(result)["credentials"]
    assert "Unknown database 'shop-prdo'" in credentials and "fix: check the database id" in credentials


def test_a_skewed_clock_is_found_from_the_servers_date_and_named_as_the_cause():
    with Emulator(DB, TOKEN) as emu:
        emu.clock_offset = SERVER_AHEAD   # the server is two minutes ahead: our signatures look expired
        result = doctor(emu)
        as_json = json.loads(doctor(emu, "--json").stdout)
    assert result.exit_code == 1
    checks = lines(result)
    assert checks["clock"].startswith("✗") and "s behind the server's" in checks["clock"]
    assert "fix: set the clock right" in checks["clock"]
    assert checks["credentials"].startswith("✗") and "see the clock check" in checks["credentials"]
    clock = next(c for c in as_json["checks"] if c["check"] == "clock")
    # the server's clock is found ahead by the offset set above, two minutes, whatever the call
    # took (how it is worked out from the Date header, to the fraction of a second: the test below)
    assert clock["ok"] is False and round(clock["skew_seconds"] / 60) == SERVER_AHEAD / 60


def test_the_skew_is_the_servers_date_against_the_middle_of_the_call():
    """Date is cut to the whole second: its middle is compared with the local time at the middle
    of the call, so a server two minutes ahead reads as two minutes, not up to a second less."""
    middle = 1_700_000_000.25
    ahead = Answer(200, None, "", formatdate(middle + SERVER_AHEAD, usegmt=True), 0.1, middle)
    behind = Answer(200, None, "", formatdate(middle - SERVER_AHEAD, usegmt=True), 0.1, middle)
    assert clock_skew(ahead) == pytest.approx(SERVER_AHEAD + 0.25)
    assert clock_skew(behind) == pytest.approx(-SERVER_AHEAD + 0.25)
    assert clock_skew(Answer(200, None, "", None, 0.1, middle)) is None
    assert clock_skew(Answer(200, None, "", "not a date", 0.1, middle)) is None
    assert check_clock(behind).ok is False and check_clock(ahead).ok is False


def test_an_unreachable_port_fails_the_address_check_and_skips_what_needs_it():
    result = doctor(f"http://127.0.0.1:{closed_port()}")
    assert result.exit_code == 1
    checks = lines(result)
    assert checks["address"].startswith("✗") and "connection refused" in checks["address"]
    assert "fix: check --region / --base-uri" in checks["address"]
    assert checks["credentials"].startswith("–") and checks["clock"].startswith("–")


@contextlib.contextmanager
def read_only_folder(path):
    """A folder no file can be created in. Root ignores permission bits, so as root the folder is
    also made immutable (chattr +i), which root's writes respect too; where that is not allowed
    either (a container without the capability), /proc/self/fdinfo, where nobody creates files."""
    path.mkdir()
    path.chmod(0o555)
    immutable = os.geteuid() == 0 and shutil.which("chattr") is not None and \
        subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    try:
        yield path if immutable or os.geteuid() != 0 else Path("/proc/self/fdinfo")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


def test_a_read_only_state_folder_is_found_before_a_run_needs_it(tmp_path):
    with Emulator(DB, TOKEN) as emu, read_only_folder(tmp_path / "ro") as folder:
        result = doctor(emu, "--state", str(folder / "state.sqlite"))
    assert result.exit_code == 1
    state = lines(result)["state"]
    assert state.startswith("✗") and f"cannot write in {folder}" in state
    assert "fix: make the folder writable, or name a state file elsewhere with --state FILE" in state


def _state(path, meta: dict, files: list[tuple[str, int]]):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("CREATE TABLE files (path TEXT PRIMARY KEY, identity TEXT, offset INTEGER, done INTEGER, updated REAL)")
    db.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
    db.executemany("INSERT INTO files VALUES (?, '', 0, ?, 0)", files)
    db.commit()
    db.close()


def test_the_state_says_its_database_and_pending_files_and_refuses_another_databases(tmp_path):
    ours, theirs = tmp_path / "ours.sqlite", tmp_path / "theirs.sqlite"
    _state(ours, {"schema_version": "3"}, [("/a.gz", 1), ("/b.gz", 0)])             # an older state: no owner
    _state(theirs, {"schema_version": "3", "database_id": "shop-prod"}, [("/a.gz", 1)])
    with Emulator(DB, TOKEN) as emu:
        older = lines(doctor(emu, "--state", str(ours)))["state"]
        other = doctor(emu, "--state", str(theirs))
    assert older.startswith("✔") and "records no database" in older
    assert "1 file done, 1 pending (the next run takes it up" in older
    assert other.exit_code == 1 and "belongs to database 'shop-prod', not 'demo'" in lines(other)["state"]


def test_a_sending_runs_state_is_found_by_the_database_id(tmp_path):
    with Emulator(DB, TOKEN) as emu:
        sent = invoke(["replay", "--quiet", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB,
                       str(SAMPLES)], env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        assert sent.exit_code == 0, sent.stderr
        state = lines(doctor(emu))["state"]
    assert state.startswith("✔") and "demo.sqlite: writable" in state and "5 files done, none pending" in state


def test_missing_token_and_database_id_are_both_named(tmp_path):
    with Emulator(DB, TOKEN) as emu:
        result = doctor(emu, token=None, database=None)
    credentials = lines(result)["credentials"]
    assert result.exit_code == 1 and credentials.startswith("✗")
    assert "no database id" in credentials and "no private token (RECOMBEE_PRIVATE_TOKEN" in credentials


def test_a_config_with_a_problem_fails_and_the_other_checks_still_run(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[replay]\npresets = false\n[[mappings]]\nname = "Rated"\naction = "addRating"\n'
                      'trigger = \'type = "track" and event = "Rated"\'\n[mappings.fields]\nrating = "$.properties.stars"\n'
                      'itemId = "properties.song_id"\n')
    with Emulator(DB, TOKEN) as emu:
        result = doctor(emu, "--config", str(config))
    checks = lines(result)
    assert result.exit_code == 1 and checks["config"].startswith("✗")
    assert f"{config}:" in checks["config"] and "'itemId'" in checks["config"]
    assert checks["credentials"].startswith("✔")


def test_json_lists_every_check_for_machines(tmp_path):
    with Emulator(DB, TOKEN) as emu:
        result = doctor(emu, "--json", "--state", str(tmp_path / "s.sqlite"))
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["ok"] is True
    names = [c["check"] for c in report["checks"]]
    assert names == ["config", "address", "clock", "credentials", "state", "inputs", "extras"]
    assert all(set(c) >= {"check", "ok", "said", "fix"} for c in report["checks"])
    assert report["checks"][-1]["extras"]["remote"] is True   # the dev install has every extra


# -- remote inputs: a real S3-protocol server on loopback --------------------------------------

@pytest.fixture(scope="module")
def s3():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint}
    saved = {k: os.environ.get(k) for k in (*env, "AWS_PROFILE")}
    os.environ.update(env)
    os.environ.pop("AWS_PROFILE", None)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="acme-segment")
    for name in ("a.gz", "b.gz"):
        client.put_object(Bucket="acme-segment", Key=f"segment-logs/SRC1/1709251200000/{name}",
                          Body=(SAMPLES / "hand-written.ndjson").read_bytes())
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_remote_inputs_are_listed_and_a_missing_bucket_is_one_line_with_the_fix(s3, tmp_path):
    with Emulator(DB, TOKEN) as emu:
        result = doctor(emu, "--state", str(tmp_path / "s.sqlite"), "s3://acme-segment/segment-logs/SRC1/",
                        "s3://no-such-bucket-here/segment-logs/")
    inputs = [line for line in result.stdout.splitlines() if " inputs " in line or "fix: credentials" in line]
    assert result.exit_code == 1
    assert inputs[0].startswith("✔") and "s3://acme-segment/segment-logs/SRC1/: 2 files" in inputs[0]
    assert "listed in" in inputs[0]
    assert inputs[1].startswith("✗") and "no-such-bucket-here" in inputs[1]
    assert "AWS_ENDPOINT_URL" in inputs[2]


def test_doctor_help_has_examples_and_its_exit_codes():
    result = invoke(["doctor", "--help"])
    assert "Examples:" in result.stdout and "recombee-cli doctor --database-id shop-prod" in result.stdout
    assert "1    a check failed" in result.stdout


def test_without_a_terminal_font_the_marks_fall_back_to_words(tmp_path):
    with Emulator(DB, TOKEN) as emu:
        env = {**os.environ, "PYTHONIOENCODING": "ascii", "RECOMBEE_PRIVATE_TOKEN": TOKEN}
        done = subprocess.run([sys.executable, "-m", "recombee_cli", "doctor", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB,
                               "--state", str(tmp_path / "s.sqlite")], capture_output=True, text=True,
                              env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("ok ") and "✔" not in done.stdout
