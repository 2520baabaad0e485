"""Configuration: TOML files, Segment subscription JSON, presets, and their compilation.

Loading never looks at events; compiling turns every mapping into a trigger and field resolvers
once, so the per-event path does no configuration work.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from recombee_cli.errors import ConfigError, MappingError, TriggerSyntaxError
from recombee_cli.outcomes import DEFAULT_FAIL_ON, parse_fail_on
from recombee_cli.pipeline.fastpath import compile_mapping_function
from recombee_cli.recombee.service import MAX_BATCH, REGIONS
from recombee_cli.segment.actions import ACTIONS, INTERNAL_DATA, Action, make_preparer
from recombee_cli.segment.mappingkit import compile_value, validate_mapping
from recombee_cli.segment.presets import ALL_PRESETS_BY_NAME, OPT_IN_BY_NAME, OPT_IN_TYPES, PRESETS, PRESETS_BY_NAME
from recombee_cli.segment.properties import check_types
from recombee_cli.segment.triggers import Trigger, compile_trigger

MAX_CONCURRENCY = 64
SETTING_RANGES = {"batch_size": (1, MAX_BATCH), "concurrency": (1, MAX_CONCURRENCY)}


def _line_of(text: str, key: str) -> int | None:
    """The line where `key = ...` is first set, for messages (tomllib keeps no positions)."""
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return None


@dataclass
class MappingSpec:
    """A mapping as written: where it came from, its trigger, action and field mapping."""

    name: str
    trigger: str
    action: str
    fields: dict
    origin: str = "preset"            # "preset", or "file:line" of the definition
    file: str | None = None
    line: int | None = None
    enabled: bool = True


@dataclass
class RecombeeSettings:
    database_id: str | None = None
    region: str | None = None
    base_uri: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None


@dataclass
class ReplaySettings:
    presets: bool = True
    disable_presets: list[str] = field(default_factory=list)
    enable_presets: list[str] = field(default_factory=list)   # opt-in presets (users, items)
    batch_size: int | None = None
    concurrency: int | None = None
    rejects: str | None = None
    fail_on: tuple[str, ...] = DEFAULT_FAIL_ON


@dataclass
class Config:
    recombee: RecombeeSettings = field(default_factory=RecombeeSettings)
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    mappings: list[MappingSpec] = field(default_factory=list)   # custom and imported, in file order
    # Declared property types: [user_properties] / [item_properties], name -> type
    user_properties: dict[str, str] = field(default_factory=dict)
    item_properties: dict[str, str] = field(default_factory=dict)
    file: str | None = None
    warnings: list[str] = field(default_factory=list)

    def effective_mappings(self) -> list[MappingSpec]:
        """Presets (unless off or disabled), then custom mappings; a custom mapping named like a
        preset replaces it in place."""
        custom = {m.name: m for m in self.mappings}
        out: list[MappingSpec] = []
        if self.replay.presets:
            disabled = set(self.replay.disable_presets)
            for preset in PRESETS:
                if preset.name in custom:
                    out.append(custom.pop(preset.name))
                elif preset.name not in disabled:
                    out.append(MappingSpec(preset.name, preset.trigger, preset.action, preset.mapping()))
        for name in self.replay.enable_presets:   # opt-in presets, in the order enabled
            preset = OPT_IN_BY_NAME[name]
            if name in custom:
                out.append(custom.pop(name))
            elif all(m.name != name for m in out):
                out.append(MappingSpec(preset.name, preset.trigger, preset.action, preset.mapping()))
        out.extend(m for m in self.mappings if m.name in custom)
        return [m for m in out if m.enabled]

    def property_types(self) -> dict[str, dict[str, str]]:
        """Declared property types: the enabled opt-in presets' defaults, then the config's."""
        types: dict[str, dict[str, str]] = {"users": {}, "items": {}}
        names = set(self.replay.enable_presets) | {m.name for m in self.mappings}
        for name, tables in OPT_IN_TYPES.items():
            if name in names:
                for entity, table in tables.items():
                    types[entity].update(table)
        types["users"].update(self.user_properties)
        types["items"].update(self.item_properties)
        return types

    def enable(self, names: list[str]) -> None:
        """Enable opt-in presets by name (--preset); unknown names are a configuration error."""
        for name in names:
            if name not in OPT_IN_BY_NAME:
                known = ", ".join(repr(n) for n in OPT_IN_BY_NAME)
                hint = " (Segment's presets are on by default)" if name in PRESETS_BY_NAME else ""
                raise ConfigError(f"--preset {name!r} is not an opt-in preset{hint}; opt-in presets: {known}")
            if name not in self.replay.enable_presets:
                self.replay.enable_presets.append(name)


# ---------------------------------------------------------------------------------------------
# Short forms

def _is_path(value: Any) -> bool:
    return isinstance(value, str) and (value == "$" or value.startswith("$."))


def expand_short_forms(value: Any) -> Any:
    """`"$.a.b"` -> `{"@path": "$.a.b"}`; `["$.a", "$.b"]` -> first of them that exists;
    plain objects are expanded recursively; directives are left exactly as written."""
    if _is_path(value):
        return {"@path": value}
    if isinstance(value, list) and value and all(_is_path(v) for v in value):
        result = {"@path": value[-1]}
        for path in reversed(value[:-1]):
            result = {"@if": {"exists": {"@path": path}, "then": {"@path": path}, "else": result}}
        return result
    if isinstance(value, dict):
        if any(isinstance(k, str) and k.startswith("@") for k in value):
            return value
        return {k: expand_short_forms(v) for k, v in value.items()}
    return value


def short_form_in_directive(value: Any, inside: bool = False) -> str | None:
    """The first short form (`"$.a"`, or a list of them) written inside a directive, where it is
    not expanded (Segment would read it as that text), or None. The argument of `@path` and the
    first element of `@arrayPath` are paths by definition and are fine."""
    if _is_path(value):
        return value if inside else None
    if isinstance(value, list):
        for item in value:
            found = short_form_in_directive(item, inside)
            if found:
                return found
        return None
    if not isinstance(value, dict):
        return None
    directive = any(isinstance(k, str) and k.startswith("@") for k in value)
    for key, inner in value.items():
        if key == "@path":
            continue
        if key == "@arrayPath" and isinstance(inner, list) and inner:
            inner = inner[1:]
        found = short_form_in_directive(inner, inside or directive)
        if found:
            return found
    return None


# ---------------------------------------------------------------------------------------------
# Loading

_ALLOWED = {
    "": {"recombee", "replay", "mappings", "segment_subscriptions", "user_properties", "item_properties"},
    "recombee": {"database_id", "region", "base_uri", "token", "token_file"},
    "replay": {"presets", "disable_presets", "enable_presets", "batch_size", "concurrency", "rejects", "fail_on"},
    "mappings": {"name", "trigger", "action", "fields", "enabled", "use_defaults"},
}


def _check_keys(table: dict, section: str, file: str, line: int | None = None) -> None:
    unknown = set(table) - _ALLOWED[section]
    if unknown:
        where = f"[{section}]" if section else "the top level"
        raise ConfigError(f"unknown key {sorted(unknown)[0]!r} in {where} "
                          f"(known: {', '.join(sorted(_ALLOWED[section]))})", file=file, line=line)


def _mapping_header_lines(text: str) -> list[int]:
    return [i + 1 for i, line in enumerate(text.splitlines())
            if re.match(r"\s*\[\[\s*mappings\s*\]\]", line)]


def _expect(value: Any, kind: type | tuple, what: str, file: str, line: int | None = None,
            mapping: str | None = None) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{what} must be a {name}", file=file, line=line, mapping=mapping)
    return value


def load_config(path: str | None) -> Config:
    """Read a TOML config (None = defaults: the 14 presets only)."""
    config = Config()
    if path is None:
        return config
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=path) from None
    text = raw.decode("utf-8", errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+)", str(exc))
        raise ConfigError(f"invalid TOML: {str(exc).split(' (at line')[0]}", file=path,
                          line=int(m.group(1)) if m else None) from None
    config.file = path
    _check_keys(data, "", path)

    rec = data.get("recombee", {})
    _expect(rec, dict, "[recombee]", path)
    _check_keys(rec, "recombee", path)
    for key in ("database_id", "region", "base_uri", "token", "token_file"):
        if key in rec:
            setattr(config.recombee, key, _expect(rec[key], str, f"recombee.{key}", path))
    if config.recombee.region and config.recombee.region not in REGIONS:
        raise ConfigError(f"recombee.region {config.recombee.region!r} is not one of {', '.join(REGIONS)}",
                          file=path)
    if config.recombee.token_file:
        config.recombee.token_file = os.path.join(os.path.dirname(path), os.path.expanduser(
            config.recombee.token_file))
    if config.recombee.token:
        if os.name == "posix" and os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH):
            config.warnings.append(f"{path}: holds the private token and is readable by other users "
                                   f"(chmod 600 it, or use RECOMBEE_PRIVATE_TOKEN)")

    rep = data.get("replay", {})
    _expect(rep, dict, "[replay]", path)
    _check_keys(rep, "replay", path)
    if "presets" in rep:
        config.replay.presets = _expect(rep["presets"], bool, "replay.presets", path)
    if "disable_presets" in rep:
        names = _expect(rep["disable_presets"], list, "replay.disable_presets", path)
        for name in names:
            if name not in PRESETS_BY_NAME:
                raise ConfigError(f"replay.disable_presets names {name!r}, which is not a preset "
                                  f"(see `recombee-cli presets`)", file=path)
        config.replay.disable_presets = list(names)
    if "enable_presets" in rep:
        names = _expect(rep["enable_presets"], list, "replay.enable_presets", path, _line_of(text, "enable_presets"))
        for name in names:
            if name not in OPT_IN_BY_NAME:
                raise ConfigError(f"replay.enable_presets names {name!r}, which is not an opt-in preset "
                                  f"(opt-in presets: {', '.join(repr(n) for n in OPT_IN_BY_NAME)}; "
                                  f"see `recombee-cli presets --all`)", file=path,
                                  line=_line_of(text, "enable_presets"))
        config.replay.enable_presets = list(dict.fromkeys(names))
    for section in ("user_properties", "item_properties"):
        table = _expect(data.get(section, {}), dict, f"[{section}]", path)
        try:
            setattr(config, section, check_types(table, section))
        except ValueError as exc:
            raise ConfigError(str(exc), file=path, line=_line_of(text, section)) from None
    # The same limits as the command line's options, so a file cannot ask for what --flag refuses.
    for key, (lo, hi) in SETTING_RANGES.items():
        if key in rep:
            value = _expect(rep[key], int, f"replay.{key}", path, _line_of(text, key))
            if not lo <= value <= hi:
                raise ConfigError(f"replay.{key} must be between {lo} and {hi} (it is {value})",
                                  file=path, line=_line_of(text, key))
            setattr(config.replay, key, value)
    if "rejects" in rep:
        config.replay.rejects = _expect(rep["rejects"], str, "replay.rejects", path)
    if "fail_on" in rep:
        config.replay.fail_on = parse_fail_on(rep["fail_on"], "replay.fail_on", file=path,
                                              line=_line_of(text, "fail_on"))

    lines = _mapping_header_lines(text)
    mappings = data.get("mappings", [])
    _expect(mappings, list, "mappings", path)
    for index, table in enumerate(mappings):
        line = lines[index] if index < len(lines) else None
        config.mappings.append(_mapping_from_toml(table, path, line, text))

    includes = data.get("segment_subscriptions", [])
    if isinstance(includes, str):
        includes = [includes]
    for include in _expect(includes, list, "segment_subscriptions", path):
        full = os.path.join(os.path.dirname(path), include)
        config.mappings.extend(load_segment_subscriptions(full))

    seen: dict[str, str] = {}
    for m in config.mappings:
        if m.name in seen:
            raise ConfigError(f"mapping name {m.name!r} is used twice (also at {seen[m.name]})",
                              file=m.file, line=m.line)
        seen[m.name] = m.origin
    return config


def _field_line(text: str, after: int | None, name: str) -> int | None:
    """The line where a mapping's field is set (the first `name = ...` after its header)."""
    if after is None:
        return None
    for number, line in enumerate(text.splitlines()[after:], after + 1):
        if re.match(r"\s*\[\[\s*mappings\s*\]\]", line):
            break
        if re.match(rf"\s*[\"']?{re.escape(name)}[\"']?\s*=", line):
            return number
    return after


def _mapping_from_toml(table: Any, path: str, line: int | None, text: str = "") -> MappingSpec:
    _expect(table, dict, "each [[mappings]] entry", path, line)
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError("a mapping needs a name", file=path, line=line)
    _check_keys(table, "mappings", path, line)
    preset = ALL_PRESETS_BY_NAME.get(name)
    action = table.get("action", preset.action if preset else None)
    if not isinstance(action, str):
        raise ConfigError("needs an action", file=path, line=line, mapping=name)
    if action not in ACTIONS:
        raise ConfigError(f"unknown action {action!r} (actions: {', '.join(ACTIONS)})",
                          file=path, line=line, mapping=name)
    trigger = table.get("trigger", preset.trigger if preset and preset.action == action
                        else ACTIONS[action].default_trigger)
    if not isinstance(trigger, str):
        raise ConfigError("needs a trigger (Segment's subscription syntax, e.g. "
                          "'type = \"track\" and event = \"Product Viewed\"')",
                          file=path, line=line, mapping=name)
    fields = _expect(table.get("fields", {}), dict, "fields", path, line, name)
    for key, value in fields.items():
        found = short_form_in_directive(value)
        if found:
            raise ConfigError(f"the short form {json.dumps(found)} stands inside a directive, where short "
                              f"forms are not expanded (Segment would read it as that text): write "
                              f"{{ \"@path\" = {json.dumps(found)} }} there",
                              file=path, line=_field_line(text, line, key), mapping=name, field=key)
    use_defaults = table.get("use_defaults", True)
    base = (preset.mapping() if preset and preset.action == action
            else ACTIONS[action].default_mapping()) if use_defaults else {}
    base.update(expand_short_forms(fields))
    return MappingSpec(name, trigger, action, base, origin=f"{path}:{line}" if line else path,
                       file=path, line=line, enabled=bool(table.get("enabled", True)))


def parse_segment_subscriptions(data: Any, file: str) -> list[MappingSpec]:
    """Segment's Public API shape ({"data": {"subscriptions": [...]}}, actionSlug/trigger/settings)
    or the runtime shape (partnerAction/subscribe/mapping), one object or a list."""
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    if isinstance(data, dict) and "subscriptions" in data:
        data = data["subscriptions"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ConfigError("expected Segment subscriptions: a list, or {\"data\": {\"subscriptions\": "
                          "[...]}}", file=file)
    specs = []
    for index, sub in enumerate(data):
        if not isinstance(sub, dict):
            raise ConfigError(f"subscription #{index + 1} is not an object", file=file)
        name = sub.get("name") or sub.get("id") or f"subscription {index + 1}"
        action = sub.get("actionSlug") or sub.get("partnerAction")
        trigger = sub.get("trigger") if "trigger" in sub else sub.get("subscribe")
        mapping = sub.get("settings") if "settings" in sub else sub.get("mapping")
        if action not in ACTIONS:
            raise ConfigError(f"unknown action {action!r} (actions: {', '.join(ACTIONS)})",
                              file=file, mapping=name)
        if not isinstance(trigger, str):
            raise ConfigError("has no trigger", file=file, mapping=name)
        if not isinstance(mapping, dict):
            raise ConfigError("has no mapping (settings)", file=file, mapping=name)
        fields = dict(mapping)
        # internalAdditionalData is hidden in Segment's UI and filled from its default.
        if ACTIONS[action].field("internalAdditionalData") and "internalAdditionalData" not in fields:
            fields["internalAdditionalData"] = INTERNAL_DATA.default
        specs.append(MappingSpec(name, trigger, action, fields, origin=file, file=file,
                                 enabled=sub.get("enabled", True) is not False))
    return specs


def load_segment_subscriptions(path: str) -> list[MappingSpec]:
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=path) from None
    except ValueError as exc:
        raise ConfigError(f"invalid JSON: {exc}", file=path) from None
    return parse_segment_subscriptions(data, path)


# ---------------------------------------------------------------------------------------------
# Compilation

@dataclass(frozen=True)
class CompiledMapping:
    name: str
    trigger: Trigger
    action: Action
    resolvers: tuple[tuple[str, Callable[[dict], Any]], ...]
    spec: MappingSpec
    prepare: Callable[[dict], dict]      # event -> payload ready for the action (the reference)
    run: Callable[[dict], list[dict]] | None = None   # event -> requests, compiled (the hot path)


def compile_mapping(spec: MappingSpec) -> CompiledMapping:
    where = dict(file=spec.file, line=spec.line, mapping=spec.name)
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
    return dataclasses.replace(compiled, run=compile_mapping_function(compiled))


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


def compile_config(config: Config) -> list[CompiledMapping]:
    return [compile_mapping(spec) for spec in config.effective_mappings()]


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
    where = dict(file=spec.file, line=spec.line, mapping=spec.name)
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
