"""Options and steps several commands share: finding and loading the config, naming the inputs,
parsing --since/--until, the Dask engine, SIGTERM, the run report file and the exit code."""

from __future__ import annotations

import difflib
import glob
import io
import json
import os
import re
import signal
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import orjson

from recombee_cli.cli.environment import Environment, say
from recombee_cli.cli.envvars import NAMES
from recombee_cli.cli.exits import Abort, ExitCode, Terminated
from recombee_cli.errors import OutputError
from recombee_cli.mapping.compile import compile_config, trigger_warnings
from recombee_cli.mapping.config import Config, load_config
from recombee_cli.mapping.translate import Translator
from recombee_cli.private import write_whole
from recombee_cli.recombee.service import REGIONS
from recombee_cli.record.foreign import excluded
from recombee_cli.record.report import RunReport
from recombee_cli.sources.reader import DEFAULT_MAX_LINE_BYTES, expand_inputs

# Where the configuration comes from when --config is not given (documented in --help and README).
CONFIG_FILE_NAME = "recombee-cli.toml"


config_option = click.option(
    "--config", "-c", "config_path", type=click.Path(dir_okay=False), envvar="RECOMBEE_CLI_CONFIG",
    help=f"TOML configuration (mappings, presets, [recombee] settings). Found by this rule: --config, "
         f"else RECOMBEE_CLI_CONFIG, else ./{CONFIG_FILE_NAME} in the current directory, else Segment's "
         f"14 built-in presets (one line on stderr says which is used).")


def find_config(config_path: str | None) -> tuple[str | None, str | None]:
    """The config to use and, when it was not named, a one-line notice saying what is used."""
    if config_path:
        return config_path, None
    if os.path.isfile(CONFIG_FILE_NAME):
        return CONFIG_FILE_NAME, f"using ./{CONFIG_FILE_NAME} (found in the current directory; no --config given)"
    return None, (f"no config given (--config, RECOMBEE_CLI_CONFIG or ./{CONFIG_FILE_NAME}): "
                  f"using Segment's 14 built-in presets")


def configs_not_found() -> list[str]:
    """TOML files in the current directory that look like our configs (a [[mappings]], [replay] or
    [recombee] table) but are not what discovery reads: a mappings.toml written by an older README,
    a copy of the example. Using the presets beside one of them is probably not what was meant."""
    found = []
    for name in sorted(n for n in glob.glob("*.toml") if "example" not in n):   # an example is not a config
        try:
            with open(name, "rb") as fh:
                head = fh.read(1 << 16)
        except OSError:
            continue
        if re.search(rb"^\s*\[\[?\s*(mappings|replay|recombee)\s*\]", head, re.MULTILINE):
            found.append(name)
    return found


max_line_option = click.option(
    "--max-line-bytes", type=click.IntRange(min=1024), default=DEFAULT_MAX_LINE_BYTES, show_default=True,
    help="Longer lines are reported as invalid instead of being read into memory.")


preset_option = click.option(
    "--preset", "enable", multiple=True, metavar="NAME", type=NAMES,
    help="Enable an opt-in preset by name (repeatable): \"Identify - User Traits\", "
         "\"Ecommerce - Item Properties\" (see `presets --all`). Same as enable_presets in [replay]; "
         "in the environment, comma-separated.")


def address_options(command: Any) -> Any:
    """Where a command that reads from Recombee (doctor, show) connects: --region, --base-uri,
    --token-file, --allow-http, with the same words in each."""
    for option in reversed((
        click.option("--region", type=click.Choice(REGIONS), envvar="RECOMBEE_REGION",
                     help="Recombee region (else the config's; default eu-west)."),
        click.option("--base-uri", envvar="RECOMBEE_BASE_URI",
                     help="Custom API address instead of a region, e.g. https://rapi.example.com."),
        click.option("--token-file", type=click.Path(dir_okay=False),
                     help="File holding the private token (else RECOMBEE_PRIVATE_TOKEN)."),
        click.option("--allow-http", is_flag=True, help="Allow a plain http:// base URI (a local sandbox)."),
    )):
        command = option(command)
    return command


exclude_option = click.option(
    "--exclude", "exclude", multiple=True, metavar="GLOB", type=NAMES,
    help="Leave out input files whose name or path matches GLOB (repeatable; also `exclude = [...]` in "
         "[replay]), e.g. --exclude '*.txt' --exclude 'archive/*'. Files that hold no Segment event are "
         "named in the summary.")


dask_option = click.option(
    "--dask", "dask", metavar="local:N|ADDRESS",
    help="Read and translate the input files on a Dask cluster: local:N (N worker processes on this "
         "machine) or a scheduler address (tcp://host:8786). Needs the dask extra. This machine keeps "
         "the state, the order and the sending; --concurrency is the cap for the whole cluster.")


validate_dask_option = click.option(
    "--dask", "dask", metavar="local:N|ADDRESS",
    help="Read and translate the inputs on a Dask cluster: local:N (N worker processes on this machine) "
         "or a scheduler address (tcp://host:8786). Needs the dask extra. The report is the same as "
         "without it; nothing is sent.")


def load(env: Environment, config_path: str | None, quiet: bool = False,
          enable: tuple[str, ...] = (), *, check: bool = True) -> tuple[Config, Translator]:
    """The config found (see `find_config`) and its mappings compiled. With `check` (every command
    but `validate`, which lists them all), a mapping that can never build is refused here."""
    config_path, notice = find_config(config_path)
    if config_path is None:
        lurking = configs_not_found()
        if lurking:   # said even under --quiet: the run would send something else than meant
            say(env, "warning", f"no config given, so Segment's 14 built-in presets are used, but "
                                f"{', '.join('./' + n for n in lurking)} "
                                f"{'looks like a config' if len(lurking) == 1 else 'look like configs'}: pass "
                                f"--config {lurking[0]}, or name it {CONFIG_FILE_NAME} to have it found")
            notice = None
    config = load_config(config_path)
    config.enable(list(enable))
    mappings = compile_config(config, check=check)
    if not quiet:
        env.notice = notice
        for warning in config.warnings + trigger_warnings(mappings):
            say(env, "warning", warning)
    translator = Translator(mappings)
    translator.property_types = config.property_types()
    return config, translator


def write_report(path: str | None, report: RunReport) -> None:
    if path:
        try:   # whole or not at all: a monitor never reads half a report
            write_whole(path, orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        except OSError as exc:
            raise OutputError(f"cannot write the report {path}: {exc.strerror or exc}") from None


def exit_for(report: RunReport) -> ExitCode:
    return ExitCode.OK if report.ok else ExitCode.FINISHED_WITH_ERRORS


def warner(env: Environment, quiet: bool):
    return (lambda message: None) if quiet else (lambda message: say(env, "warning", message))


def inputs_of(env: Environment, inputs, since: str | None = None, until: str | None = None,
              quiet: bool = False, exclude: tuple[str, ...] | list[str] = ()) -> tuple[list, list[str]]:
    """The sources named by INPUTS less those `exclude` matches, and Segment day folders left out
    as wholly outside the window."""
    window = None
    if since is not None or until is not None:
        window = (moment(since, "--since"), moment(until, "--until"))
    skipped: list[str] = []
    empty: list[str] = []
    sources = expand_inputs(list(inputs), window=window, warn=warner(env, quiet), skipped=skipped, empty=empty)
    for arg in empty:   # said even under --quiet: a wrong path, not a quiet night
        say(env, "warning", f"{arg}: holds no file to read (a wrong path?)")
    kept = [s for s in own_output_left_out(env, sources) if not excluded(s.name, exclude)]
    if env.notice:
        say(env, "info", env.notice)
        env.notice = None
    if skipped and not quiet:
        say(env, "info", f"{len(skipped):,} day folders skipped: received outside --since/--until")
    if len(kept) < len(sources) and not quiet:
        say(env, "info", f"{len(sources) - len(kept):,} input files left out by --exclude / exclude "
                         f"({', '.join(exclude)})")
    return kept, skipped


def own_output_left_out(env: Environment, sources: list) -> list:
    """Inputs that are this run's own stdout (`replay --dry-run exports/ > exports/requests.ndjson`)
    are left out with a warning: they would be read while they are written."""
    try:
        out = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return sources
    if not stat.S_ISREG(out.st_mode):
        return sources
    kept = []
    for source in sources:
        try:
            st = os.stat(source.name) if source.identity is not None and "://" not in source.state_key else None
        except OSError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            say(env, "warning", f"{source.name}: is this run's own output (stdout): left out")
            continue
        kept.append(source)
    return kept


def unmatched_by_a_typo(translator: Translator, report: RunReport) -> list[str]:
    """Mappings of the config that matched nothing while unmatched events carry nearly the name
    their trigger asks for (`event = "Product Veiwed"`): a typo that makes a job send nothing."""
    names = [n[len("track: "):] for n in report.unmatched if n.startswith("track: ")]
    hints = []
    for mapping in translator.mappings:
        stats = report.mappings.get(mapping.name)
        hint = mapping.trigger.index_hint
        if mapping.spec.file is None or stats is None or stats.matched or hint is None or hint[0] != "event":
            continue
        for wanted in sorted(hint[1]):
            close = [n for n in names if n.lower() == wanted.lower()] or \
                difflib.get_close_matches(wanted, names, n=1, cutoff=0.8)
            if close:
                count = report.unmatched[f"track: {close[0]}"]
                hints.append(f"mapping {mapping.name!r} matched no event: its trigger asks for event "
                             f"{json.dumps(wanted)}, and {count:,} unmatched events are {json.dumps(close[0])} "
                             f"(a typo?)")
    return hints


def warn_what_was_read(env: Environment, report: RunReport, translator: Translator | None = None) -> None:
    """Name each input none of whose lines is a Segment event, and each mapping that matched
    nothing by what looks like a typo (even under --quiet: a run of `unmatched` alone would exit 0
    without a word)."""
    for entry in report.foreign.named:
        hint = " (a TOML file: is it the config? give it with --config)" \
            if entry["source"].endswith(".toml") else ""
        say(env, "warning", f"{entry['source']}: not a Segment export? {entry['why']}{hint}; "
                            f"--exclude GLOB leaves such files out")
    if report.foreign.count > len(report.foreign.named):
        say(env, "warning", f"... and {report.foreign.count - len(report.foreign.named):,} more such files")
    for hint in unmatched_by_a_typo(translator, report) if translator is not None else ():
        say(env, "warning", hint)


def check_writable(path: str | None, option: str) -> None:
    """Refuse now, not after an hour of sending, an output file whose folder does not exist, or a
    --report that would overwrite a file that is not a report (a config given by mistake)."""
    if path:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise Abort(f"{option} {path}: the folder {folder} does not exist", ExitCode.USAGE)
        if option == "--report" and os.path.isfile(path) and os.path.getsize(path):
            try:
                with open(path, "rb") as fh:
                    ours = isinstance(data := orjson.loads(fh.read()), dict) and "outcomes" in data
            except (OSError, orjson.JSONDecodeError):
                ours = False
            if not ours:
                raise Abort(f"--report {path}: the file exists and is not a report of recombee-cli; "
                            f"refusing to overwrite it (name a new file)", ExitCode.USAGE)


@contextmanager
def sigterm_stops_like_ctrl_c() -> Iterator[None]:
    """SIGTERM (cron, systemd, kill) stops a run like Ctrl-C: the checkpoint is saved."""
    def stop(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def moment(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    from recombee_cli.errors import PayloadInvalid
    from recombee_cli.segment.timestamps import to_epoch_seconds

    try:
        return float(to_epoch_seconds(text))
    except PayloadInvalid:
        raise Abort(f"{option} {text!r} is not a date (use e.g. 2024-01-01 or 2024-01-01T12:00:00Z)",
                    ExitCode.USAGE) from None


def window_of(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    """--since and --until as epoch seconds; a window with nothing in it is a usage error (the
    run would read everything to count every event `filtered`)."""
    start, end = moment(since, "--since"), moment(until, "--until")
    if start is not None and end is not None and start >= end:
        raise Abort(f"--since {since!r} is not before --until {until!r}: no event can be in that window "
                    f"(--since is inclusive, --until exclusive)", ExitCode.USAGE)
    return start, end


def total_bytes(sources) -> int | None:
    sizes = [s.size for s in sources]
    return sum(sizes) if sizes and all(s is not None for s in sizes) else None


AUTO_WORKERS_BYTES = 32 << 20   # inputs smaller than this: one process (forking would cost more than it gains)
AUTO_WORKERS_MAX = 8


class WorkersType(click.ParamType):
    """--workers: a number of processes, or `auto` (None)."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | None:
        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a number of processes nor auto", param, ctx)
        if not 1 <= number <= 64:
            self.fail(f"{number} is not between 1 and 64", param, ctx)
        return number


workers_option = click.option(
    "--workers", type=WorkersType(), default="auto", show_default=True,
    help="Processes that translate events: a number, or auto: one per usable core (at most "
         f"{AUTO_WORKERS_MAX}) when the inputs hold {AUTO_WORKERS_BYTES >> 20} MB or more, else one. The "
         "output, counts, rejects and state are the same whatever the number.")


def workers_for(requested: int | None, sources, *, dedupe: bool = False, dask: bool = False) -> int:
    """How many translating processes: the number asked for, or for `auto` one per usable core
    (at most AUTO_WORKERS_MAX) when the inputs' known size is AUTO_WORKERS_BYTES or more and
    nothing needs one process (--dedupe) or another engine (--dask); else 1."""
    if requested is not None:
        return requested
    size = total_bytes(sources)
    if dedupe or dask or size is None or size < AUTO_WORKERS_BYTES:
        return 1
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():   # the pool forks (pipeline/parallel.py)
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, AUTO_WORKERS_MAX))


def dask_engine(dask: str, config: Config, since: str | None, until: str | None):
    """The Dask client (and LocalCluster) for --dask, and the engine that reads and translates on it."""
    from recombee_cli.pipeline.cluster import DaskEngine, connect

    client, cluster = connect(dask)
    try:
        return client, cluster, DaskEngine(client, config, since=moment(since, "--since"),
                                           until=moment(until, "--until"))
    except BaseException:
        close_dask(client, cluster)
        raise


def close_dask(client, cluster) -> None:
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()
