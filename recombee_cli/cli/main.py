"""The `recombee-cli` command group: one module per command beside this one, each only parsing
options, calling the library and printing; typed errors become exit codes in cli.exits."""

from __future__ import annotations

import click

from recombee_cli import __version__, build
from recombee_cli.cli.configs import import_segment, presets
from recombee_cli.cli.environment import Environment, Group
from recombee_cli.cli.exits import EXIT_CODES_HELP, ExitCode
from recombee_cli.cli.export import export
from recombee_cli.cli.inspect import explain, validate
from recombee_cli.cli.replay import replay
from recombee_cli.cli.sandbox import sandbox
from recombee_cli.cli.status import status

__all__ = ["Environment", "ExitCode", "main"]

# Every option can also come from the environment (cron, containers): RECOMBEE_CLI_<COMMAND>_<OPTION>,
# e.g. RECOMBEE_CLI_REPLAY_BATCH_SIZE=500, unless the option names its own variable; --help shows each.
ENVVAR_PREFIX = "RECOMBEE_CLI"


@click.group(cls=Group, epilog=EXIT_CODES_HELP, context_settings={"auto_envvar_prefix": ENVVAR_PREFIX})
@click.version_option(__version__, prog_name="recombee-cli", message=f"%(prog)s %(version)s ({build.describe()})")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Replay Segment event exports into Recombee, as Segment's Recombee (Actions) destination
    would have sent them.

    Start with `recombee-cli replay --dry-run EXPORTS` to see the requests, `recombee-cli presets`
    for a config to edit, and `recombee-cli validate --config FILE EXPORTS` to check a mapping.
    """
    ctx.ensure_object(Environment)


for command in (replay, validate, explain, presets, import_segment, sandbox, status, export):
    main.add_command(command)
    for param in command.params:
        if isinstance(param, click.Option):
            param.show_envvar = True
