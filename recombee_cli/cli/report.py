"""`recombee-cli report`: reports, or a state file's run history, drawn as one HTML page."""

from __future__ import annotations

import os
import sys

import click

from recombee_cli import __version__
from recombee_cli.cli.common import config_option, find_config
from recombee_cli.cli.environment import Command, Environment, say
from recombee_cli.cli.exits import Abort, ExitCode, exit_codes_help
from recombee_cli.pictures.page import build_page, check_page_path, write_page
from recombee_cli.pictures.runs import Run, is_state_file, read_report, read_state
from recombee_cli.record.state import default_state_path

EXAMPLES = """
recombee-cli replay --dry-run --report run.json segment-logs/SRC123/ > requests.ndjson
recombee-cli report run.json -o run.html                     # that run's page: days, hours, reasons, mappings
recombee-cli report --database-id shop-prod --runs 60 -o nights.html   # the last 60 runs of a state
recombee-cli report monday.json tuesday.json -o week.html    # several reports, added up
recombee-cli validate --report archive.html segment-logs/SRC123/   # a dry run's page, before sending
"""

EXITS = exit_codes_help({ExitCode.OK: "the page was written",
                         ExitCode.USAGE: "nothing to draw, not a report or state, or the pictures extra is missing",
                         ExitCode.ABORTED: "the page could not be written"})


@click.command(cls=Command, epilog=EXITS, examples=EXAMPLES,
               short_help="Draw reports, or a state's runs, as one HTML page that opens offline.")
@click.argument("inputs", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              help="Draw this state file's runs (else the one for --database-id, when no INPUTS are given).")
@click.option("--database-id", envvar="RECOMBEE_DATABASE_ID", help="Picks the default state file.")
@config_option
@click.option("--runs", "limit", type=click.IntRange(1, 100_000), default=30, show_default=True,
              help="From a state file: the last N runs.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Write the page to this file (else to stdout, when it is not a terminal).")
@click.option("--title", help="The page's title (default: what was drawn).")
@click.pass_obj
def report(env: Environment, inputs: tuple[str, ...], state_path: str | None, database_id: str | None,
           config_path: str | None, limit: int, output: str | None, title: str | None) -> None:
    """Draw reports, or the runs a state file keeps, as one HTML page that opens offline: events
    per day by outcome over the whole span with the days without events shaded, a day x hour
    heatmap, invalid and failed events by kind of reason over time, each mapping's counts, a
    sending run's calls, retries and latency over its time, and one bar per run (night) with the
    files it took.

    INPUTS are reports (`replay --report FILE`, `validate --json > FILE`) or state files. Without
    INPUTS, the state of --state, else the one of --database-id (or RECOMBEE_DATABASE_ID, or the
    config's [recombee] database_id). Drawing needs the pictures extra (plotly).
    """
    if output is None and sys.stdout.isatty() and env.out is None:
        raise Abort("the page is HTML: name a file with --output FILE.html (or redirect stdout)", ExitCode.USAGE)
    if output is not None:
        check_page_path(output)
    runs: list[Run] = []
    states: list[str] = [state_path] if state_path else []
    for path in inputs:
        if is_state_file(path):
            states.append(path)
        else:
            runs.append(read_report(path))
    if not inputs and not state_path:
        database_id = database_id or load_database_id(config_path)
        if not database_id:
            raise Abort("nothing to draw: give report files or a state file, or --database-id for its state",
                        ExitCode.USAGE)
        states.append(default_state_path(database_id))
    for path in states:
        runs.extend(read_state(path, limit))
    if not runs:
        raise Abort("nothing to draw: the state keeps no finished run yet", ExitCode.USAGE)
    source = describe(inputs, states, runs)
    page = build_page(runs, title or f"recombee-cli report: {source}", source, f"recombee-cli {__version__}")
    if output is None:
        env.stdout.write(page.encode("utf-8"))
        return
    write_page(output, page)
    say(env, "info", f"wrote {output} ({len(page) / 1e6:.1f} MB; open it in a browser, it needs no network)")


def load_database_id(config_path: str | None) -> str | None:
    from recombee_cli.mapping.config import load_config

    return load_config(find_config(config_path)[0]).recombee.database_id


def describe(inputs: tuple[str, ...], states: list[str], runs: list[Run]) -> str:
    reports = [os.path.basename(p) for p in inputs if not is_state_file(p)]
    parts = []
    if reports:
        parts.append(", ".join(reports[:3]) + (f" and {len(reports) - 3} more" if len(reports) > 3 else ""))
    kept = sum(1 for run in runs if run.status is not None)
    for path in states:
        parts.append(f"the last {kept:,} runs of {path}" if kept != 1 else f"the last run of {path}")
    return "; ".join(parts)
