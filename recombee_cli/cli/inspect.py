"""`validate` and `explain`: what a configuration does, checked without sending anything."""

from __future__ import annotations

import sys

import click
import orjson

from recombee_cli import __version__
from recombee_cli.cli import ui
from recombee_cli.cli.common import (
    check_writable,
    close_dask,
    config_option,
    dask_engine,
    exclude_option,
    exit_for,
    inputs_of,
    load,
    max_line_option,
    preset_option,
    validate_dask_option,
    warn_what_was_read,
    warner,
    write_report,
)
from recombee_cli.cli.environment import Command, Environment, say, text_stdout
from recombee_cli.cli.exits import EXIT_CODES_HELP, Abort, ExitCode
from recombee_cli.errors import ConfigError
from recombee_cli.mapping.compile import NOT_CHECKED_STATICALLY, static_problems
from recombee_cli.mapping.explain import explain as explain_events
from recombee_cli.pictures.page import build_page, check_page_path, is_page_path, plotly_modules, write_page
from recombee_cli.pictures.runs import Run
from recombee_cli.pipeline.session import ReplaySession
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.sinks.printer import NullSink

VALIDATE_EXAMPLES = """
recombee-cli validate                                        # the config found: can every mapping build?
recombee-cli validate --config mappings.example.toml sample_events/   # per mapping, on real events
recombee-cli validate --json --preset "Identify - User Traits" segment-logs/SRC123/
recombee-cli validate --dask local:2 segment-logs/SRC123/    # a large archive, read on a local cluster
recombee-cli validate --report archive.html segment-logs/SRC123/   # its days, hours and reasons drawn
"""

EXPLAIN_EXAMPLES = """
recombee-cli explain sample_events/hand-written.ndjson       # each event: mappings, fields, requests
recombee-cli explain rejects.ndjson | head -20               # why each rejected event was rejected
pbpaste | recombee-cli explain -                             # one event as Segment's debugger shows it
recombee-cli explain --json --config recombee-cli.toml event.json
"""


@click.command(cls=Command, epilog=EXIT_CODES_HELP, examples=VALIDATE_EXAMPLES,
               short_help="Check a config; with inputs, what each mapping does with them.")
@click.argument("inputs", nargs=-1)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="With INPUTS: also write the report to FILE: a page (FILE.html: the days, hours, reasons "
                   "and mappings drawn; needs the pictures extra) or JSON (any other name).")
@validate_dask_option
@max_line_option
@preset_option
@exclude_option
@click.pass_obj
def validate(env: Environment, inputs, config_path, as_json, report_path, dask, max_line_bytes, enable,
             exclude) -> None:
    """Check a configuration; with INPUTS, also report per mapping what it does with them:
    events matched, requests built, invalid by reason, and the top unmatched event names."""
    if report_path is not None and not inputs:
        raise Abort("--report draws what the inputs hold: give INPUTS (files, folders, globs)", ExitCode.USAGE)
    config, translator = load(env, config_path, enable=enable, check=False)
    names = [m.name for m in translator.mappings]
    problems = [str(p) for m in translator.mappings for p in static_problems(m)]
    if not names:
        problems.append(str(ConfigError("no mappings: every event would be unmatched", file=config.file,
                                        line=config.replay.presets_line)))
    presets = config.presets_summary()
    if not inputs or problems:
        if as_json:
            env.stdout.write(orjson.dumps({"config": config.file, "presets": presets, "mappings": names,
                                           "problems": problems, "not_checked": NOT_CHECKED_STATICALLY}) + b"\n")
        else:
            for problem in problems:
                say(env, "error", problem)
            with text_stdout(env) as out:
                verdict = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}" if problems else "OK"
                out.write(f"{config.file or 'built-in presets'}: {verdict}, {ui.plural(len(names), 'mapping')} "
                          f"(checked: "
                          f"triggers, fields, a source for every required field, triggers that can match)\n"
                          f"{presets['said']}\n"
                          f"not checked without inputs: {NOT_CHECKED_STATICALLY}\n")
        if problems:
            sys.exit(int(ExitCode.USAGE))
        return
    page = report_path is not None and is_page_path(report_path)
    if report_path is not None:
        if page:
            check_page_path(report_path)
            plotly_modules()   # the extra is there, or say so before the work
        else:
            check_writable(report_path, "--report")
    sources = inputs_of(env, inputs, exclude=(*exclude, *config.replay.exclude))[0]
    client = cluster = engine = None
    try:
        if dask:
            client, cluster, engine = dask_engine(dask, config, None, None)
        session = ReplaySession(translator, NullSink(), max_line_bytes=max_line_bytes, engine=engine,
                                warn=warner(env, False))
        report = session.run(sources)
    finally:
        close_dask(client, cluster)
    warn_what_was_read(env, report, translator)
    if report_path is not None and page:
        what = describe_inputs(inputs)
        write_page(report_path, build_page([Run("validate", report.to_dict())], f"recombee-cli validate: {what}",
                                           f"a dry run of {what}", f"recombee-cli {__version__}"))
    elif report_path is not None:
        write_report(report_path, report)
    if as_json:
        env.stdout.write(orjson.dumps({**report.to_dict(), "presets": presets}, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        with text_stdout(env) as out:
            out.write(presets["said"] + "\n")
            ui.print_validation(out, report)
    sys.exit(int(exit_for(report)))


def describe_inputs(inputs: tuple[str, ...]) -> str:
    return ", ".join(inputs[:3]) + (f" and {len(inputs) - 3:,} more" if len(inputs) > 3 else "")


@click.command(cls=Command, epilog=EXIT_CODES_HELP, examples=EXPLAIN_EXAMPLES,
               short_help="Show, event by event, which mappings matched and how each field resolved.")
@click.argument("inputs", nargs=-1, required=True)
@config_option
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per event on stdout: origin, matched mappings, requests, outcome.")
@max_line_option
@preset_option
@exclude_option
@click.pass_obj
def explain(env: Environment, inputs: tuple[str, ...], config_path: str | None, as_json: bool, max_line_bytes: int,
            enable: tuple[str, ...], exclude: tuple[str, ...]) -> None:
    """Show, for each event in INPUTS, which triggers matched and how each field resolved."""
    config, translator = load(env, config_path, quiet=as_json, enable=enable)
    sources = inputs_of(env, inputs, quiet=as_json, exclude=(*exclude, *config.replay.exclude))[0]
    for explanation in explain_events(sources, translator, max_line_bytes=max_line_bytes, warn=warner(env, as_json)):
        if as_json:
            env.stdout.write(orjson.dumps(explanation.record(), default=orjson_default) + b"\n")
        else:
            ui.print_explanation(env.stdout, explanation.record(), explanation.traces)
