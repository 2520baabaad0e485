"""Cluster mode: the same replay with files read and translated on a Dask cluster.

What runs where (docs/behaviour.md, "When one machine is not enough"):

- **Workers** take whole input files (the work unit Segment's S3 destination makes: many
  moderate files). A worker opens the file (local path or object store), decompresses it,
  cuts it into the same chunks as one machine does and translates them with the same hot loop
  as `--workers` (`translate.translate_block`). It returns, per chunk, the chunk as read (its
  bytes: rejects quote raw lines and checkpoints need line offsets) and its `BlockResult`
  (counts, invalid events, where each event's requests are, each request's users, and the
  serialised requests), plus the reader's warnings. Nothing is sent from a worker.
- **The driver** lists the files, skips what the state says is done, keeps a bounded window of
  files in flight, and takes the results **in file order** into the same pipeline
  (`replay.run`): the same accounting, rejects, state checkpoints and the same sink. When
  sending, that is the one-machine `RecombeeSender`: its lanes by user and its ordering of merges
  give per-user order across files (one stream, in input order), `--concurrency` is the cap of
  Batch calls in flight for the whole cluster by construction, and 429 adaptation is shared.

A worker that dies loses nothing: Dask runs its file again on another worker (a file is a pure
function of its bytes and the config), and the driver, which waits for results in file order,
never sees the difference. A driver that dies resumes from the state file like one machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import signal
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any, cast

from recombee_cli.errors import ClusterError, ClusterUsageError
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config, RecombeeSettings, load_config
from recombee_cli.mapping.translate import Translator
from recombee_cli.pipeline.cluster_tasks import (
    SEGMENT_BYTES,
    SMALL_FILE_BYTES,
    STOP,
    BlockSegment,
    FileTask,
    Job,
    RangeSegment,
    WholeFile,
    read_file,
    segment_number,
    translate_whole,
)
from recombee_cli.pipeline.engines import Reading, Translated
from recombee_cli.pipeline.ranges import RangeNumbering
from recombee_cli.sources.reader import Source, display_name, expand_inputs

if TYPE_CHECKING:
    from recombee_cli.record.report import RunReport
    from recombee_cli.sinks.protocol import Sink

SEGMENTS_PER_THREAD = 2   # segments handed out per worker thread: one translated, one waiting
RESULTS_WAIT = 1.0        # seconds between looks at a reader while waiting for its next segment


def parse_address(text: str) -> tuple[str, int | str]:
    """`local:N` (a LocalCluster of N worker processes on this machine) or a scheduler address
    (`tcp://host:8786`, `tls://…`)."""
    if text.startswith("local:"):
        count = text[len("local:"):]
        if not count.isdigit() or not 1 <= int(count) <= 256:
            raise ClusterUsageError(f"--dask {text}: use local:N with N worker processes (1 to 256)")
        return "local", int(count)
    if "://" in text:
        return "address", text
    raise ClusterUsageError(f"--dask {text!r}: use local:N or a scheduler address such as tcp://host:8786")


def _require_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterUsageError("--dask needs the dask extra: pip install 'recombee-cli[dask]'") from None
    return distributed


# What the workers never need and so never get: the private token (sending is the driver's).
SECRET_ENVIRONMENT = ("RECOMBEE_PRIVATE_TOKEN",)


def connect(text: str) -> tuple[Any, Any]:
    """A `distributed.Client` for `--dask TEXT`, and the LocalCluster to close after it (or None).

    A LocalCluster's scheduler runs in this process, which holds the token, and listens on a
    loopback port that every local user can reach: unauthenticated, anyone could run code in it
    (`run_on_scheduler`) or in the workers. So it speaks TLS with mutual authentication, with
    credentials made for this run that exist only in this process's memory and its workers'
    (Dask's `Security.temporary()`): a connection without them is refused. Its workers are
    started without the token in their environment."""
    kind, value = parse_address(text)
    distributed = _require_distributed()
    if kind == "local":
        try:
            security = distributed.Security.temporary()
        except ImportError:
            raise ClusterUsageError("--dask local:N secures its cluster with TLS, which needs the "
                                    "cryptography package: pip install 'recombee-cli[dask]'") from None
        hidden = {name: os.environ.pop(name) for name in SECRET_ENVIRONMENT if name in os.environ}
        # Ctrl-C reaches every process of the terminal's group: the workers are the driver's to
        # stop (it closes the cluster), so they start with SIGINT ignored, and keep ignoring it
        # (dask_setup below: a worker its nanny starts again), instead of printing tracebacks.
        interrupt = _ignore_sigint()
        try:
            # dashboard_address=None still binds the scheduler's HTTP server to 8787 (dask/distributed
            # #8136): a free port on loopback, so two runs (or a user's own cluster) never collide.
            cluster = distributed.LocalCluster(n_workers=value, threads_per_worker=1, processes=True,
                                               host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                               security=security, protocol="tls://",
                                               preload=[__name__])
        finally:
            os.environ.update(hidden)
            if interrupt is not None:
                signal.signal(signal.SIGINT, interrupt)
        # Results straight from the workers that hold them, not relayed by the scheduler (which
        # runs in this process: each result would be received, sent and received again).
        return distributed.Client(cluster, security=security, direct_to_workers=True), cluster
    try:
        return distributed.Client(value, timeout="20s"), None
    except OSError as exc:
        raise ClusterError(f"--dask {value}: cannot reach the scheduler ({exc})") from None


def _ignore_sigint() -> Any:
    """Ignore SIGINT here (inherited by the processes started meanwhile); the handler it had, or
    None where signals cannot be set (not the main thread)."""
    try:
        return signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        return None


def dask_setup(worker: Any) -> None:
    """Run in each worker of a `--dask local:N` cluster as it starts (Dask's preload): Ctrl-C in
    the terminal is for the driver, which stops the workers itself."""
    _ignore_sigint()


class DaskEngine:
    """The Engine that reads and translates files on a Dask cluster, for
    `replay.run(..., engine=engine)`. A notebook passes its own `distributed.Client`:

        >>> engine = DaskEngine(client, load_config("mappings.toml"))
        >>> report = run(expand_inputs(["s3://acme/segment-logs/SRC/"]), engine.translator, sink,
        ...              engine=engine)

    A file is translated in segments of about `segment_bytes` of input (the unit a worker
    translates and the driver takes; a quarter of it where the reader reads the bytes and they
    travel in the task: cluster_tasks.SEGMENT_BYTES); `segments_in_flight` of them may be handed out and not
    yet taken by the driver, over every file (default: 2 per worker thread, and 2)."""

    def __init__(self, client: Any, config: Config | None = None, *, since: float | None = None,
                 until: float | None = None, segments_in_flight: int | None = None,
                 segment_bytes: int = SEGMENT_BYTES, small_file_bytes: int = SMALL_FILE_BYTES):
        config = config if config is not None else Config()
        self.client = client
        self.translator = Translator(compile_config(config))   # the driver's (checks the config too)
        # The workers get the mappings, not the [recombee] settings: a config's token stays here.
        config = dataclasses.replace(config, recombee=RecombeeSettings())
        digest = hashlib.sha256(pickle.dumps((config, since, until))).hexdigest()
        self._job = Job(config, since, until, digest)
        self._segments_in_flight = segments_in_flight
        self.segment_bytes = segment_bytes
        self.small_file_bytes = small_file_bytes
        self.files_done = 0

    def _window(self) -> int:
        if self._segments_in_flight:
            return self._segments_in_flight
        workers = self.client.scheduler_info()["workers"].values()
        threads = sum(int(w.get("nthreads", 1)) for w in workers)
        return SEGMENTS_PER_THREAD * max(1, threads) + 2

    def translate(self, sources: Iterable[tuple[Source, int]], reading: Reading
                  ) -> Iterator[tuple[Source, Iterator[Translated]]]:
        """The Engine interface: each file's chunks' results yielded in input order, segment by
        segment as the cluster translates them, a bounded window ahead over files; what a worker
        could not read comes back in them.

        A task whose worker died is run again by Dask elsewhere; one that raised, or whose
        workers kept dying, stops the run (what was acknowledged is saved by the caller)."""
        stream = _Stream(self.client, self._job, iter(sources), reading, self._window(), self.segment_bytes,
                         self.small_file_bytes)
        try:
            while (file := stream.next_file()) is not None:
                yield file.source, self._chunks(stream, file, reading)
                if file.end is None or file.next < file.end:   # the Engine's contract: read to the end first
                    raise ValueError("the next source was asked for before the results of the last were read")
                self.files_done += 1
        finally:
            stream.close()

    @staticmethod
    def _chunks(stream: _Stream, file: _File, reading: Reading) -> Iterator[Translated]:
        progress = reading.progress
        numbering = None
        while (taken := stream.next_segment(file)) is not None:
            if isinstance(taken, WholeFile):   # a small file in one task
                file.warnings = taken.warnings
                segments = taken.segments
            else:
                segments = [taken]
            for segment in segments:
                if isinstance(segment, RangeSegment):
                    if numbering is None:
                        numbering = RangeNumbering(file.source.name, segment.path)
                    for answer, blob in segment.answers:
                        yield from numbering.blocks(answer, blob)
                else:
                    yield from segment.parts
                if progress is not None:
                    progress.reached(segment.done)
        if reading.warn is not None:
            for message in file.warnings:
                reading.warn(message)


class _File:
    """A file handed to the cluster: its reader, its queues, the segments taken and allowed."""

    __slots__ = ("source", "reader", "results", "credits", "held", "next", "end", "allowed", "warnings",
                 "readers")

    def __init__(self, source: Source, reader: Any, results: Any, credits: Any, allowed: int) -> None:
        self.source = source
        self.reader = reader            # the reader task's future
        self.results = results          # its queue of segment futures and records
        self.credits = credits          # the queue of what the driver allows
        self.held: dict[int, Any] = {}  # segment number -> its future, taken and not yet used
        self.next = 0                   # the number of the next segment to use
        self.end: int | None = None     # how many segments there are, once the reader said
        self.allowed = allowed          # segments the reader may submit (numbers below this)
        self.warnings: list[str] = []
        self.readers = 0                # readers that said hello: more than one, a reader ran again

    def outstanding(self) -> int:
        """Segments allowed and not yet used."""
        return (self.allowed if self.end is None else min(self.allowed, self.end)) - self.next


class _Stream:
    """The files of one run on the cluster, in input order: readers started a bounded window
    ahead, segments allowed to the earliest files first, taken in order."""

    def __init__(self, client: Any, job: Job, sources: Iterator[tuple[Source, int]], reading: Reading,
                 window: int, segment_bytes: int, small_file_bytes: int) -> None:
        self.client = client
        self.segment_bytes = segment_bytes
        self.small_file_bytes = small_file_bytes
        self.job = job
        self.sources = sources
        self.reading = reading
        self.window = window
        self.active: deque[_File] = deque()
        self.more = True   # sources not yet started

    def next_file(self) -> _File | None:
        """The next file in input order (started now if it is not yet), or None after the last."""
        if self.active and self.active[0].end is not None and self.active[0].next >= self.active[0].end:
            self._finish(self.active.popleft())
        self._grant()
        if not self.active:
            self._start(self.window)
        return self.active[0] if self.active else None

    def next_segment(self, file: _File) -> RangeSegment | BlockSegment | WholeFile | None:
        """The file's next segment's results (waiting for them), or None after its last."""
        while file.next not in file.held:
            if file.end is not None and file.next >= file.end:
                return None
            try:
                self._take(file, file.results.get(timeout=RESULTS_WAIT))
            except TimeoutError:
                self._check(file)
                continue
            for record in file.results.get(batch=True):
                self._take(file, record)
        future = file.held.pop(file.next)
        # Before waiting for it: the next files start as soon as there is room and the last one
        # is handed out whole (a file of one segment would otherwise start only after the one
        # before it was translated: one worker busy at a time).
        self._grant()
        file.next += 1
        try:
            segment = future.result()
        except Exception as exc:  # noqa: BLE001 - a task's error or KilledWorker, said plainly
            raise self._failed(file, exc) from None
        future.release()
        self._grant()
        return cast("RangeSegment | BlockSegment | WholeFile", segment)

    def _grant(self) -> None:
        """Allow segments to the earliest files first, up to the window; start files while it
        has room and every file started has been handed out whole."""
        if self.active and self.active[-1].end is None:
            self._drain(self.active[-1])   # has its reader handed it out whole?
        room = self.window - sum(f.outstanding() for f in self.active)
        for file in self.active:
            if room <= 0:
                return
            if file.end is None:   # still being handed out: it takes the room
                file.allowed += room
                file.credits.put([0, file.allowed])
                return
        while room > 0 and self.more and (not self.active or self.active[-1].end is not None):
            started = self._start(room)
            if started is None:
                return
            room -= started.allowed

    def _start(self, allowed: int) -> _File | None:
        pair = next(self.sources, None)
        if pair is None:
            self.more = False
            return None
        source, start = pair
        import distributed

        name = f"recombee-{uuid.uuid4().hex}"
        reading = self.reading
        task = FileTask(source, start, self.job, reading.chunk_lines, reading.max_line_bytes, reading.routes,
                        self.segment_bytes, f"{name}-results", f"{name}-credits", f"{name}-segment")
        if source.size is not None and source.size <= self.small_file_bytes:   # one task, no reader
            file = _File(source, None, None, None, 1)
            file.end = 1
            file.held[0] = self.client.submit(translate_whole, task, key=f"{task.keys}-0-whole", pure=False)
            self.active.append(file)
            return file
        queue: Any = distributed.Queue   # untyped: what its calls return is Any here
        results, credits = queue(task.results, client=self.client), queue(task.credits, client=self.client)
        credits.put([0, allowed])
        reader = self.client.submit(read_file, task, key=f"{name}-reader", pure=False)
        file = _File(source, reader, results, credits, allowed)
        self.active.append(file)
        return file

    def _drain(self, file: _File) -> None:
        """Take what a file's queue holds now, without waiting."""
        for record in file.results.get(batch=True):
            self._take(file, record)

    def _take(self, file: _File, record: Any) -> None:
        """One record of a file's queue: a segment's future, or what its reader says."""
        if isinstance(record, dict):
            if "hello" in record:
                file.readers += 1
                if file.readers > 1:   # run again: it goes on where the driver is
                    first = file.next
                    while first in file.held:
                        first += 1
                    file.credits.put([first, file.allowed])
            elif "end" in record and file.end is None:
                file.end = int(record["end"])
                file.warnings = list(record["warnings"])
            return
        number = segment_number(record.key)
        if number < file.next or number in file.held:   # a reader that ran again handed it out twice
            record.release()
        else:
            file.held[number] = record

    def _check(self, file: _File) -> None:
        """While waiting for a file's segments: its reader must not have failed."""
        if file.reader.status in ("error", "cancelled"):
            try:
                file.reader.result()
            except Exception as exc:  # noqa: BLE001 - said plainly
                raise self._failed(file, exc) from None
            raise self._failed(file, CancelledError("its reader was cancelled"))

    @staticmethod
    def _failed(file: _File, exc: BaseException) -> ClusterError:
        return ClusterError(f"{display_name(file.source.name)}: the cluster could not translate this file "
                            f"({type(exc).__name__}: {exc}); what was acknowledged is saved, run the same "
                            f"command to go on")

    def _finish(self, file: _File) -> None:
        if file.reader is not None:   # a small file has neither reader nor queues
            file.results.close()
            file.credits.close()
            file.reader.release()

    def close(self) -> None:
        """The run ends (or stops): readers still handing out are told to stop, futures dropped."""
        for file in self.active:
            try:
                if file.end is None:
                    file.credits.put([0, STOP])
                for future in file.held.values():
                    future.cancel()
                if file.reader is not None:
                    file.reader.cancel()
                self._finish(file)
            except Exception:  # noqa: BLE001, S110 - a cluster already gone has nothing to stop
                pass
        self.active.clear()


class DaskSession:
    """Cluster mode from Python: a notebook passes its own `distributed.Client`.

        >>> from distributed import Client
        >>> session = recombee_cli.DaskSession(Client("tcp://scheduler:8786"), "mappings.toml")
        >>> session.validate(["s3://acme/segment-logs/SRC/"]).to_dict()
        >>> session.dry_run(["exports/"], output="requests/")        # one file per input
        >>> session.run(["exports/"], sender, dry_run=False, state_path="state.sqlite")   # any sink

    Files are read and translated on the cluster; the accounting, the order, the sink and the
    state are in this process (see the module's docstring). Every run is a ReplaySession with the
    cluster as its engine: the same lifecycle as the `replay` command's."""

    def __init__(self, client: Any, config_path: str | None = None, *, since: float | None = None,
                 until: float | None = None):
        self.client = client
        self.engine = DaskEngine(client, load_config(config_path), since=since, until=until)

    def run(self, inputs: list[str], sink: Sink, **options: Any) -> RunReport:
        """A replay of INPUTS (files, folders, globs, URLs) into `sink` with this cluster; `options`
        as ReplaySession takes them (dry_run, state_path, rejects_path, fail_on, observer...)."""
        from recombee_cli.pipeline.session import ReplaySession

        session = ReplaySession(self.engine.translator, sink, engine=self.engine, **options)
        return session.run(expand_inputs(list(inputs)))

    def validate(self, inputs: list[str]) -> RunReport:
        """What `validate --dask` reports: per mapping matched, built, invalid by reason."""
        from recombee_cli.sinks.printer import NullSink

        return self.run(inputs, NullSink())

    def dry_run(self, inputs: list[str], output: str) -> RunReport:
        """The requests of each input in its own file under `output` (DIR/<input name>.ndjson)."""
        from recombee_cli.pipeline.session import ReplaySession
        from recombee_cli.sinks.printer import PerFileDryRun

        sources = expand_inputs(list(inputs))
        sink = PerFileDryRun(output, [s.name for s in sources])
        return ReplaySession(self.engine.translator, sink, engine=self.engine).run(sources)
