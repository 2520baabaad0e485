"""A replay session: one run's lifecycle around `replay.run`, for the CLI, a notebook, a Dask job or
a test alike.

It owns what must happen in order and be undone on every way out: the rejects file, the state
file (locked, a run row started), the run itself, and — when anything goes wrong — stopping the
sink, saying in the report what was done and what was left unanswered, and recording the run as
`aborted` or `interrupted` so the next run knows. What it does not own is what a person sees:
progress, the summary, the exit code (the caller's observer and report printing).

    >>> session = ReplaySession(translator, DryRunPrinter(sys.stdout.buffer))
    >>> report = session.run(expand_inputs(["exports/"]))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from recombee_cli.errors import RecombeeCliError, StateWriteError
from recombee_cli.outcomes import DEFAULT_FAIL_ON
from recombee_cli.pipeline.engines import Engine
from recombee_cli.pipeline.filters import Deduplicator
from recombee_cli.pipeline.replay import CHUNK_LINES, Observer, Recorder, RunReport, collector_for_streaming, run
from recombee_cli.pipeline.translate import Translator
from recombee_cli.record.rejects import RejectsWriter
from recombee_cli.record.state import Checkpoints, StateStore, describe_command
from recombee_cli.sinks.protocol import Sink
from recombee_cli.sources.reader import DEFAULT_MAX_LINE_BYTES, Source

Warn = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


class ReplaySession:
    """One replay: `run(sources)` reads, translates, sends (or prints) and records, and returns the
    report; `report` holds the figures even when `run` raised.

    `state_path` None means no state (dry runs, --no-state, a --since/--until window): nothing is
    skipped and nothing recorded. A state belongs to the sink's database (and to `endpoint`, the
    address it sends to, when given): a state of another is refused before anything is sent.
    A sending sink has `batch_size`; chunks of lines are then no bigger than a Batch, so the
    first requests leave early and a checkpoint never waits long."""

    def __init__(self, translator: Translator, sink: Sink, *, dry_run: bool = True,
                 fail_on: Sequence[str] = DEFAULT_FAIL_ON, rejects_path: str | None = None,
                 state_path: str | None = None, reprocess: bool = False, window_filter: Any = None,
                 dedupe: Deduplicator | None = None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 engine: Engine | None = None, observer: Observer | None = None,
                 warn: Warn = _quiet, endpoint: str | None = None):
        self.translator, self.sink, self.dry_run = translator, sink, dry_run
        self.rejects_path, self.state_path, self.reprocess = rejects_path, state_path, reprocess
        self.window_filter, self.dedupe, self.max_line_bytes = window_filter, dedupe, max_line_bytes
        self.engine, self.observer, self.warn = engine, observer, warn
        self.endpoint = endpoint   # where the sink sends (a region's host or a base URI): the state's too
        self.report = RunReport(dry_run=dry_run, fail_on=tuple(fail_on))
        self.rejects: RejectsWriter | None = None
        self.store: StateStore | None = None
        self.checkpoints: Checkpoints | None = None
        self.run_id: int | None = None
        self.opened = self.ran = False

    def open(self) -> None:
        """Open the rejects file and the state (locked; a run row started). Everything that can be
        refused is refused here, before anything is sent; what was opened is closed again. A
        session runs once: its report, rejects and state row are that run's."""
        if self.opened:
            return
        self.opened = True
        try:
            if self.rejects_path:
                self.rejects = RejectsWriter(self.rejects_path)
            if self.state_path is not None:
                self.store = StateStore(self.state_path, warn=self.warn)
                self.store.lock(describe_command())
                if self.sink.database_id:   # a state belongs to one database (and address)
                    self.store.bind(self.sink.database_id, self.endpoint)
                self.run_id = self.store.start_run(describe_command())
                self.checkpoints = Checkpoints(self.store, reprocess=self.reprocess, warn=self.warn)
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
        report = self.report
        if skipped_folders:
            report.extra["skipped_folders"] = skipped_folders
        sink = self.sink
        batch_size = sink.batch_size
        chunk_lines = CHUNK_LINES if self.dry_run or not batch_size else max(50, min(CHUNK_LINES, batch_size))
        try:
            with collector_for_streaming():
                run(sources, self.translator, sink, observer=self.observer,
                    recorder=Recorder(report, self.rejects), window_filter=self.window_filter,
                    dedupe=self.dedupe, max_line_bytes=self.max_line_bytes, checkpoints=self.checkpoints,
                    engine=self.engine, chunk_lines=chunk_lines, warn=self.warn)
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
                self.rejects.close()
        if self.checkpoints is not None:
            report.extra["resumed_sources"] = self.checkpoints.resumed
        if self.rejects is not None and self.rejects.repeated:
            report.extra["rejects_already_recorded"] = self.rejects.repeated
        self._finish_report()
        self._record("done" if report.ok else "failed", quietly=False)
        return report

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
