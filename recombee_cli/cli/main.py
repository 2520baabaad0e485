"""The `recombee-cli` command group: one module per command beside this one, each only parsing
options, calling the library and printing; typed errors become exit codes in cli.exits.

A command's module is imported when that command runs (or help lists them): `--version` and each
command load only what they use (a dry run never loads the HTTP stack)."""

from __future__ import annotations

import importlib
from typing import Any

import click

from recombee_cli import __version__, build
from recombee_cli.cli.environment import Environment, Group
from recombee_cli.cli.exits import EXIT_CODES_HELP, ExitCode

__all__ = ["Environment", "ExitCode", "main", "COMMANDS"]

# name -> the module (in recombee_cli.cli) and the function that is the command, in help's order
COMMANDS = {
    "replay": ("replay", "replay"),
    "validate": ("inspect", "validate"),
    "explain": ("inspect", "explain"),
    "presets": ("configs", "presets"),
    "import-segment": ("configs", "import_segment"),
    "sandbox": ("sandbox", "sandbox"),
    "status": ("status", "status"),
    "export": ("export", "export"),
}


class LazyGroup(Group):
    """The group of `COMMANDS`, each imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name]
        command: Any = getattr(importlib.import_module(f"recombee_cli.cli.{module}"), name)
        for param in command.params:
            if isinstance(param, click.Option):
                param.show_envvar = True
        return command

# Every option can also come from the environment (cron, containers): RECOMBEE_CLI_<COMMAND>_<OPTION>,
# e.g. RECOMBEE_CLI_REPLAY_BATCH_SIZE=500, unless the option names its own variable; --help shows each.
ENVVAR_PREFIX = "RECOMBEE_CLI"


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP, context_settings={"auto_envvar_prefix": ENVVAR_PREFIX})
@click.version_option(__version__, prog_name="recombee-cli", message=f"%(prog)s %(version)s ({build.describe()})")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Replay Segment event exports into Recombee, as Segment's Recombee (Actions) destination
    would have sent them.

    Start with `recombee-cli replay --dry-run EXPORTS` to see the requests, `recombee-cli presets`
    for a config to edit, and `recombee-cli validate --config FILE EXPORTS` to check a mapping.
    """
    ctx.ensure_object(Environment)
