"""Help a newcomer can act on: examples in every command's help that use real options, replay's
options under headings, -h, a bare recombee-cli, a description for every option, and help that
describes only what a command does."""

from __future__ import annotations

import shlex
import subprocess
import sys

import click
from helpers import invoke

from recombee_cli.cli.helptext import example_commands
from recombee_cli.cli.main import COMMANDS, load_command, main


def _words(line: str) -> list[str]:
    """The arguments given to recombee-cli on a shell line (what follows it, up to a pipe or a
    redirection)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    start = tokens.index("recombee-cli") + 1
    words = []
    for token in tokens[start:]:
        if token in ("|", ">", ">>", "&", ";", "&&", "<"):
            break
        words.append(token)
    return words


def _check_line(line: str) -> None:
    words = _words(line)
    name, rest = words[0], words[1:]
    assert name in COMMANDS, f"{line!r}: no command {name!r}"
    command = load_command(name)
    options = {opt: param for param in command.params if isinstance(param, click.Option)
               for opt in (*param.opts, *param.secondary_opts)}
    options.update({"--help": None, "-h": None})
    at = 0
    while at < len(rest):
        word = rest[at]
        if word.startswith("-") and word != "-":
            flag = word.split("=", 1)[0]
            assert flag in options, f"{line!r}: {name} has no option {flag}"
            param = options[flag]
            if param is not None and not param.is_flag and "=" not in word:
                at += 1
                assert at < len(rest), f"{line!r}: {flag} needs a value"
                param.type.convert(rest[at], param, None)   # a Choice refuses what it does not know
        at += 1


def test_every_command_has_examples_that_use_only_options_it_has():
    for name in COMMANDS:
        command = load_command(name)
        help_text = invoke([name, "--help"]).stdout
        assert "\nExamples:\n" in help_text, f"{name} --help has no Examples section"
        lines = [line for line in example_commands(command.examples) if "recombee-cli" in line]
        assert any(_words(line)[0] == name for line in lines), f"no example of {name} in its own help"
        for line in lines:
            _check_line(line)
    for line in example_commands(main.examples):
        _check_line(line)


def test_every_option_of_every_command_says_what_it_does():
    for name in COMMANDS:
        for param in load_command(name).params:
            if isinstance(param, click.Option):
                assert param.help and len(param.help) > 10, f"{name} {param.opts[0]} has no description"


def test_replays_options_are_grouped_under_headings_in_order():
    text = invoke(["replay", "--help"]).stdout
    headings = [line[:-1] for line in text.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert headings[:5] == ["Input", "Mappings", "Sending", "State and resume", "Output"]
    sections = text.split("\nSending:\n")[1].split("\nState and resume:\n")
    assert "--database-id" in sections[0] and "--batch-size" in sections[0] and "--state" not in sections[0]
    assert "--reprocess" in sections[1].split("\nOutput:\n")[0]
    # every option is shown once, under some heading
    for param in load_command("replay").params:
        if isinstance(param, click.Option):
            assert text.count(f"  {param.opts[-1]}") + text.count(f", {param.opts[-1]}") >= 1, param.opts


def test_dash_h_is_help_for_the_group_and_every_command():
    assert invoke(["-h"]).stdout == invoke(["--help"]).stdout
    for name in COMMANDS:
        result = invoke([name, "-h"])
        assert result.exit_code == 0 and result.stdout == invoke([name, "--help"]).stdout, name


def test_a_bare_recombee_cli_prints_the_help_and_exits_0():
    done = subprocess.run([sys.executable, "-m", "recombee_cli"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: ") and "Commands:" in done.stdout and "doctor" in done.stdout
    assert done.stderr == ""


def test_validate_help_describes_only_what_validate_does():
    text = invoke(["validate", "--help"]).stdout
    dask = text.split("--dask")[1].split("\n  -")[0]
    assert "--concurrency" not in text and "sending" not in dask and "nothing is sent" in " ".join(dask.split())


def test_the_command_list_reads_whole_sentences():
    text = invoke(["--help"]).stdout
    listing = text.split("Commands:\n")[1].split("\n\n")[0]
    assert "..." not in listing
