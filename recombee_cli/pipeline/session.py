"""A replay session: one run's lifecycle around `replay.run`, for the CLI, a notebook, a Dask job or
a test alike.

It owns what must happen in order and be undone on every way out: the rejects file, the state
file (locked, a run row started), the run itself, and — when anything goes wrong — stopping the
sink, saying in the report what was done and what was left unanswered, and recording the run as
`aborted` or `interrupted` so the next run knows. What it does not own is what a person sees:
progress, the summary, the exit code (the caller's observer and report printing).

    >>> session = ReplaySession(translator, DryRunPrinter(sys.stdout.buffer))
    >>> report = session.run(expand_inputs(["exports/"]))

`ExportSession` is the same lifecycle for `export`: a replay into a file export, with no state.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from recombee_cli.errors import RecombeeCliError, ReprocessRefused, StateWriteError
from recombee_cli.mapping.filters import Deduplicator
from recombee_cli.mapping.translate import Translator
from recombee_cli.outcomes import DEFAULT_FAIL_ON
from recombee_cli.pipeline.engines import CHUNK_LINES, Engine, InlineEngine, Reading
from recombee_cli.pipeline.replay import Observer, collector_for_streaming, run
from recombee_cli.record.checkpoints import Checkpoints
from recombee_cli.record.recorder import Recorder
from recombee_cli.record.rejects import RejectsWriter
from recombee_cli.record.report import RunReport
from recombee_cli.record.state import StateStore, default_rejects_path, describe_command
from recombee_cli.segment.actions import recombee_id_rule
from recombee_cli.sinks.files import ExportSink
from recombee_cli.sinks.protocol import Sink
from recombee_cli.sources.reader import DEFAULT_MAX_LINE_BYTES, Source

Warn = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def _merges(n: int) -> str:
    return f"{n:,} merge or user deletion" if n == 1 else f"{n:,} merges or user deletions"


def read_database_types(translator: Translator, sink: Sink, warn: Warn = _quiet,
                        sleep: Callable[[float], None] = time.sleep) -> None:
    """Before a sending run that sets users' or items' values: the database's property types
    (Recombee's ListUserProperties and ListItemProperties, signed GETs), so that a value that does
    not fit a property the database already has is decided before sending, as within one run.
    A sink with no Recombee client (a dry run, an export) has no database: nothing is read.
    401/403 raises (nothing was sent); a list that cannot be read after three tries (429, 5xx, no
    answer, a malformed one) is warned about and the types stay unknown, as before: such values
    then fail with Recombee's answer."""
    list_properties = getattr(getattr(sink, "client", None), "list_properties", None)
    if not translator.sets_values or list_properties is None:
        return
    from recombee_cli.recombee.client import CallFailed, Retryable  # (httpx: only with a client)

    types: dict[str, dict[str, str]] = {}
    for entity in ("users", "items"):
        for attempt in range(3):
            try:
                types[entity] = list_properties(entity)
                break
            except Retryable as exc:
                if attempt == 2:
                    warn(f"cannot read the database's {entity[:-1]} properties ({exc.reason}): values that "
                         "do not fit an existing property will fail with Recombee's answer")
                    return
                sleep(min(exc.retry_after or 0.5 * 2 ** attempt, 5.0))
            except CallFailed as exc:
                warn(f"{exc}: values that do not fit an existing property will fail with Recombee's answer")
                return
    translator.database_types = types
    for entity, table in types.items():
        for name, kind in table.items():
            wanted = translator.property_types.get(entity, {}).get(name)
            if wanted is not None and wanted != kind:
                warn(f"{entity[:-1]} property {name!r} is declared {wanted} but the database has it as {kind}: "
                     f"its values must fit {kind}")


class ReplaySession:
    """One replay: `run(sources)` reads, translates, sends (or prints) and records, and returns the
    report; `report` holds the figures even when `run` raised.

    `state_path` None means no state (dry runs, --no-state, a --since/--until window): nothing is
    skipped and nothing recorded. A state belongs to the sink's database (and to `endpoint`, the
    address it sends to, when given): a state of another is refused before anything is sent.
    A sending sink has `batch_size`; chunks of lines are then no bigger than a Batch, so the
    first requests leave early and a checkpoint never waits long.

    A run with a state keeps its rejects beside it (`record.state.default_rejects_path`: a
    dead-letter queue per database), whether or not `rejects_path` asks for a copy elsewhere. A
    run that reads that very file again (re-sending the rejects once a mapping is fixed) leaves
    in it only what is rejected again, when it ends without an error."""

    def __init__(self, translator: Translator, sink: Sink, *, dry_run: bool = True,
                 fail_on: Sequence[str] = DEFAULT_FAIL_ON, rejects_path: str | None = None,
                 state_path: str | None = None, reprocess: bool = False, window_filter: Any = None,
                 dedupe: Deduplicator | None = None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 engine: Engine | None = None, observer: Observer | None = None,
                 warn: Warn = _quiet, mappings: dict[str, Any] | None = None,
                 merges_state: str | None = None, endpoint: str | None = None):
        self.translator, self.sink, self.dry_run = translator, sink, dry_run
        # A run that uses no state but sends (a --since/--until window): the state whose applied
        # merges it must not send again (it is read, not changed).
        self.merges_state = merges_state
        self.rejects_path, self.state_path, self.reprocess = rejects_path, state_path, reprocess
        self.window_filter, self.dedupe, self.max_line_bytes = window_filter, dedupe, max_line_bytes
        self.engine, self.observer, self.warn = engine, observer, warn
        self.endpoint = endpoint   # where the sink sends (a region's host or a base URI): the state's too
        self.report = RunReport(dry_run=dry_run, fail_on=tuple(fail_on))
        self.rejects: RejectsWriter | None = None
        self.kept_rejects_path = default_rejects_path(state_path) if state_path is not None else None
        self.store: StateStore | None = None
        self.checkpoints: Checkpoints | None = None
        self.run_id: int | None = None
        self.mappings = mappings                                 # Config.mappings_identity(), for the state
        self.previous_mappings: dict[str, Any] | None = None     # the last run's, when they differ
        self.opened = self.ran = False

    def open(self) -> None:
        """Open the rejects file and the state (locked; a run row started). Everything that can be
        refused is refused here, before anything is sent; what was opened is closed again. A
        session runs once: its report, rejects and state row are that run's."""
        if self.opened:
            return
        self.opened = True
        try:
            if self.state_path is not None:
                self.store = StateStore(self.state_path, warn=self.warn)
                self.store.lock(describe_command())
                if self.sink.database_id:   # a state belongs to one database (and address)
                    self.store.bind(self.sink.database_id, self.endpoint)
                self.run_id = self.store.start_run(describe_command())
                if self.mappings is not None:
                    previous = self.store.record_mappings(self.run_id, self.mappings)
                    if previous is not None and previous.get("digest") != self.mappings.get("digest"):
                        self.previous_mappings = previous
                self.checkpoints = Checkpoints(self.store, reprocess=self.reprocess, warn=self.warn)
                self.sink.keep_answers(self.checkpoints)
            copy = RejectsWriter(self.rejects_path) if self.rejects_path else None
            self.rejects = RejectsWriter(self.kept_rejects_path, also=copy) if self.kept_rejects_path else copy
        except BaseException:
            self.sink.abort()
            self._close()
            raise

    def run(self, sources: Sequence[Source], *, skipped_folders: int = 0) -> RunReport:
        """The whole run: open, replay every source, record, close. On an error or Ctrl-C the sink
        is stopped first, the report says what was done (`aborted`, `not_answered`), the state
        records the run as aborted or interrupted, and the error is raised again."""
        if self.ran:
            raise RuntimeError("a ReplaySession runs once: make a new one for another run")
        self.ran = True
        self.open()
        if self.reprocess and self.store is not None:
            self._refuse_merges_again(self.store, sources, "--reprocess")
        elif self.merges_state is not None and os.path.exists(self.merges_state):
            store = StateStore(self.merges_state)
            try:
                self._refuse_merges_again(store, sources, "this --since/--until window")
            finally:
                store.close()
        report = self.report
        if skipped_folders:
            report.extra["skipped_folders"] = skipped_folders
        sink = self.sink
        batch_size = sink.batch_size
        chunk_lines = CHUNK_LINES if self.dry_run or not batch_size else max(50, min(CHUNK_LINES, batch_size))
        sources = self._resending(sources)
        ended = False
        try:
            if not self.dry_run:
                read_database_types(self.translator, sink, self.warn)
            with collector_for_streaming():
                run(sources, self.translator, sink, engine=self._engine(), recorder=Recorder(report, self.rejects),
                    checkpoints=self.checkpoints, observer=self.observer,
                    reading=Reading(chunk_lines=chunk_lines, max_line_bytes=self.max_line_bytes, warn=self.warn))
            ended = True
        except BaseException as exc:
            # Stop the senders first; then say what was really done before the error goes on.
            sink.abort()
            if isinstance(exc, (RecombeeCliError, KeyboardInterrupt, OSError)):
                report.extra["aborted"] = exc.__class__.__name__
                report.extra["not_answered"] = report.events - sum(report.outcomes.values())
                self._finish_report()
            self._record("interrupted" if isinstance(exc, KeyboardInterrupt) else "aborted", quietly=True)
            raise
        finally:
            if self.rejects is not None:
                self.rejects.close(commit=ended)
        if self.checkpoints is not None:
            report.extra["resumed_sources"] = self.checkpoints.resumed
        if self.rejects is not None and self.rejects.repeated:
            report.extra["rejects_already_recorded"] = self.rejects.repeated
        self._finish_report()
        self._record("done" if report.ok else "failed", quietly=False)
        return report

    def _refuse_merges_again(self, store: StateStore, sources: Sequence[Source], what: str) -> None:
        """--reprocess (or a --since/--until window) sends files' requests again from their start.
        Recombee applies a merge or a user deletion again (a merge would move what its source user
        was given since, a deletion delete it), so files whose merges or deletions were applied are
        refused, before anything is sent; the state is left as it was."""
        applied = store.applied_solos([s.state_key for s in sources if s.identity is not None])
        if not applied:
            return
        first = next(s for s in sources if s.state_key in applied)
        self.sink.abort()
        self._record("aborted", quietly=True)
        raise ReprocessRefused(
            f"{what} would send again {_merges(sum(applied.values()))} that Recombee "
            f"already applied, from {len(applied):,} file{'s' if len(applied) != 1 else ''} (first: "
            f"{first.name}); applied again, a merge moves what its source user was given since. Replay "
            f"into an empty database with a new state instead, or leave those files out")

    def _engine(self) -> Engine:
        """The engine given (worker processes, a cluster: they bring their own filter), or this
        process's, which alone can take --dedupe: it needs every event in input order."""
        if self.engine is None:
            return InlineEngine(self.translator, window_filter=self.window_filter, dedupe=self.dedupe)
        if self.dedupe is not None:
            raise ValueError("--dedupe needs every event in input order: give it to an in-process engine")
        return self.engine

    def _resending(self, sources: Sequence[Source]) -> Sequence[Source]:
        """When the kept rejects are among the inputs, they are read as a stream (nothing of them
        recorded in the state: a re-send reads them whole) and rewritten (`RejectsWriter.rewrite`)."""
        if self.rejects is None or self.kept_rejects_path is None or not os.path.exists(self.kept_rejects_path):
            return sources
        kept = os.path.realpath(self.kept_rejects_path)
        out = [Source(s.name, s.open, s.size, None, s.key) if s.identity is not None and "://" not in s.state_key
               and os.path.realpath(s.state_key) == kept else s for s in sources]
        if any(a is not b for a, b in zip(out, sources)):
            self.rejects.rewrite()
            self.report.extra["rejects_resent"] = kept
        return out

    def _finish_report(self) -> None:
        report = self.report
        report.elapsed = report.elapsed or (time.monotonic() - report.started)
        if not self.dry_run:
            report.extra.update(self.sink.counters())

    def _record(self, status: str, *, quietly: bool) -> None:
        """The run's row in the state; a state that cannot be written after an error is left for
        the next run, which marks this one as crashed."""
        if self.store is None:
            return
        try:
            assert self.run_id is not None   # set by open() with the store
            self.store.finish_run(self.run_id, status, self.report.to_dict())
        except StateWriteError:
            if not quietly:
                raise
        finally:
            self._close()

    def _close(self) -> None:
        if self.rejects is not None:
            self.rejects.close()
        if self.store is not None:
            self.store.close()
            self.store = None


class ExportSession(ReplaySession):
    """One export (`recombee-cli export`): a replay into an `ExportSink`, with the same reading,
    translation, outcome counting, rejects and report, and the same account of an error or Ctrl-C
    (the sink removes what it wrote). An export keeps no state: it is written whole or not at all
    (the `FileExporter` renames its parts only at the end), so there is nothing to skip or resume.

    What it adds to a replay: the format's contract decides what an ID may hold, not Recombee's
    rule (`recombee_id_rule` is off from `open()` to the end of `run()`, in this process and in the
    `workers` translating processes it forks under it), and once the files are committed the
    report's `rows_written`, `files_written` and `export` (rows per table, every file).

        >>> fmt = RecoInteractions()
        >>> sink = ExportSink(fmt, FileExporter("out/", fmt))
        >>> report = ExportSession(translator, sink, workers=2).run(expand_inputs(["exports/"]))"""

    def __init__(self, translator: Translator, sink: ExportSink, *, workers: int = 1,
                 rejects_path: str | None = None, window_filter: Any = None, dedupe: Deduplicator | None = None,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, observer: Observer | None = None,
                 warn: Warn = _quiet):
        super().__init__(translator, sink, dry_run=False, rejects_path=rejects_path, window_filter=window_filter,
                         dedupe=dedupe, max_line_bytes=max_line_bytes, observer=observer, warn=warn)
        self.export, self.workers = sink, workers
        self._held = ExitStack()   # the format's ID rule and the workers, from open() to the end of run()

    @property
    def manifest(self) -> dict[str, Any] | None:
        """What the export wrote (`_manifest.json`), once committed."""
        return self.export.files.manifest

    def open(self) -> None:
        """The format's ID rule, the translating processes forked under it (before any thread or
        signal handler of the caller's: open before showing progress), then the rejects file."""
        if self.opened:
            return
        held = self._held
        try:
            held.enter_context(recombee_id_rule(self.export.format.recombee_ids))
            if self.workers > 1:
                from recombee_cli.pipeline.parallel import TranslatorPool  # (imported only to fork workers)

                pool = TranslatorPool(self.translator, self.workers, window_filter=self.window_filter)
                held.callback(pool.close)
                self.engine = pool
            super().open()
        except BaseException:
            held.close()
            raise

    def run(self, sources: Sequence[Source], *, skipped_folders: int = 0) -> RunReport:
        try:
            report = super().run(sources, skipped_folders=skipped_folders)
        finally:
            self._held.close()   # the workers stopped, Recombee's ID rule back as it was
        manifest = self.manifest
        assert manifest is not None   # committed: the run ended without an error
        # (an export's report has never counted rejects already in the file: it says what it wrote)
        report.extra.pop("rejects_already_recorded", None)
        report.extra["rows_written"] = manifest["rows"]
        report.extra["files_written"] = len(manifest["files"])
        report.extra["export"] = {"output": self.export.files.directory, "format": self.export.format.name,
                                  "rows": {t: v["rows"] for t, v in manifest["tables"].items()},
                                  "files": manifest["files"]}
        return report
