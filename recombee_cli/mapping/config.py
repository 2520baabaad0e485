"""Configuration: TOML files, Segment subscription JSON and presets, read and checked into a `Config`.

Loading never looks at events and never compiles: `mapping.compile` turns the result into
triggers and field resolvers. So reading a TOML file does not need the mapping compiler.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from typing import Any

from recombee_cli.errors import ConfigError
from recombee_cli.mapping.tomlpos import Table, TomlPositions
from recombee_cli.outcomes import DEFAULT_FAIL_ON, parse_fail_on
from recombee_cli.recombee.batching import MAX_CONCURRENCY
from recombee_cli.recombee.service import MAX_BATCH, REGIONS, database_id_problem
from recombee_cli.segment.actions import ACTIONS, INTERNAL_DATA
from recombee_cli.segment.presets import ALL_PRESETS_BY_NAME, OPT_IN_GROUPS, OPT_IN_TYPES, PRESETS, PRESETS_BY_NAME
from recombee_cli.segment.properties import check_types

SETTING_RANGES = {"batch_size": (1, MAX_BATCH), "concurrency": (1, MAX_CONCURRENCY)}


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
    field_lines: dict[str, int] = field(default_factory=dict)   # where each field is set (TOML)


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
    exclude: list[str] = field(default_factory=list)         # globs of input files to leave out
    presets_line: int | None = None    # where `presets` is set (0: set, line unknown); None: not said


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
        for group in self.replay.enable_presets:   # opt-in presets, in the order enabled
            for preset in OPT_IN_GROUPS[group]:        # (one name may enable several mappings)
                name = preset.name
                if name in custom:
                    out.append(custom.pop(name))
                elif all(m.name != name for m in out):
                    out.append(MappingSpec(preset.name, preset.trigger, preset.action, preset.mapping()))
        out.extend(m for m in self.mappings if m.name in custom)
        return [m for m in out if m.enabled]

    def presets_summary(self) -> dict[str, Any]:
        """Whether Segment's presets are in, how many, and why, as `validate` shows it."""
        custom = {m.name for m in self.mappings}
        replaced = [p.name for p in PRESETS if p.name in custom]
        disabled = [n for n in self.replay.disable_presets if n not in custom]
        used = len(PRESETS) - len(disabled) if self.replay.presets else len(replaced)
        yours = len(self.mappings) - len(replaced) if self.replay.presets else len(self.mappings)
        if self.file is None:
            why = "no config file"
        elif self.replay.presets_line is None:
            why = f"{self.file} has no [[mappings]]; `presets = false` in [replay] turns them off"
        else:
            where = f"{self.file}:{self.replay.presets_line}" if self.replay.presets_line else self.file
            why = f"presets = {'true' if self.replay.presets else 'false'}, {where}"
        if self.replay.presets:
            said = (f"presets: on ({why}): {used} of Segment's {len(PRESETS)} presets"
                    + (f" ({len(disabled)} disabled)" if disabled else "")
                    + (f", {len(replaced)} replaced by a mapping of this file" if replaced else "")
                    + (f", and {yours} mapping{'s' if yours != 1 else ''} of this file" if yours else ""))
        else:
            count = len(self.mappings)
            said = f"presets: off ({why}): only the {count} mapping{'s' if count != 1 else ''} of this file"
        if self.replay.enable_presets:
            said += "; opt-in: " + ", ".join(self.replay.enable_presets)
        return {"included": self.replay.presets, "segment_presets": used if self.replay.presets else 0,
                "config_mappings": len(self.mappings), "opt_in": list(self.replay.enable_presets), "said": said}

    def mappings_identity(self) -> dict[str, Any]:
        """Which mappings a run uses, for the state's run history: where they come from, how many,
        and a digest of everything that decides the requests (the effective mappings and the
        declared property types), so that a nightly run can say when they changed."""
        mappings = self.effective_mappings()
        canonical = json.dumps([[m.name, m.trigger, m.action, m.fields] for m in mappings] + [self.property_types()],
                               sort_keys=True, default=str, ensure_ascii=False)
        return {"config": os.path.abspath(self.file) if self.file else None, "mappings": len(mappings),
                "presets": self.replay.presets,
                "digest": hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]}

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
            if name not in OPT_IN_GROUPS:
                known = ", ".join(repr(n) for n in OPT_IN_GROUPS)
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
    "replay": {"presets", "disable_presets", "enable_presets", "batch_size", "concurrency", "rejects", "fail_on",
               "exclude"},
    "mappings": {"name", "trigger", "action", "fields", "enabled", "use_defaults"},
}
_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer", list: "a list", dict: "a table"}


def _what(value: Any) -> str:
    """A TOML value's type in words, for 'must be X (it is Y)'."""
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a float", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


class _Reader:
    """One TOML file being read: its path, its data and where each key is, for messages."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self.positions = TomlPositions(text)

    def error(self, message: str, table: Table = (), key: str | None = None, *, mapping: str | None = None,
              field: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.path, line=self.positions.line(table, key), mapping=mapping,
                           field=field)

    def check_keys(self, data: dict[str, Any], section: str, table: Table) -> None:
        unknown = sorted(set(data) - _ALLOWED[section])
        if unknown:
            where = f"[{section}]" if section else "the top level"
            close = difflib.get_close_matches(unknown[0], _ALLOWED[section], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise self.error(f"unknown key {unknown[0]!r} in {where}{hint} "
                             f"(known: {', '.join(sorted(_ALLOWED[section]))})", table, unknown[0],
                             mapping=None)

    def get(self, data: dict[str, Any], key: str, kind: type, table: Table, what: str, *,
            mapping: str | None = None) -> Any:
        """`data[key]`, which must be of `kind` (a TOML bool is not an int, nor a string "false" a
        bool: a value of the wrong type is refused, never read as something else)."""
        value = data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.error(f"{what} must be {_TYPE_NAMES[kind]} (it is {_what(value)}: {_short(value)})",
                             table, key, mapping=mapping)
        return value

    def strings(self, data: dict[str, Any], key: str, table: Table, what: str) -> list[str]:
        values = data[key]
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise self.error(f"{what} must be a list of strings (it is {_short(values)})", table, key)
        return list(values)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"is not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start}); TOML files are "
                          f"UTF-8: save it as UTF-8", file=path, line=raw[:exc.start].count(b"\n") + 1) from None


def _toml_error(text: str, path: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    m = re.search(r"\(at line (\d+)", str(exc))
    message = f"invalid TOML: {str(exc).split(' (at line')[0]}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if re.match(r"(\{|\[\s*(\{|\]|$))", first):
        message += ("; it looks like JSON (events, or Segment subscriptions?), not a TOML config: "
                    "events are INPUTS, and subscriptions go in segment_subscriptions or `import-segment`")
    return ConfigError(message, file=path, line=int(m.group(1)) if m else None)


def load_config(path: str | None) -> Config:
    """Read a TOML config (None = defaults: the 14 presets only)."""
    config = Config()
    if path is None:
        return config
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except IsADirectoryError:
        raise ConfigError("is a folder, not a TOML file", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=path) from None
    text = _decode(raw, path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(text, path, exc) from None
    config.file = path
    reader = _Reader(path, text)
    reader.check_keys(data, "", ())
    _read_recombee(reader, data, config)
    _read_replay(reader, data, config)
    for section in ("user_properties", "item_properties"):
        if section not in data:
            continue
        table = reader.get(data, section, dict, (), f"[{section}]")
        for name, kind in table.items():
            if not isinstance(kind, str):
                raise reader.error(f"[{section}] {name} must be a type name (a string: int, double, string, "
                                   f"boolean, timestamp, set, image, imageList)", (section,), name)
        try:
            setattr(config, section, check_types(table, section))
        except ValueError as exc:
            bad = next((n for n in table if str(n) in str(exc)), None)
            raise reader.error(str(exc), (section,), bad) from None

    mappings = reader.get(data, "mappings", list, (), "mappings") if "mappings" in data else []
    for index, table in enumerate(mappings):
        config.mappings.append(_mapping_from_toml(table, reader, index))
    if "segment_subscriptions" in data:
        for include in reader.strings(data, "segment_subscriptions", (), "segment_subscriptions"):
            full = os.path.join(os.path.dirname(path), os.path.expanduser(include))
            config.mappings.extend(load_segment_subscriptions(full))

    seen: dict[str, str] = {}
    for spec in config.mappings:
        if spec.name in seen:
            raise ConfigError(f"mapping name {spec.name!r} is used twice (also at {seen[spec.name]})",
                              file=spec.file, line=spec.line)
        seen[spec.name] = spec.origin
    if config.mappings and config.replay.presets_line is None:
        first = config.mappings[0]
        raise ConfigError(
            f"say whether Segment's 14 presets run beside the {len(config.mappings)} mapping"
            f"{'s' if len(config.mappings) != 1 else ''} of this file: add `presets = false` to [replay] "
            f"for only these, or `presets = true` for the presets too (a mapping named like a preset "
            f"replaces it)", file=path,
            line=first.line if first.file == path else reader.positions.line((), "segment_subscriptions"))
    return config


def _read_recombee(reader: _Reader, data: dict[str, Any], config: Config) -> None:
    if "recombee" not in data:
        return
    rec = reader.get(data, "recombee", dict, (), "[recombee]")
    reader.check_keys(rec, "recombee", ("recombee",))
    for key in ("database_id", "region", "base_uri", "token", "token_file"):
        if key in rec:
            setattr(config.recombee, key, reader.get(rec, key, str, ("recombee",), f"recombee.{key}"))
    problem = database_id_problem(config.recombee.database_id) if config.recombee.database_id is not None else None
    if problem:
        raise reader.error(f"recombee.database_id: {problem}", ("recombee",), "database_id")
    if config.recombee.region and config.recombee.region not in REGIONS:
        close = difflib.get_close_matches(config.recombee.region, REGIONS, n=1)
        raise reader.error(f"recombee.region {config.recombee.region!r} is not one of {', '.join(REGIONS)}"
                           + (f"; did you mean {close[0]!r}?" if close else ""), ("recombee",), "region")
    if config.recombee.token_file:
        config.recombee.token_file = os.path.join(os.path.dirname(reader.path), os.path.expanduser(
            config.recombee.token_file))
    if config.recombee.token:
        if os.name == "posix" and os.stat(reader.path).st_mode & (stat.S_IRGRP | stat.S_IROTH):
            config.warnings.append(f"{reader.path}: holds the private token and is readable by other users "
                                   f"(chmod 600 it, or use RECOMBEE_PRIVATE_TOKEN)")


def _read_replay(reader: _Reader, data: dict[str, Any], config: Config) -> None:
    if "replay" not in data:
        return
    table: Table = ("replay",)
    rep = reader.get(data, "replay", dict, (), "[replay]")
    reader.check_keys(rep, "replay", table)
    if "presets" in rep:
        config.replay.presets = reader.get(rep, "presets", bool, table, "replay.presets")
        config.replay.presets_line = reader.positions.line(table, "presets") or 0
    for key, known, what in (("disable_presets", PRESETS_BY_NAME, "a preset (see `recombee-cli presets`)"),
                             ("enable_presets", OPT_IN_GROUPS,
                              f"an opt-in preset (opt-in presets: {', '.join(repr(n) for n in OPT_IN_GROUPS)}; "
                              f"see `recombee-cli presets --all`)")):
        if key not in rep:
            continue
        names = reader.strings(rep, key, table, f"replay.{key}")
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                raise reader.error(f"replay.{key} names {name!r}, which is not {what}"
                                   + (f"; did you mean {close[0]!r}?" if close else ""), table, key)
        setattr(config.replay, key, list(dict.fromkeys(names)))
    # The same limits as the command line's options, so a file cannot ask for what --flag refuses.
    for key, (lo, hi) in SETTING_RANGES.items():
        if key in rep:
            value = reader.get(rep, key, int, table, f"replay.{key}")
            if not lo <= value <= hi:
                raise reader.error(f"replay.{key} must be between {lo} and {hi} (it is {value})", table, key)
            setattr(config.replay, key, value)
    if "rejects" in rep:
        config.replay.rejects = reader.get(rep, "rejects", str, table, "replay.rejects")
    if "exclude" in rep:
        config.replay.exclude = reader.strings(rep, "exclude", table, "replay.exclude")
    if "fail_on" in rep:
        config.replay.fail_on = parse_fail_on(rep["fail_on"], "replay.fail_on", file=reader.path,
                                              line=reader.positions.line(table, "fail_on"))


def _mapping_from_toml(table: Any, reader: _Reader, index: int) -> MappingSpec:
    where: Table = ("mappings", index)
    path, line = reader.path, reader.positions.line(where)
    if not isinstance(table, dict):
        raise reader.error(f"each [[mappings]] entry must be a table (it is {_what(table)})", where)
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise reader.error("a mapping needs a name (a string)", where, "name")
    reader.check_keys(table, "mappings", where)
    preset = ALL_PRESETS_BY_NAME.get(name)
    if "action" in table:
        action = reader.get(table, "action", str, where, "action", mapping=name)
    elif preset is not None:
        action = preset.action
    else:
        raise ConfigError("needs an action", file=path, line=line, mapping=name)
    if action not in ACTIONS:
        close = difflib.get_close_matches(action, ACTIONS, n=1)
        raise ConfigError(f"unknown action {action!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                          + f" (actions: {', '.join(ACTIONS)})", file=path,
                          line=reader.positions.line(where, "action"), mapping=name)
    trigger = table.get("trigger", preset.trigger if preset and preset.action == action
                        else ACTIONS[action].default_trigger)
    if not isinstance(trigger, str):
        raise ConfigError("needs a trigger (Segment's subscription syntax, e.g. "
                          "'type = \"track\" and event = \"Product Viewed\"')",
                          file=path, line=reader.positions.line(where, "trigger"), mapping=name)
    fields = reader.get(table, "fields", dict, where, "fields", mapping=name) if "fields" in table else {}
    field_lines = {key: reader.positions.line(where + ("fields",), key) or line or 0 for key in fields}
    for key, value in fields.items():
        found = short_form_in_directive(value)
        if found:
            raise ConfigError(f"the short form {json.dumps(found)} stands inside a directive, where short "
                              f"forms are not expanded (Segment would read it as that text): write "
                              f"{{ \"@path\" = {json.dumps(found)} }} there",
                              file=path, line=field_lines[key], mapping=name, field=key)
    use_defaults = reader.get(table, "use_defaults", bool, where, "use_defaults", mapping=name) \
        if "use_defaults" in table else True
    enabled = reader.get(table, "enabled", bool, where, "enabled", mapping=name) if "enabled" in table else True
    base = (preset.mapping() if preset and preset.action == action
            else ACTIONS[action].default_mapping()) if use_defaults else {}
    base.update(expand_short_forms(fields))
    return MappingSpec(name, trigger, action, base, origin=f"{path}:{line}" if line else path,
                       file=path, line=line, enabled=enabled, field_lines=field_lines)


def _json_line(text: str, name: Any, index: int) -> int | None:
    """The line of the `index`-th subscription of a JSON text (by its name, else by its action key)."""
    if isinstance(name, str):
        at = text.find(f'"name": {json.dumps(name)}')
        if at < 0:
            at = text.find(f'"name":{json.dumps(name)}')
        if at >= 0:
            return text.count("\n", 0, at) + 1
    found = [m.start() for m in re.finditer(r'"(actionSlug|partnerAction)"\s*:', text)]
    return text.count("\n", 0, found[index]) + 1 if index < len(found) else None


def parse_segment_subscriptions(data: Any, file: str, text: str = "") -> list[MappingSpec]:
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
                          "[...]}}", file=file, line=1)
    specs = []
    for index, sub in enumerate(data):
        line = _json_line(text, sub.get("name") if isinstance(sub, dict) else None, index)
        if not isinstance(sub, dict):
            raise ConfigError(f"subscription #{index + 1} is not an object", file=file, line=line)
        name = sub.get("name") or sub.get("id") or f"subscription {index + 1}"
        if not isinstance(name, str):
            raise ConfigError(f"subscription #{index + 1}: its name must be a string (it is {_short(name)})",
                              file=file, line=line)
        action = sub.get("actionSlug") or sub.get("partnerAction")
        trigger = sub.get("trigger") if "trigger" in sub else sub.get("subscribe")
        mapping = sub.get("settings") if "settings" in sub else sub.get("mapping")
        if not isinstance(action, str) or action not in ACTIONS:
            raise ConfigError(f"unknown action {_short(action)} (actions: {', '.join(ACTIONS)})",
                              file=file, line=line, mapping=name)
        if not isinstance(trigger, str):
            raise ConfigError("has no trigger", file=file, line=line, mapping=name)
        if not isinstance(mapping, dict):
            raise ConfigError("has no mapping (settings)", file=file, line=line, mapping=name)
        enabled = sub.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"enabled must be true or false (it is {_short(enabled)})", file=file, line=line,
                              mapping=name)
        fields = dict(mapping)
        # internalAdditionalData is hidden in Segment's UI and filled from its default.
        if ACTIONS[action].field("internalAdditionalData") and "internalAdditionalData" not in fields:
            fields["internalAdditionalData"] = INTERNAL_DATA.default
        specs.append(MappingSpec(name, trigger, action, fields, origin=f"{file}:{line}" if line else file,
                                 file=file, line=line, enabled=enabled))
    return specs


def load_segment_subscriptions(path: str) -> list[MappingSpec]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=path) from None
    text = _decode(raw, path)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"invalid JSON: {exc}", file=path, line=getattr(exc, "lineno", None)) from None
    return parse_segment_subscriptions(data, path, text)
