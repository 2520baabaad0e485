"""`recombee-cli replay`: options in, a ReplaySession run, the summary and the exit code out."""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING

import click

from recombee_cli.cli import ui
from recombee_cli.cli.common import (
    check_writable,
    close_dask,
    config_option,
    dask_engine,
    dask_option,
    exclude_option,
    exit_for,
    inputs_of,
    load,
    max_line_option,
    preset_option,
    sigterm_stops_like_ctrl_c,
    total_bytes,
    warn_what_was_read,
    warner,
    window_of,
    workers_for,
    workers_option,
    write_report,
)
from recombee_cli.cli.environment import Command, Environment, log_json, say
from recombee_cli.cli.exits import EXIT_CODES_HELP, Abort, ExitCode
from recombee_cli.errors import ConfigError, OutputError, RecombeeCliError
from recombee_cli.mapping.config import Config
from recombee_cli.mapping.filters import DEFAULT_DEDUPE_WINDOW, Deduplicator, make_filter
from recombee_cli.mapping.translate import Translator
from recombee_cli.outcomes import parse_fail_on
from recombee_cli.pipeline.session import ReplaySession
from recombee_cli.recombee.batching import DEFAULT_CONCURRENCY, GROWN_CONCURRENCY, MAX_CONCURRENCY
from recombee_cli.recombee.service import DEFAULT_REGION, MAX_BATCH, REGIONS
from recombee_cli.record.report import RunReport
from recombee_cli.record.state import default_state_path
from recombee_cli.sinks.printer import DryRunPrinter, PerFileDryRun
from recombee_cli.sinks.protocol import Sink
from recombee_cli.sources.reader import Source

if TYPE_CHECKING:   # the sender (and httpx) load only when something is sent
    from recombee_cli.recombee.sender import RecombeeSender


def batch_printer(env: Environment):
    """--verbose: one line per Batch on stderr (called from the sender's threads)."""
    lock = threading.Lock()

    def said(batch) -> None:
        answer = f"HTTP {batch.status}" if batch.status else "no answer"
        if batch.reason:
            answer += f" ({batch.reason})"
        text = (f"Batch of {ui.plural(batch.size, 'request')}: {answer}, {ui.plural(batch.attempts, 'attempt')}, "
                f"{batch.seconds:.2f} s" + (f", {ui.plural(batch.retried, 'request')} sent again" if batch.retried
                                            else ""))
        with lock:
            if env.log_json:
                log_json(env, "info", "batch", size=batch.size, status=batch.status, attempts=batch.attempts,
                          seconds=round(batch.seconds, 3), retried=batch.retried, reason=batch.reason)
            else:
                say(env, "info", text)
            env.stderr.flush()

    return said


def make_sender(env: Environment, config: Config, *, database_id, region, base_uri, token_file,
                allow_http, batch_size, concurrency, verbose=False) -> RecombeeSender:
    """The sender `replay` sends with: the library's factory (pipeline.connect), the CLI's words."""
    from recombee_cli.pipeline.connect import make_sender as connect

    try:
        return connect(database_id, token_file=token_file, region=region, base_uri=base_uri, allow_http=allow_http,
                       batch_size=batch_size, concurrency=concurrency, config=config, environ=env.environ,
                       on_batch=batch_printer(env) if verbose else None,
                       warn=lambda message: say(env, "warning", message))
    except ConfigError as exc:
        hint = " (or --dry-run to only print the requests)" if str(exc).startswith("no private token") else ""
        raise Abort(f"{exc}{hint}", ExitCode.USAGE) from None


EXAMPLES = """
recombee-cli replay --dry-run sample_events/                 # print the requests; send nothing, no token
recombee-cli replay --dry-run 'segment-logs/SRC123/*/*.gz' > requests.ndjson   # quote a glob
zcat day.gz | recombee-cli replay --dry-run -                # from stdin
export RECOMBEE_PRIVATE_TOKEN=...                            # never on the command line
recombee-cli replay --database-id shop-prod --region us-west --report run.json segment-logs/SRC123/
recombee-cli replay --quiet --config /etc/recombee/recombee-cli.toml s3://acme-segment/segment-logs/SRC123/
recombee-cli replay --database-id shop-prod ~/.local/state/recombee-cli/shop-prod.rejects.ndjson   # re-send
recombee-cli replay --since 2024-01-01 --until 2024-02-01 segment-logs/SRC123/   # a window; state untouched
"""

SECTIONS = (
    ("Input", ("exclude", "since", "until", "dedupe", "dedupe_window", "max_line_bytes", "workers", "dask")),
    ("Mappings", ("config_path", "enable")),
    ("Sending", ("dry_run", "database_id", "region", "base_uri", "token_file", "allow_http", "batch_size",
                 "concurrency")),
    ("State and resume", ("state_path", "no_state", "reprocess")),
    ("Output", ("output", "rejects_path", "report_path", "fail_on", "quiet", "verbose", "log_format")),
)


@click.command(cls=Command, epilog=EXIT_CODES_HELP, examples=EXAMPLES, sections=SECTIONS,
               short_help="Translate Segment exports and send them to Recombee (--dry-run: print them).")
@click.argument("inputs", nargs=-1, required=True)
@config_option
@click.option("--dry-run", is_flag=True,
              help="Print the requests (one JSON object per line, as in a Batch's `requests`) "
                   "instead of sending them. Needs no token.")
@click.option("--database-id", envvar="RECOMBEE_DATABASE_ID", help="Recombee database id.")
@click.option("--region", type=click.Choice(REGIONS),
              envvar="RECOMBEE_REGION", help=f"Recombee region (default {DEFAULT_REGION}).")
@click.option("--base-uri", envvar="RECOMBEE_BASE_URI",
              help="Custom API address instead of a region, e.g. https://rapi.example.com.")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="File holding the private token (else RECOMBEE_PRIVATE_TOKEN).")
@click.option("--allow-http", is_flag=True, help="Allow a plain http:// base URI (local testing only).")
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH),
              help=f"Requests per Batch call (default 1000, Recombee's maximum {MAX_BATCH}).")
@click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY),
              help=f"Batch calls in flight at most, fixed (default: {DEFAULT_CONCURRENCY}, and up to "
                   f"{GROWN_CONCURRENCY} while Recombee is far away and every lane is busy; as many go as the "
                   "latency needs).")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False),
              help="Also append invalid and failed events here (NDJSON, replayable). A sending run keeps "
                   "them anyway beside its state file (<state>.rejects.ndjson; `status` says how many).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write the run's figures as JSON.")
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              help="State file (SQLite) for resume and incremental runs; default: one per database id "
                   "under $XDG_STATE_HOME/recombee-cli/.")
@click.option("--no-state", is_flag=True, help="Neither skip done files nor record progress.")
@click.option("--reprocess", is_flag=True, help="Process files the state file marks as done again.")
@click.option("--since", type=str, help="Only events at or after this time (ISO date or epoch); "
              "such a run leaves the state file alone.")
@click.option("--until", type=str, help="Only events before this time; leaves the state file alone.")
@click.option("--dedupe", is_flag=True, help="Drop repeated messageIds (counted as filtered).")
@click.option("--dedupe-window", type=click.IntRange(min=1), default=DEFAULT_DEDUPE_WINDOW, show_default=True,
              help="How many recent messageIds --dedupe remembers.")
@workers_option
@dask_option
@click.option("--output", "output", type=click.Path(file_okay=False),
              help="With --dry-run: write the requests of each input to its own file in this folder "
                   "(DIR/<input name>.ndjson) instead of stdout.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: warnings, errors and the summary as JSON lines on stderr (log collectors).")
@click.option("--quiet", "-q", is_flag=True, help="No progress, warnings or summary unless something failed.")
@click.option("--verbose", "-v", is_flag=True,
              help="Sending: one line per Batch call on stderr (requests, HTTP status, attempts, seconds).")
@click.option("--fail-on", "fail_on", metavar="OUTCOMES",
              help="Comma-separated outcomes that make the run exit 1 (and print the summary under "
                   "--quiet): any of invalid, failed, unmatched, filtered, or 'none'. Default: "
                   "invalid,failed (or [replay] fail_on). An input that cannot be read always fails the run.")
@max_line_option
@preset_option
@exclude_option
@click.pass_obj
def replay(env: Environment, inputs, config_path, dry_run, database_id, region, base_uri, token_file,
           allow_http, batch_size, concurrency, rejects_path, report_path, state_path, no_state, reprocess,
           since, until, dedupe, dedupe_window, workers, dask, output, log_format, quiet, verbose, fail_on,
           max_line_bytes, enable, exclude) -> None:
    """Translate Segment events from INPUTS and send them to Recombee (or print them with --dry-run).

    INPUTS are files, folders (read recursively, sorted by path), glob patterns or `-` for stdin;
    gzip, zstd and bz2 are detected from the content. The private token is read from
    RECOMBEE_PRIVATE_TOKEN or --token-file and never printed.

    Sending runs keep a state file: the same command after a crash, Ctrl-C or kill continues where
    it stopped, and a nightly run over the same folder reads only the files that are new.
    """
    env.log_json = log_format == "json"
    config, translator = load(env, config_path, quiet, enable)
    window = since is not None or until is not None
    start, end = window_of(since, until)
    window_filter = make_filter(since=start, until=end)
    deduplicator = Deduplicator(dedupe_window) if dedupe else None
    fail_on = parse_fail_on(fail_on, "--fail-on") if fail_on is not None else config.replay.fail_on
    sources, skipped_folders = inputs_of(env, inputs, since, until, quiet, (*exclude, *config.replay.exclude))
    concurrency = concurrency or config.replay.concurrency   # None: the sender's default (it grows)
    if output and not dry_run:
        raise Abort("--output writes the requests of a dry run: use it with --dry-run", ExitCode.USAGE)
    if dask and (dedupe or (workers or 1) > 1):
        raise Abort(f"--dask does not go with {'--dedupe' if dedupe else '--workers'}: " +
                    ("--dedupe needs every event in input order, in one process" if dedupe
                     else "the cluster's workers translate"), ExitCode.USAGE)
    if (workers or 1) > 1 and dedupe:
        say(env, "warning", "--dedupe needs every event in input order: translating in one process")
        workers = 1
    workers = workers_for(workers, sources, dedupe=dedupe, dask=bool(dask))
    # Fork the translators before any sender thread exists.
    pool = None
    if workers > 1:
        from recombee_cli.pipeline.parallel import TranslatorPool  # (multiprocessing: 10 ms of imports)

        pool = TranslatorPool(translator, workers, window_filter=window_filter,
                              lanes=0 if dry_run else concurrency or DEFAULT_CONCURRENCY)
    client = cluster = engine = calls = None
    try:
        if dask:
            client, cluster, engine = dask_engine(dask, config, since, until)
        check_writable(report_path, "--report")
        endpoint = None
        if dry_run:
            sink: Sink = (PerFileDryRun(output, [s.name for s in sources]) if output
                          else DryRunPrinter(env.stdout))
        else:
            sink = sender = make_sender(env, config, database_id=database_id, region=region, base_uri=base_uri,
                                        token_file=token_file, allow_http=allow_http, batch_size=batch_size,
                                        concurrency=concurrency, verbose=verbose)
            from recombee_cli.pipeline.calls import CallLog
            from recombee_cli.recombee.client import endpoint_of  # (httpx: only when sending)

            endpoint = endpoint_of(sender.client.base_url)
            calls = CallLog().watch(sender)   # the calls over the run's time, for the report's pictures
        use_state = not dry_run and not no_state and not window
        rejects_path = rejects_path or config.replay.rejects
        observer = ui.make_observer(env.stderr, quiet=quiet or env.log_json, total_bytes=total_bytes(sources))
        session = ReplaySession(
            translator, sink, dry_run=dry_run, fail_on=fail_on, rejects_path=rejects_path,
            state_path=(state_path or default_state_path(sink.database_id))
            if use_state else None,
            reprocess=reprocess, window_filter=window_filter, dedupe=deduplicator,
            max_line_bytes=max_line_bytes, engine=pool or engine, warn=warner(env, quiet),
            observer=observer, mappings=config.mappings_identity(), endpoint=endpoint,
            merges_state=(state_path or default_state_path(sink.database_id))
            if window and not dry_run and not no_state else None)
        session.report.timeline.calls = calls
        report = run_session(env, session, observer, sources, len(skipped_folders), report_path, quiet)
    finally:
        if pool is not None:
            pool.close()
        close_dask(client, cluster)
    sys.exit(int(exit_for(report)))


def run_session(env: Environment, session: ReplaySession, progress: ui.ProgressView, sources: list[Source],
                skipped_folders: int, report_path: str | None, quiet: bool) -> RunReport:
    """Run the session under the progress display; the summary is shown when it ends, and also when
    it stops on an error (before the error's own line), so a failed night says what was done."""
    session.open()
    rejects_path = session.rejects.paths if session.rejects is not None else None
    if session.previous_mappings is not None and session.mappings is not None:   # said even under --quiet
        before = session.previous_mappings
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(before.get("started", 0)))
        say(env, "warning", f"the mappings differ from the last run on this state (run {before.get('run')} of "
                            f"{when}: {ui.mappings_said(before)}; now: {ui.mappings_said(session.mappings)}): "
                            f"files done before were sent with those (--reprocess sends them again); "
                            f"`recombee-cli status` shows each run's mappings")
    try:
        with sigterm_stops_like_ctrl_c(), progress:
            report = session.run(sources, skipped_folders=skipped_folders)
    except (RecombeeCliError, KeyboardInterrupt, OSError):
        if "aborted" in session.report.extra:
            try:
                show_report(env, session.report, report_path, rejects_path, quiet=False,
                            translator=session.translator)
            except (OSError, OutputError):
                pass   # the output itself failed (disk full): the original error says it
        raise
    show_report(env, report, report_path, rejects_path, quiet=quiet, translator=session.translator)
    return report


def show_report(env: Environment, report: RunReport, report_path: str | None, rejects_path: list[str] | None, *,
                quiet: bool, translator: Translator | None = None) -> None:
    write_report(report_path, report)
    warn_what_was_read(env, report, translator)
    if env.log_json:
        # An aborted run (401, unreachable, Ctrl-C) is an error whatever its counts say.
        level = "info" if report.ok and "aborted" not in report.extra else "error"
        log_json(env, level, "summary", report=report.to_dict())
    elif not quiet or not report.ok or "aborted" in report.extra:
        ui.print_summary(env.stderr, report, rejects_path=rejects_path)
