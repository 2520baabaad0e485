"""Configuration: TOML files, Segment subscription JSON and presets, read and checked into a `Config`.

Loading never looks at events and never compiles: `pipeline.compile` turns the result into
triggers and field resolvers. So reading a TOML file does not need the mapping compiler.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from typing import Any

from recombee_cli.errors import ConfigError
from recombee_cli.outcomes import DEFAULT_FAIL_ON, parse_fail_on
from recombee_cli.recombee.service import MAX_BATCH, REGIONS, database_id_problem
from recombee_cli.segment.actions import ACTIONS, INTERNAL_DATA
from recombee_cli.segment.presets import ALL_PRESETS_BY_NAME, OPT_IN_BY_NAME, OPT_IN_TYPES, PRESETS, PRESETS_BY_NAME
from recombee_cli.segment.properties import check_types

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
    fields: dict[str, Any]
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


def _check_keys(table: dict[str, Any], section: str, file: str, line: int | None = None) -> None:
    unknown = set(table) - _ALLOWED[section]
    if unknown:
        where = f"[{section}]" if section else "the top level"
        raise ConfigError(f"unknown key {sorted(unknown)[0]!r} in {where} "
                          f"(known: {', '.join(sorted(_ALLOWED[section]))})", file=file, line=line)


def _mapping_header_lines(text: str) -> list[int]:
    return [i + 1 for i, line in enumerate(text.splitlines())
            if re.match(r"\s*\[\[\s*mappings\s*\]\]", line)]


def _expect(value: Any, kind: type | tuple[type, ...], what: str, file: str, line: int | None = None,
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
    problem = database_id_problem(config.recombee.database_id) if config.recombee.database_id is not None else None
    if problem:
        raise ConfigError(f"recombee.database_id: {problem}", file=path, line=_line_of(text, "database_id"))
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
    for spec in config.mappings:
        if spec.name in seen:
            raise ConfigError(f"mapping name {spec.name!r} is used twice (also at {seen[spec.name]})",
                              file=spec.file, line=spec.line)
        seen[spec.name] = spec.origin
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
