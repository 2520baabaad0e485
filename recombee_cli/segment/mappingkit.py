"""Segment's mapping-kit, ported from `@segment/actions-core` 3.170.0 (`mapping-kit/*`, `get.ts`,
`remove-undefined.ts`).

A mapping is any JSON value. An object whose keys are one `@`-prefixed key (plus an optional
`_metadata`) is a *directive*; other objects and arrays are resolved recursively; everything else
is copied. Semantics: Segment's `packages/core/src/mapping-kit`; reference vectors:
`tests/conformance/mapping-kit.json`.

Public API::

    validate_mapping(mapping) -> list[str]            # reference validation messages, [] if valid
    compile_value(mapping) -> Callable[[dict], Any]   # validate once, then resolve(payload) fast
    transform(mapping, payload) -> dict               # the reference `transform()`
    compile_transform(mapping) -> Callable[[dict], Any]  # transform(), validated and compiled once
    resolve(mapping, payload) -> Any                  # compile_value(mapping)(payload)
    get_path(obj, path) -> Any                        # the reference getter (`get.ts`)

Resolved values follow JavaScript: `UNDEFINED` (see `jsvalues`) where JavaScript has `undefined`.
Object keys whose value is undefined are dropped (the reference's final `removeUndefined`), `None`
(JSON null) is kept, and undefined *array items* are kept as `UNDEFINED` (JSON.stringify writes
them as null; `jsvalues.json_ready` does that conversion). Results never share mutable objects with
the mapping, the payload or another resolution.

Compilation does the per-mapping work once (directive dispatch, path splitting, template parsing,
Liquid parsing); the returned callable only walks the payload. Errors the reference raises while
resolving (for example `@path: expected string, got number` or a Liquid error) are raised when the
callable runs, as MappingError, not at compile time, because the reference raises them only when
that branch of the mapping is evaluated.

Deliberate differences from the reference (JavaScript artefacts that cannot be reproduced
faithfully or would be harmful):
- Paths reach only data: JavaScript's inherited properties (`constructor`, `toString`, array and
  string methods ...) resolve to undefined. `length` of strings and arrays, and indexing into
  strings, are reproduced.
- `@replace` does not write its defaults back into the mapping.
- `@liquid` runs on python-liquid configured to behave like LiquidJS 10.30 as Segment sets it up:
  numbers, booleans, arrays and objects print as JavaScript prints them; whitespace-only blocks
  are not suppressed; unknown filters are ignored; plus/minus/times/divided_by/modulo/round/
  ceil/floor/abs/at_least/at_most use JavaScript arithmetic; join/size/sum/append/prepend/
  escape/escape_once/url_encode follow LiquidJS; LiquidJS-only filters are added (json, jsonify,
  inspect, to_integer, push, pop, shift, unshift, sample, normalize_whitespace, number_of_words,
  slugify, xml_escape, cgi_escape, uri_escape, sha256, hmac_sha256, raw, date_to_xmlschema,
  date_to_rfc822, date_to_string, date_to_long_string) and python-liquid-only ones removed; the
  disabled tags and filters fail with LiquidJS's messages and `line:L, col:C` positions; `date`
  uses LiquidJS's parsing and strftime in UTC (LiquidJS uses the host's zone; Segment's hosts run
  in UTC). Known gaps, all outside the vectors: other syntax errors carry python-liquid's
  messages; comparisons inside `{{ }}`, backslash escapes in string literals and JavaScript
  properties such as `s.length` are not supported; python-liquid's own string filters print a
  float such as 10.0 the Python way; the 500 ms render and 100 MB memory limits are not enforced.
- JSON integers beyond 2**53 stay exact Python ints when passed through (JavaScript would round
  them to the nearest double); they are stringified as the double, as JavaScript does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from recombee_cli.errors import MappingError
from recombee_cli.segment.jsvalues import (
    UNDEFINED,
    js_json_parse,
    js_json_stringify,
    js_keys,
    js_loose_equals_empty_string,
    js_string,
    js_trim,
    js_truthy,
    js_type_of,
    js_utf16_len,
    js_utf16_units,
    remove_undefined,
)
from recombee_cli.segment.resolvers import Resolver, raiser

__all__ = [
    "validate_mapping",
    "compile_value",
    "compile_transform",
    "transform",
    "resolve",
    "get_path",
    "is_directive",
    "MAX_PATTERN_LENGTH",
    "MAX_REPLACEMENT_LENGTH",
    "LIQUID_MAX_LENGTH",
]

ROOT_MAPPING_FIELD_KEY = "__segment_internal_directive"
MAX_PATTERN_LENGTH = 10
MAX_REPLACEMENT_LENGTH = 10
LIQUID_MAX_LENGTH = 1000


# =============================================================================================
# The getter (AD/core get.ts)

# Split on `[` before a quote or digit, on `.`, and on `]`s after a quote or digit.
_PATH_SPLIT = re.compile(r"""\[(?=["'0-9])|\.|(?<=["'0-9])\]+""")
_ROOT = None  # compiled form of the root path


def _array_index(key: str) -> int | None:
    if key.isdigit() and key.isascii() and (key == "0" or key[0] != "0"):
        n = int(key)
        if n < 4294967295:
            return n
    return None


@lru_cache(maxsize=4096)
def _compile_path(path: str) -> tuple[tuple[str, int | None], ...] | None:
    if path == "" or path == ".":
        return _ROOT
    parts = [p for p in _PATH_SPLIT.split(path) if p]
    return tuple(
        (k, _array_index(k)) for k in (p.replace("'", "").replace('"', "") for p in parts)
    )


def _string_prop(s: str, key: str, idx: int | None) -> Any:
    if idx is not None:
        if s.isascii():
            return s[idx] if idx < len(s) else UNDEFINED
        units = js_utf16_units(s)
        return units[idx] if idx < len(units) else UNDEFINED
    if key == "length":
        return js_utf16_len(s)
    return UNDEFINED


def _walk(obj: Any, keys: tuple[tuple[str, int | None], ...]) -> Any:
    # JavaScript: keys.reduce((prev, key) => prev && prev[key], obj)
    for key, idx in keys:
        t = type(obj)
        if t is dict:
            obj = obj.get(key, UNDEFINED)
        elif t is list:
            if idx is not None:
                obj = obj[idx] if idx < len(obj) else UNDEFINED
            elif key == "length":
                obj = len(obj)
            else:
                obj = UNDEFINED
        elif t is str:
            if not obj:
                return obj
            obj = _string_prop(obj, key, idx)
        elif not js_truthy(obj):
            return obj
        else:
            obj = UNDEFINED
    return obj


def get_path(obj: Any, path: str) -> Any:
    """The reference getter: `''`/`'.'` is the root; `a.b[0].c`, `a['x y'].z`; a falsy
    intermediate value is returned as is; UNDEFINED when missing."""
    if path is None or path is UNDEFINED:
        return UNDEFINED
    keys = _compile_path(path)
    if keys is _ROOT:
        return obj
    return _walk(obj, keys)


def _copy(value: Any) -> Any:
    """A deep copy of a JSON-like value (containers only; scalars are immutable)."""
    t = type(value)
    if t is dict:
        return {k: (_copy(v) if type(v) in (dict, list) else v) for k, v in value.items()}
    if t is list:
        return [(_copy(v) if type(v) in (dict, list) else v) for v in value]
    return value


def _path_resolver(path: str) -> Resolver:
    keys = _compile_path(path)
    if keys is _ROOT:
        return _copy
    if len(keys) == 1:
        (key, idx), = keys
        if idx is None:
            def get1(p: Any) -> Any:
                if type(p) is dict:
                    v = p.get(key, UNDEFINED)
                else:
                    v = _walk(p, keys)
                return _copy(v) if type(v) in (dict, list) else v
            return get1

    if len(keys) == 2 and keys[0][1] is None and keys[1][1] is None:
        (key1, _), (key2, _) = keys

        def get2(p: Any) -> Any:   # `$.properties.x`, the most common path: two dict lookups
            if type(p) is dict:
                v = p.get(key1, UNDEFINED)
                if type(v) is dict:
                    v = v.get(key2, UNDEFINED)
                    return _copy(v) if type(v) in (dict, list) else v
            v = _walk(p, keys)
            return _copy(v) if type(v) in (dict, list) else v
        return get2

    def get_n(p: Any) -> Any:
        v = _walk(p, keys)
        return _copy(v) if type(v) in (dict, list) else v
    return get_n


# =============================================================================================
# Validation (AD/mk validate.ts)


class _VError(Exception):
    def __init__(self, message: str, stack: list[str]):
        super().__init__(f"/{'/'.join(stack)} {message}.")
        self.message = f"/{'/'.join(stack)} {message}."


class _VAggregate(Exception):
    messages: list[str]

    def __init__(self, errors: list[Exception]):
        msgs: list[str] = []
        for e in errors:
            if isinstance(e, _VAggregate):
                msgs.extend(e.messages)
            else:
                msgs.append(e.message)  # type: ignore[attr-defined]
        super().__init__(msgs)
        self.messages = msgs


def _article(t: str) -> str:
    return "an" if t[:1] in ("a", "e", "i", "o", "u") else "a"


def _type_or_directive(v: Any) -> str:
    t = js_type_of(v)
    if t == "object" and any(type(k) is str and k.startswith("@") for k in v):
        return "directive"
    return t


def is_directive(obj: Any) -> bool:
    """An object whose keys are `@`-prefixed (at least one) or `_metadata`."""
    if type(obj) is not dict:
        return False
    has_at = False
    for k in obj:
        if k.startswith("@"):
            has_at = True
        elif k != "_metadata":
            return False
    return has_at


def _v_directive(obj: Any, stack: list[str]) -> None:
    keys = js_keys(obj)
    directive_keys = [k for k in keys if k.startswith("@")]
    if len(directive_keys) > 1:
        raise _VError(
            f"should only have one @-prefixed key but it has {len(directive_keys)} keys", stack
        )
    if any(not k.startswith("@") and k != "_metadata" for k in keys):
        raise _VError(f"should only have one @-prefixed key but it has {len(keys)} keys", stack)
    key = directive_keys[0]
    fn = _VALIDATORS.get(key)
    if fn is None:
        raise _VError(f"has an invalid directive: {key}", stack)
    fn(obj[key], stack)


def _v_directive_or_raw(v: Any, stack: list[str]) -> None:
    t = _type_or_directive(v)
    if t == "directive":
        return _v_directive(v, stack)
    if t in ("object", "array", "boolean", "string", "number", "null"):
        return None
    raise _VError(f"should be a mapping directive or a JSON value but it is {_article(t)} {t}", stack)


def _v_directive_or_string(v: Any, stack: list[str]) -> None:
    t = _type_or_directive(v)
    if t == "directive":
        return _v_directive(v, stack)
    if t == "string":
        return None
    raise _VError(f"should be a string or a mapping directive but it is {_article(t)} {t}", stack)


def _v_directive_or_object(v: Any, stack: list[str]) -> None:
    t = _type_or_directive(v)
    if t == "directive":
        return _v_directive(v, stack)
    if t == "object":
        return _v_object(v, stack)
    raise _VError(f"should be a object or a mapping directive but it is {_article(t)} {t}", stack)


def _v_string_length(lo: int, hi: int) -> Callable[[Any, list[str]], None]:
    def check(v: Any, stack: list[str]) -> None:
        if type(v) is str:
            n = js_utf16_len(v)
            if n < lo:
                raise _VError(f"should be a string of length {lo} or greater", stack)
            if n > hi:
                raise _VError(f"should be a string of length {hi} or less", stack)
    return check


def _v_string(v: Any, stack: list[str]) -> None:
    t = _type_or_directive(v)
    if t != "string":
        raise _VError(f"should be a string but it is {_article(t)} {t}", stack)


def _v_allowed_strings(*allowed: str) -> Callable[[Any, list[str]], None]:
    def check(v: Any, stack: list[str]) -> None:
        _v_string(v, stack)
        if v.lower() not in allowed:
            raise _VError(
                f"should be one of {', '.join(allowed)} but it is {js_json_stringify(v)}", stack
            )
    return check


def _v_boolean(v: Any, stack: list[str]) -> None:
    t = _type_or_directive(v)
    if t != "boolean":
        raise _VError(f"should be a boolean but it is {_article(t)} {t}", stack)


def _v_chain(*checks: Callable[[Any, list[str]], None]) -> Callable[[Any, list[str]], None]:
    def check(v: Any, stack: list[str]) -> None:
        for c in checks:
            c(v, stack)
    return check


def _v_object(value: Any, stack: list[str]) -> None:
    t = _type_or_directive(value)
    if t != "object":
        raise _VError(f"should be an object but it is {_article(t)} {t}", stack)
    errors: list[Exception] = []
    for k in js_keys(value):
        try:
            _validate(value[k], [*stack, k])
        except (_VError, _VAggregate) as e:
            errors.append(e)
    if errors:
        raise _VAggregate(errors)


_Field = tuple[str, Callable[[Any, list[str]], None] | None, Callable[[Any, list[str]], None] | None]


def _v_object_with_fields(value: Any, fields: list[_Field], stack: list[str]) -> None:
    _v_object(value, stack)
    errors: list[Exception] = []
    for prop, required, optional in fields:
        try:
            if required is not None:
                if prop not in value:
                    raise _VError(f"should have field {js_json_stringify(prop)} but it doesn't", stack)
                required(value[prop], [*stack, prop])
            elif optional is not None and prop in value:
                optional(value[prop], [*stack, prop])
        except (_VError, _VAggregate) as e:
            errors.append(e)
    if errors:
        raise _VAggregate(errors)


def _v_array(v: Any, stack: list[str]) -> None:
    t = js_type_of(v)
    if t != "array":
        raise _VError(f"should be an array but it is {_article(t)} {t}", stack)


def _vd_if(v: Any, stack: list[str]) -> None:
    _v_object_with_fields(v, [
        ("exists", None, _v_directive_or_raw),
        ("then", None, _v_directive_or_raw),
        ("else", None, _v_directive_or_raw),
    ], stack)


def _vd_case(v: Any, stack: list[str]) -> None:
    _v_object_with_fields(v, [
        ("operator", None, _v_string),
        ("value", None, _v_directive_or_string),
    ], stack)


def _vd_replace(v: Any, stack: list[str]) -> None:
    _v_object_with_fields(v, [
        ("pattern", _v_chain(_v_string, _v_string_length(1, MAX_PATTERN_LENGTH)), None),
        ("replacement", None, _v_chain(_v_string, _v_string_length(0, MAX_REPLACEMENT_LENGTH))),
        ("value", _v_directive_or_string, None),
        ("ignorecase", None, _v_boolean),
        ("global", None, _v_boolean),
    ], stack)


def _vd_array_path(v: Any, stack: list[str]) -> None:
    _v_array(v, stack)
    _v_directive_or_string(v[0] if len(v) > 0 else UNDEFINED, stack)
    _validate(v[1] if len(v) > 1 else UNDEFINED, stack)


def _vd_json(v: Any, stack: list[str]) -> None:
    _v_object_with_fields(v, [
        ("value", _v_directive_or_raw, None),
        ("mode", _v_allowed_strings("encode", "decode"), None),
    ], stack)


def _vd_flatten(v: Any, stack: list[str]) -> None:
    _v_object_with_fields(v, [
        ("separator", None, _v_string),
        ("value", _v_directive_or_raw, None),
    ], stack)


def _vd_merge(v: Any, stack: list[str]) -> None:
    _v_object_with_fields(v, [
        ("direction", None, _v_allowed_strings("left", "right")),
        ("objects", _v_array, None),
    ], stack)
    for obj in v["objects"]:
        _v_directive_or_object(obj, [])  # the reference passes no stack here


def _vd_transform(v: Any, stack: list[str]) -> None:
    _v_object_with_fields(v, [
        ("apply", _v_directive_or_object, None),
        ("mapping", _v_directive_or_object, None),
    ], stack)


def _directive_validator(name: str, fn: Callable[[Any, list[str]], None]) -> Callable[[Any, list[str]], None]:
    def validator(v: Any, stack: list[str]) -> None:
        fn(v, [*stack, name])
    return validator


_VALIDATORS: dict[str, Callable[[Any, list[str]], None]] = {
    name: _directive_validator(name, fn)
    for name, fn in (
        ("@if", _vd_if),
        ("@case", _vd_case),
        ("@replace", _vd_replace),
        ("@arrayPath", _vd_array_path),
        ("@path", _v_directive_or_string),
        ("@json", _vd_json),
        ("@flatten", _vd_flatten),
        ("@merge", _vd_merge),
        ("@template", _v_directive_or_string),
        ("@literal", _v_directive_or_raw),
        ("@transform", _vd_transform),
        ("@excludeWhenNull", _v_directive_or_raw),
        ("@liquid", _v_string),
    )
}


def _validate(mapping: Any, stack: list[str]) -> None:
    t = _type_or_directive(mapping)
    if t == "directive":
        _v_directive(mapping, stack)
    elif t == "object":
        _v_object(mapping, stack)
    elif t == "array":
        _v_array(mapping, stack)


def validate_mapping(mapping: Any) -> list[str]:
    """The reference validation messages for `mapping` (aggregated); [] when it is valid."""
    try:
        _validate(mapping, [])
    except _VError as e:
        return [e.message]
    except _VAggregate as e:
        return list(e.messages)
    return []


# =============================================================================================
# Compilation


def _const(value: Any) -> Resolver:
    if type(value) in (dict, list):
        return lambda _p: _copy(value)
    return lambda _p: value


def _has_directive(node: Any) -> bool:
    t = type(node)
    if t is dict:
        return is_directive(node) or any(_has_directive(v) for v in node.values())
    if t is list:
        return any(_has_directive(v) for v in node)
    return False


def _compile(node: Any, keep: bool) -> Resolver:
    """Compile `node`. With `keep`, undefined-valued keys stay in resolved objects (needed where
    the reference observes them before its final removeUndefined: `@merge`)."""
    t = type(node)
    if t is dict:
        if is_directive(node):
            name = next(k for k in node if k.startswith("@"))
            compiler = _DIRECTIVES.get(name)
            if compiler is None:
                return raiser(f"{name} is not a valid directive, got undefined")
            return compiler(node[name], keep)
        if not _has_directive(node):
            return _const(node)
        items = [(k, _compile(node[k], keep)) for k in js_keys(node)]
        if keep:
            return lambda p: {k: f(p) for k, f in items}

        def resolve_object(p: Any) -> dict[str, Any]:
            out = {}
            for k, f in items:
                v = f(p)
                if v is not UNDEFINED:
                    out[k] = v
            return out
        return resolve_object
    if t is list:
        if not _has_directive(node):
            return _const(node)
        fs = [_compile(v, keep) for v in node]
        return lambda p: [f(p) for f in fs]
    return _const(node)


def _undefined(_p: Any) -> Any:
    return UNDEFINED


# --- @if ------------------------------------------------------------------------------------

def _c_if(opts: Any, keep: bool) -> Resolver:
    if type(opts) is not dict:
        return raiser('@if requires an object with an "exists" key')
    exists = opts.get("exists", UNDEFINED)
    blank = opts.get("blank", UNDEFINED)
    if not js_truthy(exists) and not js_truthy(blank):
        return raiser('@if requires an "exists" key or a "blank" key')
    use_blank = exists is UNDEFINED
    cond = _compile(blank if use_blank else exists, False)
    then_f = _compile(opts["then"], keep) if "then" in opts else None
    else_f = _compile(opts["else"], keep) if js_truthy(opts.get("else")) else None

    if (not use_blank and type(exists) is dict and len(exists) == 1 and type(exists.get("@path")) is str
            and opts.get("then") == exists):
        # The UI's "coalesce" (`exists X then X else Y`): resolve X once, not twice.
        def resolve_coalesce(p: Any) -> Any:
            v = cond(p)
            if v is not None and v is not UNDEFINED:
                return v
            return else_f(p) if else_f is not None else UNDEFINED
        return resolve_coalesce

    def resolve_if(p: Any) -> Any:
        v = cond(p)
        if use_blank:
            ok = v is not None and v is not UNDEFINED and not js_loose_equals_empty_string(v)
        else:
            ok = v is not None and v is not UNDEFINED
        if ok:
            return then_f(p) if then_f is not None else UNDEFINED
        return else_f(p) if else_f is not None else UNDEFINED
    return resolve_if


# --- @case ----------------------------------------------------------------------------------

def _c_case(opts: Any, keep: bool) -> Resolver:
    if type(opts) is not dict:
        return raiser('@case requires an object with a "operator" key')
    operator = opts.get("operator")
    if not js_truthy(operator):
        return raiser('@case requires a "operator" key')
    if not js_truthy(opts.get("value")):
        return _undefined
    value_f = _compile(opts["value"], keep)
    lower = type(operator) is str and operator == "lower"
    upper = type(operator) is str and operator == "upper"

    def resolve_case(p: Any) -> Any:
        v = value_f(p)
        if type(v) is str:
            if lower:
                return v.lower()
            if upper:
                return v.upper()
            raise MappingError('operator key should have a value of "lower" or "upper"')
        return v
    return resolve_case


# --- @replace -------------------------------------------------------------------------------

def _js_canon_char(c: str) -> str:
    # ECMAScript Canonicalize() for a case-insensitive, non-unicode RegExp.
    if ord(c) > 0xFFFF:
        return c
    u = c.upper()
    if len(u) != 1 or (ord(c) >= 128 and ord(u) < 128):
        return c
    return u


def _js_canon(s: str) -> str:
    if s.isascii():
        return s.upper()
    return "".join(_js_canon_char(c) for c in s)


def _expand_replacement(repl: str, s: str, pos: int, matched: str) -> str:
    # String.prototype.replace substitutions; the escaped pattern has no capture groups.
    if "$" not in repl:
        return repl
    out = []
    i, n = 0, len(repl)
    while i < n:
        c = repl[i]
        if c == "$" and i + 1 < n:
            d = repl[i + 1]
            if d == "$":
                out.append("$")
                i += 2
                continue
            if d == "&":
                out.append(matched)
                i += 2
                continue
            if d == "`":
                out.append(s[:pos])
                i += 2
                continue
            if d == "'":
                out.append(s[pos + len(matched):])
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _perform_replace(value: str, pattern: str, replacement: str, is_global: bool,
                     ignorecase: bool) -> str:
    if js_utf16_len(pattern) > MAX_PATTERN_LENGTH:
        raise MappingError(f'@replace requires a "pattern" less than {MAX_PATTERN_LENGTH} characters')
    if js_utf16_len(replacement) > MAX_REPLACEMENT_LENGTH:
        raise MappingError(
            f'@replace requires a "replacement" less than {MAX_REPLACEMENT_LENGTH} characters'
        )
    hay = _js_canon(value) if ignorecase else value
    needle = _js_canon(pattern) if ignorecase else pattern
    out = []
    i, m = 0, len(needle)
    while True:
        j = hay.find(needle, i)
        if j < 0:
            break
        out.append(value[i:j])
        out.append(_expand_replacement(replacement, value, j, value[j:j + m]))
        i = j + m
        if not is_global:
            break
    if not out:
        return value
    out.append(value[i:])
    return "".join(out)


def _c_replace(opts: Any, keep: bool) -> Resolver:
    if type(opts) is not dict:
        return raiser('@replace requires an object with a "pattern" key')
    pattern: Any = opts.get("pattern")
    if not js_truthy(pattern):
        return raiser('@replace requires a "pattern" key')
    # The reference writes these defaults back into the mapping; we don't mutate it.
    replacement = opts.get("replacement")
    if replacement is None:
        replacement = ""
    pattern2 = opts.get("pattern2", UNDEFINED)
    replacement2: Any = opts.get("replacement2", UNDEFINED)
    if js_truthy(pattern2) and (replacement2 is None or replacement2 is UNDEFINED):
        replacement2 = ""
    ignorecase = opts.get("ignorecase")
    if ignorecase is None:
        ignorecase = False
    is_global = opts.get("global")
    if is_global is None:
        is_global = True
    if not js_truthy(opts.get("value")):
        return _undefined
    value_f = _compile(opts["value"], keep)
    options_ok = (type(pattern) is str and type(replacement) is str
                  and type(ignorecase) is bool and type(is_global) is bool)
    second = js_truthy(pattern2) and type(pattern2) is str and type(replacement2) is str

    def resolve_replace(p: Any) -> Any:
        v = value_f(p)
        t = type(v)
        if t is bool or t is int or t is float:
            v = js_string(v)
        elif t is not str:
            return ""
        if not options_ok:
            return ""
        new = _perform_replace(v, pattern, replacement, is_global, ignorecase)
        if second:
            new = _perform_replace(new, pattern2, replacement2, is_global, ignorecase)
        return new
    return resolve_replace


# --- @arrayPath -----------------------------------------------------------------------------

def _c_array_path(data: Any, keep: bool) -> Resolver:
    if type(data) is not list:
        return raiser(f"@arrayPath expected array, got {js_type_of(data)}")
    path = data[0] if len(data) > 0 else UNDEFINED
    shape = data[1] if len(data) > 1 else UNDEFINED
    root_f: Resolver
    if type(path) is str:
        keys = _compile_path(path.replace("$.", "", 1))
        if keys is _ROOT:
            def root_identity(p: Any) -> Any:
                return p
            root_f = root_identity
        else:
            def root_walk(p: Any) -> Any:
                return _walk(p, keys)
            root_f = root_walk
    else:
        root_f = _compile(path, keep)
    if type(shape) is dict and len(shape) > 0:
        shape_f = _compile(shape, keep)

        def resolve_array_path(p: Any) -> Any:
            root = root_f(p)
            t = type(root)
            if t is list:
                return [shape_f(item) for item in root]
            if t is dict:
                return [shape_f(root)]
            return _copy(root) if t in (dict, list) else root
        return resolve_array_path

    def resolve_root(p: Any) -> Any:
        root = root_f(p)
        return _copy(root) if type(root) in (dict, list) else root
    return resolve_root


# --- @path / @template ----------------------------------------------------------------------

def _c_path(value: Any, keep: bool) -> Resolver:
    if type(value) is str:
        return _path_resolver(value.replace("$.", "", 1))
    value_f = _compile(value, False)

    def resolve_dynamic_path(p: Any) -> Any:
        s = value_f(p)
        if type(s) is not str:
            raise MappingError(f"@path: expected string, got {js_type_of(s)}")
        v = get_path(p, s.replace("$.", "", 1))
        return _copy(v) if type(v) in (dict, list) else v
    return resolve_dynamic_path


_TRIPLE = re.compile(r"\{\{\{([^}]+)\}\}\}")
_DOUBLE = re.compile(r"\{\{([^}]+)\}\}")


def _placeholder_text(value: Any) -> str:
    if value is None or value is UNDEFINED:
        return ""
    return value if type(value) is str else js_string(value)


def _lookup(data: Any, key: str) -> Any:
    keys = _compile_path(key)
    return data if keys is _ROOT else _walk(data, keys)


def render(template: Any, data: Any = UNDEFINED) -> str:
    """The placeholder engine behind `@template` (AD/mk placeholders.ts)."""
    if type(template) is not str:
        raise MappingError(
            f'Invalid template! Template should be a "string" but {js_type_of(template)} was given.'
        )
    if data is UNDEFINED:
        data = {}

    def sub(m: re.Match[str]) -> str:
        return _placeholder_text(_lookup(data, js_trim(m.group(1))))
    return _DOUBLE.sub(sub, _TRIPLE.sub(sub, template))


def _compile_template(template: str) -> Resolver:
    if "{{" not in template:
        return lambda _p: template
    if _TRIPLE.search(template) is not None:
        return lambda p: render(template, p)
    # No triple braces: one pass over the literal text, so the pieces can be prepared now.
    pieces: list[Any] = []
    pos = 0
    for m in _DOUBLE.finditer(template):
        if m.start() > pos:
            pieces.append(template[pos:m.start()])
        pieces.append(_compile_path(js_trim(m.group(1))) or ())
        pos = m.end()
    if pos < len(template):
        pieces.append(template[pos:])

    def resolve_template(p: Any) -> str:
        if p is UNDEFINED:
            p = {}
        out = []
        for piece in pieces:
            if type(piece) is str:
                out.append(piece)
            else:
                v = _walk(p, piece) if piece else p
                out.append(v if type(v) is str else _placeholder_text(v))
        return "".join(out)
    return resolve_template


def _c_template(value: Any, keep: bool) -> Resolver:
    if type(value) is str:
        return _compile_template(value)
    value_f = _compile(value, False)

    def resolve_dynamic_template(p: Any) -> Any:
        s = value_f(p)
        if type(s) is not str:
            raise MappingError(f"@template: expected string, got {js_type_of(s)}")
        return render(s, p)
    return resolve_dynamic_template


# --- @literal -------------------------------------------------------------------------------

def _c_literal(value: Any, keep: bool) -> Resolver:
    return _compile(value, keep)


# --- @flatten -------------------------------------------------------------------------------

def _flatten_into(out: dict[str, Any], value: Any, prefix: str, sep: str, omit_arrays: bool,
                  keep: bool) -> None:
    t = type(value)
    if t is dict:
        for k in js_keys(value):
            _flatten_into(out, value[k], f"{prefix}{sep}{k}" if prefix else k, sep, omit_arrays, keep)
    elif t is list and not omit_arrays:
        for i, v in enumerate(value):
            _flatten_into(out, v, f"{prefix}{sep}{i}" if prefix else str(i), sep, omit_arrays, keep)
    elif keep:
        out[prefix] = value
    elif value is UNDEFINED:
        out.pop(prefix, None)  # a later undefined leaf overrides an earlier key, then is removed
    else:
        out[prefix] = remove_undefined(value) if t is list else value


def _c_flatten(opts: Any, keep: bool) -> Resolver:
    if type(opts) is not dict:
        return raiser('@flatten requires an object with a "separator" key')
    if not js_truthy(opts.get("separator")):
        return raiser('@flatten requires a "separator" key')
    sep_f = _compile(opts["separator"], False)
    # Undefined-valued keys matter here: a later undefined leaf overrides an earlier equal key.
    value_f = _compile(opts.get("value", UNDEFINED), True)
    omit_arrays = js_truthy(opts.get("omitArrays"))

    def resolve_flatten(p: Any) -> dict[str, Any]:
        sep = sep_f(p)
        if type(sep) is not str:
            raise MappingError("@flatten requires a string separator")
        out: dict[str, Any] = {}
        _flatten_into(out, value_f(p), "", sep, omit_arrays, keep)
        return out
    return resolve_flatten


# --- @json ----------------------------------------------------------------------------------

def _c_json(opts: Any, keep: bool) -> Resolver:
    if type(opts) is not dict:
        return raiser('@json requires an object with a "value" key')
    mode = opts.get("mode")
    if not js_truthy(mode):
        return raiser('@json requires a "mode" key')
    if not js_truthy(opts.get("value")):
        return raiser('@json requires a "value" key')
    value_f = _compile(opts["value"], keep)
    if type(mode) is str and mode == "encode":
        return lambda p: js_json_stringify(value_f(p))
    if type(mode) is str and mode == "decode":
        def decode(p: Any) -> Any:
            v = value_f(p)
            if type(v) is str:
                try:
                    return js_json_parse(v)
                except ValueError:
                    return v
            return v
        return decode

    def other_mode(p: Any) -> Any:  # validation lower-cases the mode, the runtime doesn't
        value_f(p)
        return UNDEFINED
    return other_mode


# --- @merge ---------------------------------------------------------------------------------

def _assign(target: dict[str, Any], source: Any) -> None:
    # Object.assign(target, source)
    t = type(source)
    if t is dict:
        for k in js_keys(source):
            target[k] = source[k]
    elif t is list:
        for i, v in enumerate(source):
            target[str(i)] = v
    elif t is str:
        for i, u in enumerate(js_utf16_units(source)):
            target[str(i)] = u


def _js_typeof(v: Any) -> str:
    t = js_type_of(v)
    return "object" if t in ("array", "null") else t


def _c_merge(opts: Any, keep: bool) -> Resolver:
    if type(opts) is not dict:
        return raiser('@merge requires an object with an "objects" key and a "direction" key')
    if not js_truthy(opts.get("direction")):
        return raiser('@merge requires a "direction" key')
    direction_f = _compile(opts["direction"], False)
    objects: Any = opts.get("objects")
    if not js_truthy(objects):
        error = '@merge requires a "objects" key'
    elif type(objects) is not list:
        error = f"@merge: expected opts.array, got {_js_typeof(objects)}"
    else:
        error = None
    if error is not None:
        def fail(p: Any) -> Any:
            direction_f(p)
            raise MappingError(error)
        return fail
    object_fs = [_compile(o, True) for o in objects]

    def resolve_merge(p: Any) -> dict[str, Any]:
        direction = direction_f(p)
        values = [f(p) for f in object_fs]
        if type(direction) is str and direction == "left":
            values.reverse()
        out: dict[str, Any] = {}
        for v in values:
            _assign(out, v)
        return out if keep else remove_undefined(out)
    return resolve_merge


# --- @transform -----------------------------------------------------------------------------

def _spread(mapping: Any) -> dict[str, Any]:
    # `{ ...mapping }`
    t = type(mapping)
    if t is dict:
        return dict(mapping)
    if t is list:
        return {str(i): v for i, v in enumerate(mapping)}
    if t is str:
        return {str(i): u for i, u in enumerate(js_utf16_units(mapping))}
    return {}


def _own_entries(value: Any) -> list[tuple[str, Any]]:
    # Object.keys(value).map(k => [k, value[k]])
    t = type(value)
    if t is dict:
        return [(k, value[k]) for k in js_keys(value)]
    if t is list:
        return [(str(i), v) for i, v in enumerate(value)]
    if t is str:
        return [(str(i), u) for i, u in enumerate(js_utf16_units(value))]
    return []


def _mapping_to_process(mapping: Any) -> Any:
    """The reference `getMappingToProcess`, without mutating `mapping`."""
    if mapping is None or mapping is UNDEFINED:
        raise MappingError("Cannot convert undefined or null to object")
    if type(mapping) is not dict or ROOT_MAPPING_FIELD_KEY not in mapping:
        return _spread(mapping)
    # The root directive gets the other keys injected as its `mapping`.
    customer = {k: v for k, v in mapping.items() if k != ROOT_MAPPING_FIELD_KEY}
    root = mapping[ROOT_MAPPING_FIELD_KEY]
    if root is None or root is UNDEFINED:
        raise MappingError("Cannot convert undefined or null to object")
    entries = _own_entries(root)
    if len(entries) > 1:
        raise MappingError("The root mapping must only have a single directive object")
    directive = entries[0][1] if entries else UNDEFINED
    if not js_truthy(directive) or type(directive) not in (dict, list):
        raise MappingError("The root directive must be an object")
    if type(directive) is list:
        return root  # a property set on an array is not one of its elements
    injected = {**directive, "mapping": customer}
    if type(root) is dict:
        return {**root, entries[0][0]: injected}
    return [injected]


def _compile_transform(mapping: Any) -> Resolver:
    """A resolver doing what the reference `transform(mapping, payload)` does."""
    try:
        to_process = _mapping_to_process(mapping)
        errors: str | list[str] | None = validate_mapping(to_process) or None
    except MappingError as e:
        errors = e.errors
    if errors is not None:
        resolved: Resolver = raiser(errors)
    else:
        resolved = _compile(to_process, False)

    def run(p: Any) -> Any:
        if type(p) is not dict:
            raise MappingError(f"data must be an object, got {js_type_of(p)}")
        return resolved(p)
    return run


def _c_transform(opts: Any, keep: bool) -> Resolver:
    if type(opts) is not dict:
        return raiser('@transform requires an object with an "apply" key and a "mapping" key')
    if not js_truthy(opts.get("mapping")):
        return raiser('@transform requires a "mapping" key')
    apply = opts.get("apply")
    if not js_truthy(apply):
        return raiser('@transform requires a "apply" key')
    if type(apply) is not dict:
        return raiser('@transform "apply" key should be an object')
    apply_f = _compile_transform(apply)
    mapping_f = _compile(opts["mapping"], keep)
    return lambda p: mapping_f(apply_f(p))


# --- @excludeWhenNull -----------------------------------------------------------------------

def _clean_nulls(value: Any, keep: bool) -> Any:
    if type(value) is not dict:
        return value
    out = {}
    for k, v in value.items():
        if v is None:
            if keep:
                out[k] = UNDEFINED
        elif type(v) is dict:
            out[k] = _clean_nulls(v, keep)
        else:
            out[k] = v
    return out


def _c_exclude_when_null(value: Any, keep: bool) -> Resolver:
    value_f = _compile(value, keep)

    def resolve_exclude(p: Any) -> Any:
        v = value_f(p)
        if v is None:
            return UNDEFINED
        return _clean_nulls(v, keep) if type(v) is dict else v
    return resolve_exclude


# --- @liquid --------------------------------------------------------------------------------

def _c_liquid(value: Any, keep: bool) -> Resolver:
    if type(value) is not str:
        return raiser("liquid template value must be a string")
    if value == "":
        return lambda _p: ""
    if js_utf16_len(value) > LIQUID_MAX_LENGTH:
        return raiser("liquid template values are limited to 1000 characters")
    from recombee_cli.segment.liquidjs import liquid_compile  # python-liquid loads in ~0.1 s: only when used

    return liquid_compile(value)


_DIRECTIVES: dict[str, Callable[[Any, bool], Resolver]] = {
    "@if": _c_if,
    "@case": _c_case,
    "@replace": _c_replace,
    "@arrayPath": _c_array_path,
    "@path": _c_path,
    "@template": _c_template,
    "@literal": _c_literal,
    "@flatten": _c_flatten,
    "@json": _c_json,
    "@merge": _c_merge,
    "@transform": _c_transform,
    "@excludeWhenNull": _c_exclude_when_null,
    "@liquid": _c_liquid,
}


# =============================================================================================
# Public entry points


def compile_value(mapping: Any) -> Resolver:
    """Validate `mapping` (MappingError with every message if invalid) and compile it.

    The returned `resolve(payload)` gives the resolved value, or UNDEFINED; undefined-valued
    keys are already removed from resolved objects."""
    errors = validate_mapping(mapping)
    if errors:
        raise MappingError(errors)
    return _compile(mapping, False)


def resolve(mapping: Any, payload: Any) -> Any:
    return compile_value(mapping)(payload)


def compile_transform(mapping: Any) -> Resolver:
    """`transform` in two steps: validate and compile `mapping` now (MappingError if it is
    invalid), then `run(payload)` per event."""
    to_process = _mapping_to_process(mapping)
    errors = validate_mapping(to_process)
    if errors:
        raise MappingError(errors)
    resolved = _compile(to_process, False)

    def run(payload: Any) -> Any:
        if type(payload) is not dict:
            raise MappingError(f"data must be an object, got {js_type_of(payload)}")
        return resolved(payload)
    return run


def transform(mapping: Any, payload: Any) -> Any:
    """The reference `transform(mapping, data)`: `data` must be an object; a top-level non-object
    mapping is spread into an object; `__segment_internal_directive` is honoured; undefined keys
    are removed at every object depth."""
    t = js_type_of(payload)
    if t != "object":
        raise MappingError(f"data must be an object, got {t}")
    return compile_transform(mapping)(payload)


# The steps the pipeline's compiled fast path (mapping/fastpath.py) inlines, by public names.
compile_node = _compile          # compile one mapping node (keep: keep undefined-valued keys)
compile_path = _compile_path     # a `$.a.b[0]` path as keys, or None when the getter cannot take it
copy_value = _copy               # a resolved value copied so that results never share objects
has_directive = _has_directive   # whether a node holds a directive anywhere inside
