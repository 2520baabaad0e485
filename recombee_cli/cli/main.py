"""The `recombee-cli` command group: one module per command beside this one, each only parsing
options, calling the library and printing; typed errors become exit codes in cli.exits.

A command's module is imported when that command runs (or help lists them): `--version` and each
command load only what they use (a dry run never loads the HTTP stack)."""

from __future__ import annotations

import importlib

import click

from recombee_cli import __version__, build
from recombee_cli.cli.environment import Environment, Group, say
from recombee_cli.cli.envvars import OTHER_VARIABLES, check_environment, name_variables
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
    "doctor": ("doctor", "doctor"),
    "show": ("show", "show"),
    "report": ("report", "report"),
}
# Variables that options name themselves, read without loading every command to check them.
COMMON_VARIABLES = frozenset((*OTHER_VARIABLES, "RECOMBEE_DATABASE_ID", "RECOMBEE_REGION", "RECOMBEE_BASE_URI",
                              "RECOMBEE_CLI_CONFIG"))


def load_command(name: str) -> click.Command:
    """A command, imported, its options reading the environment by the one rule (cli.envvars)."""
    module, attribute = COMMANDS[name]
    command: click.Command = getattr(importlib.import_module(f"recombee_cli.cli.{module}"), attribute)
    name_variables([command])
    return command


class LazyGroup(Group):
    """The group of `COMMANDS`, each imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name) if cmd_name in COMMANDS else None


def show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """--version: the version and which build runs (worked out only when asked)."""
    if value and not ctx.resilient_parsing:
        click.echo(f"recombee-cli {__version__} ({build.describe()})")
        ctx.exit()


EXAMPLES = """
recombee-cli replay --dry-run sample_events/       # the requests the bundled exports become
recombee-cli presets > recombee-cli.toml           # Segment's 14 presets, to edit (found without --config)
recombee-cli validate exports/                     # per mapping: matched, built, invalid by reason
recombee-cli doctor --database-id shop-prod        # token, region, clock, config, state: before a run
recombee-cli replay --database-id shop-prod exports/
recombee-cli show user alice --database-id shop-prod   # what Recombee holds for a user
recombee-cli replay --help                         # every command has its own help and examples
"""


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP, examples=EXAMPLES, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=show_version,
              help="Show the version, and whether the compiled build runs, and exit.")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Replay Segment event exports into Recombee, as Segment's Recombee (Actions) destination
    would have sent them.

    Start with `recombee-cli replay --dry-run EXPORTS` to see the requests, `recombee-cli presets`
    for a config to edit, `recombee-cli validate --config FILE EXPORTS` to check a mapping and
    `recombee-cli doctor` to check the token, the region and the clock before sending.

    Every option can also be set in the environment: RECOMBEE_CLI_<COMMAND>_<OPTION> (e.g.
    RECOMBEE_CLI_REPLAY_BATCH_SIZE=500; several values of a repeatable option comma-separated);
    each command's --help shows its variables.
    """
    if ctx.invoked_subcommand is None:   # a bare `recombee-cli`: the help, and nothing is wrong
        click.echo(ctx.get_help())
        ctx.exit(0)
    env = ctx.ensure_object(Environment)
    suspects = {name: value for name, value in env.environ.items()
                if name.startswith("RECOMBEE_") and name not in COMMON_VARIABLES}
    if suspects:   # only then every command is loaded, to know every variable an option reads
        known = name_variables(load_command(name) for name in COMMANDS)
        for warning in check_environment(suspects, known):
            say(env, "warning", warning)
