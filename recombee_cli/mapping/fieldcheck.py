"""Checks of a mapping's fields that need no events: what Segment would accept but what can never
build a right request. Run when a config loads, so `validate`, `replay`, `explain` and `export`
refuse the same things, before anything is read or sent.

- A **literal that looks like a path** (`itemId = "properties.song_id"`: the `$.` forgotten) is a
  constant: every event would get that text. Refused, with the fix; `{ "@literal" = "..." }` says
  a literal is meant.
- A **literal that can never have its field's type**: a number field given text that is no number,
  a timestamp given text that is no date.
- **Directives that can never produce a value**: an `@path` that is no path (`$..[`), an `@if`
  without `then`, a `@template` with an unclosed `{{`, a `@case` operator that is neither `lower`
  nor `upper`, a `@liquid` filter LiquidJS does not have (it would pass the value through
  unchanged).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from recombee_cli.errors import PayloadInvalid
from recombee_cli.segment.actions import FieldSpec
from recombee_cli.segment.jsvalues import js_string_to_number
from recombee_cli.segment.timestamps import to_epoch_seconds

# The top-level fields of a Segment event: a literal naming one (or a path below the first four)
# is a path written without `$.`.
SEGMENT_OBJECTS = ("properties", "traits", "context", "integrations")
SEGMENT_FIELDS = ("userId", "anonymousId", "previousId", "groupId", "messageId", "event", "name", "type",
                  "timestamp", "originalTimestamp", "receivedAt", "sentAt")
_DOLLAR_PATH = re.compile(r"\$[A-Za-z_.\[]")
_SEGMENT_PATH_SPLIT = re.compile(r"""\[(?=["'0-9])|\.|(?<=["'0-9])\]+""")   # mappingkit's
# Keys of directives whose value is not a mapping value (a path, a template, an option).
_NOT_VALUES = {"@path", "@template", "@liquid", "@literal", "pattern", "replacement", "operator", "mode",
               "separator", "direction", "ignorecase", "global"}


def path_written_as_literal(text: str) -> str | None:
    """The path a literal was probably meant to be (`"$.properties.song_id"`), or None."""
    if _DOLLAR_PATH.match(text):
        return text if text.startswith("$.") else "$." + text[1:].lstrip(".")
    head = re.split(r"[.\[]", text, maxsplit=1)[0]
    if (head in SEGMENT_OBJECTS and text != head) or text in SEGMENT_FIELDS:
        return "$." + text
    return None


def path_problem(path: str) -> str | None:
    """Why an `@path` argument can never name a value, or None. Segment drops one leading `$.`
    and splits the rest into steps at `.`, `[` and `]` (`a.b[0]["c d"]`); a step holding a
    bracket, a `*`, or a path starting with `$` but not `$.` names nothing an event has."""
    if path == "$":
        return None
    rest = path[2:] if path.startswith("$.") else path
    if rest.startswith("$"):
        return "it starts with `$` but not `$.` (write $.properties.x)"
    for step in (p for p in _SEGMENT_PATH_SPLIT.split(rest) if p):   # no step at all: the whole event
        if "[" in step or "]" in step or step == "*" or step.count('"') % 2 or step.count("'") % 2:
            return f"its step {step!r} is not a field name (Segment's paths are a.b[0].c)"
    return None


def _literal_problem(spec: FieldSpec | None, value: str, where: str) -> tuple[str, str] | None:
    meant = path_written_as_literal(value)
    if meant is not None:
        fix = json.dumps(meant) if meant != value else f'{{ "@path" = {json.dumps(meant)} }}'
        return (f"the text {json.dumps(value)} looks like a path but is a literal: every event would get "
                f"{where} {json.dumps(value)}. Write {fix} to read it from each event, or "
                f'{{ "@literal" = {json.dumps(value)} }} if you mean that text', where)
    if spec is None:
        return None
    if spec.type in ("number", "integer") and value != "":
        number = js_string_to_number(value)
        if number != number:
            return (f"the literal {json.dumps(value)} is not a number, so {where} could never be built: "
                    f"write a path such as \"$.properties.{value}\" or a number", where)
    if spec.type == "datetime" and value != "":
        try:
            to_epoch_seconds(value)
        except PayloadInvalid:
            return (f"the literal {json.dumps(value)} is not a date, so {where} could never be built: "
                    f"write a path such as \"$.properties.{value}\" or a date", where)
    return None


def _values(value: Any, spec: FieldSpec | None, where: str) -> Iterator[tuple[Any, FieldSpec | None, str]]:
    """Every literal of a mapping value with the field spec it fills (when known) and its name."""
    if isinstance(value, str):
        yield value, spec, where
    elif isinstance(value, list):
        for item in value:
            yield from _values(item, spec, where)
    elif isinstance(value, dict):
        if any(isinstance(k, str) and k.startswith("@") for k in value):
            for key, inner in value.items():
                if key in _NOT_VALUES:
                    continue
                if key == "@arrayPath" and isinstance(inner, list):
                    for item in inner[1:]:
                        yield from _values(item, spec, where)
                elif key in ("@if", "@case", "@replace", "@json", "@flatten", "@excludeWhenNull"):
                    if isinstance(inner, dict):
                        for name in ("then", "else", "value"):
                            if name in inner:
                                yield from _values(inner[name], spec, where)
                    else:
                        yield from _values(inner, spec, where)
                elif key in ("@merge", "@transform"):
                    yield from _values(inner, None, where)
            return
        properties = {p.name: p for p in spec.properties} if spec is not None else {}
        for key, inner in value.items():
            inner_spec = properties.get(key) if spec is not None and spec.properties else None
            yield from _values(inner, inner_spec, key if properties else where)


def _directives(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, list):
        for item in value:
            yield from _directives(item)
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key == "@literal":
                continue
            if isinstance(key, str) and key.startswith("@"):
                yield key, inner
            yield from _directives(inner)


def _directive_problem(name: str, argument: Any, liquid_filters: frozenset[str] | None) -> str | None:
    if name == "@path" and isinstance(argument, str):
        problem = path_problem(argument)
        if problem:
            return f"@path {json.dumps(argument)} is not a path Segment can read: {problem}"
    if name == "@arrayPath" and isinstance(argument, list) and argument and isinstance(argument[0], str):
        problem = path_problem(argument[0])
        if problem:
            return f"@arrayPath's path {json.dumps(argument[0])} is not a path Segment can read: {problem}"
    if name == "@if" and isinstance(argument, dict):
        if "then" not in argument:
            return "@if has no `then`: it could only ever give nothing (or its `else`)"
        if "exists" not in argument and "blank" not in argument:
            return "@if has neither `exists` nor `blank`: it has nothing to test"
    if name == "@template" and isinstance(argument, str):
        opened, closed = argument.count("{{"), argument.count("}}")
        if opened != closed:
            return (f"@template {json.dumps(argument)} has {opened} `{{{{` and {closed} `}}}}`: "
                    f"an unclosed placeholder is sent as text")
    if name == "@case" and isinstance(argument, dict) and argument.get("operator") not in ("lower", "upper"):
        return (f"@case's operator is {json.dumps(argument.get('operator'))}: Segment knows only "
                f'"lower" and "upper", and fails every event otherwise')
    if name == "@liquid" and isinstance(argument, str) and liquid_filters is not None:
        from recombee_cli.segment.liquidjs import liquid_filters_used

        unknown = [f for f in liquid_filters_used(argument) if f not in liquid_filters]
        if unknown:
            return (f"@liquid uses the filter {unknown[0]!r}, which LiquidJS does not have (it would pass "
                    f"the value through unchanged)")
    return None


def field_problems(name: str, spec: FieldSpec | None, value: Any, *,
                   liquid_filters: frozenset[str] | None = None) -> list[str]:
    """What makes a field's mapping wrong whatever the events hold (see the module's doc)."""
    problems = []
    for literal, literal_spec, where in _values(value, spec, name):
        found = _literal_problem(literal_spec, literal, where)
        if found is not None:
            problems.append(found[0])
    for directive, argument in _directives(value):
        problem = _directive_problem(directive, argument, liquid_filters)
        if problem is not None:
            problems.append(problem)
    return problems
