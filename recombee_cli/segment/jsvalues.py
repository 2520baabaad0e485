"""JavaScript value semantics for values that came from JSON.

Segment's runtime is JavaScript, so wherever it turns a value into a string, tests it for truth,
walks a path into it or serialises it, the rules are JavaScript's. These helpers reproduce those
rules for the Python values `json`/`orjson` produce (dict, list, str, int, float, bool, None) plus
`UNDEFINED`, the stand-in for JavaScript's `undefined` (a missing value, as opposed to `None`,
which is JSON `null`).

Numbers: JavaScript has one number type, an IEEE double. A Python `int` is treated as the double
it would become (`12345678901234567890` prints as `12345678901234567000`); `10.0` prints as `10`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = [
    "UNDEFINED",
    "is_undefined",
    "js_string",
    "js_number_to_string",
    "js_truthy",
    "js_type_of",
    "js_utf16_len",
    "js_keys",
    "js_json_stringify",
    "js_json_parse",
    "js_loose_equals_empty_string",
    "js_trim",
    "js_utf16",
    "js_utf16_slice",
    "js_utf16_units",
    "js_has_surrogate",
    "js_is_array_index",
    "js_to_number",
    "js_string_to_number",
    "JS_WHITESPACE",
    "remove_undefined",
    "json_ready",
]


class _Undefined:
    """The single `UNDEFINED` value: JavaScript's `undefined` (falsy, distinct from None)."""

    __slots__ = ()
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> _Undefined:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Undefined:
        return self

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Any = _Undefined()

_MAX_SAFE = 2**53


def is_undefined(value: Any) -> bool:
    return value is UNDEFINED


# ---------------------------------------------------------------------------------------------
# Numbers


def _float_to_string(x: float) -> str:
    """ECMAScript Number::toString(x) for a finite, non-zero double."""
    r = repr(x)
    if "e" not in r and "n" not in r:
        # Python uses positional notation only for 1e-4 <= |x| < 1e16, a sub-range of
        # JavaScript's (1e-7 <= |x| < 1e21), and both print the same shortest digits there.
        return r[:-2] if r.endswith(".0") else r
    if x != x:
        return "NaN"
    if x in (math.inf, -math.inf):
        return "Infinity" if x > 0 else "-Infinity"
    sign = "-" if x < 0 else ""
    r = repr(abs(x))
    mant, _, exp_s = r.partition("e")
    exp = int(exp_s) if exp_s else 0
    int_part, _, frac = mant.partition(".")
    digits = int_part + frac
    stripped = digits.lstrip("0")
    # value = 0.DIGITS x 10**n
    n = len(int_part) + exp - (len(digits) - len(stripped))
    digits = stripped.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        s = digits + "0" * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        es = ("+" if e >= 0 else "-") + str(abs(e))
        s = digits + "e" + es if k == 1 else digits[0] + "." + digits[1:] + "e" + es
    return sign + s


# The integers a request can carry as integers: orjson writes 64 bits (signed or unsigned), no more.
_JSON_INT_MIN, _JSON_INT_MAX = -2**63, 2**64 - 1


def js_integral(number: float) -> int | float:
    """A number as a request carries it: an integral double as an int (printed without `.0`, as
    JSON.stringify prints it) where JSON can write it as one, anything else as the double itself
    (the same number: an int beyond 64 bits cannot be written by orjson)."""
    if number.is_integer() and _JSON_INT_MIN <= number <= _JSON_INT_MAX:
        return int(number)
    return number


def js_multiply(a: int | float, b: int | float) -> int | float:
    """`a * b` for numbers: exact for integers whose product JSON can still write as an integer
    (as before), the product of the doubles, as JavaScript computes it, beyond that."""
    if type(a) is int and type(b) is int:
        product = a * b
        if _JSON_INT_MIN <= product <= _JSON_INT_MAX:
            return product
    return js_to_number(a) * js_to_number(b)


def js_number_to_string(x: int | float) -> str:
    """`String(x)` for a number (int or float, not bool)."""
    if isinstance(x, int):
        if -_MAX_SAFE <= x <= _MAX_SAFE:
            return str(int(x))
        try:
            x = float(x)
        except OverflowError:
            return "Infinity" if x > 0 else "-Infinity"
    if x == 0:  # 0 and -0
        return "0"
    return _float_to_string(float(x))


# StringToNumber's StrDecimalLiteral (ASCII digits only: Python's float() also reads "\u0665",
# "\uff15" and "1_000"), and its NonDecimalIntegerLiteral (no sign allowed before 0x/0o/0b).
_JS_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_JS_NON_DECIMAL = re.compile(r"0(?:[xX]([0-9a-fA-F]+)|[oO]([0-7]+)|[bB]([01]+))\Z")


def js_string_to_number(s: str) -> float:
    """`Number(s)` for a string (ECMAScript StringToNumber): NaN where JavaScript gives NaN."""
    s = s.strip(JS_WHITESPACE)
    if not s:
        return 0.0
    if _JS_DECIMAL.match(s):
        return float(s)  # rounds to nearest like JavaScript; "1e400" is inf
    if s in ("Infinity", "+Infinity"):
        return math.inf
    if s == "-Infinity":
        return -math.inf
    m = _JS_NON_DECIMAL.match(s)
    if m:
        hexa, octal, binary = m.groups()
        n = int(hexa, 16) if hexa else int(octal, 8) if octal else int(binary, 2)
        try:
            return float(n)
        except OverflowError:
            return math.inf
    return math.nan


def js_to_number(value: Any) -> float:
    """JavaScript `Number(value)` for JSON-like values (and UNDEFINED)."""
    t = type(value)
    if t is str:
        return js_string_to_number(value)
    if t is bool:
        return 1.0 if value else 0.0
    if t is int or t is float:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if value is None:
        return 0.0
    if value is UNDEFINED:
        return math.nan
    if t is list or t is tuple:
        return js_string_to_number(js_string(value))  # via ToPrimitive: the joined string
    if isinstance(value, str):
        return js_string_to_number(str(value))
    if isinstance(value, (bool, int, float)):
        return js_to_number(float(value) if not isinstance(value, bool) else bool(value))
    return math.nan  # objects: "[object Object]"


# ---------------------------------------------------------------------------------------------
# Strings


def js_string(value: Any) -> str:
    """JavaScript `String(value)` for JSON-like values."""
    t = type(value)
    if t is str:
        s: str = value
        return s
    if t is bool:
        return "true" if value else "false"
    if t is int or t is float:
        return js_number_to_string(value)
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    if t is list or t is tuple:
        return ",".join("" if (v is None or v is UNDEFINED) else js_string(v) for v in value)
    if t is dict:
        return "[object Object]"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number_to_string(value)
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, (list, tuple)):
        return js_string(list(value))
    try:  # decimal.Decimal and other number-likes
        return js_number_to_string(float(value))
    except (TypeError, ValueError):
        return str(value)


def js_utf16_len(s: str) -> int:
    """`s.length`: the number of UTF-16 code units."""
    if s.isascii():
        return len(s)
    return len(s) + sum(1 for c in s if ord(c) > 0xFFFF)


def js_utf16_units(s: str) -> list[str]:
    """The string's UTF-16 code units, each as a one-character str (lone surrogates allowed)."""
    if s.isascii():
        return list(s)
    b = s.encode("utf-16-le", "surrogatepass")
    return [chr(int.from_bytes(b[i:i + 2], "little")) for i in range(0, len(b), 2)]


def js_utf16(s: str) -> str:
    """`s` as UTF-16 code units, one Python character each (JavaScript's view of a string)."""
    if s.isascii() or all(ord(c) < 0x10000 for c in s):
        return s
    out = []
    for c in s:
        o = ord(c)
        if o < 0x10000:
            out.append(c)
        else:
            o -= 0x10000
            out.append(chr(0xD800 + (o >> 10)))
            out.append(chr(0xDC00 + (o & 0x3FF)))
    return "".join(out)


def js_utf16_slice(s: str, start: int, stop: int | None) -> str:
    """JavaScript `s.slice(start, stop)`, which counts UTF-16 code units."""
    units = js_utf16(s)
    if units is s:
        return s[start:stop]
    return units[start:stop].encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def js_has_surrogate(s: str) -> bool:
    """Whether `s` holds a (lone) surrogate code point, so JavaScript compares it unit by unit."""
    return not s.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in s)


# ECMAScript's StrWhiteSpaceChar: WhiteSpace (TAB, VT, FF, ZWNBSP U+FEFF and the Unicode "Zs"
# space separators) and LineTerminator (LF, CR, LS U+2028, PS U+2029). What `trim()`, `Number()`
# and a regular expression's `\s` skip. Not Python's whitespace: str.strip()/str.isspace()/float()
# also take U+001C-U+001F and U+0085 (JavaScript does not) and miss U+FEFF (JavaScript takes it);
# U+180E has not been a space separator since Unicode 6.3, so JavaScript no longer takes it.
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(s: str) -> str:
    """`s.trim()`."""
    return s.strip(JS_WHITESPACE)


# ---------------------------------------------------------------------------------------------
# Types, truth, equality


def js_type_of(value: Any) -> str:
    """Segment's `realTypeOf`: string, number, boolean, null, undefined, object or array."""
    t = type(value)
    if t is str:
        return "string"
    if t is bool:
        return "boolean"
    if t is int or t is float:
        return "number"
    if t is dict:
        return "object"
    if t is list:
        return "array"
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return "object"


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness: false for undefined, null, false, 0, -0, NaN and ''."""
    if value is None or value is UNDEFINED:
        return False
    t = type(value)
    if t is bool:
        b: bool = value
        return b
    if t is str:
        s: str = value
        return s != ""
    if t is int:
        i: int = value
        return i != 0
    if t is float:
        x: float = value
        return x == x and x != 0.0
    return True


def js_loose_equals_empty_string(value: Any) -> bool:
    """`value == ''` with JavaScript's abstract equality (value not null/undefined)."""
    t = type(value)
    if t is str:
        s: str = value
        return s == ""
    if t is bool:
        return value is False
    if t is int or t is float:
        x: float = value
        return x == 0
    if t is list:
        return js_string(value) == ""
    return False


# ---------------------------------------------------------------------------------------------
# Objects


def js_is_array_index(key: str) -> bool:
    """Whether the property key `key` is an array index ("0", "1", ... below 2**32 - 1)."""
    return key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) < 4294967295


def js_keys(obj: dict[Any, Any]) -> list[Any]:
    """`Object.keys(obj)`: array-index keys first in ascending order, then insertion order."""
    index_keys = None
    for k in obj:
        if type(k) is str and k[:1].isdigit() and js_is_array_index(k):
            index_keys = True
            break
    if index_keys is None:
        return list(obj)
    idx = sorted((k for k in obj if type(k) is str and js_is_array_index(k)), key=int)
    seen = set(idx)
    return idx + [k for k in obj if k not in seen]


def remove_undefined(value: Any) -> Any:
    """Segment's `removeUndefined`: drop undefined-valued keys at every object depth.

    Arrays are mapped, and their undefined items kept (JSON.stringify writes them as null).
    """
    t = type(value)
    if t is dict:
        return {k: remove_undefined(v) for k, v in value.items() if v is not UNDEFINED}
    if t is list:
        return [remove_undefined(v) for v in value]
    return value


def json_ready(value: Any) -> Any:
    """What `JSON.parse(JSON.stringify(value))` gives: undefined keys dropped, undefined array
    items as None. Use before serialising a resolved mapping with a JSON library."""
    t = type(value)
    if t is dict:
        return {k: json_ready(v) for k, v in value.items() if v is not UNDEFINED}
    if t is list:
        return [None if v is UNDEFINED else json_ready(v) for v in value]
    if t is float and (value != value or value in (math.inf, -math.inf)):
        return None
    return value


# ---------------------------------------------------------------------------------------------
# JSON


def _json_quote(s: str) -> str:
    # json.dumps(ensure_ascii=False) escapes exactly what JSON.stringify escapes ('"', '\\',
    # control characters, with the same short forms and lowercase \u00XX), except lone
    # surrogates, which JSON.stringify writes as \uXXXX escapes.
    out = json.dumps(s, ensure_ascii=False)
    if not s.isascii():
        if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
            out = "".join(
                f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in out
            )
    return out


def _stringify(value: Any) -> str | None:
    t = type(value)
    if t is str:
        return _json_quote(value)
    if t is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if t is int or t is float:
        if t is float and (value != value or value in (math.inf, -math.inf)):
            return "null"
        if t is int and not (-_MAX_SAFE <= value <= _MAX_SAFE):
            try:
                if math.isinf(float(value)):
                    return "null"
            except OverflowError:
                return "null"
        return js_number_to_string(value)
    if t is dict:
        parts = []
        for k in js_keys(value):
            s = _stringify(value[k])
            if s is not None:
                parts.append(_json_quote(str(k)) + ":" + s)
        return "{" + ",".join(parts) + "}"
    if t is list or t is tuple:
        return "[" + ",".join(
            "null" if (s := _stringify(v)) is None else s for v in value
        ) + "]"
    if value is UNDEFINED:
        return None
    return _stringify(_coerce_foreign(value))


def _coerce_foreign(value: Any) -> Any:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def js_json_stringify(value: Any) -> Any:
    """`JSON.stringify(value)` (compact). Returns UNDEFINED where JavaScript returns undefined."""
    s = _stringify(value)
    return UNDEFINED if s is None else s


def _parse_int(s: str) -> int | float:
    n = int(s)
    return n if -_MAX_SAFE <= n <= _MAX_SAFE else float(s)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def js_json_parse(text: str) -> Any:
    """`JSON.parse(text)`; raises ValueError where JavaScript throws a SyntaxError."""
    try:
        return json.loads(text, parse_int=_parse_int, parse_constant=_reject_constant)
    except RecursionError as exc:  # pragma: no cover - absurdly deep input
        raise ValueError("too deeply nested") from exc


def orjson_default(value: Any) -> Any:
    """`default=` for orjson.dumps: an UNDEFINED left inside an array serialises as null, as
    JSON.stringify does."""
    if value is UNDEFINED:
        return None
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
