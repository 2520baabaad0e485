"""Options from the environment (cron, containers): one rule, and nothing set that goes unread.

Every option of every command can be set by `RECOMBEE_CLI_<COMMAND>_<OPTION>`, the command's and
the option's own names in capitals with `-` as `_` (`--batch-size` of `replay` is
`RECOMBEE_CLI_REPLAY_BATCH_SIZE`, `--json` of `status` is `RECOMBEE_CLI_STATUS_JSON`), besides the
variable an option names itself (`RECOMBEE_DATABASE_ID`, `RECOMBEE_CLI_CONFIG`). An option given
several times on the command line (`--preset`, `--exclude`) takes its values comma-separated:
`RECOMBEE_CLI_REPLAY_PRESET="Identify - User Traits,Ecommerce - Item Properties"`.

A `RECOMBEE_CLI_*` variable that no option reads (a typo, an old name) is a warning naming the
closest real one; a value from the environment that an option refuses is one line naming the
variable the operator set.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import IO, Any

import click
from click.core import ParameterSource

PREFIX = "RECOMBEE_CLI"
SEPARATOR = ","
# Read elsewhere than by an option: the build (pure or compiled), shell completion.
OTHER_VARIABLES = ("RECOMBEE_CLI_PURE", "RECOMBEE_CLI_EXPECT_COMPILED", "RECOMBEE_PRIVATE_TOKEN")


class Names(click.types.StringParamType):
    """A repeatable option's value; from the environment, several comma-separated."""

    name = "text"
    envvar_list_splitter = SEPARATOR

    def split_envvar_value(self, rv: str) -> list[str]:
        return [part.strip() for part in rv.split(SEPARATOR) if part.strip()]


NAMES = Names()


def variable_for(command: str, option: click.Option) -> str:
    longest = next((o for o in option.opts if o.startswith("--")), option.opts[0])
    return f"{PREFIX}_{command}_{longest.lstrip('-')}".upper().replace("-", "_")


def name_variables(commands: Iterable[click.Command]) -> set[str]:
    """Give every option its variable (and keep its own); returns every variable an option reads."""
    known: set[str] = set(OTHER_VARIABLES)
    for command in commands:
        assert command.name is not None
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            own = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
            rule = variable_for(command.name, param)
            param.envvar = [*own, rule] if rule not in own else own
            param.show_envvar = True
            known.update(param.envvar)
    return known


def check_environment(environ: Mapping[str, str], known: set[str]) -> list[str]:
    """Warnings for variables that look meant for us but nothing reads."""
    warnings = []
    recombee = sorted(k for k in known if not k.startswith(PREFIX + "_"))
    for name in sorted(environ):
        if name in known:
            continue
        if name.startswith(PREFIX + "_"):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            warnings.append(f"{name} is set, but no option reads it"
                            + (f"; did you mean {close[0]}?" if close else "")
                            + f" (the rule: {PREFIX}_<COMMAND>_<OPTION>, e.g. {PREFIX}_REPLAY_BATCH_SIZE)")
        elif name.startswith("RECOMBEE_"):
            close = difflib.get_close_matches(name, recombee, n=1, cutoff=0.8)
            if close:
                warnings.append(f"{name} is set, but nothing reads it; did you mean {close[0]}?")
    return warnings


class EnvironmentValueError(click.ClickException):
    """A value an option refuses: one line (naming the variable when it came from the environment)."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"recombee-cli: error: {self.format_message()}", err=True)


def one_line(exc: click.BadParameter, environ: Mapping[str, str]) -> EnvironmentValueError | None:
    """A refused option value as one line instead of click's usage block: naming the variable the
    operator set when it came from the environment, else the option. None: not an option's."""
    param, ctx = exc.param, exc.ctx
    if param is None or ctx is None or param.name is None:
        return None
    option = param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
    if ctx.get_parameter_source(param.name) != ParameterSource.ENVIRONMENT:
        return EnvironmentValueError(f"{option}: {exc.message}")
    names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
    name = next((n for n in names if environ.get(n)), names[0] if names else "the environment")
    return EnvironmentValueError(f"{name}={environ.get(name, '')!r}: not a value {option} takes: {exc.message}")
