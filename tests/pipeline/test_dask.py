"""Cluster mode on a real Dask LocalCluster of 2 worker processes on 127.0.0.1, against the
emulator over 127.0.0.1: the store equals the one-machine replay's (users' adds, deletes, merges
and re-used anonymous ids cross files), also when a worker or the driver is killed mid-run; a dry
run with --output gives, file by file, the one-machine dry run; validate gives the same report."""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import uuid

import cloudpickle
import orjson
import pytest
from distributed import Client, Event, LocalCluster, get_task_stream
from helpers import RETRY, ROOT, history, invoke, saved_progress, wait_for

import recombee_cli
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config, load_config
from recombee_cli.mapping.translate import Translator
from recombee_cli.pipeline.cluster import DaskEngine
from recombee_cli.pipeline.engines import InlineEngine, Reading
from recombee_cli.pipeline.replay import run
from recombee_cli.recombee.client import RecombeeClient
from recombee_cli.recombee.emulator import Emulator
from recombee_cli.recombee.sender import RecombeeSender
from recombee_cli.record.recorder import Recorder
from recombee_cli.record.report import RunReport
from recombee_cli.sources.reader import Source, expand_inputs

sys.path.insert(0, str(ROOT))
from bench.generate import events as generate  # noqa: E402

# The gated opener below runs on the workers: shipped by value, whatever their import path.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

DB = "dask-db"
TOKEN = "dask-test-token-77a1"
FILES = 5


def _local_cluster(workers: int = 2) -> LocalCluster:
    # dashboard_address=None would still bind 8787 (dask/distributed#8136): a free loopback port
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address="127.0.0.1:0")


@pytest.fixture(scope="module")
def client():
    with _local_cluster() as cluster, Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> list[str]:
    """The history of test_sender_order (aliases, re-used anonymous ids, wishlist deletes, cart
    removals) cut into files: each visitor's events spread over all of them. Gzip and plain."""
    events = history(3_000, seed=21)
    folder = tmp_path_factory.mktemp("archive")
    per_file = len(events) // FILES
    paths = []
    for n in range(FILES):
        part = events[n * per_file:(n + 1) * per_file if n < FILES - 1 else len(events)]
        data = b"".join(orjson.dumps(e) + b"\n" for e in part)
        path = folder / (f"part-{n:02d}.gz" if n % 2 == 0 else f"part-{n:02d}.ndjson")
        path.write_bytes(gzip.compress(data) if n % 2 == 0 else data)
        paths.append(str(path))
    users = [{e.get("userId") or e.get("anonymousId") for e in events[n * per_file:(n + 1) * per_file]}
             for n in range(FILES)]
    assert len(set.intersection(*users)) > 20   # the same users in every file
    return paths


def _replay(emu: Emulator, sources, *, cluster=None) -> RunReport:
    client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=4, timeout=10)
    sender = RecombeeSender(client, batch_size=100, concurrency=4, retry=RETRY, seed=1)
    report = RunReport()
    try:
        run(sources, Translator(compile_config(Config())), sender, recorder=Recorder(report, None),
            engine=cluster, reading=Reading(chunk_lines=100))
    finally:
        sender.abort()
    return report


@pytest.fixture(scope="module")
def one_machine(archive):
    with Emulator(DB, TOKEN) as emu:
        report = _replay(emu, expand_inputs(archive))
        store = emu.snapshot()
    assert report.outcomes["failed"] == 0
    assert store["detailviews"] and store["bookmarks"] and store["cartadditions"]
    assert any(user.startswith("anon-") for user, *_ in store["detailviews"])   # re-used after a merge
    return report, store


def test_cluster_replay_stores_what_one_machine_stores(archive, one_machine, client):
    expected_report, expected_store = one_machine
    engine = DaskEngine(client, Config())
    with Emulator(DB, TOKEN) as emu:
        report = _replay(emu, expand_inputs(archive), cluster=engine)
        store = emu.snapshot()
    assert store == expected_store
    assert report.outcomes == expected_report.outcomes and report.requests == expected_report.requests
    assert report.sources == FILES and engine.files_done == FILES


def _workers(dask_client: Client) -> set[str]:
    """The workers' addresses the scheduler knows of now."""
    return set(dask_client.scheduler_info()["workers"])


def _gated_open(path: str, pid_file: str, started: str, release: str):
    """Opens a file on a worker once the test lets it: says which process is reading it first."""
    with open(pid_file, "w") as fh:
        fh.write(str(os.getpid()))
    Event(started).set()
    Event(release).wait(timeout=120)   # bounded: a test that went wrong does not hang the worker
    return open(path, "rb")


def test_a_worker_killed_mid_run_loses_nothing(archive, one_machine, tmp_path):
    """One worker is killed (SIGKILL) while it reads a file; Dask runs that file again on the
    other worker (or the nanny's new one), and the store is the one-machine store."""
    _, expected_store = one_machine
    pid_file = str(tmp_path / "reader.pid")
    sources = expand_inputs(archive)
    gated = sources[2]
    sources[2] = Source(gated.name, functools.partial(_gated_open, gated.name, pid_file, "dask-started",
                                                      "dask-release"),
                        size=gated.size, identity=gated.identity, key=gated.key)
    outcome: dict = {}
    with _local_cluster() as cluster, Client(cluster) as dask_client:
        pids = dask_client.run(os.getpid)   # address -> process id
        with Emulator(DB, TOKEN) as emu:
            import threading

            def driver():
                try:
                    outcome["report"] = _replay(emu, sources, cluster=DaskEngine(dask_client, Config()))
                except BaseException as exc:  # noqa: BLE001 - shown by the assertion below
                    outcome["error"] = exc

            thread = threading.Thread(target=driver)
            thread.start()
            assert Event("dask-started", client=dask_client).wait(timeout=120)
            victim = int(open(pid_file).read())
            [address] = [a for a, pid in pids.items() if pid == victim]
            os.kill(victim, signal.SIGKILL)
            # Released once the scheduler knows: the file's task is then rerun, not finished by the dead.
            assert wait_for(lambda: address not in _workers(dask_client), 120)
            Event("dask-release", client=dask_client).set()
            thread.join(timeout=300)
            assert not thread.is_alive()
            store = emu.snapshot()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["report"].outcomes["failed"] == 0
    assert store == expected_store


TOKEN_ENV = {"RECOMBEE_PRIVATE_TOKEN": TOKEN}


def _replay_args(emu: Emulator, state, files, extra=()):
    return ["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, "--state", str(state),
            "--batch-size", "100", "--concurrency", "3", "--dask", "local:2", *extra, *files]


def test_a_killed_driver_resumes_to_the_same_store(archive, one_machine, tmp_path):
    """The driver (the CLI with --dask local:2) is killed with SIGKILL once the state shows
    progress; the same command run again finishes: nothing lost, duplicates come back 409."""
    _, expected_store = one_machine
    state = tmp_path / "state.sqlite"
    report = tmp_path / "report.json"
    env = {**os.environ, **TOKEN_ENV}
    with Emulator(DB, TOKEN, latency=150) as emu:   # slow enough to be killed halfway
        args = [sys.executable, "-m", "recombee_cli", *_replay_args(emu, state, archive)]
        # Its own session: the LocalCluster's worker processes it leaves behind are ended with it.
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        try:
            assert wait_for(lambda: saved_progress(state) or proc.poll() is not None, 120)
            killed = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        final = subprocess.run(args + ["--report", str(report)], capture_output=True, text=True, env=env,
                               timeout=300)
        assert final.returncode == 0, final.stderr
        store = emu.snapshot()
    assert killed
    assert store == expected_store
    figures = json.loads(report.read_text())
    assert figures["skipped_sources"] + figures["resumed_sources"] >= 1   # it really resumed
    assert sum(figures["outcomes"].values()) == figures["events"]
    assert figures["outcomes"]["failed"] == 0


def test_dry_run_output_per_file_and_validate_match_one_machine(client, tmp_path):
    """Events of the generator (invalid IDs, unmatched types) and a damaged line: per input file
    the requests the one-machine dry run prints; the rejects and the validation report too."""
    folder = tmp_path / "exports"
    (folder / "day").mkdir(parents=True)
    stream = generate(1_500, seed=5)
    for n in range(3):
        data = b"".join(orjson.dumps(next(stream)) + b"\n" for _ in range(500))
        if n == 1:
            data += b"{not json\n"
        name = folder / ("day" if n == 2 else "") / f"f{n}.gz"
        name.write_bytes(gzip.compress(data))
    address = client.scheduler.address
    out = tmp_path / "requests"
    rejects = tmp_path / "rejects.ndjson"
    cluster_run = invoke(["replay", "--dry-run", "--dask", address, "--output", str(out), "--rejects",
                          str(rejects), "--quiet", str(folder)])
    assert cluster_run.exit_code == 1, cluster_run.stderr   # invalid events: exit 1, as one machine
    names = {"f0.gz": "f0.ndjson", "f1.gz": "f1.ndjson", "day/f2.gz": "day/f2.ndjson"}
    for source, output in names.items():
        alone = invoke(["replay", "--dry-run", "--quiet", str(folder / source)])
        assert alone.stdout_bytes and (out / output).read_bytes() == alone.stdout_bytes
    one_rejects = tmp_path / "one-rejects.ndjson"
    invoke(["replay", "--dry-run", "--quiet", "--rejects", str(one_rejects), str(folder)])
    assert rejects.read_bytes() == one_rejects.read_bytes() and b"not json" in rejects.read_bytes()

    def figures(result):
        data = json.loads(result.stdout)
        return {k: v for k, v in data.items() if k not in ("elapsed_seconds", "events_per_second")}

    on_cluster = invoke(["validate", "--json", "--dask", address, str(folder)])
    alone = invoke(["validate", "--json", str(folder)])
    assert figures(on_cluster) == figures(alone) and figures(alone)["invalid_reasons"]

    # The same from Python, with the notebook's own client.
    session = recombee_cli.DaskSession(client)
    report = session.dry_run([str(folder)], output=str(tmp_path / "from-python"))
    for output in names.values():
        assert (tmp_path / "from-python" / output).read_bytes() == (out / output).read_bytes()
    assert report.outcomes["invalid"] > 0
    validation = session.validate([str(folder)]).to_dict()
    assert {k: v for k, v in validation.items() if k not in ("elapsed_seconds", "events_per_second")} \
        == {k: v for k, v in figures(alone).items() if k != "presets"}   # the CLI also says which presets are in


def test_dask_values_and_combinations_that_mean_nothing_are_usage_errors(tmp_path):
    path = tmp_path / "a.ndjson"
    path.write_text("{}\n")
    for extra in (["--dask", "local:x"], ["--dask", "scheduler:8786"], ["--dask", "local:2", "--dedupe"],
                  ["--dask", "local:2", "--workers", "2"], ["--output", str(tmp_path / "o")]):
        result = invoke(["replay", "--dry-run" if "--output" not in extra else "--quiet", *extra, str(path)])
        assert result.exit_code == 2, (extra, result.stderr)
        assert "Traceback" not in result.stderr


def test_opt_in_presets_give_the_same_values_and_definitions_on_the_cluster():
    """Users' and items' values (and their property definitions) are decided on the driver in
    input order, so a cluster prints exactly what one machine prints."""
    args = ["replay", "--dry-run", "--quiet", "--preset", "Identify - User Traits",
            "--preset", "Ecommerce - Item Properties", str(ROOT / "sample_events")]

    def dry_run(*extra):
        result = subprocess.run([sys.executable, "-m", "recombee_cli", *args[:1], *extra, *args[1:]],
                                capture_output=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    one = dry_run()
    assert b"/users/properties/" in one and b"/items/properties/" in one
    assert dry_run("--dask", "local:2") == one


def test_dry_run_output_folder_has_the_definitions_on_the_cluster_too(tmp_path):
    """--dry-run --output DIR prints the property definitions where --dry-run prints them on
    stdout: the per-input files together hold exactly stdout's lines, on a cluster as on one machine."""
    args = ["replay", "--dry-run", "--quiet", "--preset", "Identify - User Traits",
            "--preset", "Ecommerce - Item Properties", str(ROOT / "sample_events")]
    stdout = invoke(args).stdout.splitlines()
    assert any('"/items/properties/' in line for line in stdout)
    for name, extra in (("one", []), ("cluster", ["--dask", "local:2"])):
        out = tmp_path / name
        result = subprocess.run([sys.executable, "-m", "recombee_cli", *args[:1], *extra, "--output", str(out),
                                 *args[1:]], capture_output=True, timeout=300)
        assert result.returncode == 0, result.stderr
        written = [line for path in sorted(out.rglob("*.ndjson")) for line in path.read_text().splitlines()]
        assert sorted(written) == sorted(stdout), name


def _secret_reader() -> str | None:
    return os.environ.get("RECOMBEE_PRIVATE_TOKEN")


def test_a_local_cluster_admits_only_this_run_and_its_workers_never_hold_the_token(monkeypatch):
    """`--dask local:N` listens on 127.0.0.1, which every user of the machine can reach: without
    this run's credentials nobody gets in (to run code beside the token), and the workers, which
    send nothing, are started without the token in their environment."""
    from distributed import Security

    from recombee_cli.pipeline.cluster import connect

    monkeypatch.setenv("RECOMBEE_PRIVATE_TOKEN", TOKEN)
    client, cluster = connect("local:1")
    try:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        assert list(client.run(_secret_reader).values()) == [None]
        for security in (None, Security.temporary()):   # no credentials, or credentials of its own
            with pytest.raises(Exception) as refused:
                Client(address.replace("tls://", "tcp://") if security is None else address, timeout="3s",
                       security=security).run_on_scheduler(_secret_reader)
            assert TOKEN not in str(refused.value)
        assert os.environ["RECOMBEE_PRIVATE_TOKEN"] == TOKEN   # the driver still has it, to send
    finally:
        client.close()
        cluster.close()


def test_the_workers_get_the_mappings_but_not_the_configs_token(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[recombee]\ndatabase_id = "demo"\ntoken = "config-token-55e1"\n')
    engine = DaskEngine(None, load_config(str(config)))
    shipped = cloudpickle.dumps(engine._job)
    assert b"config-token-55e1" not in shipped and engine._job.config.mappings == []


def test_ctrl_c_stops_a_local_cluster_run_without_the_workers_tracebacks(tmp_path):
    """Ctrl-C in a terminal reaches every process of its group, the workers too: they leave the
    stopping to the driver, which says it in one line and exits 130."""
    fifo = tmp_path / "events"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "recombee_cli", "replay", "--dry-run", "--dask", "local:2",
                             str(fifo)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)   # its own process group, as a terminal gives it
    writer: list[int] = []

    def reader_is_there() -> bool:   # a worker opened the input to read it: the cluster runs
        try:
            writer.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:   # ENXIO: nobody reads it yet
            return proc.poll() is not None
        return True

    try:
        assert wait_for(reader_is_there, 120) and writer, "the cluster never read its input"
        os.write(writer[0], b'{"type": "track", "event": "Product Viewed"}\n')
        os.killpg(proc.pid, signal.SIGINT)
        # The input ends as the signal is sent: closing the cluster waits for no task stuck on a
        # pipe that never ends (which, on a busy machine, outlasted the wait below).
        os.close(writer.pop())
        _, err = proc.communicate(timeout=120)
    finally:
        for fd in writer:
            os.close(fd)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted" in err


class _GatedStream(io.RawIOBase):
    """A file's bytes that stop at `first` until the test sets the Dask Event `release`: the
    reader, on a worker, cannot read further until then. Past the gate it sets `<release>-passed`
    (released or timed out), so a test can tell it never got past."""

    def __init__(self, data: bytes, first: int, release: str):
        self.data, self.first, self.release, self.at = data, first, release, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.at == self.first:
            Event(self.release).wait(timeout=60)   # bounded: a test that went wrong does not hang the worker
            Event(f"{self.release}-passed").set()
        stop = self.first if self.at < self.first else len(self.data)
        n = min(len(buf), stop - self.at)
        buf[:n] = self.data[self.at:self.at + n]
        self.at += n
        return n


def _gated_stream(data: bytes, first: int, release: str):
    return io.BufferedReader(_GatedStream(data, first, release))


def _chunks_of(engine, source, reading):
    [(_, chunks)] = [(s, list(c)) for s, c in engine.translate(iter([(source, 0)]), reading)]
    return [(b.number, b.offset, b.count, b.end(), r.events, r.requests, r.invalid) for b, r in chunks]


def test_a_big_file_comes_back_segment_by_segment_while_it_is_read(client):
    """The driver has the first chunk's results while the worker reading the file is still held
    at a quarter of it; the rest follows, and every chunk is what one process makes."""
    stream = generate(6_000, seed=9)
    data = b"".join(orjson.dumps(next(stream)) + b"\n" for _ in range(6_000))
    release = f"release-{uuid.uuid4().hex}"
    gated = Source("big.ndjson", functools.partial(_gated_stream, data, len(data) // 4, release))
    engine = DaskEngine(client, Config(), segment_bytes=64 << 10)
    reading = Reading(chunk_lines=500)
    files = engine.translate(iter([(gated, 0)]), reading)
    try:
        source, chunks = next(files)
        block, result = next(chunks)
        assert not Event(f"{release}-passed", client=client).is_set()   # read up to the gate only
        assert source is gated and block.number == 1 and result.events == block.count
        Event(release, client=client).set()
        got = [(block, result), *chunks]
        assert next(files, None) is None
    finally:
        Event(release, client=client).set()
        files.close()
    plain = Source("big.ndjson", lambda: io.BytesIO(data))
    expected = _chunks_of(InlineEngine(Translator(compile_config(Config()))), plain, Reading(chunk_lines=500))
    assert [(b.number, b.offset, b.count, b.end(), r.events, r.requests, r.invalid) for b, r in got] == expected
    assert len(got) > 8 and engine.files_done == 1


def test_one_file_is_translated_in_segments(client, tmp_path):
    """A plain file is handed out by byte ranges, segments any worker may translate, and the chunks
    are those of one process."""
    stream = generate(8_000, seed=11)
    path = tmp_path / "one.ndjson"
    path.write_bytes(b"".join(orjson.dumps(next(stream)) + b"\n" for _ in range(8_000)))
    [source] = expand_inputs([str(path)])
    engine = DaskEngine(client, Config(), segment_bytes=64 << 10)
    with get_task_stream(client=client) as tasks:
        got = _chunks_of(engine, source, Reading(chunk_lines=300))
    expected = _chunks_of(InlineEngine(Translator(compile_config(Config()))), source, Reading(chunk_lines=300))
    assert got == expected
    segments = [t for t in tasks.data if "-segment-" in str(t["key"])]
    # Segments of 64 KiB: tasks the scheduler can give to either worker (which one gets them is
    # its choice: on a busy machine one worker may take all six).
    assert len(segments) >= 5


def test_a_file_resumed_halfway_gives_the_chunks_one_process_gives(client, tmp_path):
    """A file the state says is done up to a line halfway (plain: read by ranges; gzip: by its
    reader), in segments: the chunks, their line numbers and offsets are one process's."""
    stream = generate(3_000, seed=13)
    data = b"".join(orjson.dumps(next(stream)) + b"\n" for _ in range(3_000))
    (tmp_path / "half.ndjson").write_bytes(data)
    (tmp_path / "half.gz").write_bytes(gzip.compress(data))
    start = data.index(b"\n", len(data) // 2) + 1
    engine = DaskEngine(client, Config(), segment_bytes=32 << 10)
    inline = InlineEngine(Translator(compile_config(Config())))
    for source in expand_inputs([str(tmp_path / "half.ndjson"), str(tmp_path / "half.gz")]):
        got = [(s, list(c)) for s, c in engine.translate(iter([(source, start)]), Reading(chunk_lines=200))]
        [(_, chunks)] = got
        expected = [(s, list(c)) for s, c in inline.translate(iter([(source, start)]), Reading(chunk_lines=200))]
        [(_, want)] = expected
        assert [(b.number, b.offset, b.count, b.end(), r.events, r.requests) for b, r in chunks] == \
               [(b.number, b.offset, b.count, b.end(), r.events, r.requests) for b, r in want]
        assert chunks[0][0].offset == start and len(chunks) > 5


class _KillableStream(_GatedStream):
    """A gated stream that, at the gate, says which process reads it (the first time only: a
    reader run again reads through)."""

    def __init__(self, data: bytes, first: int, release: str, pid_file: str):
        super().__init__(data, first, release)
        self.pid_file = pid_file

    def readinto(self, buf) -> int:
        if self.at == self.first and not os.path.exists(self.pid_file):
            with open(self.pid_file, "w") as fh:
                fh.write(str(os.getpid()))
            Event(f"{self.release}-reached").set()
            return super().readinto(buf)
        if self.at == self.first:   # a reader run again: through the gate at once
            n = min(len(buf), len(self.data) - self.at)
            buf[:n] = self.data[self.at:self.at + n]
            self.at += n
            return n
        return super().readinto(buf)


def _killable_stream(data: bytes, first: int, release: str, pid_file: str):
    return io.BufferedReader(_KillableStream(data, first, release, pid_file))


def test_a_reader_killed_halfway_through_its_file_is_run_again_and_loses_nothing(tmp_path):
    """The worker reading a compressed-like stream is killed after it handed out the first
    segments (some taken by the driver, some in flight): the reader runs again, is told where
    the driver is, and the chunks the driver gets are still one process's, each once."""
    stream = generate(6_000, seed=17)
    data = b"".join(orjson.dumps(next(stream)) + b"\n" for _ in range(6_000))
    release = f"kill-{uuid.uuid4().hex}"
    pid_file = str(tmp_path / "reader.pid")
    source = Source("killed.ndjson", functools.partial(_killable_stream, data, len(data) // 3, release, pid_file))
    with _local_cluster() as cluster, Client(cluster) as dask_client:
        pids = dask_client.run(os.getpid)
        engine = DaskEngine(dask_client, Config(), segment_bytes=64 << 10)
        files = engine.translate(iter([(source, 0)]), Reading(chunk_lines=250))
        try:
            got_source, chunks = next(files)
            got = [next(chunks)]   # the driver has taken a segment's chunk before the kill
            assert Event(f"{release}-reached", client=dask_client).wait(timeout=120)
            victim = int(open(pid_file).read())
            [address] = [a for a, pid in pids.items() if pid == victim]
            os.kill(victim, signal.SIGKILL)
            assert wait_for(lambda: address not in _workers(dask_client), 120)
            got += list(chunks)
            assert next(files, None) is None
        finally:
            Event(release, client=dask_client).set()
            files.close()
    plain = Source("killed.ndjson", lambda: io.BytesIO(data))
    expected = _chunks_of(InlineEngine(Translator(compile_config(Config()))), plain, Reading(chunk_lines=250))
    assert [(b.number, b.offset, b.count, b.end(), r.events, r.requests, r.invalid) for b, r in got] == expected
    assert got_source is source and len(got) > 10


def test_asking_for_the_next_file_before_reading_the_last_is_refused(client, tmp_path):
    """The Engine's contract, said plainly rather than the same file given twice."""
    for n in range(2):
        (tmp_path / f"f{n}.ndjson").write_bytes(b'{"type":"track","event":"A","userId":"u"}\n' * 10)
    engine = DaskEngine(client, Config())
    files = engine.translate(((s, 0) for s in expand_inputs([str(tmp_path)])), Reading())
    try:
        next(files)
        with pytest.raises(ValueError, match="before the results of the last were read"):
            next(files)
    finally:
        files.close()


def _segment_numbers(dask_scheduler=None) -> list[int]:
    """On the scheduler: the numbers of the segment tasks it knows of now."""
    return [int(str(key).rsplit("-", 2)[1]) for key in dask_scheduler.tasks if "-segment-" in str(key)]


def test_a_reader_hands_out_no_more_than_the_driver_allows(client, tmp_path):
    """Whatever a file's size, segments are submitted only a window ahead of what the driver has
    taken: after the driver took segment i, none past i + window exists on the cluster."""
    stream = generate(3_000, seed=19)
    path = tmp_path / "many.ndjson.gz"
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(next(stream)) + b"\n" for _ in range(3_000))))
    window = 3
    engine = DaskEngine(client, Config(), segments_in_flight=window, segment_bytes=4,   # a chunk a segment
                        small_file_bytes=0)   # read by a reader, however small
    files = engine.translate(((s, 0) for s in expand_inputs([str(path)])), Reading(chunk_lines=100))
    taken = 0
    try:
        _, chunks = next(files)
        for taken, _ in enumerate(chunks, start=1):
            assert max(client.run_on_scheduler(_segment_numbers), default=-1) <= taken - 1 + window
        assert next(files, None) is None
    finally:
        files.close()
    assert taken >= 30   # 3,000 lines in chunks of at most 100


def test_small_files_are_one_task_each_and_give_what_one_process_gives(client, tmp_path):
    """Files of at most `small_file_bytes` on disk are read and translated whole, one task each
    (no reader, no queues: those cost more than such a file's translation); the chunks, in
    order, and a reader's warnings are one process's; bigger files beside them go by segments."""
    stream = generate(4_000, seed=23)
    lines = [orjson.dumps(next(stream)) + b"\n" for _ in range(4_000)]
    for n in range(12):
        data = b"".join(lines[n * 300:(n + 1) * 300]) if n != 5 else b""
        path = tmp_path / (f"f{n:02d}.ndjson.gz" if n % 3 == 2 else f"f{n:02d}.ndjson")
        path.write_bytes(gzip.compress(data) if n % 3 == 2 else data)
    (tmp_path / "f12-big.ndjson").write_bytes(b"".join(lines[3_600:]) * 4)   # over the limit below
    (tmp_path / "f13.ndjson").write_bytes(b'{"type":"track"}\n' + b"x" * 3000 + b"\n")   # a line too long
    sources = expand_inputs([str(tmp_path)])
    reading = functools.partial(Reading, chunk_lines=120, max_line_bytes=2048)
    engine = DaskEngine(client, Config(), small_file_bytes=300_000, segment_bytes=256 << 10)
    warned: list[str] = []
    with get_task_stream(client=client) as tasks:
        got = [(s.name, [(b.number, b.offset, b.count, b.end(), r.events, r.requests, sorted((b.errors or {}).items()))
                         for b, r in chunks])
               for s, chunks in engine.translate(((s, 0) for s in sources), reading(warn=warned.append))]
    inline = InlineEngine(Translator(compile_config(Config())))
    expected_warnings: list[str] = []
    expected = [(s.name, [(b.number, b.offset, b.count, b.end(), r.events, r.requests, sorted((b.errors or {}).items()))
                          for b, r in chunks])
                for s, chunks in inline.translate(((s, 0) for s in sources), reading(warn=expected_warnings.append))]
    assert got == expected and len(got) == 14 and engine.files_done == 14
    assert warned == expected_warnings
    keys = [str(t["key"]) for t in tasks.data]
    assert sum(k.endswith("-whole") for k in keys) == 13   # every file but the big one
    assert sum(k.endswith("-reader") for k in keys) == 1
