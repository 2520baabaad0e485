"""Write configurations as TOML (the stdlib reads TOML but cannot write it)."""

from __future__ import annotations

import json
import math
import re

from recombee_cli.mapping.config import MappingSpec, expand_short_forms

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def _string(text: str) -> str:
    # JSON's escapes are TOML's, except that TOML also forbids a raw DEL (U+007F), which JSON allows.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def value(v) -> str:
    """A TOML value. TOML has no null: a JSON null becomes a directive that resolves to null."""
    if v is None:
        return value({"@json": {"mode": "decode", "value": "null"}})
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _shorten(value):
    if isinstance(value, dict):
        if set(value) == {"@path"} and isinstance(value["@path"], str):
            return value["@path"]
        if set(value) == {"@if"} and isinstance(value["@if"], dict) and set(value["@if"]) == {"exists", "then", "else"}:
            branch = value["@if"]
            first, then, rest = branch["exists"], branch["then"], _shorten(branch["else"])
            if first == then and set(first) == {"@path"} and isinstance(first["@path"], str):
                return [first["@path"], *(rest if isinstance(rest, list) else [rest])]
            return value
        if not any(isinstance(k, str) and k.startswith("@") for k in value):
            return {k: _shorten(v) for k, v in value.items()}
    return value


def short_form(value):
    """A field's mapping in the short forms the config reads (`"$.properties.sku"` for
    `{"@path": ...}`, a list of paths for an `@if exists` chain, objects of those), wherever the
    short form reads back as exactly this mapping; else the mapping as it is."""
    shorter = _shorten(value)
    return shorter if expand_short_forms(shorter) == value else value


def mappings_toml(specs: list[MappingSpec], header: str, *, presets: bool, short: bool = False) -> str:
    """`short`: fields in their short forms (presets written for people to edit); else verbatim
    (a Segment subscription imported as it is)."""
    out = [header.rstrip(), "", "[replay]",
           f"presets = {value(presets)}   # Segment's built-in presets besides the mappings below", ""]
    for spec in specs:
        out.append("[[mappings]]")
        out.append(f"name = {value(spec.name)}")
        out.append(f"trigger = {value(spec.trigger)}")
        out.append(f"action = {value(spec.action)}")
        if not spec.enabled:
            out.append("enabled = false")
        out.append("use_defaults = false   # the fields below are the whole mapping")
        out.append("[mappings.fields]")
        for name, mapping in spec.fields.items():
            out.append(f"{_key(name)} = {value(short_form(mapping) if short else mapping)}")
        out.append("")
    return "\n".join(out) + "\n"
