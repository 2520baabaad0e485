"""The command line: parses options, wires the pipeline stages together, and turns typed errors
into one-line messages and documented exit codes. No pipeline logic lives here."""

from __future__ import annotations

import datetime
import enum
import glob
import io
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, TextIO

import click
import orjson

from recombee_cli import __version__
from recombee_cli.cli import ui
from recombee_cli.errors import (
    AuthenticationError,
    ConfigError,
    InputError,
    OutputError,
    RecombeeCliError,
    ServiceError,
    StateWriteError,
    WorkerError,
)
from recombee_cli.outcomes import parse_fail_on
from recombee_cli.pipeline.config import (
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY,
    Config,
    compile_config,
    load_config,
    load_segment_subscriptions,
    trigger_warnings,
)
from recombee_cli.pipeline.filters import DEFAULT_DEDUPE_WINDOW, Deduplicator, make_filter
from recombee_cli.pipeline.parallel import TranslatorPool
from recombee_cli.pipeline.replay import CHUNK_LINES, Recorder, RunReport, collector_for_streaming, run
from recombee_cli.pipeline.translate import Translator
from recombee_cli.recombee.routing import DEFAULT_CONCURRENCY
from recombee_cli.record.rejects import RejectsWriter
from recombee_cli.record.state import Checkpoints, StateStore, default_state_path, describe_command
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.segment.presets import PRESETS
from recombee_cli.sinks.files import DEFAULT_PART_ROWS
from recombee_cli.sinks.formats import FORMATS
from recombee_cli.sinks.printer import DryRunPrinter, NullSink, PerFileDryRun
from recombee_cli.sources.reader import DEFAULT_MAX_LINE_BYTES, display_name, expand_inputs, read_lines

if TYPE_CHECKING:
    from recombee_cli.recombee.sender import RecombeeSender
    from recombee_cli.sinks.protocol import Sink


class ExitCode(enum.IntEnum):
    OK = 0                    # all done (unmatched events are fine)
    FINISHED_WITH_ERRORS = 1  # finished, but some events were invalid or failed (see --fail-on)
    USAGE = 2                 # usage or configuration error
    ABORTED = 3               # Recombee unreachable or refusing, output or state not writable, a worker died
    INTERRUPTED = 130         # Ctrl-C; the checkpoint is saved
    TERMINATED = 143          # SIGTERM (cron, systemd, kill); the checkpoint is saved


_EXIT_MEANINGS = {
    ExitCode.OK: "all done (unmatched events are fine)",
    ExitCode.FINISHED_WITH_ERRORS: "finished, but some events were invalid or failed (see --rejects, --fail-on)",
    ExitCode.USAGE: "usage or configuration error",
    ExitCode.ABORTED: "aborted: Recombee unreachable or refusing, output or state not writable",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); the checkpoint is saved",
    ExitCode.TERMINATED: "terminated (SIGTERM); the checkpoint is saved",
}
EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(f"  {int(code):<4} {text}" for code, text in _EXIT_MEANINGS.items())


class Terminated(KeyboardInterrupt):
    """SIGTERM: stops a run like Ctrl-C (the checkpoint is saved), with its own exit code."""


@dataclass
class Environment:
    """Everything the commands touch outside themselves; tests replace it.

    The streams are looked up when used, so that click's test runner can swap them."""

    environ: dict = field(default_factory=lambda: os.environ)
    out: BinaryIO | None = None
    err: TextIO | None = None
    log_json: bool = False      # --log-format json: people-facing lines become JSON objects
    notice: str | None = None   # which config is used, said once the inputs are found (a usage error stays one line)

    @property
    def stdout(self) -> BinaryIO:
        return self.out or sys.stdout.buffer

    @property
    def stderr(self) -> TextIO:
        return self.err or sys.stderr


@contextmanager
def _text_stdout(env: Environment) -> Iterator[TextIO]:
    """Reports are data: they go to stdout, as text (the binary stream when a test replaced it)."""
    if env.out is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    wrapper = io.TextIOWrapper(env.out, encoding="utf-8", write_through=True)
    try:
        yield wrapper
    finally:
        wrapper.flush()
        wrapper.detach()   # the stream is the caller's: do not close it with the wrapper


class Abort(Exception):
    """Raised inside commands to end with a message and an exit code."""

    def __init__(self, message: str, code: ExitCode):
        super().__init__(message)
        self.code = code


def _log_json(env: Environment, level: str, message: str, **fields) -> None:
    """One JSON log line on stderr, stamped with the time (ISO 8601, UTC, milliseconds)."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    env.stderr.write(orjson.dumps({"time": now.replace("+00:00", "Z"), "level": level, "message": message,
                                   **fields}).decode() + "\n")


def _say(env: Environment, level: str, message: str) -> None:
    if env.log_json:
        _log_json(env, level, message)
    else:
        env.stderr.write(f"recombee-cli: {level}: {message}\n")


def _fail(env: Environment, message: str, code: ExitCode) -> None:
    _say(env, "error", message)
    env.stderr.flush()
    sys.exit(int(code))


class _Command(click.Command):
    """Every command: typed core errors become one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context):
        env: Environment = ctx.ensure_object(Environment)
        try:
            return super().invoke(ctx)
        except Abort as exc:
            _fail(env, str(exc), exc.code)
        except (ConfigError, InputError) as exc:
            _fail(env, str(exc), ExitCode.USAGE)
        except AuthenticationError as exc:
            _fail(env, str(exc), ExitCode.ABORTED)
        except (ServiceError, WorkerError, OutputError) as exc:
            _fail(env, str(exc), ExitCode.ABORTED)
        except StateWriteError as exc:   # mid-run: a disk gave out
            _fail(env, str(exc), ExitCode.ABORTED)
        except RecombeeCliError as exc:
            _fail(env, str(exc), ExitCode.USAGE)
        except Terminated:
            _say(env, "error", "terminated; what was acknowledged is saved, run the same command to go on")
            sys.exit(int(ExitCode.TERMINATED))
        except KeyboardInterrupt:
            _say(env, "error", "interrupted; what was acknowledged is saved, run the same command to go on")
            sys.exit(int(ExitCode.INTERRUPTED))
        except BrokenPipeError:
            # `recombee-cli replay --dry-run ... | head`: the reader went away; that is not an error.
            try:
                sys.stdout = open(os.devnull, "w")
            finally:
                sys.exit(0)
        except OSError as exc:
            # stdout on a full disk, a report that cannot be written...: one line, never a traceback.
            where = f"{display_name(str(exc.filename))}: " if exc.filename else "input/output error: "
            _fail(env, f"{where}{exc.strerror or exc}", ExitCode.ABORTED)


class _Group(click.Group):
    command_class = _Command


# Every option can also come from the environment (cron, containers): RECOMBEE_CLI_<COMMAND>_<OPTION>,
# e.g. RECOMBEE_CLI_REPLAY_BATCH_SIZE=500, unless the option names its own variable; --help shows each.
ENVVAR_PREFIX = "RECOMBEE_CLI"


@click.group(cls=_Group, epilog=EXIT_CODES_HELP, context_settings={"auto_envvar_prefix": ENVVAR_PREFIX})
@click.version_option(__version__, prog_name="recombee-cli")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Replay Segment event exports into Recombee, as Segment's Recombee (Actions) destination
    would have sent them.

    Start with `recombee-cli replay --dry-run EXPORTS` to see the requests, `recombee-cli presets`
    for a config to edit, and `recombee-cli validate --config FILE EXPORTS` to check a mapping.
    """
    ctx.ensure_object(Environment)


# Where the configuration comes from when --config is not given (documented in --help and README).
CONFIG_FILE_NAME = "recombee-cli.toml"

config_option = click.option(
    "--config", "-c", "config_path", type=click.Path(dir_okay=False), envvar="RECOMBEE_CLI_CONFIG",
    help=f"TOML configuration (mappings, presets, [recombee] settings). Found by this rule: --config, "
         f"else RECOMBEE_CLI_CONFIG, else ./{CONFIG_FILE_NAME} in the current directory, else Segment's "
         f"14 built-in presets (one line on stderr says which is used).")


def _find_config(config_path: str | None) -> tuple[str | None, str | None]:
    """The config to use and, when it was not named, a one-line notice saying what is used."""
    if config_path:
        return config_path, None
    if os.path.isfile(CONFIG_FILE_NAME):
        return CONFIG_FILE_NAME, f"using ./{CONFIG_FILE_NAME} (found in the current directory; no --config given)"
    return None, (f"no config given (--config, RECOMBEE_CLI_CONFIG or ./{CONFIG_FILE_NAME}): "
                  f"using Segment's 14 built-in presets")
max_line_option = click.option(
    "--max-line-bytes", type=click.IntRange(min=1024), default=DEFAULT_MAX_LINE_BYTES, show_default=True,
    help="Longer lines are reported as invalid instead of being read into memory.")


preset_option = click.option(
    "--preset", "enable", multiple=True, metavar="NAME",
    help="Enable an opt-in preset by name (repeatable): \"Identify - User Traits\", "
         "\"Ecommerce - Item Properties\" (see `presets --all`). Same as enable_presets in [replay].")
dask_option = click.option(
    "--dask", "dask", metavar="local:N|ADDRESS",
    help="Read and translate the input files on a Dask cluster: local:N (N worker processes on this "
         "machine) or a scheduler address (tcp://host:8786). Needs the dask extra. This machine keeps "
         "the state, the order and the sending; --concurrency is the cap for the whole cluster.")


def _load(env: Environment, config_path: str | None, quiet: bool = False,
          enable: tuple[str, ...] = ()) -> tuple[Config, Translator]:
    config_path, notice = _find_config(config_path)
    config = load_config(config_path)
    config.enable(list(enable))
    mappings = compile_config(config)
    if not quiet:
        env.notice = notice
        for warning in config.warnings + trigger_warnings(mappings):
            _say(env, "warning", warning)
    translator = Translator(mappings)
    translator.property_types = config.property_types()
    return config, translator


def _write_report(path: str | None, report: RunReport) -> None:
    if path:
        try:
            with open(path, "wb") as fh:
                fh.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        except OSError as exc:
            raise OutputError(f"cannot write the report {path}: {exc.strerror or exc}") from None


def _exit_for(report: RunReport) -> ExitCode:
    return ExitCode.OK if report.ok else ExitCode.FINISHED_WITH_ERRORS


# ---------------------------------------------------------------------------------------------
# replay

def _read_token(env: Environment, config: Config, token_file: str | None) -> str:
    """The private token: RECOMBEE_PRIVATE_TOKEN, else --token-file / config token_file, else the
    config's token (warned about at load time when the file is readable by others)."""
    token = env.environ.get("RECOMBEE_PRIVATE_TOKEN")
    path = token_file or config.recombee.token_file
    if not token and path:
        path = os.path.expanduser(path)
        try:
            with open(path, encoding="utf-8") as fh:
                token = fh.read().strip()
            if os.name == "posix" and os.stat(path).st_mode & 0o044:
                _say(env, "warning", f"the token file {path} is readable by other users (chmod 600 it)")
        except OSError as exc:
            raise Abort(f"cannot read the token file {path}: {exc.strerror or exc}", ExitCode.USAGE) from None
    token = token or config.recombee.token
    if not token:
        raise Abort("no private token: set RECOMBEE_PRIVATE_TOKEN, or use --token-file "
                    "(or --dry-run to only print the requests)", ExitCode.USAGE)
    return token


def _batch_printer(env: Environment):
    """--verbose: one line per Batch on stderr (called from the sender's threads)."""
    lock = threading.Lock()

    def said(batch) -> None:
        answer = f"HTTP {batch.status}" if batch.status else "no answer"
        if batch.reason:
            answer += f" ({batch.reason})"
        text = (f"Batch of {batch.size:,} requests: {answer}, {batch.attempts} "
                f"attempt{'s' if batch.attempts != 1 else ''}, {batch.seconds:.2f} s"
                + (f", {batch.retried:,} requests sent again" if batch.retried else ""))
        with lock:
            if env.log_json:
                _log_json(env, "info", "batch", size=batch.size, status=batch.status, attempts=batch.attempts,
                          seconds=round(batch.seconds, 3), retried=batch.retried, reason=batch.reason)
            else:
                _say(env, "info", text)
            env.stderr.flush()

    return said


def _make_sender(env: Environment, config: Config, *, database_id, region, base_uri, token_file,
                 allow_http, batch_size, concurrency, verbose=False) -> RecombeeSender:
    from recombee_cli.recombee.client import RecombeeClient, base_url_for
    from recombee_cli.recombee.sender import DEFAULT_BATCH_SIZE, RecombeeSender

    database_id = database_id or config.recombee.database_id
    if not database_id:
        raise Abort("no database id: pass --database-id or set [recombee] database_id in the config",
                    ExitCode.USAGE)
    if base_uri and region:
        raise Abort("--base-uri and --region cannot be used together", ExitCode.USAGE)
    if not base_uri and not region:
        base_uri, region = config.recombee.base_uri, config.recombee.region
    try:
        base_url = base_url_for(region, base_uri, allow_http=allow_http)
    except ServiceError as exc:
        raise Abort(str(exc), ExitCode.USAGE) from None
    token = _read_token(env, config, token_file)
    batch_size = batch_size or config.replay.batch_size or DEFAULT_BATCH_SIZE
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise Abort(f"--batch-size must be between 1 and {MAX_BATCH_SIZE} (Recombee's limit)", ExitCode.USAGE)
    client = RecombeeClient(database_id, token, base_url, concurrency=concurrency)
    return RecombeeSender(client, batch_size=batch_size, concurrency=concurrency,
                          on_batch=_batch_printer(env) if verbose else None)


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("inputs", nargs=-1, required=True)
@config_option
@click.option("--dry-run", is_flag=True,
              help="Print the requests (one JSON object per line, as in a Batch's `requests`) "
                   "instead of sending them. Needs no token.")
@click.option("--database-id", envvar="RECOMBEE_DATABASE_ID", help="Recombee database id.")
@click.option("--region", type=click.Choice(["eu-west", "us-west", "ap-se", "ca-east"]),
              envvar="RECOMBEE_REGION", help="Recombee region (default eu-west).")
@click.option("--base-uri", envvar="RECOMBEE_BASE_URI",
              help="Custom API address instead of a region, e.g. https://rapi.example.com.")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="File holding the private token (else RECOMBEE_PRIVATE_TOKEN).")
@click.option("--allow-http", is_flag=True, help="Allow a plain http:// base URI (local testing only).")
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH_SIZE),
              help=f"Requests per Batch call (default 1000, Recombee's maximum {MAX_BATCH_SIZE}).")
@click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY), help="Batch calls in flight (default 4).")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False),
              help="Append invalid and failed events here (NDJSON, replayable).")
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
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes that translate events (use the number of cores for big archives); "
                   "output and counts are the same as with one.")
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
@click.pass_obj
def replay(env: Environment, inputs, config_path, dry_run, database_id, region, base_uri, token_file,
           allow_http, batch_size, concurrency, rejects_path, report_path, state_path, no_state, reprocess,
           since, until, dedupe, dedupe_window, workers, dask, output, log_format, quiet, verbose, fail_on,
           max_line_bytes, enable) -> None:
    """Translate Segment events from INPUTS and send them to Recombee (or print them with --dry-run).

    INPUTS are files, folders (read recursively, sorted by path), glob patterns or `-` for stdin;
    gzip, zstd and bz2 are detected from the content. The private token is read from
    RECOMBEE_PRIVATE_TOKEN or --token-file and never printed.

    Sending runs keep a state file: the same command after a crash, Ctrl-C or kill continues where
    it stopped, and a nightly run over the same folder reads only the files that are new.
    """
    env.log_json = log_format == "json"
    config, translator = _load(env, config_path, quiet, enable)
    window = since is not None or until is not None
    window_filter = make_filter(since=_moment(since, "--since"), until=_moment(until, "--until"))
    deduplicator = Deduplicator(dedupe_window) if dedupe else None
    fail_on = parse_fail_on(fail_on, "--fail-on") if fail_on is not None else config.replay.fail_on
    sources, skipped_folders = _inputs(env, inputs, since, until, quiet)
    concurrency = concurrency or config.replay.concurrency or DEFAULT_CONCURRENCY   # lanes, also for workers
    if output and not dry_run:
        raise Abort("--output writes the requests of a dry run: use it with --dry-run", ExitCode.USAGE)
    if dask and (dedupe or workers > 1):
        raise Abort(f"--dask does not go with {'--dedupe' if dedupe else '--workers'}: " +
                    ("--dedupe needs every event in input order, in one process" if dedupe
                     else "the cluster's workers translate"), ExitCode.USAGE)
    if workers > 1 and dedupe:
        _say(env, "warning", "--dedupe needs every event in input order: translating in one process")
        workers = 1
    # Fork the translators before any sender thread exists.
    pool = TranslatorPool(translator, workers, window_filter=window_filter,
                          lanes=0 if dry_run else concurrency) if workers > 1 else None
    client = cluster = engine = None
    try:
        if dask:
            client, cluster, engine = _dask_engine(dask, config, since, until)
        _replay(env, config, translator, sources, pool, window_filter, deduplicator, window,
                dry_run=dry_run, database_id=database_id, region=region, base_uri=base_uri,
                token_file=token_file, allow_http=allow_http, batch_size=batch_size,
                concurrency=concurrency, rejects_path=rejects_path, report_path=report_path,
                state_path=state_path, no_state=no_state, reprocess=reprocess, quiet=quiet, verbose=verbose,
                max_line_bytes=max_line_bytes, fail_on=fail_on, skipped_folders=skipped_folders,
                cluster=engine, output=output)
    finally:
        if pool is not None:
            pool.close()
        _close_dask(client, cluster)


def _dask_engine(dask: str, config: Config, since: str | None, until: str | None):
    """The Dask client (and LocalCluster) for --dask, and the engine that reads and translates on it."""
    from recombee_cli.pipeline.cluster import DaskEngine, connect

    client, cluster = connect(dask)
    try:
        return client, cluster, DaskEngine(client, config, since=_moment(since, "--since"),
                                           until=_moment(until, "--until"))
    except BaseException:
        _close_dask(client, cluster)
        raise


def _close_dask(client, cluster) -> None:
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


def _replay(env: Environment, config: Config, translator: Translator, sources, pool, window_filter,
            deduplicator, window: bool, *, dry_run, database_id, region, base_uri, token_file, allow_http,
            batch_size, concurrency, rejects_path, report_path, state_path, no_state, reprocess, quiet,
            max_line_bytes, fail_on, skipped_folders, verbose=False, cluster=None, output=None) -> None:
    # Everything that can be refused is checked before anything is sent or recorded.
    _check_writable(report_path, "--report")
    rejects_path = rejects_path or config.replay.rejects
    rejects = RejectsWriter(rejects_path) if rejects_path else None
    sink: Sink
    if dry_run:
        sink = PerFileDryRun(output, [s.name for s in sources]) if output else DryRunPrinter(env.stdout)
    else:
        try:
            sink = _make_sender(env, config, database_id=database_id, region=region, base_uri=base_uri,
                                token_file=token_file, allow_http=allow_http, batch_size=batch_size,
                                concurrency=concurrency, verbose=verbose)
        except BaseException:
            if rejects:
                rejects.close()
            raise
    store = checkpoints = run_id = None
    if not dry_run and not no_state and not window:
        try:
            store = StateStore(state_path or default_state_path(sink.database_id))
            store.lock(describe_command())
            run_id = store.start_run(describe_command())
        except BaseException:
            if store is not None:
                store.close()
            sink.abort()
            if rejects:
                rejects.close()
            raise
        checkpoints = Checkpoints(store, reprocess=reprocess, warn=lambda m: _say(env, "warning", m))
    observer = ui.make_observer(env.stderr, quiet=quiet or env.log_json, total_bytes=_total(sources))
    report = RunReport(dry_run=dry_run, fail_on=fail_on)
    if skipped_folders:
        report.extra["skipped_folders"] = len(skipped_folders)
    recorder = Recorder(report, rejects)
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with observer, collector_for_streaming():
            run(sources, translator, sink, observer=observer, recorder=recorder, window_filter=window_filter,
                dedupe=deduplicator, max_line_bytes=max_line_bytes, checkpoints=checkpoints,
                engine=pool or cluster,
                chunk_lines=CHUNK_LINES if dry_run else max(50, min(CHUNK_LINES, sink.batch_size or CHUNK_LINES)),
                warn=_warner(env, quiet))
    except BaseException as exc:
        # Stop the senders first; then say what was really done before the error is reported.
        if not dry_run:
            sink.abort()
        if isinstance(exc, (RecombeeCliError, KeyboardInterrupt, OSError)):
            report.extra["aborted"] = exc.__class__.__name__
            report.extra["not_answered"] = report.events - sum(report.outcomes.values())
            try:
                _finish_replay(env, report, sink, dry_run, report_path, rejects_path, quiet=False)
            except (OSError, OutputError):
                pass   # the output itself failed (disk full): the original error says it
        if store is not None:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "aborted"
            try:
                store.finish_run(run_id, status, report.to_dict())
            except StateWriteError:
                pass   # the next run marks this one as crashed (start_run)
            store.close()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if rejects:
            rejects.close()
    if checkpoints is not None:
        report.extra["resumed_sources"] = checkpoints.resumed
    if rejects is not None and rejects.repeated:
        report.extra["rejects_already_recorded"] = rejects.repeated
    try:
        _finish_replay(env, report, sink, dry_run, report_path, rejects_path, quiet=quiet)
    finally:
        if store is not None:
            store.finish_run(run_id, "done" if report.ok else "failed", report.to_dict())
            store.close()
    sys.exit(int(_exit_for(report)))


def _warner(env: Environment, quiet: bool):
    return (lambda message: None) if quiet else (lambda message: _say(env, "warning", message))


def _inputs(env: Environment, inputs, since: str | None = None, until: str | None = None,
            quiet: bool = False) -> tuple[list, list[str]]:
    """The sources named by INPUTS, and Segment day folders left out as wholly outside the window."""
    window = None
    if since is not None or until is not None:
        window = (_moment(since, "--since"), _moment(until, "--until"))
    skipped: list[str] = []
    sources = expand_inputs(list(inputs), window=window, warn=_warner(env, quiet), skipped=skipped)
    if env.notice:
        _say(env, "info", env.notice)
        env.notice = None
    if skipped and not quiet:
        _say(env, "info", f"{len(skipped):,} day folders skipped: received outside --since/--until")
    return sources, skipped


def _check_writable(path: str | None, option: str) -> None:
    """Refuse now, not after an hour of sending, an output file whose folder does not exist."""
    if path:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise Abort(f"{option} {path}: the folder {folder} does not exist", ExitCode.USAGE)


def _raise_interrupt(signum, frame) -> None:
    """SIGTERM (cron, systemd, kill) stops a run like Ctrl-C: the checkpoint is saved."""
    raise Terminated


def _moment(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    from recombee_cli.errors import PayloadInvalid
    from recombee_cli.segment.timestamps import to_epoch_seconds

    try:
        return float(to_epoch_seconds(text))
    except PayloadInvalid:
        raise Abort(f"{option} {text!r} is not a date (use e.g. 2024-01-01 or 2024-01-01T12:00:00Z)",
                    ExitCode.USAGE) from None


def _finish_replay(env: Environment, report: RunReport, sink, dry_run: bool, report_path: str | None,
                   rejects_path: str | None, *, quiet: bool) -> None:
    import time as _time

    report.elapsed = report.elapsed or (_time.monotonic() - report.started)
    if not dry_run:
        report.extra.update(sink.counters())
    _write_report(report_path, report)
    if env.log_json:
        # An aborted run (401, unreachable, Ctrl-C) is an error whatever its counts say.
        level = "info" if report.ok and "aborted" not in report.extra else "error"
        _log_json(env, level, "summary", report=report.to_dict())
    elif not quiet or not report.ok or "aborted" in report.extra:
        ui.print_summary(env.stderr, report, rejects_path=rejects_path)


def _total(sources) -> int | None:
    sizes = [s.size for s in sources]
    return sum(sizes) if sizes and all(s is not None for s in sizes) else None


# ---------------------------------------------------------------------------------------------
# validate

_NullSink = NullSink   # `validate` only wants the counts


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("inputs", nargs=-1)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@dask_option
@max_line_option
@preset_option
@click.pass_obj
def validate(env: Environment, inputs, config_path, as_json, dask, max_line_bytes, enable) -> None:
    """Check a configuration; with INPUTS, also report per mapping what it does with them:
    events matched, requests built, invalid by reason, and the top unmatched event names."""
    from recombee_cli.pipeline.config import NOT_CHECKED_STATICALLY, static_problems

    config, translator = _load(env, config_path, enable=enable)
    names = [m.name for m in translator.mappings]
    problems = [str(p) for m in translator.mappings for p in static_problems(m)]
    if not inputs:
        if as_json:
            env.stdout.write(orjson.dumps({"config": config.file, "mappings": names, "problems": problems,
                                           "not_checked": NOT_CHECKED_STATICALLY}) + b"\n")
        else:
            for problem in problems:
                _say(env, "error", problem)
            with _text_stdout(env) as out:
                verdict = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}" if problems else "OK"
                out.write(f"{config.file or 'built-in presets'}: {verdict}, {len(names)} mappings (checked: "
                          f"triggers, fields, a source for every required field, triggers that can match)\n"
                          f"not checked without inputs: {NOT_CHECKED_STATICALLY}\n")
        if problems:
            sys.exit(int(ExitCode.USAGE))
        return
    for problem in problems:
        _say(env, "warning", problem)
    sources = _inputs(env, inputs)[0]
    client = cluster = engine = None
    try:
        if dask:
            client, cluster, engine = _dask_engine(dask, config, None, None)
        report = run(sources, translator, _NullSink(), dry_run=True, max_line_bytes=max_line_bytes,
                     warn=_warner(env, False), engine=engine)
    finally:
        _close_dask(client, cluster)
    if as_json:
        env.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        with _text_stdout(env) as out:
            ui.print_validation(out, report)
    sys.exit(int(_exit_for(report)))


# ---------------------------------------------------------------------------------------------
# explain

@main.command(epilog=EXIT_CODES_HELP)
@click.argument("inputs", nargs=-1, required=True)
@config_option
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per event on stdout: origin, matched mappings, requests, outcome.")
@max_line_option
@preset_option
@click.pass_obj
def explain(env: Environment, inputs, config_path, as_json, max_line_bytes, enable) -> None:
    """Show, for each event in INPUTS, which triggers matched and how each field resolved."""
    from recombee_cli.outcomes import unmatched_name
    from recombee_cli.sources.decode import decode

    config, translator = _load(env, config_path, quiet=as_json, enable=enable)
    for source in _inputs(env, inputs, quiet=as_json)[0]:
        for line in read_lines(source, max_line_bytes=max_line_bytes, warn=_warner(env, as_json)):
            items = [line.error] if line.error else decode(line.data)
            for item in items:
                origin = {"source": line.source, "line": line.number}
                if isinstance(item, str):
                    record = {**origin, "matched": [], "requests": [], "outcome": "invalid", "reason": item}
                    traces = []
                else:
                    traces = translator.explain(item)
                    errors = [f"mapping {t.mapping!r}: {t.error}" for t in traces if t.error]
                    requests = [r for t in traces for r in t.requests]
                    if not traces:
                        outcome, reason = "unmatched", f"no trigger matched ({unmatched_name(item)})"
                    elif errors or not requests:
                        outcome = "invalid"
                        reason = errors[0] if errors else "nothing to send"
                    else:
                        outcome, reason = "sent", None
                    record = {**origin, "matched": [t.mapping for t in traces], "requests": requests,
                              "outcome": outcome, "reason": reason}
                if as_json:
                    env.stdout.write(orjson.dumps(record, default=orjson_default) + b"\n")
                else:
                    ui.print_explanation(env.stdout, record, traces)


# ---------------------------------------------------------------------------------------------
# presets and import

@main.command()
@click.option("--all", "show_all", is_flag=True,
              help="Also print the opt-in presets (users' traits, items' properties) and their types.")
@click.pass_obj
def presets(env: Environment, show_all) -> None:
    """Print Segment's 14 built-in presets as a TOML configuration to start from."""
    from recombee_cli.cli.tomlout import mappings_toml, value
    from recombee_cli.pipeline.config import MappingSpec
    from recombee_cli.segment.presets import OPT_IN_PRESETS, OPT_IN_TYPES

    specs = [MappingSpec(p.name, p.trigger, p.action, p.mapping()) for p in PRESETS]
    if show_all:
        specs += [MappingSpec(p.name, p.trigger, p.action, p.mapping()) for p in OPT_IN_PRESETS]
    header = ("# recombee-cli configuration: Segment's Recombee (Actions) presets, written out.\n"
              "# Edit a mapping, delete the ones you do not want, add your own [[mappings]].\n"
              "# Reference: docs/configuration.md\n\n"
              "[recombee]\n# database_id = \"my-database\"\n# region = \"eu-west\"   "
              "# eu-west, us-west, ap-se, ca-east; or base_uri = \"...\"\n"
              "# The private token comes from RECOMBEE_PRIVATE_TOKEN or token_file, not from here.")
    text = mappings_toml(specs, header, presets=False)
    if show_all:   # the opt-in presets' declared types, as tables the config reads
        text += ("\n# Property types (int, double, string, boolean, timestamp, set, image, imageList);\n"
                 "# others are inferred from their first value (docs/configuration.md).\n")
        for section, entity in (("user_properties", "users"), ("item_properties", "items")):
            text += f"[{section}]\n"
            for tables in OPT_IN_TYPES.values():
                for name, kind in tables.get(entity, {}).items():
                    text += f"{name} = {value(kind)}\n"
            text += "\n"
    env.stdout.write(text.encode())


@main.command("import-segment")
@click.argument("subscriptions", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def import_segment(env: Environment, subscriptions) -> None:
    """Convert Segment subscriptions JSON (Public API or runtime shape) into a TOML config."""
    from recombee_cli.cli.tomlout import mappings_toml

    specs = load_segment_subscriptions(subscriptions)
    for spec in specs:  # fail now, not at the first replay
        from recombee_cli.pipeline.config import compile_mapping
        compile_mapping(spec)
    header = (f"# Imported from {os.path.basename(subscriptions)} by recombee-cli import-segment.\n"
              "# Each mapping is Segment's, verbatim.")
    env.stdout.write(mappings_toml(specs, header, presets=False).encode())


# ---------------------------------------------------------------------------------------------
# sandbox

@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8910, show_default=True, type=click.IntRange(0, 65535))
@click.option("--database-id", default="demo", show_default=True)
@click.option("--token", default="sandbox-token", show_default=True,
              help="The private token the sandbox accepts (a throwaway, not a real one).")
@click.option("--store", type=click.Path(dir_okay=False),
              help="SQLite file to keep what was sent (default: in memory).")
@click.option("--fast", is_flag=True, help="Accept and count only, store nothing (benchmarks).")
@click.option("--latency-ms", type=click.FloatRange(0, 600_000), default=0.0,
              help="Delay every HTTP call by this much.")
@click.option("--p-5xx", type=click.FloatRange(0, 1), default=0.0, help="Probability of a 503 per call.")
@click.option("--p-429", type=click.FloatRange(0, 1), default=0.0, help="Probability of a 429 per call.")
@click.option("--p-drop", type=click.FloatRange(0, 1), default=0.0,
              help="Probability of dropping the connection mid-reply (after executing).")
@click.option("--tls", is_flag=True,
              help="Serve https with a throwaway self-signed certificate, whose path is printed "
                   "(REQUESTS_CA_BUNDLE=PATH lets the official SDK, Batch included, work unmodified). "
                   "Needs the `cryptography` package (pip install 'recombee-cli[sandbox]') or the "
                   "openssl command.")
@click.pass_obj
def sandbox(env: Environment, host, port, database_id, token, store, fast, latency_ms, p_5xx, p_429,
            p_drop, tls) -> None:
    """Run a local Recombee emulator to try everything offline.

    \b
    recombee-cli sandbox &
    RECOMBEE_PRIVATE_TOKEN=sandbox-token recombee-cli replay \\
        --base-uri http://127.0.0.1:8910 --allow-http --database-id demo sample_events/

    It stores users, items, their properties (with types) and interactions, and answers the
    official SDK's reads: GetUserValues, ListUsers, ListUserDetailViews, ListItemProperties...
    """
    from recombee_cli.recombee.emulator import Emulator, Faults

    if not database_id or not all(c.isalnum() or c in "-_" for c in database_id):
        raise Abort(f"--database-id {database_id!r}: use letters, digits, - and _", ExitCode.USAGE)
    if not token:
        raise Abort("--token must not be empty", ExitCode.USAGE)
    if p_5xx + p_429 > 1:
        raise Abort("--p-5xx and --p-429 together must not exceed 1", ExitCode.USAGE)
    if store:
        _check_writable(store, "--store")
    faults = Faults(p_503=p_5xx, p_429=p_429, p_drop=p_drop)
    emulator = Emulator(database_id, token, store_path=store, fast=fast, faults=faults, host=host,
                        port=port, latency=latency_ms, tls=tls)

    def ready(emu) -> None:
        env.stderr.write(f"Recombee emulator on {emu.base_uri} (database {database_id!r}, "
                         f"store {store or 'in memory'}); Ctrl-C to stop\n")
        if emu.cert_path:
            env.stderr.write(f"TLS certificate: {emu.cert_path}\n"
                             f"  official SDK: REQUESTS_CA_BUNDLE={emu.cert_path}, "
                             f"options={{'base_uri': '{emu.host_port}'}}\n")
        env.stderr.flush()

    try:
        emulator.serve_forever(on_ready=ready)
    except (ImportError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        raise Abort(f"--tls cannot make a certificate ({exc}): install the cryptography package "
                    f"(pip install 'recombee-cli[sandbox]') or the openssl command", ExitCode.USAGE) from None
    except OSError as exc:
        raise Abort(f"cannot listen on {host}:{port}: {exc.strerror or exc}", ExitCode.USAGE) from None


# ---------------------------------------------------------------------------------------------
# status

@main.command()
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              help="State file; default: the one for --database-id.")
@click.option("--database-id", envvar="RECOMBEE_DATABASE_ID", help="Picks the default state file.")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON on stdout.")
@click.pass_obj
def status(env: Environment, state_path, database_id, config_path, as_json) -> None:
    """Show what the state file knows: files done or part-done, the last runs, totals.

    Without --state or a database id (--database-id, RECOMBEE_DATABASE_ID, the config), the state
    files in the default folder are found: one is shown, several are listed (pick one with
    --database-id), none is said plainly (exit 0: nothing has been sent yet).
    """
    if not state_path:
        database_id = database_id or load_config(_find_config(config_path)[0]).recombee.database_id
        if database_id:
            state_path = default_state_path(database_id)
        else:
            folder = os.path.dirname(default_state_path(None))
            found = sorted(glob.glob(os.path.join(glob.escape(folder), "*.sqlite")))
            if len(found) != 1:
                _list_state_files(env, folder, found, as_json)
                return
            state_path = found[0]
    if not os.path.exists(state_path):
        raise Abort(f"no state file at {state_path} (nothing has been sent with it yet)", ExitCode.USAGE)
    store = StateStore(state_path)
    try:
        files = store.files()
        runs = store.runs(10)
    finally:
        store.db.close()
    if as_json:
        env.stdout.write(orjson.dumps({
            "state": state_path,
            "files": [{"path": f.path, "done": f.done, "offset": f.offset, "updated": f.updated,
                       "failed": f.failed, "reason": f.reason} for f in files],
            "runs": runs}, option=orjson.OPT_INDENT_2) + b"\n")
        return
    with _text_stdout(env) as out:
        ui.print_status(out, state_path, files, runs)


def _list_state_files(env: Environment, folder: str, found: list[str], as_json: bool) -> None:
    if as_json:
        env.stdout.write(orjson.dumps({"folder": folder, "state_files": found}, option=orjson.OPT_INDENT_2) + b"\n")
        return
    with _text_stdout(env) as out:
        if not found:
            out.write(f"no state file in {folder}: nothing has been sent with a state yet "
                      f"(sending runs keep one per database id there; --state FILE names another)\n")
            return
        out.write(f"{len(found)} state files in {folder}; show one with --database-id ID (or --state FILE):\n")
        for path in found:
            out.write(f"  {os.path.basename(path)[:-len('.sqlite')]}    {path}\n")


# ---------------------------------------------------------------------------------------------
# export

EXPORT_EXIT_CODES_HELP = """\b
Exit codes:
  0    all written (unmatched and filtered events are fine)
  1    written, but some events were invalid (see --rejects)
  2    usage or configuration error (e.g. --output is not empty)
  3    aborted: writing failed or a worker died; nothing was exported
  130  interrupted (Ctrl-C); nothing was exported"""


@main.command(epilog=EXPORT_EXIT_CODES_HELP)
@click.argument("inputs", nargs=-1, required=True)
@config_option
@click.option("--output", "-o", "output", required=True, type=click.Path(file_okay=False),
              help="Folder to write into; created if missing, must be empty unless --overwrite.")
@click.option("--format", "format_name", type=click.Choice(sorted(FORMATS)), default="reco-interactions",
              show_default=True, help="reco-interactions: Microsoft Intelligent Recommendations' "
                                      "Reco_Interactions (CSV, no header), one folder per interaction type.")
@click.option("--gzip/--no-gzip", "gzip_parts", default=False, show_default=True,
              help="Compress each part (part-NNNNN.csv.gz).")
@click.option("--part-rows", type=click.IntRange(min=1), default=DEFAULT_PART_ROWS, show_default=True,
              help="At most this many rows per file; a folder holds part-00000, part-00001, ...")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier export in --output (its parts, manifest and _SUCCESS); "
                   "nothing else there is touched.")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False),
              help="Append invalid events (a row the contract drops) here (NDJSON, replayable).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write the run's figures as JSON (with rows and files per folder).")
@click.option("--since", type=str, help="Only events at or after this time (ISO date or epoch).")
@click.option("--until", type=str, help="Only events before this time.")
@click.option("--dedupe", is_flag=True, help="Drop repeated messageIds (counted as filtered).")
@click.option("--dedupe-window", type=click.IntRange(min=1), default=DEFAULT_DEDUPE_WINDOW, show_default=True,
              help="How many recent messageIds --dedupe remembers.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes that translate events; the files are the same as with one.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: warnings, errors and the summary as JSON lines on stderr.")
@click.option("--quiet", "-q", is_flag=True, help="No progress, warnings or summary unless something was invalid.")
@max_line_option
@click.pass_obj
def export(env: Environment, inputs, config_path, output, format_name, gzip_parts, part_rows, overwrite,
           rejects_path, report_path, since, until, dedupe, dedupe_window, workers, log_format, quiet,
           max_line_bytes) -> None:
    """Write the interactions translated from INPUTS as files instead of sending them.

    The same reading, triggers, mappings and outcome counting as `replay` (here `sent` means
    written); no token, no network. reco-interactions writes one folder per interaction type
    (purchases, cartadditions, detailviews, bookmarks, ratings, viewportions) of header-less CSV
    parts in the column order of Microsoft Intelligent Recommendations' Reco_Interactions contract.
    A row the contract drops (e.g. an ItemId longer than 16 characters) makes its event invalid;
    merges and user deletions have no row and are counted as filtered.

    Parts are written under temporary names and renamed at the end; `_manifest.json` (row counts)
    and then `_SUCCESS` are written last, so an export without `_SUCCESS` is incomplete.
    """
    from recombee_cli.errors import ExportWriteError
    from recombee_cli.sinks.files import ExportSink, FileExporter

    env.log_json = log_format == "json"
    config, translator = _load(env, config_path, quiet)
    window_filter = make_filter(since=_moment(since, "--since"), until=_moment(until, "--until"))
    deduplicator = Deduplicator(dedupe_window) if dedupe else None
    sources, _ = _inputs(env, inputs, since, until, quiet)
    fmt = FORMATS[format_name]()
    files = FileExporter(output, fmt, gzip=gzip_parts, part_rows=part_rows, overwrite=overwrite)
    sink = ExportSink(fmt, files)
    if workers > 1 and dedupe:
        _say(env, "warning", "--dedupe needs every event in input order: translating in one process")
        workers = 1
    pool = TranslatorPool(translator, workers, window_filter=window_filter) if workers > 1 else None
    rejects_path = rejects_path or config.replay.rejects
    rejects = RejectsWriter(rejects_path) if rejects_path else None
    observer = ui.make_observer(env.stderr, quiet=quiet or env.log_json, total_bytes=_total(sources))
    report = RunReport()
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with observer, collector_for_streaming():
            run(sources, translator, sink, observer=observer, recorder=Recorder(report, rejects),
                window_filter=window_filter, dedupe=deduplicator, max_line_bytes=max_line_bytes, engine=pool,
                warn=_warner(env, quiet))
    except KeyboardInterrupt:
        raise Abort("interrupted; nothing was exported (its temporary files are removed)",
                    ExitCode.INTERRUPTED) from None
    except ExportWriteError as exc:
        raise Abort(f"{exc}; nothing was exported (its temporary files are removed)", ExitCode.ABORTED) from None
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if rejects:
            rejects.close()
        if pool is not None:
            pool.close()
    manifest = files.manifest
    report.extra["rows_written"] = manifest["rows"]
    report.extra["files_written"] = len(manifest["files"])
    report.extra["export"] = {"output": output, "format": format_name,
                              "rows": {t: v["rows"] for t, v in manifest["tables"].items()},
                              "files": manifest["files"]}
    _write_report(report_path, report)
    if env.log_json:
        _log_json(env, "info" if report.ok else "error", "summary", report=report.to_dict())
    elif not quiet or not report.ok:
        ui.print_summary(env.stderr, report, rejects_path=rejects_path,
                         title=f"recombee-cli export --format {format_name} ('sent' = written)")
        ui.print_export(env.stderr, manifest, output)
    sys.exit(int(_exit_for(report)))


def _show_envvars(group: click.Group) -> None:
    for command in group.commands.values():
        for param in command.params:
            if isinstance(param, click.Option):
                param.show_envvar = True


_show_envvars(main)
