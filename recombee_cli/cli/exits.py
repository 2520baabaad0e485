"""Exit codes: the enum, the table `--help` shows (generated from it), and the one place where a
typed error of the library becomes an exit code."""

from __future__ import annotations

import enum

from recombee_cli.errors import (
    AuthenticationError,
    ConfigError,
    InputError,
    OutputError,
    RecombeeCliError,
    ServiceError,
    StateWriteError,
    WorkerError,
)


class ExitCode(enum.IntEnum):
    OK = 0                    # all done (unmatched events are fine)
    FINISHED_WITH_ERRORS = 1  # finished, but some events were invalid or failed (see --fail-on)
    USAGE = 2                 # usage or configuration error
    ABORTED = 3               # Recombee unreachable or refusing, output or state not writable, a worker died
    INTERRUPTED = 130         # Ctrl-C; the checkpoint is saved
    TERMINATED = 143          # SIGTERM (cron, systemd, kill); the checkpoint is saved


EXIT_MEANINGS = {
    ExitCode.OK: "all done (unmatched events are fine)",
    ExitCode.FINISHED_WITH_ERRORS: "finished, but some events were invalid or failed (see --rejects, --fail-on)",
    ExitCode.USAGE: "usage or configuration error",
    ExitCode.ABORTED: "aborted: Recombee unreachable or refusing, output or state not writable",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); the checkpoint is saved",
    ExitCode.TERMINATED: "terminated (SIGTERM); the checkpoint is saved",
}


def exit_codes_help(meanings: dict[ExitCode, str] = EXIT_MEANINGS) -> str:
    """The epilog of a command's --help: its exit codes, numbers taken from the enum."""
    return "\b\nExit codes:\n" + "\n".join(f"  {int(code):<4} {text}" for code, text in meanings.items())


EXIT_CODES_HELP = exit_codes_help()


class Abort(Exception):
    """Raised inside commands to end with a message and an exit code."""

    def __init__(self, message: str, code: ExitCode):
        super().__init__(message)
        self.code = code


class Terminated(KeyboardInterrupt):
    """SIGTERM: stops a run like Ctrl-C (the checkpoint is saved), with its own exit code."""


# Typed errors of the library -> exit codes; the first class that matches wins (subclasses first).
ERROR_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (ConfigError, ExitCode.USAGE),
    (InputError, ExitCode.USAGE),
    (AuthenticationError, ExitCode.ABORTED),
    (ServiceError, ExitCode.ABORTED),        # Recombee unreachable or refusing (UnreachableError too)
    (WorkerError, ExitCode.ABORTED),
    (OutputError, ExitCode.ABORTED),
    (StateWriteError, ExitCode.ABORTED),     # mid-run: a disk gave out
    (RecombeeCliError, ExitCode.USAGE),      # the rest: refused before anything was done (a locked state…)
)


def code_for(error: RecombeeCliError) -> ExitCode:
    for kind, code in ERROR_CODES:
        if isinstance(error, kind):
            return code
    return ExitCode.USAGE
