"""Write configurations as TOML (the stdlib reads TOML but cannot write it)."""

from __future__ import annotations

import json
import math
import re

from recombee_cli.pipeline.config import MappingSpec

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


def mappings_toml(specs: list[MappingSpec], header: str, *, presets: bool) -> str:
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
            out.append(f"{_key(name)} = {value(mapping)}")
        out.append("")
    return "\n".join(out) + "\n"
