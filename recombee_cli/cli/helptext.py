"""What `--help` shows beyond click's defaults: options grouped under headings, and examples.

A command is declared with `sections=` (heading -> option names, in order) and `examples=` (the
lines of its Examples section, kept as written, comments included). Both are plain text laid out
by click's own formatter: no help library is loaded, so `--version` and a dry run start as fast
as before (docs/cli.md is generated from the same text)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

Sections = Sequence[tuple[str, Sequence[str]]]


class HelpFormat:
    """Mixed into click's Command and Group: `sections` and `examples` in `--help`."""

    sections: Sections | None = None
    examples: str | None = None

    def __init__(self, *args: Any, sections: Sections | None = None, examples: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sections = sections
        self.examples = examples.strip("\n") if examples else None

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not self.sections:
            super().format_options(ctx, formatter)   # type: ignore[misc]
            return
        records: dict[str, tuple[str, str]] = {}
        for param in self.get_params(ctx):   # type: ignore[attr-defined]
            record = param.get_help_record(ctx)
            if record is not None and param.name is not None:
                records[param.name] = record
        placed: set[str] = set()
        for title, names in self.sections:
            rows = [records[name] for name in names if name in records]
            placed.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [record for name, record in records.items() if name not in placed]
        if rest:
            with formatter.section("Other options"):
                formatter.write_dl(rest)
        if isinstance(self, click.Group):
            self.format_commands(ctx, formatter)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.examples:
            with formatter.section("Examples"):
                for line in self.examples.splitlines():
                    formatter.write(f"{'':>{formatter.current_indent}}{line}\n" if line.strip() else "\n")
        super().format_epilog(ctx, formatter)   # type: ignore[misc]


def example_commands(examples: str | None) -> list[str]:
    """The command lines of an Examples section (continuation lines joined, comments cut), for
    the test that parses each one."""
    lines: list[str] = []
    pending = ""
    for raw in (examples or "").splitlines():
        text = raw.split("  #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not text.strip() and not pending:
            continue
        if text.endswith("\\"):
            pending += text[:-1].strip() + " "
            continue
        lines.append((pending + text.strip()).strip())
        pending = ""
    return [line for line in lines if line]
