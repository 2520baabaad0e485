"""Nothing exposed: what the tool writes is readable by its owner only, signed requests never travel
over plain http unless asked for (however the scheme is spelled), the sandbox says when it is
reachable from other machines with its well-known token, and its TLS key does not outlive it."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MISTAKES, SAMPLES, invoke, wait_for

from recombee_cli.recombee.emulator import Emulator

TOKEN = "private-test-token-9a4d"


@pytest.fixture
def usual_umask():
    """What most machines set (022): files would be created world-readable unless the tool says."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_rejects_and_report_are_created_for_their_owner_only(tmp_path, usual_umask, monkeypatch):
    home = tmp_path / "home" / "state"   # none of it exists: the tool makes the folders
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    rejects, report = tmp_path / "rejects.ndjson", tmp_path / "run.json"
    with Emulator("demo", TOKEN) as emu:
        result = invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", "demo", "--quiet",
                         "--rejects", str(rejects), "--report", str(report), str(MISTAKES)],
                        env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert result.exit_code == 1, result.stderr
    state = home / "recombee-cli" / "demo.sqlite"
    for path in (state, Path(f"{state}.lock"), rejects, report):
        assert _mode(path) == 0o600, path
    for folder in (home.parent, home, home / "recombee-cli"):
        assert _mode(folder) == 0o700, folder
    assert rejects.read_text().count("\n") > 3   # whole events: e-mails, IPs, user agents


def test_a_dry_runs_output_and_an_export_are_their_owners_only(tmp_path, usual_umask):
    out = tmp_path / "requests" / "deep"
    assert invoke(["replay", "--dry-run", "--quiet", "--output", str(out), str(SAMPLES)]).exit_code == 0
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and all(_mode(p) == 0o600 for p in files)
    assert _mode(out) == _mode(out.parent) == 0o700
    export = tmp_path / "export"
    assert invoke(["export", "-o", str(export), "--quiet", str(SAMPLES)]).exit_code in (0, 1)   # (long item ids)
    written = list(export.rglob("*"))
    assert any(p.name.startswith("part-") for p in written)
    assert all(_mode(p) == (0o700 if p.is_dir() else 0o600) for p in [export, *written])


def test_a_file_that_exists_keeps_the_mode_its_owner_gave_it(tmp_path, usual_umask):
    report = tmp_path / "run.json"
    report.write_text('{"events": 0, "outcomes": {}}')   # an earlier run's report
    report.chmod(0o640)   # shared with a monitoring group on purpose
    assert invoke(["replay", "--dry-run", "--quiet", "--report", str(report), str(SAMPLES)]).exit_code == 0
    assert _mode(report) == 0o640 and json.loads(report.read_text())["events"] > 0


# -- plain http ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["HTTP://", "Http://", "hTTp://", " http://"])
@pytest.mark.parametrize("given", ["option", "environment", "config"])
def test_plain_http_needs_allow_http_however_the_scheme_is_spelled(tmp_path, spelling, given):
    events = tmp_path / "none.ndjson"
    events.write_text("")   # nothing to send: only the address is judged
    uri = f"{spelling}127.0.0.1:9"
    args, env = ["replay", "--database-id", "demo", str(events)], {"RECOMBEE_PRIVATE_TOKEN": TOKEN}
    if given == "option":
        args += ["--base-uri", uri]
    elif given == "environment":
        env["RECOMBEE_BASE_URI"] = uri
    else:
        config = tmp_path / "c.toml"
        config.write_text(f'[recombee]\nbase_uri = "{uri}"\n')
        args += ["--config", str(config)]
    refused = invoke(args, env=env)
    assert refused.exit_code == 2 and "is plain http" in refused.stderr and "--allow-http" in refused.stderr
    assert invoke([*args, "--allow-http", "--no-state"], env=env).exit_code == 0


# -- the sandbox ---------------------------------------------------------------------------------

def _sandbox(*args: str) -> tuple[subprocess.Popen, list[str]]:
    """`recombee-cli sandbox` in its own process, once it says where it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "recombee_cli", "sandbox", "--port", "0", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert proc.stderr is not None
    while not any("Recombee emulator on" in line for line in lines):
        line = proc.stderr.readline()   # bounded: the process ends (EOF) if it cannot start
        if not line:
            break
        lines.append(line)
    if any("--tls" in a for a in args):
        lines.append(proc.stderr.readline())   # the certificate's path follows
    return proc, lines


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    return proc.returncode, rest


def test_a_sandbox_other_machines_can_reach_says_so_when_its_token_is_the_default():
    proc, lines = _sandbox("--host", "0.0.0.0")
    code, _ = _stop(proc)
    assert any("lets other machines reach the sandbox" in line for line in lines), lines
    assert code == 143
    own, lines = _sandbox("--host", "0.0.0.0", "--token", "a-secret-of-mine")
    _stop(own)
    assert not any("warning" in line for line in lines), lines
    local, lines = _sandbox()
    _stop(local)
    assert not any("warning" in line for line in lines), lines


def test_sigterm_on_a_tls_sandbox_removes_its_private_key():
    proc, lines = _sandbox("--tls")
    cert = next(line.split("TLS certificate: ", 1)[1].strip() for line in lines if "TLS certificate: " in line)
    folder = Path(cert).parent
    assert (folder / "key.pem").exists() and _mode(folder / "key.pem") == 0o600
    code, rest = _stop(proc)
    assert code == 143 and "Traceback" not in rest
    assert wait_for(lambda: not folder.exists(), 10), sorted(os.listdir(folder))


def test_a_report_in_a_folder_that_takes_no_new_file_is_still_written_in_place(tmp_path, monkeypatch):
    """A report is replaced whole through a temporary file beside it. Where the folder takes no
    new file but the report itself may be written (a file made for the tool in a shared log
    folder), it is written in place, as before; nothing is left beside it."""
    import recombee_cli.private as private

    report = tmp_path / "run.json"
    report.write_text('{"events": 0}')
    allowed = os.path.realpath(report)
    opened = private.open_private

    def folder_refuses_new_files(path: str, mode: str = "wb"):
        if path != allowed:
            raise PermissionError(13, "Permission denied", path)
        return opened(path, mode)

    monkeypatch.setattr(private, "open_private", folder_refuses_new_files)
    private.write_whole(str(report), b'{"events": 3}\n')
    assert report.read_bytes() == b'{"events": 3}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
    with pytest.raises(PermissionError):   # a new file there cannot be written at all
        private.write_whole(str(tmp_path / "new.json"), b"{}")


def test_a_page_is_its_owners_only_and_one_that_exists_keeps_its_mode(tmp_path, usual_umask):
    """A page draws what the report holds (input files, the reasons events failed): written like
    the report, a new page is its owner's alone; it used to be as readable as the umask let it.
    A page that exists keeps the mode its owner gave it (it used to get the umask's again)."""
    report, page = tmp_path / "run.json", tmp_path / "runs.html"
    assert invoke(["replay", "--dry-run", "--quiet", "--report", str(report), str(MISTAKES)]).exit_code == 1
    assert invoke(["report", str(report), "--output", str(page)]).exit_code == 0
    assert _mode(page) == 0o600 and "<html" in page.read_text()
    page.chmod(0o644)   # shared on purpose
    assert invoke(["report", str(report), "--output", str(page), "--title", "again"]).exit_code == 0
    assert _mode(page) == 0o644 and "again" in page.read_text()
