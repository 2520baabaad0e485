"""`recombee-cli export`: the translated interactions written as files instead of sent."""

from __future__ import annotations

import sys

import click

from recombee_cli.cli import ui
from recombee_cli.cli.common import (
    check_writable,
    config_option,
    exclude_option,
    exit_for,
    inputs_of,
    load,
    max_line_option,
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
from recombee_cli.cli.exits import Abort, ExitCode, Terminated, exit_codes_help
from recombee_cli.errors import ExportWriteError
from recombee_cli.mapping.filters import DEFAULT_DEDUPE_WINDOW, Deduplicator, make_filter
from recombee_cli.pipeline.session import ExportSession
from recombee_cli.sinks.files import DEFAULT_PART_ROWS, ExportSink, FileExporter
from recombee_cli.sinks.formats import FORMATS

EXPORT_EXIT_CODES_HELP = exit_codes_help({
    ExitCode.OK: "all written (unmatched and filtered events are fine)",
    ExitCode.FINISHED_WITH_ERRORS: "written, but some events were invalid (see --rejects)",
    ExitCode.USAGE: "usage or configuration error (e.g. --output is not empty)",
    ExitCode.ABORTED: "aborted: writing failed or a worker died; nothing was exported",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); nothing was exported",
    ExitCode.TERMINATED: "terminated (SIGTERM); nothing was exported",
})


EXAMPLES = """
recombee-cli export --output out/ sample_events/             # out/<type>/Reco_Interactions/part-00000.csv
recombee-cli export --gzip --part-rows 500000 --report export.json --output out/ segment-logs/SRC123/
recombee-cli export --overwrite --keep-anonymous-id --output out/ segment-logs/SRC123/
"""


@click.command(cls=Command, epilog=EXPORT_EXIT_CODES_HELP, examples=EXAMPLES,
               short_help="Write the interactions as files (Reco_Interactions CSV) instead of sending.")
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
@click.option("--keep-anonymous-id", "anonymous_ids", is_flag=True,
              help="Events with no userId: write their anonymousId as UserId (default: empty, which "
                   "the contract reads as an anonymous interaction).")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False),
              help="Append invalid events (a row the contract drops) here (NDJSON, replayable).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write the run's figures as JSON (with rows and files per folder).")
@click.option("--since", type=str, help="Only events at or after this time (ISO date or epoch).")
@click.option("--until", type=str, help="Only events before this time.")
@click.option("--dedupe", is_flag=True, help="Drop repeated messageIds (counted as filtered).")
@click.option("--dedupe-window", type=click.IntRange(min=1), default=DEFAULT_DEDUPE_WINDOW, show_default=True,
              help="How many recent messageIds --dedupe remembers.")
@workers_option
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: warnings, errors and the summary as JSON lines on stderr.")
@click.option("--quiet", "-q", is_flag=True, help="No progress, warnings or summary unless something was invalid.")
@max_line_option
@exclude_option
@click.pass_obj
def export(env: Environment, inputs, config_path, output, format_name, gzip_parts, part_rows, overwrite,
           anonymous_ids, rejects_path, report_path, since, until, dedupe, dedupe_window, workers, log_format,
           quiet, max_line_bytes, exclude) -> None:
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
    env.log_json = log_format == "json"
    config, translator = load(env, config_path, quiet)
    start, end = window_of(since, until)
    window_filter = make_filter(since=start, until=end)
    deduplicator = Deduplicator(dedupe_window) if dedupe else None
    sources, _ = inputs_of(env, inputs, since, until, quiet, (*exclude, *config.replay.exclude))
    check_writable(report_path, "--report")
    fmt = FORMATS[format_name](anonymous_ids=anonymous_ids)
    sink = ExportSink(fmt, FileExporter(output, fmt, gzip=gzip_parts, part_rows=part_rows, overwrite=overwrite))
    if (workers or 1) > 1 and dedupe:
        say(env, "warning", "--dedupe needs every event in input order: translating in one process")
        workers = 1
    rejects_path = rejects_path or config.replay.rejects
    observer = ui.make_observer(env.stderr, quiet=quiet or env.log_json, total_bytes=total_bytes(sources))
    session = ExportSession(translator, sink, workers=workers_for(workers, sources, dedupe=dedupe),
                            rejects_path=rejects_path, window_filter=window_filter, dedupe=deduplicator,
                            max_line_bytes=max_line_bytes, observer=observer, warn=warner(env, quiet))
    session.open()   # the workers fork here, before the progress display and the SIGTERM handler
    try:
        with sigterm_stops_like_ctrl_c(), observer:
            report = session.run(sources)
    except KeyboardInterrupt as exc:   # Ctrl-C, or SIGTERM (Terminated): each its own exit code
        raise Abort(f"{'terminated' if isinstance(exc, Terminated) else 'interrupted'}; nothing was "
                    f"exported (its temporary files are removed)",
                    ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED) from None
    except ExportWriteError as exc:
        raise Abort(f"{exc}; nothing was exported (its temporary files are removed)", ExitCode.ABORTED) from None
    manifest = session.manifest
    assert manifest is not None   # the session committed the files: the run ended without an error
    write_report(report_path, report)
    warn_what_was_read(env, report, translator)
    if env.log_json:
        log_json(env, "info" if report.ok else "error", "summary", report=report.to_dict())
    elif not quiet or not report.ok:
        ui.print_summary(env.stderr, report, rejects_path=rejects_path,
                         title=f"recombee-cli export --format {format_name} ('sent' = written)")
        ui.print_export(env.stderr, manifest, output)
    sys.exit(int(exit_for(report)))
