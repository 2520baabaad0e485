"""Shared test helpers: running the CLI with CliRunner and reading its output."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from click.testing import CliRunner

from recombee_cli.cli.main import Environment, main

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT / "tests" / "conformance"
DATA = ROOT / "tests" / "data"
SAMPLES = ROOT / "sample_events"                      # good events only: the first README command exits 0
MISTAKES = ROOT / "sample_events_with_mistakes"       # the same exports with bad lines left in, on purpose


def load_json(name: str):
    return json.loads((CONFORMANCE / name).read_text())


def invoke(args: list[str], *, input: bytes | str | None = None, env: dict | None = None, **extra):
    """Run the CLI in-process; returns click's Result (stdout and stderr kept apart). `extra` goes
    to click's main() (e.g. prog_name="recombee-cli", as the installed script is called)."""
    runner = CliRunner()
    environ = dict(env or {})
    return runner.invoke(main, args, input=input, env=environ, obj=Environment(environ=environ),
                         catch_exceptions=False, **extra)


def ndjson(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def bounded(fn, seconds: float):
    """fn() in a thread: its result or its exception, or a failure if it still runs after
    `seconds` (the old code retried, or read a trickle, for minutes)."""
    box: dict = {}

    def work():
        try:
            box["result"] = fn()
        except BaseException as exc:   # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["result"]
