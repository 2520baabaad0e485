"""What every command shares: the environment object tests replace, people-facing lines on stderr
(text or JSON), and the click command class that turns typed errors into one line and an exit code."""

from __future__ import annotations

import datetime
import io
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NoReturn, TextIO

import click
import orjson

from recombee_cli.cli.envvars import one_line
from recombee_cli.cli.exits import Abort, ExitCode, Terminated, code_for
from recombee_cli.cli.helptext import HelpFormat
from recombee_cli.errors import RecombeeCliError
from recombee_cli.sources.reader import display_name


@dataclass
class Environment:
    """Everything the commands touch outside themselves; tests replace it.

    The streams are looked up when used, so that click's test runner can swap them."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    out: BinaryIO | None = None
    err: TextIO | None = None
    log_json: bool = False      # --log-format json: people-facing lines become JSON objects
    notice: str | None = None   # which config is used, said once the inputs are found (a usage error stays one line)

    @property
    def stdout(self) -> BinaryIO:
        return self.out or sys.stdout.buffer

    @property
    def stderr(self) -> TextIO:
        return self.err or sys.stderr


@contextmanager
def text_stdout(env: Environment) -> Iterator[TextIO]:
    """Reports are data: they go to stdout, as text (the binary stream when a test replaced it)."""
    if env.out is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    wrapper = io.TextIOWrapper(env.out, encoding="utf-8", write_through=True)
    try:
        yield wrapper
    finally:
        wrapper.flush()
        wrapper.detach()   # the stream is the caller's: do not close it with the wrapper


def log_json(env: Environment, level: str, message: str, **fields: Any) -> None:
    """One JSON log line on stderr, stamped with the time (ISO 8601, UTC, milliseconds)."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    env.stderr.write(orjson.dumps({"time": now.replace("+00:00", "Z"), "level": level, "message": message,
                                   **fields}).decode() + "\n")


def say(env: Environment, level: str, message: str) -> None:
    if env.log_json:
        log_json(env, level, message)
    else:
        env.stderr.write(f"recombee-cli: {level}: {message}\n")


def _settle_stdout() -> str | None:
    """Write out what stdout still buffers, now; on failure (a full disk) send the rest to
    /dev/null, so that exiting is quiet, and say why. Otherwise Python flushes it at exit and a
    full disk becomes "Exception ignored ... OSError" and exit 120 in a shell that buffers."""
    try:
        sys.stdout.flush()
        return None
    except ValueError:   # closed (a test's stream): nothing buffered to lose
        return None
    except OSError as exc:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            sys.stdout.flush()
        except (OSError, ValueError, io.UnsupportedOperation):
            sys.stdout = open(os.devnull, "w")
        return exc.strerror or str(exc)


def fail(env: Environment, message: str, code: ExitCode) -> NoReturn:
    say(env, "error", message)
    env.stderr.flush()
    _settle_stdout()
    sys.exit(int(code))


class Command(HelpFormat, click.Command):
    """Every command: typed core errors become one line on stderr and an exit code (cli.exits);
    stdout is written out before the exit code is decided. `sections=` and `examples=` shape its
    --help (cli.helptext)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.BadParameter as exc:   # one line, naming the variable when it came from one
            environ = parent.obj.environ if parent is not None and isinstance(parent.obj, Environment) \
                else os.environ
            said = one_line(exc, environ)
            if said is None:
                raise
            raise said from None

    def invoke(self, ctx: click.Context) -> Any:
        env: Environment = ctx.ensure_object(Environment)
        try:
            result = self._invoke(env, ctx)
        except SystemExit:
            self._written_out(env)
            raise
        self._written_out(env)
        return result

    @staticmethod
    def _written_out(env: Environment) -> None:
        problem = _settle_stdout()
        if problem is not None:
            fail(env, f"cannot write the output: {problem}", ExitCode.ABORTED)

    def _invoke(self, env: Environment, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Abort as exc:
            fail(env, str(exc), exc.code)
        except RecombeeCliError as exc:
            fail(env, str(exc), code_for(exc))
        except Terminated:
            say(env, "error", "terminated; what was acknowledged is saved, run the same command to go on")
            sys.exit(int(ExitCode.TERMINATED))
        except KeyboardInterrupt:
            say(env, "error", "interrupted; what was acknowledged is saved, run the same command to go on")
            sys.exit(int(ExitCode.INTERRUPTED))
        except BrokenPipeError:
            # `recombee-cli replay --dry-run ... | head`: the reader went away; that is not an error.
            try:
                sys.stdout = open(os.devnull, "w")
            finally:
                sys.exit(0)
        except OSError as exc:
            # stdout on a full disk, a report that cannot be written...: one line, never a traceback.
            where = f"{display_name(str(exc.filename))}: " if exc.filename else "input/output error: "
            fail(env, f"{where}{exc.strerror or exc}", ExitCode.ABORTED)


class Group(HelpFormat, click.Group):
    command_class = Command
