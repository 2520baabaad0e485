"""Every code block of the README runs, so none can go stale.

`python` blocks run as they are, in a folder laid out as the README's examples assume (Segment's
`segment-logs/<source>/<day>/` tree, `recombee-cli.toml`, `event.json`, `day.gz`, ...). `sh`
blocks run line by line in bash in such a folder, each line's exit code checked (0, or the one
`EXIT` gives). Where a line needs what is not here — a Recombee database of yours, an S3 bucket,
a Dask scheduler, a package index — it is listed in `OFFLINE_IMPOSSIBLE` with the reason (a test
checks that every line so listed is still in the README). The sandbox's port 8910 becomes the
port a sandbox of this test got, the one change made to what is written. `text` blocks are
output, not commands."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import MISTAKES, ROOT, SAMPLES

from recombee_cli.recombee.emulator import Emulator

README = (ROOT / "README.md").read_text()
BLOCKS = [(m.group(1), m.group(2), README[:m.start()].count("\n") + 1)
          for m in re.finditer(r"^```(\w*)\n(.*?)^```", README, re.S | re.M)]

NEEDS_RECOMBEE = "sends to a Recombee database of yours (the sandbox block runs the same commands)"
OFFLINE_IMPOSSIBLE = {
    # the install commands: .ci/run runs the second in a fresh clone; test_newcomer runs the first's dry run
    "python3 -m venv .venv && . .venv/bin/activate && pip install -U pip && pip install -e . && recombee-cli "
    "replay --dry-run sample_events/": "installs into a new virtualenv",
    "python3 -m venv .venv && . .venv/bin/activate && pip install -U pip && pip install -e '.[dev]' && pytest":
        "installs into a new virtualenv and runs this suite",
    "pip install 'recombee-cli[dask,remote]'": "installs from the package index",
    "pip install 'recombee-cli[pictures]'": "installs from the package index (the dev extra has plotly)",
    "recombee-cli report --database-id shop-prod -o nights.html": "reads the state the sending run above keeps",
    "recombee-cli report --database-id shop-prod --runs 60 -o nights.html": "reads the state of a sending run",
    "export RECOMBEE_PRIVATE_TOKEN=...": "a placeholder for your token",
    "recombee-cli doctor --database-id shop-prod --region us-west": NEEDS_RECOMBEE,
    "recombee-cli replay --database-id shop-prod --region us-west --report run.json segment-logs/SRC123/":
        NEEDS_RECOMBEE,
    "recombee-cli status --database-id shop-prod": "reads the state the sending run above keeps",
    "recombee-cli show user alice@example.com --database-id shop-prod --region us-west": NEEDS_RECOMBEE,
    "recombee-cli replay --database-id shop-prod --region us-west "
    "~/.local/state/recombee-cli/shop-prod.rejects.ndjson": NEEDS_RECOMBEE,
    "recombee-cli replay --verbose segment-logs/SRC123/": NEEDS_RECOMBEE,
    "recombee-cli replay --workers 2 segment-logs/SRC123/": NEEDS_RECOMBEE,
    "recombee-cli replay --exclude '*.txt' segment-logs/SRC123/": NEEDS_RECOMBEE,
    "recombee-cli replay --quiet --config /etc/recombee/recombee-cli.toml "
    "s3://acme-segment/segment-logs/SRC123/": "an S3 bucket and a config in /etc (test_remote runs S3 on loopback)",
    "recombee-cli replay --since 2024-01-01 --until 2024-02-01 segment-logs/SRC123/": NEEDS_RECOMBEE,
    "recombee-cli replay segment-logs/SRC123/": NEEDS_RECOMBEE,
    "recombee-cli replay --dask local:4 s3://acme-segment/segment-logs/SRC123/": "an S3 bucket (test_dask runs "
                                                                                 "S3 on loopback)",
    "recombee-cli replay --dask tcp://scheduler:8786 s3://acme-segment/segment-logs/SRC123/": "a Dask scheduler",
    "recombee-cli validate --dask tcp://scheduler:8786 s3://acme-segment/segment-logs/SRC123/": "a Dask scheduler",
    'eval "$(_RECOMBEE_CLI_COMPLETE=zsh_source recombee-cli)"': "zsh's syntax (test_newcomer checks the script)",
    "_RECOMBEE_CLI_COMPLETE=fish_source recombee-cli | source": "fish's syntax (test_newcomer checks the script)",
    "for n in 1 2; do python3 -c 'while True: pass' & done; for run in 1 2 3; do pytest -q || break; done; "
    "kill %1 %2": "runs this suite three times",
    "ruff check recombee_cli tests bench && mypy && lint-imports && python .ci/house_rules.py": ".ci/run runs it",
}
EXIT = {   # lines that exit other than 0 by design
    "recombee-cli replay --dry-run --rejects rejects.ndjson sample_events_with_mistakes/ > requests.ndjson": 1,
    # the samples hold item ids longer than Reco_Interactions' 16 characters: those events are invalid
    "recombee-cli export --format reco-interactions --output out/ segment-logs/SRC123/": 1,
}


def _lines(text: str) -> list[str]:
    """Shell lines with continuations joined (comments kept: bash drops them)."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1].strip() + " "
            continue
        line = (pending + raw.strip()).strip()
        pending = ""
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _command(line: str) -> str:
    """A line without its trailing comment (for OFFLINE_IMPOSSIBLE and EXIT): a `#` after a space,
    outside quotes."""
    quote = None
    for at, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and at and line[at - 1].isspace():
            return line[:at].strip()
    return line.strip()


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    """A folder as the README's examples assume it."""
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(SAMPLES, root / "sample_events")
    shutil.copytree(MISTAKES, root / "sample_events_with_mistakes")
    shutil.copy(ROOT / "mappings.example.toml", root)
    shutil.copy(ROOT / "docs" / "segment-subscriptions.example.json", root / "subscriptions.json")
    day = root / "segment-logs" / "SRC123" / "1714608000000"   # Segment's day folder: 2024-05-02, in ms
    day.mkdir(parents=True)
    for number, path in enumerate(sorted(p for p in SAMPLES.rglob("*") if p.is_file())):
        data = path.read_bytes()
        (day / f"part-{number:04d}.gz").write_bytes(data if path.suffix == ".gz" else gzip.compress(data))
    (root / "day.gz").write_bytes(gzip.compress((SAMPLES / "hand-written.ndjson").read_bytes()))
    first = (SAMPLES / "hand-written.ndjson").read_text().splitlines()[0]
    (root / "event.json").write_text(json.dumps(json.loads(first), indent=2))   # pasted from Segment's debugger
    done = subprocess.run([sys.executable, "-m", "recombee_cli", "presets"], capture_output=True, cwd=root,
                          timeout=60)
    (root / "recombee-cli.toml").write_bytes(done.stdout)
    return root


@pytest.fixture
def folder(layout, tmp_path) -> Path:
    here = tmp_path / "here"
    shutil.copytree(layout, here)
    return here


def _environ(folder: Path, **extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RECOMBEE_", "AWS_"))}
    environ.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}",
                   XDG_STATE_HOME=str(folder / "state"), **extra)
    environ.pop("PYTHONUNBUFFERED", None)   # as in a user's shell
    return environ


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else "the sandbox exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} after {seconds} s")


def _run_shell(lines: list[str], folder: Path, environ: dict[str, str]) -> None:
    script = []
    for number, line in enumerate(lines):
        script += [line, f'echo "__readme_exit__ {number} $?" >&2']
    done = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, text=True, cwd=folder,
                          env=environ, timeout=600)
    codes = {int(n): int(code) for n, code in re.findall(r"__readme_exit__ (\d+) (\d+)", done.stderr)}
    for number, line in enumerate(lines):
        assert number in codes, f"{line!r} did not finish:\n{done.stderr[-2000:]}"
        wanted = EXIT.get(_command(line), 0)
        assert codes[number] == wanted, f"{line!r} exited {codes[number]}, not {wanted}:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


@pytest.mark.parametrize("lang, text, start", [b for b in BLOCKS if b[0] in ("sh", "bash")],
                         ids=lambda value: str(value) if isinstance(value, int) else None)
def test_every_shell_block_runs(lang, text, start, folder):
    port = _free_port()
    lines = [line.replace("8910", str(port)) for line in _lines(text)
             if _command(line) not in OFFLINE_IMPOSSIBLE]
    environ = _environ(folder)
    background: list[subprocess.Popen] = []
    try:
        at = 0
        for number, line in enumerate(lines):
            if _command(line).endswith("&") and not _command(line).endswith("&&"):
                _run_shell(lines[at:number], folder, environ)
                process = subprocess.Popen(["bash", "-c", f"exec {_command(line)[:-1]}"], cwd=folder, env=environ,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                           start_new_session=True)
                background.append(process)
                _wait_for_port(port, process)
                at = number + 1
        _run_shell(lines[at:], folder, environ)
    finally:
        for process in background:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


@pytest.mark.parametrize("lang, text, start", [b for b in BLOCKS if b[0] == "python"],
                         ids=lambda value: str(value) if isinstance(value, int) else None)
def test_every_python_block_runs(lang, text, start, folder):
    with Emulator("demo", "sandbox-token") as sandbox:   # `recombee-cli sandbox`, as the README starts it
        code = text.replace("127.0.0.1:8910", sandbox.host_port)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=folder,
                              env=_environ(folder, RECOMBEE_PRIVATE_TOKEN="sandbox-token"), timeout=600)
        stored = sandbox.snapshot()
    assert done.returncode == 0, f"README line {start}:\n{done.stderr[-3000:]}"
    if "make_sender" in code:   # what it sent arrived
        assert any(stored[table] for table in ("detailviews", "purchases", "cartadditions")), stored


def test_the_sandbox_walkthrough_ends_by_showing_what_arrived():
    (walkthrough,) = [text for lang, text, _ in BLOCKS if lang == "sh" and "recombee-cli sandbox" in text]
    assert _lines(walkthrough)[-1].startswith("recombee-cli show user ")


def test_the_readme_opens_with_the_two_commands_then_the_doctor_line():
    first, second = BLOCKS[0], BLOCKS[1]
    assert [line.split("&& ")[-1] for line in _lines(first[1])] == ["recombee-cli replay --dry-run sample_events/",
                                                                    "pytest"]
    assert _lines(second[1])[0].startswith("recombee-cli doctor ")


def test_every_block_is_run_or_output_and_every_offline_exception_is_still_written():
    assert {lang for lang, _, _ in BLOCKS} <= {"sh", "python", "text"}
    written = {_command(line) for lang, text, _ in BLOCKS if lang == "sh" for line in _lines(text)}
    assert set(OFFLINE_IMPOSSIBLE) <= written, set(OFFLINE_IMPOSSIBLE) - written
    assert set(EXIT) <= written


def test_the_glob_example_matches_segments_layout(folder):
    (glob_line,) = [line for lang, text, _ in BLOCKS if lang == "sh" for line in _lines(text)
                    if "replay --dry-run '" in line]
    pattern = re.search(r"'([^']+)'", glob_line).group(1)
    assert re.fullmatch(r"segment-logs/[^/]+/\*/\*\.gz", pattern), pattern
    assert list(folder.glob(pattern)), "the README's glob matches nothing in Segment's layout"
