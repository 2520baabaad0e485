"""Resume, incremental runs, the run lock, time windows, de-duplication — real processes,
real SIGKILLs, the emulator over 127.0.0.1."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

from helpers import generate, invoke, ndjson, saved_progress, wait_for, write_archive, write_gz

from recombee_cli.recombee.emulator import Emulator
from recombee_cli.record.state import StateStore

DB = "state-db"
TOKEN = "state-test-token-91c2"


def _replay_args(emu: Emulator, state, *inputs, extra=()):
    return ["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB,
            "--state", str(state), "--batch-size", "100", "--concurrency", "3", *extra, *map(str, inputs)]


def _start(args) -> subprocess.Popen:
    """A replay in its own process, as cron would start it."""
    return subprocess.Popen([sys.executable, "-m", "recombee_cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "RECOMBEE_PRIVATE_TOKEN": TOKEN})


def _cli(args, *, env=None, timeout=120) -> subprocess.CompletedProcess:
    environ = {**os.environ, "RECOMBEE_PRIVATE_TOKEN": TOKEN, **(env or {})}
    return subprocess.run([sys.executable, "-m", "recombee_cli", *args], capture_output=True, text=True,
                          env=environ, timeout=timeout)


def test_incremental_run_reads_only_new_files(tmp_path):
    folder = tmp_path / "segment-logs" / "SRC"
    day1 = write_archive(folder / "1709251200000", 3, 300, seed=1)
    state = tmp_path / "state.sqlite"
    report = tmp_path / "report.json"
    with Emulator(DB, TOKEN) as emu:
        first = invoke(_replay_args(emu, state, folder, extra=["--report", str(report)]),
                       env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        assert first.exit_code in (0, 1), first.stderr
        assert json.loads(report.read_text())["sources"] == 3
        write_archive(folder / "1709337600000", 2, 300, seed=2)
        received_before = emu.stats.sub_requests
        second = invoke(_replay_args(emu, state, folder, extra=["--report", str(report), "--quiet"]),
                        env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        figures = json.loads(report.read_text())
        assert figures["sources"] == 2 and figures["skipped_sources"] == 3
        assert figures["lines"] == 600
        # Recombee received exactly the requests of the two new files, nothing of day 1.
        assert emu.stats.sub_requests - received_before == sum(figures["requests"].values())
        # --reprocess reads everything again (and Recombee answers 409)
        invoke(_replay_args(emu, state, folder, extra=["--report", str(report), "--quiet", "--reprocess"]),
               env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        assert json.loads(report.read_text())["sources"] == 5
    assert second.exit_code in (0, 1)
    assert day1


def test_a_changed_file_is_processed_again_with_a_warning(tmp_path):
    path = write_gz(tmp_path / "a.gz", list(generate(50, seed=3)))
    state = tmp_path / "s.sqlite"
    with Emulator(DB, TOKEN) as emu:
        invoke(_replay_args(emu, state, path), env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        write_gz(tmp_path / "a.gz", list(generate(60, seed=3)))
        again = invoke(_replay_args(emu, state, path), env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert "changed since it was last read" in again.stderr


def _store_after_uninterrupted(files) -> dict:
    with Emulator(DB, TOKEN) as emu:
        state = files[0] + ".clean-state"
        result = _cli(_replay_args(emu, state, *files, extra=["--quiet"]))
        assert result.returncode in (0, 1), result.stderr
        return emu.snapshot()


def test_killed_replays_resume_to_the_same_store(tmp_path):
    files = write_archive(tmp_path / "in", 4, 2000, seed=4)
    expected = _store_after_uninterrupted(files)
    rng = random.Random(99)
    state = tmp_path / "state.sqlite"
    report = tmp_path / "final.json"
    with Emulator(DB, TOKEN, latency=150) as emu:   # slow enough to be killed halfway (~4 s a run)
        args = _replay_args(emu, state, *files)
        kills = 0
        for _ in range(3):                           # bounded: 3 kills, then run to completion
            before = saved_progress(state)
            proc = _start(args)
            deadline = time.monotonic() + 30
            # Killed at a random moment after this run saved a checkpoint: a kill at a fixed
            # time landed before the first one when the machine was slow (or the run fast).
            while proc.poll() is None and saved_progress(state) == before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 0.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
        final = _cli(args + ["--report", str(report)], timeout=300)
        assert final.returncode in (0, 1), final.stderr
        snapshot = emu.snapshot()
    assert kills >= 1
    assert snapshot == expected                      # nothing missing, nothing doubled
    figures = json.loads(report.read_text())
    assert figures["skipped_sources"] + figures["resumed_sources"] >= 1   # it really resumed
    assert sum(figures["outcomes"].values()) == figures["events"]
    assert figures["outcomes"]["failed"] == 0


def test_ctrl_c_saves_the_checkpoint_and_exits_130(tmp_path):
    files = write_archive(tmp_path / "in", 2, 2000, seed=5)
    state = tmp_path / "state.sqlite"
    with Emulator(DB, TOKEN) as emu:
        emu.hold_after = 3   # three Batch calls answered, the rest held: it cannot finish first, however slow
        # One lane: the calls reach the emulator in input order, so the three answered hold the
        # first requests. (With three lanes, a lane that built the first Batch could be overtaken
        # on its way by another lane's next call: the three answered were then not the first.)
        args = _replay_args(emu, state, *files, extra=("--concurrency", "1"))
        proc = subprocess.Popen([sys.executable, "-m", "recombee_cli", *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "RECOMBEE_PRIVATE_TOKEN": TOKEN})
        # Interrupted once the lane waits on a held call: the first requests were answered (the
        # interruption saves their checkpoint).
        try:
            assert wait_for(lambda: emu.held_calls >= 1 or proc.poll() is not None)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    store = StateStore(str(state))
    try:
        offsets = [f.offset for f in store.files()]
        assert offsets and max(offsets) > 0
        assert store.runs(1)[0]["status"] == "interrupted"
    finally:
        store.db.close()


def test_two_runs_on_one_state_the_second_exits_with_the_lock_message(tmp_path):
    files = write_archive(tmp_path / "in", 1, 3000, seed=6)
    state = tmp_path / "state.sqlite"
    # The first run reads a pipe nobody writes to: it holds the state until it is stopped, however
    # long the second takes (calls that are never answered would end it by the circuit breaker).
    endless = tmp_path / "endless"
    os.mkfifo(endless)
    with Emulator(DB, TOKEN) as emu:
        first = _start(_replay_args(emu, state, endless))
        try:
            lock = str(state) + ".lock"
            assert wait_for(lambda: (os.path.exists(lock) and open(lock).read()) or first.poll() is not None), \
                "the first run never took the lock"
            assert first.poll() is None, "the first run ended before the second started"
            second = _cli(_replay_args(emu, state, *files))
            first.send_signal(signal.SIGINT)        # it has been proved; stop it (it saves and exits 130)
            first.wait(timeout=120)
        finally:
            if first.poll() is None:   # it would wait for its input forever
                first.kill()
                first.wait()
    assert second.returncode == 2
    assert "another run is using the state file" in second.stderr and f"pid {first.pid}" in second.stderr
    assert first.returncode == 130


def test_a_dead_runs_lock_is_taken_over(tmp_path):
    files = write_archive(tmp_path / "in", 1, 3000, seed=7)
    state = tmp_path / "state.sqlite"
    with Emulator(DB, TOKEN, latency=150) as emu:   # long enough to overlap
        args = _replay_args(emu, state, *files)
        first = _start(args)
        lock = str(state) + ".lock"
        assert wait_for(lambda: (os.path.exists(lock) and open(lock).read()) or first.poll() is not None)
        first.kill()
        first.wait(timeout=30)
        second = _cli(args)
    assert second.returncode in (0, 1), second.stderr


def test_time_window_leaves_the_checkpoint_alone(tmp_path):
    events = [{"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": f"m{n}",
               "properties": {"product_id": f"p{n}"}, "timestamp": f"2024-0{1 + n % 3}-10T00:00:00Z"}
              for n in range(30)]
    path = write_gz(tmp_path / "w.gz", events)
    state = tmp_path / "state.sqlite"
    report = tmp_path / "r.json"
    with Emulator(DB, TOKEN) as emu:
        invoke(_replay_args(emu, state, path, extra=["--since", "2024-02-01", "--until", "2024-03-01",
                                                     "--report", str(report)]),
               env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        figures = json.loads(report.read_text())
        assert figures["outcomes"]["sent"] == 10 and figures["outcomes"]["filtered"] == 20
        assert not state.exists() or StateStore(str(state)).files() == []
        # a normal run afterwards still reads the whole file
        invoke(_replay_args(emu, state, path, extra=["--report", str(report)]),
               env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        figures = json.loads(report.read_text())
    assert figures["outcomes"]["sent"] == 20 and figures["outcomes"]["duplicate"] == 10


def test_dedupe_drops_repeated_message_ids(tmp_path):
    event = {"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": "same",
             "properties": {"product_id": "p1"}, "timestamp": "2024-01-01T00:00:00Z"}
    path = tmp_path / "d.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in [event, event, {**event, "messageId": "other"}]) + "\n")
    report = tmp_path / "r.json"
    result = invoke(["replay", "--dry-run", "--dedupe", "--report", str(report), str(path)])
    assert len(ndjson(result.stdout)) == 2
    assert json.loads(report.read_text())["outcomes"]["filtered"] == 1


def test_status_shows_files_and_runs(tmp_path):
    path = write_gz(tmp_path / "a.gz", list(generate(100, seed=8)))
    state = tmp_path / "state.sqlite"
    with Emulator(DB, TOKEN) as emu:
        invoke(_replay_args(emu, state, path), env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    result = invoke(["status", "--state", str(state), "--json"])
    data = json.loads(result.stdout)
    assert data["files"][0]["done"] and data["files"][0]["path"] == path
    assert data["runs"][0]["status"] in ("done", "failed") and data["runs"][0]["report"]["events"] == 100
    human = invoke(["status", "--state", str(state)])
    assert "1 file done" in human.stdout and human.stderr == ""


def test_quiet_cron_run_prints_nothing_on_success_and_json_logs(tmp_path):
    events = [{"type": "track", "event": "Product Viewed", "userId": "u1", "properties": {"product_id": "p1"},
               "timestamp": "2024-01-01T00:00:00Z"}]
    path = write_gz(tmp_path / "ok.gz", events)
    with Emulator(DB, TOKEN) as emu:
        quiet = invoke(_replay_args(emu, tmp_path / "s1", path, extra=["--quiet"]),
                       env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        logged = invoke(_replay_args(emu, tmp_path / "s2", path, extra=["--log-format", "json"]),
                        env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""
    records = [json.loads(line) for line in logged.stderr.splitlines()]
    (record,) = [r for r in records if r["message"] == "summary"]   # besides: which config is used (info)
    assert all(r["level"] == "info" for r in records)
    assert record["message"] == "summary" and record["report"]["outcomes"]["duplicate"] == 1
