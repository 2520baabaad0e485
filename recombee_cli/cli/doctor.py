"""`recombee-cli doctor`: is everything a run needs in place? One line per check, with the fix."""

from __future__ import annotations

import sys

import click
import orjson

from recombee_cli.cli.common import address_options, config_option, find_config, preset_option
from recombee_cli.cli.environment import Command, Environment, text_stdout
from recombee_cli.cli.exits import ExitCode, exit_codes_help

DOCTOR_EXIT_CODES_HELP = exit_codes_help({
    ExitCode.OK: "every check passed",
    ExitCode.FINISHED_WITH_ERRORS: "a check failed (its line says the fix)",
    ExitCode.USAGE: "usage error (an option doctor does not know, a value it refuses)",
})

EXAMPLES = """
recombee-cli doctor                                  # the config found, and the state folder
export RECOMBEE_PRIVATE_TOKEN=...                     # (never on the command line)
recombee-cli doctor --database-id shop-prod --region us-west
recombee-cli doctor --database-id shop-prod s3://acme-segment/segment-logs/SRC123/
recombee-cli doctor --json --database-id shop-prod   # the same, for a machine (exit 1 if a check fails)
"""


def _marks(stream) -> tuple[str, str, str]:
    """✔ ✗ – where the output can show them, else plain words."""
    try:
        "✔✗–".encode(getattr(stream, "encoding", None) or "ascii")
        return "✔", "✗", "–"
    except (UnicodeEncodeError, LookupError):
        return "ok", "FAIL", "-"


@click.command(cls=Command, epilog=DOCTOR_EXIT_CODES_HELP, examples=EXAMPLES,
               short_help="Check token, database, region, clock, config, state and inputs before a run.")
@click.argument("inputs", nargs=-1)
@config_option
@click.option("--database-id", envvar="RECOMBEE_DATABASE_ID",
              help="The Recombee database to check the token against (else [recombee] database_id).")
@address_options
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              help="The state file to check; default: the one a sending run for the database id keeps.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON on stdout.")
@preset_option
@click.pass_obj
def doctor(env: Environment, inputs, config_path, database_id, region, base_uri, token_file, allow_http,
           state_path, as_json, enable) -> None:
    """Check, in seconds and before a run, what a run needs: the config, the address (DNS, TLS,
    time to answer), this machine's clock against the server's, the token and database id (one
    signed read-only call), the state file, the INPUTS if named, and which extras are installed.

    Each check is one line: passed, failed (with the fix on the next line) or not applicable.
    Nothing is sent or written. Exit 0 only when every check passed.
    """
    from recombee_cli.pipeline.doctor import Settings, run_checks

    settings = Settings(config_path=find_config(config_path)[0], enable=enable, database_id=database_id,
                        region=region, base_uri=base_uri, token_file=token_file, allow_http=allow_http,
                        state_path=state_path, inputs=inputs, environ=env.environ)
    if as_json:
        checks = run_checks(settings)
        failed = [c for c in checks if c.ok is False]
        env.stdout.write(orjson.dumps({"ok": not failed, "checks": [c.to_dict() for c in checks]},
                                      option=orjson.OPT_INDENT_2) + b"\n")
        sys.exit(int(ExitCode.FINISHED_WITH_ERRORS if failed else ExitCode.OK))
    with text_stdout(env) as out:
        good, bad, skipped = _marks(out)
        width = max(len(good), len(bad), len(skipped))

        encoding = getattr(out, "encoding", None) or "utf-8"

        def write(text: str) -> None:   # a terminal that cannot show a character gets a "?"
            out.write(text.encode(encoding, "replace").decode(encoding) if good == "ok" else text)

        def show(check) -> None:
            mark = good if check.ok else bad if check.ok is False else skipped
            write(f"{mark:<{width}} {check.name:<12} {check.said}\n")
            if check.ok is False and check.fix:
                write(f"{'':<{width}} {'':<12} fix: {check.fix}\n")
            out.flush()

        checks = run_checks(settings, show)
        failed = [c for c in checks if c.ok is False]
        out.write(f"{len(failed)} of {len(checks)} checks failed\n" if failed else
                  "every check passed\n")
    sys.exit(int(ExitCode.FINISHED_WITH_ERRORS if failed else ExitCode.OK))
