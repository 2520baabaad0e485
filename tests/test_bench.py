"""The benchmark's own parts that figures depend on: the generator's bytes, the instruction counter's parsing.

No timing here: the benchmark prints figures, these tests check behaviour."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys

import orjson
import pytest
from helpers import ROOT


def _bench_module(name: str):
    """bench/ is not a package on sys.path under plain `pytest`: load its modules by file."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


generate = _bench_module("generate")

# sha256 of `python bench/generate.py 300` (seed 7) as generated before the browser mix was added
# (git 42c6708): the server mix must keep these bytes, so that figures of earlier runs compare.
SERVER_300 = "90eb4c2162069cd09d9a2d05a9000acd678cfe680f4bca0a49c9d771f5c7a6a5"


def _bytes(count: int, seed: int = 7, mix: str = "server") -> bytes:
    out = io.BytesIO()
    generate.write(count, out, seed, mix)
    return out.getvalue()


def test_server_mix_keeps_its_bytes():
    assert hashlib.sha256(_bytes(300)).hexdigest() == SERVER_300


def test_each_mix_is_deterministic_and_seeded():
    for mix in generate.MIXES:
        assert _bytes(200, 7, mix) == _bytes(200, 7, mix)
        assert _bytes(200, 7, mix) != _bytes(200, 8, mix)
    assert _bytes(200, 7, "browser") != _bytes(200, 7, "server")


def test_browser_mix_looks_like_analytics_js():
    events = [orjson.loads(line) for line in _bytes(500, mix="browser").splitlines()]
    assert len(events) == 500
    assert {e["type"] for e in events} >= {"track", "page", "identify"}
    assert "screen" not in {e["type"] for e in events}
    for event in events:
        context = event["context"]
        assert context["library"]["name"] == "analytics.js"
        assert {"page", "userAgent", "locale", "timezone", "screen", "ip"} <= context.keys()
        assert event["channel"] == "client" and event["messageId"].startswith("ajs-next-")
        assert "_metadata" in event and "writeKey" in event
    assert any("userAgentData" in e["context"] for e in events)
    assert any("campaign" in e["context"] for e in events)
    assert any("traits" in e["context"] for e in events)
    size = sum(len(orjson.dumps(e)) for e in events) / len(events)
    assert size > 1.5 * len(_bytes(500)) / 500     # browser envelopes are the heavy ones


def test_gzip_output_is_byte_identical_between_runs():
    cmd = [sys.executable, str(ROOT / "bench" / "generate.py"), "50", "--mix", "browser", "--gzip"]
    first = subprocess.run(cmd, capture_output=True, check=True).stdout
    assert first == subprocess.run(cmd, capture_output=True, check=True).stdout
    assert gzip.decompress(first) == _bytes(50, mix="browser")


run = _bench_module("run")

CALLGRIND_TAIL = """==4242== Events    : Ir
==4242== Collected : 2607398472
==4242==
==4242== I   refs:      2,607,398,472
"""


def test_callgrind_total_is_read_from_valgrinds_summary():
    assert run.parse_callgrind("20,000 lines from 1 sources\n" + CALLGRIND_TAIL) == 2_607_398_472
    assert run.parse_callgrind("==7== I   refs:      1,234\n") == 1234
    try:
        run.parse_callgrind("Collected : 12\n")     # not valgrind's line: no PID prefix
    except ValueError:
        pass
    else:
        raise AssertionError("a line without valgrind's prefix was taken for the count")


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_callgrind_count_on_a_tiny_program(tmp_path):
    # `true` under callgrind: a real valgrind's output, parsed; instructions > 0 and the same each time
    first = run.callgrind_count(["true"], dict(os.environ), tmp_path)
    assert isinstance(first, int) and first > 0, first
    assert run.callgrind_count(["true"], dict(os.environ), tmp_path) == first
    failed = run.callgrind_count(["false"], dict(os.environ), tmp_path)   # exit 1 is accepted (recombee-cli's)
    assert isinstance(failed, int)
    assert isinstance(run.callgrind_count(["sh", "-c", "exit 3"], dict(os.environ), tmp_path), str)


def test_copies_run_together_are_counted_once_each_and_their_exit_codes_judged():
    """The parallel rows' N copies: every copy's CPU summed; an exit code outside `ok` is an
    error, and recombee-cli's 1 (invalid events in the input) is accepted where asked."""
    spin = [sys.executable, "-c", "import sys, time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.05: pass\nsys.exit(int(sys.argv[1]))"]
    together = run.run_together([*spin, "0"], 2)
    assert not isinstance(together, str) and together.cpu_seconds >= 0.1
    assert isinstance(run.run_together([*spin, "1"], 2), str)
    assert not isinstance(run.run_together([*spin, "1"], 2, ok=run.CLI_EXIT_OK), str)
