"""Compile stage: every mapping of a `Config` into a trigger, field resolvers and one generated
function, once, so the per-event path does no configuration work. Also the checks that need a
compiled mapping but no events (`validate`'s static problems, trigger warnings)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypedDict

from recombee_cli.errors import ConfigError, LiquidMissing, MappingError, TriggerSyntaxError
from recombee_cli.mapping.config import Config, MappingSpec
from recombee_cli.mapping.fastpath import compile_mapping_function, written_function
from recombee_cli.mapping.fieldcheck import field_problems
from recombee_cli.segment.actions import ACTIONS, Action, make_preparer
from recombee_cli.segment.mappingkit import compile_value, validate_mapping
from recombee_cli.segment.triggers import Trigger, compile_trigger


class _Where(TypedDict):
    """Where a mapping is defined, as ConfigError takes it."""

    file: str | None
    line: int | None
    mapping: str | None


Event = dict[str, Any]   # a Segment event, a payload or a request: JSON objects


@dataclass(frozen=True)
class CompiledMapping:
    name: str
    trigger: Trigger
    action: Action
    resolvers: tuple[tuple[str, Callable[[Event], Any]], ...]
    spec: MappingSpec
    prepare: Callable[[Event], Event]      # event -> payload ready for the action (the reference)
    run: Callable[[Event], list[Event]] | None = None   # event -> requests, compiled (the hot path)
    # `run` where only the requests' bytes are wanted: add-type requests may come as their JSON
    # bytes (fastpath.written_function)
    write: Callable[[Event], list[Any]] | None = None


def compile_mapping(spec: MappingSpec) -> CompiledMapping:
    where = _Where(file=spec.file, line=spec.line, mapping=spec.name)
    try:
        trigger = compile_trigger(spec.trigger)
    except TriggerSyntaxError as exc:
        raise ConfigError(f"Segment cannot parse this trigger ({exc}): {spec.trigger!r}",
                          field="trigger", **where) from None
    action = ACTIONS.get(spec.action)
    if action is None:
        raise ConfigError(f"unknown action {spec.action!r}", **where)
    resolvers = []
    for name, value in spec.fields.items():
        if action.field(name) is None:
            known = ", ".join(f.name for f in action.fields)
            raise ConfigError(f"{spec.action} has no field {name!r} (fields: {known})", field=name, **where)
        problems = validate_mapping(value)
        if problems:
            raise ConfigError("; ".join(problems), field=name, **where)
        if next(_liquid_templates(value), None) is not None and not liquid_installed():
            raise ConfigError(LiquidMissing.MESSAGE, file=spec.file, line=spec.field_lines.get(name, spec.line),
                              mapping=spec.name, field=name)
        problems = field_problems(name, action.field(name), value, liquid_filters=_liquid_filters(value))
        if problems:
            raise ConfigError(problems[0], file=spec.file, line=spec.field_lines.get(name, spec.line),
                              mapping=spec.name, field=name)
        for template in _liquid_templates(value):
            from recombee_cli.segment.liquidjs import (
                liquid_syntax_error,  # python-liquid loads in ~0.1 s: only when used
            )

            problem = liquid_syntax_error(template)
            if problem:
                raise ConfigError(f"@liquid template {template!r} cannot be parsed: {problem}", field=name,
                                  **where)
        try:
            resolvers.append((name, compile_value(value)))
        except MappingError as exc:
            raise ConfigError(str(exc), field=name, **where) from None
    compiled = CompiledMapping(spec.name, trigger, action, tuple(resolvers), spec,
                               make_preparer(action, resolvers))
    run = compile_mapping_function(compiled)
    return dataclasses.replace(compiled, run=run, write=written_function(compiled, run))


def liquid_installed() -> bool:
    """Whether python-liquid (the `liquid` extra, for the @liquid directive) is installed."""
    import importlib.util

    return importlib.util.find_spec("liquid") is not None


def _liquid_filters(value: Any) -> frozenset[str] | None:
    """LiquidJS's filter names, when the value has a template (python-liquid loads only then)."""
    if next(_liquid_templates(value), None) is None:
        return None
    from recombee_cli.segment.liquidjs import liquid_filter_names

    return liquid_filter_names()


def _liquid_templates(value: Any) -> Iterator[str]:
    """Every `@liquid` template string inside a mapping value, however deep."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "@liquid" and isinstance(inner, str):
                yield inner
            else:
                yield from _liquid_templates(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _liquid_templates(inner)


def compile_config(config: Config, *, check: bool = True) -> list[CompiledMapping]:
    """Every enabled mapping compiled. With `check`, a mapping that can never build a request
    (`static_problems`) is refused as any other configuration error: whatever `validate` refuses,
    `replay` refuses. `validate` passes `check=False` to list every problem itself."""
    specs = config.effective_mappings()
    if not specs and check:
        raise ConfigError("no mappings: every event would be unmatched (presets = false and no [[mappings]], or "
                          "every mapping disabled)", file=config.file,
                          line=config.replay.presets_line)
    mappings = [compile_mapping(spec) for spec in specs]
    if check:
        for mapping in mappings:
            problems = static_problems(mapping)
            if problems:
                raise problems[0]
    return mappings


# The `type` values Segment's libraries and HTTP API send.
SEGMENT_TYPES = ("track", "page", "screen", "identify", "group", "alias")

# What `validate` cannot know without events (said, so that an OK is not read as more than it is).
NOT_CHECKED_STATICALLY = ("whether your events carry the fields the paths read, and whether their "
                          "values make valid requests (IDs, ratings, portions, timestamps): give "
                          "`validate` some exports to see that")


def static_problems(mapping: CompiledMapping) -> list[ConfigError]:
    """What makes a mapping unable to ever build a request, found without events: a required field
    nothing maps (or mapped to an empty literal), or a trigger no Segment event can match (a
    `type` Segment never sends, or equalities on one field that contradict each other)."""
    spec = mapping.spec
    where = _Where(file=spec.file, line=spec.line, mapping=spec.name)
    problems = []
    for field_spec in mapping.action.fields:
        if not field_spec.required:
            continue
        value = spec.fields.get(field_spec.name)
        if value is None or value == "" or value == {}:
            problems.append(ConfigError(
                ("is required and nothing maps it" if field_spec.name not in spec.fields
                 else f"is required and mapped to the empty value {json.dumps(value)}")
                + ": every event the mapping matches would be invalid",
                field=field_spec.name, **where))
    hint = mapping.trigger.index_hint
    if hint is not None:
        name, values = hint
        if not values:
            problems.append(ConfigError(f"the trigger can never match: it asks for two different values of "
                                        f"`{name}` at once ({mapping.trigger.describe()})", field="trigger", **where))
        elif name == "type" and not values & set(SEGMENT_TYPES):
            problems.append(ConfigError(
                f"the trigger can never match: Segment sends no event of type "
                f"{', '.join(repr(v) for v in sorted(values))} (types: {', '.join(SEGMENT_TYPES)})",
                field="trigger", **where))
    return problems


def trigger_warnings(mappings: list[CompiledMapping]) -> list[str]:
    return [f"mapping {m.name!r}: {w}" for m in mappings for w in m.trigger.warnings]
