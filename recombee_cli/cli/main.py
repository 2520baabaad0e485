"""The `recombee-cli` command group: one module per command beside this one, each only parsing
options, calling the library and printing; typed errors become exit codes in cli.exits."""

from __future__ import annotations

import click

from recombee_cli import __version__, build
from recombee_cli.cli.configs import import_segment, presets
from recombee_cli.cli.environment import Environment, Group, say
from recombee_cli.cli.envvars import check_environment, name_variables
from recombee_cli.cli.exits import EXIT_CODES_HELP, ExitCode
from recombee_cli.cli.export import export
from recombee_cli.cli.inspect import explain, validate
from recombee_cli.cli.replay import replay
from recombee_cli.cli.sandbox import sandbox
from recombee_cli.cli.status import status

__all__ = ["Environment", "ExitCode", "main"]

COMMANDS = (replay, validate, explain, presets, import_segment, sandbox, status, export)


@click.group(cls=Group, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="recombee-cli", message=f"%(prog)s %(version)s ({build.describe()})")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Replay Segment event exports into Recombee, as Segment's Recombee (Actions) destination
    would have sent them.

    Start with `recombee-cli replay --dry-run EXPORTS` to see the requests, `recombee-cli presets`
    for a config to edit, and `recombee-cli validate --config FILE EXPORTS` to check a mapping.

    Every option can also be set in the environment: RECOMBEE_CLI_<COMMAND>_<OPTION> (e.g.
    RECOMBEE_CLI_REPLAY_BATCH_SIZE=500; several values of a repeatable option comma-separated);
    each command's --help shows its variables.
    """
    env = ctx.ensure_object(Environment)
    for warning in check_environment(env.environ, KNOWN_VARIABLES):
        say(env, "warning", warning)


for command in COMMANDS:
    main.add_command(command)
# Every option can come from the environment (cron, containers): RECOMBEE_CLI_<COMMAND>_<OPTION>.
KNOWN_VARIABLES = name_variables(COMMANDS)
