"""Options and steps several commands share: finding and loading the config, naming the inputs,
parsing --since/--until, the Dask engine, SIGTERM, the run report file and the exit code."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import orjson

from recombee_cli.cli.environment import Environment, say
from recombee_cli.cli.exits import Abort, ExitCode, Terminated
from recombee_cli.errors import OutputError
from recombee_cli.pipeline.compile import compile_config, trigger_warnings
from recombee_cli.pipeline.config import Config, load_config
from recombee_cli.pipeline.replay import RunReport
from recombee_cli.pipeline.translate import Translator
from recombee_cli.private import open_private
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


def load(env: Environment, config_path: str | None, quiet: bool = False,
          enable: tuple[str, ...] = ()) -> tuple[Config, Translator]:
    config_path, notice = find_config(config_path)
    config = load_config(config_path)
    config.enable(list(enable))
    mappings = compile_config(config)
    if not quiet:
        env.notice = notice
        for warning in config.warnings + trigger_warnings(mappings):
            say(env, "warning", warning)
    translator = Translator(mappings)
    translator.property_types = config.property_types()
    return config, translator


def write_report(path: str | None, report: RunReport) -> None:
    if path:
        try:
            with open_private(path, "wb") as fh:
                fh.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        except OSError as exc:
            raise OutputError(f"cannot write the report {path}: {exc.strerror or exc}") from None


def exit_for(report: RunReport) -> ExitCode:
    return ExitCode.OK if report.ok else ExitCode.FINISHED_WITH_ERRORS


def warner(env: Environment, quiet: bool):
    return (lambda message: None) if quiet else (lambda message: say(env, "warning", message))


def inputs_of(env: Environment, inputs, since: str | None = None, until: str | None = None,
            quiet: bool = False) -> tuple[list, list[str]]:
    """The sources named by INPUTS, and Segment day folders left out as wholly outside the window."""
    window = None
    if since is not None or until is not None:
        window = (moment(since, "--since"), moment(until, "--until"))
    skipped: list[str] = []
    sources = expand_inputs(list(inputs), window=window, warn=warner(env, quiet), skipped=skipped)
    if env.notice:
        say(env, "info", env.notice)
        env.notice = None
    if skipped and not quiet:
        say(env, "info", f"{len(skipped):,} day folders skipped: received outside --since/--until")
    return sources, skipped


def check_writable(path: str | None, option: str) -> None:
    """Refuse now, not after an hour of sending, an output file whose folder does not exist."""
    if path:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise Abort(f"{option} {path}: the folder {folder} does not exist", ExitCode.USAGE)


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
