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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recombee_cli.errors import ClusterError, ClusterUsageError
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config, RecombeeSettings, load_config
from recombee_cli.mapping.filters import make_filter
from recombee_cli.mapping.translate import EventFilter, Translator, translate_block
from recombee_cli.pipeline.engines import Reading, Translated
from recombee_cli.sources.reader import Source, display_name, expand_inputs, pieces, read_blocks

if TYPE_CHECKING:
    from recombee_cli.record.report import RunReport
    from recombee_cli.sinks.protocol import Sink

FILES_PER_WORKER = 2   # files in flight per worker thread: one translated, one waiting


@dataclass(frozen=True)
class _Job:
    """What a worker needs to translate like the driver: the configuration (compiled once per
    worker process, cached by its digest) and the --since/--until window."""

    config: Config
    since: float | None
    until: float | None
    digest: str


@dataclass(slots=True)
class TranslatedFile:
    """What a task gives back: the file's chunks with their results, and the reader's warnings."""

    parts: list[Translated] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


_compiled: dict[str, tuple[Translator, EventFilter | None]] = {}   # on a worker: job digest -> (translator, filter)


def _translator_for(job: _Job) -> tuple[Translator, EventFilter | None]:
    found = _compiled.get(job.digest)
    if found is None:
        found = (Translator(compile_config(job.config)), make_filter(since=job.since, until=job.until))
        _compiled.clear()   # one configuration at a time per worker
        _compiled[job.digest] = found
    return found


def translate_file(source: Source, start: int, job: _Job, chunk_lines: int, max_line_bytes: int,
                   routes: bool) -> TranslatedFile:
    """A Dask task: one file read from `start`, decompressed and translated, chunk by chunk. A
    chunk keeps its bytes (each line once: the joined bytes or the cut lines, never both)."""
    translator, window_filter = _translator_for(job)
    done = TranslatedFile()
    for block in read_blocks(source, max_line_bytes=max_line_bytes, start_offset=start, split=False,
                             warn=done.warnings.append):
        for chunk in pieces(block, chunk_lines):
            result = translate_block(chunk.lines, translator, window_filter=window_filter, routes=routes)
            chunk.release_lines()   # shipped once: the bytes as read are cut again on the driver
            done.parts.append((chunk, result))
    return done


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
        return distributed.Client(cluster, security=security), cluster
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
    """The Engine that reads and translates whole files on a Dask cluster, for
    `replay.run(..., engine=engine)`. A notebook passes its own `distributed.Client`:

        >>> engine = DaskEngine(client, load_config("mappings.toml"))
        >>> report = run(expand_inputs(["s3://acme/segment-logs/SRC/"]), engine.translator, sink,
        ...              engine=engine)
    """

    def __init__(self, client: Any, config: Config | None = None, *, since: float | None = None,
                 until: float | None = None, files_in_flight: int | None = None):
        config = config if config is not None else Config()
        self.client = client
        self.translator = Translator(compile_config(config))   # the driver's (checks the config too)
        # The workers get the mappings, not the [recombee] settings: a config's token stays here.
        config = dataclasses.replace(config, recombee=RecombeeSettings())
        digest = hashlib.sha256(pickle.dumps((config, since, until))).hexdigest()
        self._job = _Job(config, since, until, digest)
        self._files_in_flight = files_in_flight
        self.files_done = 0

    def _window(self) -> int:
        if self._files_in_flight:
            return self._files_in_flight
        workers = self.client.scheduler_info()["workers"].values()
        threads = sum(int(w.get("nthreads", 1)) for w in workers)
        return max(2, FILES_PER_WORKER * threads)

    def translate(self, sources: Iterable[tuple[Source, int]], reading: Reading
                  ) -> Iterator[tuple[Source, Iterator[Translated]]]:
        """The Engine interface: files submitted a bounded window ahead, their chunks' results
        yielded in input order; what a worker could not read comes back in them.

        A task whose worker died is run again by Dask elsewhere; one that raised, or whose
        workers kept dying, stops the run (what was acknowledged is saved by the caller)."""
        for source, parts in self.map_sources(sources, reading):
            yield source, iter(parts)   # chunks as read on a worker, what it could not read included

    def map_sources(self, sources: Iterable[tuple[Source, int]], reading: Reading
                    ) -> Iterator[tuple[Source, list[Translated]]]:
        window: deque[tuple[Source, Any]] = deque()
        pairs = iter(sources)
        size = self._window()
        job = self._job   # small (the configuration): sent with each task, never lost with a worker

        def submit_next() -> bool:
            pair = next(pairs, None)
            if pair is None:
                return False
            source, start = pair
            future = self.client.submit(translate_file, source, start, job, reading.chunk_lines,
                                        reading.max_line_bytes, reading.routes,
                                        key=f"recombee-file-{uuid.uuid4().hex}", pure=False)
            window.append((source, future))
            return True

        try:
            while len(window) < size and submit_next():
                pass
            while window:
                source, future = window.popleft()
                try:
                    result: TranslatedFile = future.result()
                except Exception as exc:  # noqa: BLE001 - a task's error or KilledWorker, said plainly
                    raise ClusterError(f"{display_name(source.name)}: the cluster could not translate this "
                                       f"file ({type(exc).__name__}: {exc}); what was acknowledged is "
                                       f"saved, run the same command to go on") from None
                future.release()
                submit_next()   # keep the cluster busy before our part
                if reading.warn is not None:
                    for message in result.warnings:
                        reading.warn(message)
                self.files_done += 1
                yield source, result.parts
        finally:
            for _, future in window:
                future.cancel()


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
