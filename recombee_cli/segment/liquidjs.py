"""`@liquid` on python-liquid, configured to behave like LiquidJS 10 as Segment runs it: the
disabled tags and filters, LiquidJS's extra filters, JavaScript number and string semantics.
Imported only when a mapping uses `@liquid` (python-liquid takes ~0.1 s to load)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import math
import random
import re
import unicodedata
import urllib.parse
from collections.abc import Callable
from decimal import Decimal as _Decimal
from typing import Any

from recombee_cli.errors import LiquidMissing, MappingError

try:   # python-liquid is the `liquid` extra: without it, a mapping that uses @liquid is refused in one line
    from liquid import Environment as _LiquidEnvironment
    from liquid import Mode as _LiquidMode
    from liquid.builtin.output import Output as _LiquidOutput
    from liquid.builtin.output import OutputNode as _LiquidOutputNode
    from liquid.builtin.tags.echo_tag import EchoNode as _LiquidEchoNode
    from liquid.builtin.tags.echo_tag import EchoTag as _LiquidEchoTag
    from liquid.exceptions import FilterArgumentError as _LiquidFilterArgumentError
    from liquid.exceptions import LiquidError as _LiquidError
    from liquid.exceptions import LiquidSyntaxError as _LiquidSyntaxError
    from liquid.tag import Tag as _LiquidTag
    from liquid.token import TOKEN_OUTPUT as _TOKEN_OUTPUT
    from liquid.token import TOKEN_TAG as _TOKEN_TAG
    from liquid.undefined import Undefined as _LiquidUndefined
except ImportError:
    raise LiquidMissing() from None
from recombee_cli.segment.jsvalues import (
    JS_WHITESPACE,
    UNDEFINED,
    js_json_stringify,
    js_number_to_string,
    js_string,
    js_to_number,
    js_trim,
    js_truthy,
    js_utf16_len,
    js_utf16_units,
)
from recombee_cli.segment.resolvers import Resolver, raiser

# The tags and filters Segment switches off in its LiquidJS engine (they fail with LiquidJS's
# "is disabled" message).
DISABLED_LIQUID_TAGS = ("case", "for", "include", "layout", "render", "tablerow")
DISABLED_LIQUID_FILTERS = (
    "array_to_sentence_string", "concat", "find", "find_exp", "find_index", "find_index_exp",
    "group_by", "group_by_exp", "has", "has_exp", "map", "newline_to_br", "reject", "reject_exp",
    "reverse", "sort", "sort_natural", "uniq", "where_exp", "type",
)

# =============================================================================================
# @liquid on python-liquid, configured to behave like LiquidJS 10 (as Segment runs it)


def _l_nil(v: Any) -> bool:
    return v is None or v is UNDEFINED or isinstance(v, _LiquidUndefined)


def _l_plain(v: Any) -> Any:
    """A python-liquid value as the JSON-like value LiquidJS would hold."""
    if _l_nil(v):
        return None if v is None else UNDEFINED
    if isinstance(v, bool) or type(v) in (str, int, float):
        return v
    if isinstance(v, str):
        return str(v)
    if isinstance(v, _Decimal):
        return _l_num(float(v))
    if isinstance(v, range):
        return list(v)
    if isinstance(v, dict):
        return {k: _l_plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_l_plain(x) for x in v]
    return v


def _l_str(v: Any) -> str:
    """LiquidJS `stringify`: nil -> '', arrays joined with '', else JavaScript String()."""
    if isinstance(v, str):
        return str(v)
    if _l_nil(v):
        return ""
    if isinstance(v, (list, tuple, range)):
        return "".join(_l_str(x) for x in v)
    return js_string(_l_plain(v))


def _l_num(x: float) -> int | float:
    """A JavaScript number result as the Python value we hold: integral -> int."""
    if x == x and x not in (math.inf, -math.inf) and x == int(x) and abs(x) <= 2**53:
        return int(x)
    return x


def _js_number(v: Any) -> float:
    """JavaScript `Number(v)` for a python-liquid value."""
    return js_to_number(_l_plain(v))


def _to_number(v: Any) -> float:
    """LiquidJS `toNumber`: `+v || 0`."""
    n = _js_number(v)
    return 0.0 if n != n or n == 0 else n


def _math_filter(fn: Callable[..., float]) -> Callable[..., Any]:
    def f(*args: Any) -> Any:
        return _l_num(fn(*(_to_number(a) for a in args)))
    return f


def _js_div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _js_mod(a: float, b: float) -> float:
    if b == 0 or a != a or b != b or a in (math.inf, -math.inf):
        return math.nan
    if b in (math.inf, -math.inf):
        return a
    return math.fmod(a, b)


def _js_math_round(x: float) -> float:
    if x != x or x in (math.inf, -math.inf):
        return x
    return float(math.floor(x + 0.5))


def _shift_decimal(n: float, exponent: float) -> float:
    mantissa, _, power = js_number_to_string(_l_num(n)).partition("e")
    try:
        return float(f"{mantissa}e{int(float(power or '0') + exponent)}")
    except (ValueError, OverflowError):
        return math.nan


def _f_round(v: Any, arg: Any = 0) -> Any:
    x, a = _to_number(v), _to_number(arg)
    scaled = _shift_decimal(abs(x), a)
    if not scaled <= 2**53 - 1:
        return _l_num(x)
    rounded = _shift_decimal(_js_math_round(scaled), -a)
    return _l_num(-rounded if x < 0 else rounded)


def _f_divided_by(v: Any, d: Any = UNDEFINED, integer: Any = UNDEFINED) -> Any:
    q = _js_div(_to_number(v), _to_number(d))
    if integer is not UNDEFINED and _to_number(integer):
        q = float(math.floor(q)) if q == q and q not in (math.inf, -math.inf) else q
    return _l_num(q)


def _to_array(v: Any) -> list[Any]:
    if _l_nil(v):
        return []
    if isinstance(v, list):
        return v
    if isinstance(v, (tuple, range)):
        return list(v)
    return [v]


def _f_sum(v: Any, prop: Any = None) -> Any:
    total = 0.0
    for item in _to_array(v):
        if not _l_nil(prop):
            item = item.get(_l_str(prop)) if isinstance(item, dict) else UNDEFINED
        n = _js_number(item)
        total += 0.0 if n != n else n
    return _l_num(total)


def _f_join(v: Any, sep: Any = None) -> str:
    s = " " if _l_nil(sep) else _l_str(sep)
    return s.join("" if _l_nil(x) else js_string(_l_plain(x)) for x in _to_array(v))


def _f_size(v: Any) -> Any:
    if isinstance(v, str):
        return js_utf16_len(v) or 0
    if isinstance(v, (list, tuple, range)):
        return len(v)
    if isinstance(v, dict):
        n = v.get("length")
        return n if js_truthy(_l_plain(n)) else 0
    return 0


def _f_json(v: Any, space: Any = 0) -> Any:
    s = js_json_stringify(_l_plain(v))
    return None if s is UNDEFINED else s


def _f_to_integer(v: Any) -> Any:
    return _l_num(_js_number(v))


def _f_push(v: Any, arg: Any = UNDEFINED) -> list[Any]:
    return [*_to_array(v), arg]


def _f_unshift(v: Any, arg: Any = UNDEFINED) -> list[Any]:
    return [arg, *_to_array(v)]


def _f_pop(v: Any) -> list[Any]:
    return _to_array(v)[:-1]


def _f_shift(v: Any) -> list[Any]:
    return _to_array(v)[1:]


_JS_WS_RUN = re.compile("[" + re.escape(JS_WHITESPACE) + "]+")  # JavaScript's /\s+/


def _f_normalize_whitespace(v: Any) -> str:
    return _JS_WS_RUN.sub(" ", _l_str(v))


def _f_number_of_words(v: Any, mode: Any = None) -> int:
    s = js_trim(_l_str(v))
    return len(_JS_WS_RUN.split(s)) if s else 0


def _encode_uri_component(s: str) -> str:
    return urllib.parse.quote(s, safe="!*'()", encoding="utf-8", errors="surrogatepass")


def _f_url_encode(v: Any) -> str:
    return _encode_uri_component(_l_str(v)).replace("%20", "+")


def _f_cgi_escape(v: Any) -> str:
    s = _encode_uri_component(_l_str(v)).replace("%20", "+")
    return re.sub(r"[!'()*]", lambda m: "%" + format(ord(m.group(0)), "X"), s)


def _f_uri_escape(v: Any) -> str:
    s = urllib.parse.quote(_l_str(v), safe="!*'();,/?:@&=+$#", errors="surrogatepass")
    return s.replace("%5B", "[").replace("%5D", "]")


def _slug_keep(c: str) -> bool:
    cat = unicodedata.category(c)
    return cat[0] in ("L", "M") or cat == "Nd"


_LATIN = [("àáâãäå", "a"), ("æ", "ae"), ("ç", "c"), ("èéêë", "e"), ("ìíîï", "i"), ("ð", "d"),
          ("ñ", "n"), ("òóôõöø", "o"), ("ùúûü", "u"), ("ýÿ", "y"), ("ß", "ss"), ("œ", "oe"),
          ("þ", "th"), ("ẞ", "SS"), ("Œ", "OE"), ("Þ", "TH")]


def _f_slugify(v: Any, mode: Any = "default", cased: Any = False) -> str:
    s = _l_str(v)
    mode = "default" if _l_nil(mode) else mode
    if mode == "latin":
        for chars, rep in _LATIN:
            s = re.sub("[" + chars + "]", rep, s)
    if mode in ("default", "latin"):
        s = re.sub(r"-+", "-", "".join(c if _slug_keep(c) else "-" for c in s))
    elif mode == "pretty":
        s = re.sub(r"-+", "-", "".join(
            c if (_slug_keep(c) or c in "._~!$&'()+,;=@") else "-" for c in s))
    elif mode == "ascii":
        s = re.sub(r"[^A-Za-z0-9]+", "-", s)
    elif mode == "raw":
        s = _JS_WS_RUN.sub("-", s)
    if mode in ("default", "latin", "pretty", "ascii", "raw"):
        s = re.sub(r"^-|-$", "", s)
    return s if js_truthy(_l_plain(cased)) else s.lower()


def _f_append(v: Any, arg: Any = UNDEFINED) -> str:
    return _l_str(v) + _l_str(arg)


def _f_prepend(v: Any, arg: Any = UNDEFINED) -> str:
    return _l_str(arg) + _l_str(v)


def _f_sha256(v: Any) -> str:
    return hashlib.sha256(_l_str(v).encode("utf-8", "surrogatepass")).hexdigest()


def _f_hmac_sha256(v: Any, key: Any = UNDEFINED) -> str:
    return hmac.new(_l_str(key).encode("utf-8", "surrogatepass"),
                    _l_str(v).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}


def _f_escape(v: Any) -> str:
    return re.sub(r"""[&<>"']""", lambda m: _ESCAPES[m.group(0)], _l_str(v))


def _f_escape_once(v: Any) -> str:
    return _f_escape(re.sub(r"&(amp|lt|gt|#34|#39);", lambda m: _UNESCAPES[m.group(0)], _l_str(v)))


def _f_sample(v: Any, count: Any = 1) -> Any:
    items = js_utf16_units(v) if isinstance(v, str) else list(_to_array(v))
    random.shuffle(items)
    n = int(_to_number(count))
    if n == 1:
        return items[0] if items else UNDEFINED
    return items[:max(n, 0)]


def _f_identity(v: Any, *_a: Any) -> Any:
    return v


# --- dates: LiquidJS's parseDate + strftime, in UTC ---------------------------------------

_ISO_DATE = re.compile(r"([+-][0-9]{6}|[0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")
_ISO_DATETIME = re.compile(
    r"([+-][0-9]{6}|[0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:[.,]([0-9]+))?)?\s*(Z|z|[+-][0-9]{2}:?[0-9]{2})?"
)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]


def _parse_js_date_string(s: str) -> _dt.datetime | None:
    m = _ISO_DATE.fullmatch(s)
    if m:
        try:
            return _dt.datetime(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1),
                                tzinfo=_dt.UTC)
        except ValueError:
            return None
    m = _ISO_DATETIME.fullmatch(s.strip())
    if m:
        y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
        sec = int(m.group(6) or 0)
        frac = (m.group(7) or "0")[:3].ljust(3, "0")
        zone = m.group(8)
        tz = _dt.UTC
        if zone and zone not in ("Z", "z"):
            zz = zone.replace(":", "")
            off = int(zz[1:3]) * 60 + int(zz[3:5])
            tz = _dt.timezone(_dt.timedelta(minutes=off if zz[0] == "+" else -off))
        try:
            if h == 24 and mi == 0 and sec == 0:
                base = _dt.datetime(y, mo, d, 0, 0, 0, tzinfo=tz) + _dt.timedelta(days=1)
                return base
            return _dt.datetime(y, mo, d, h, mi, sec, int(frac) * 1000, tzinfo=tz)
        except ValueError:
            return None
    try:
        from email.utils import parsedate_to_datetime
        parsed = parsedate_to_datetime(s)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.UTC)
    except (TypeError, ValueError, IndexError):
        pass
    if not any(c.isdigit() for c in s):
        return None
    try:
        from dateutil import parser as _du
        guessed: _dt.datetime = _du.parse(s)
        return guessed if guessed.tzinfo else guessed.replace(tzinfo=_dt.UTC)
    except (ValueError, OverflowError, TypeError, ImportError):
        return None


def _parse_liquid_date(v: Any) -> _dt.datetime | None:
    v = _l_plain(v)
    if v is None or v is UNDEFINED:
        return None
    try:
        if v == "now" or v == "today":
            return _dt.datetime.now(_dt.UTC)
        if type(v) in (int, float):
            return _EPOCH + _dt.timedelta(milliseconds=round(float(v) * 1000))
        if type(v) is bool:
            return _EPOCH + _dt.timedelta(milliseconds=int(v))
        if type(v) is str:
            if v.isdigit() and v.isascii():
                return _EPOCH + _dt.timedelta(milliseconds=int(v) * 1000)
            return _parse_js_date_string(v)
    except (OverflowError, ValueError):
        return None
    return None


_STRFTIME_RE = re.compile(r"%([-_0^#:]+)?(\d+)?([EO])?(.)")
_PAD_WIDTHS = {"C": 2, "d": 2, "e": 2, "H": 2, "I": 2, "j": 3, "k": 2, "l": 2, "L": 3, "m": 2,
               "M": 2, "S": 2, "U": 2, "W": 2, "y": 2, "Y": 4}
_PAD_SPACE = set("aAbBceklpP")


def _week_of_year(d: _dt.datetime, start_day: int) -> str:
    js_day = (d.weekday() + 1) % 7
    since = (js_day - start_day + 7) % 7
    return str((d.timetuple().tm_yday - 1 - since + 7) // 7)


def _strftime(d: _dt.datetime, real: _dt.datetime, offset_min: int, zone_name: str,
              fmt: str) -> str:
    """LiquidJS strftime on the display date `d` (naive), UTC offset `offset_min` (minutes
    east), real instant `real`."""

    def tz_offset(colon: bool) -> str:
        n = abs(offset_min)
        return ("-" if offset_min < 0 else "+") + f"{n // 60:02d}" + (":" if colon else "") + \
            f"{n % 60:02d}"

    def convert(c: str, flags: set[str], width: str | None) -> str | None:
        hour12 = str(d.hour % 12 or 12)
        js_day = (d.weekday() + 1) % 7
        table: dict[str, Callable[[], str]] = {
            "a": lambda: _DAYS[d.weekday()][:3], "A": lambda: _DAYS[d.weekday()],
            "b": lambda: _MONTHS[d.month - 1][:3], "h": lambda: _MONTHS[d.month - 1][:3],
            "B": lambda: _MONTHS[d.month - 1],
            "c": lambda: f"{d.month}/{d.day}/{d.year}, {hour12}:{d.minute:02d}:{d.second:02d} "
                         f"{'AM' if d.hour < 12 else 'PM'}",
            "C": lambda: str(d.year // 100), "d": lambda: str(d.day), "e": lambda: str(d.day),
            "H": lambda: str(d.hour), "I": lambda: hour12, "j": lambda: str(d.timetuple().tm_yday),
            "k": lambda: str(d.hour), "l": lambda: hour12, "L": lambda: str(d.microsecond // 1000),
            "m": lambda: str(d.month), "M": lambda: str(d.minute),
            "N": lambda: f"{d.microsecond // 1000:03d}"[: (int(width) if width else 9)].ljust(
                int(width) if width else 9, "0"),
            "p": lambda: "AM" if d.hour < 12 else "PM", "P": lambda: "am" if d.hour < 12 else "pm",
            "q": lambda: "th" if d.day in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(
                d.day % 10, "th"),
            "s": lambda: str(math.floor((real - _EPOCH).total_seconds())),
            "S": lambda: str(d.second), "u": lambda: str(js_day or 7),
            "U": lambda: _week_of_year(d, 0), "w": lambda: str(js_day),
            "W": lambda: _week_of_year(d, 1),
            "x": lambda: f"{d.month}/{d.day}/{d.year}",
            "X": lambda: f"{hour12}:{d.minute:02d}:{d.second:02d} {'AM' if d.hour < 12 else 'PM'}",
            "y": lambda: str(d.year % 100), "Y": lambda: str(d.year),
            "z": lambda: tz_offset(":" in flags), "Z": lambda: zone_name or tz_offset(":" in flags),
            "t": lambda: "\t", "n": lambda: "\n", "%": lambda: "%",
        }
        f = table.get(c)
        return None if f is None else f()

    def one(m: re.Match[str]) -> str:
        flag_str, width, _mod, c = m.groups()
        flags = set(flag_str or "")
        ret = convert(c, flags, width)
        if ret is None:
            return m.group(0)
        pad_char = " " if c in _PAD_SPACE else "0"
        pad_width = int(width) if width and int(width) else _PAD_WIDTHS.get(c, 0)
        if "^" in flags:
            ret = ret.upper()
        elif "#" in flags:
            ret = ret.upper() if any("a" <= ch <= "z" for ch in ret) else ret.lower()
        if "_" in flags:
            pad_char = " "
        elif "0" in flags:
            pad_char = "0"
        if "-" in flags:
            pad_width = 0
        if pad_char == "0" and ret.startswith("-"):
            return "-" + ret[1:].rjust(pad_width - 1, pad_char)
        return ret.rjust(pad_width, pad_char)

    return _STRFTIME_RE.sub(one, fmt)


_DEFAULT_DATE_FORMAT = "%A, %B %-e, %Y at %-l:%M %P %z"


def _liquid_date(v: Any, fmt: Any = None, tz: Any = UNDEFINED, _default: str | None = None) -> Any:
    real = _parse_liquid_date(v)
    if real is None or not (1 <= real.year <= 9999):
        return v
    offset_min, zone_name = 0, "UTC"
    tzv = _l_plain(tz)
    if type(tzv) in (int, float):
        offset_min, zone_name = -int(tzv), ""
    elif type(tzv) is str and tzv:
        try:
            from zoneinfo import ZoneInfo
            off = real.astimezone(ZoneInfo(tzv)).utcoffset()
            if off is not None:
                offset_min, zone_name = int(off.total_seconds() // 60), tzv
        except Exception:  # unknown zone: LiquidJS falls back to the host zone
            pass
    try:
        display = (real.astimezone(_dt.UTC) + _dt.timedelta(minutes=offset_min)).replace(
            tzinfo=None)
    except OverflowError:
        return v
    fmt = _default or (_DEFAULT_DATE_FORMAT if _l_nil(fmt) else _l_str(fmt))
    return _strftime(display, real, offset_min, zone_name, fmt)


def _f_date_to_xmlschema(v: Any) -> Any:
    return _liquid_date(v, _default="%Y-%m-%dT%H:%M:%S%:z")


def _f_date_to_rfc822(v: Any) -> Any:
    return _liquid_date(v, _default="%a, %d %b %Y %H:%M:%S %z")


def _stringify_date(v: Any, month: str, kind: Any, style: Any) -> Any:
    real = _parse_liquid_date(v)
    if real is None:
        return v
    if kind == "ordinal":
        d = real.astimezone(_dt.UTC).day
        fmt = f"{month} {d}%q, %Y" if style == "US" else f"{d}%q {month} %Y"
        return _liquid_date(v, _default=fmt)
    return _liquid_date(v, _default=f"%d {month} %Y")


def _f_date_to_string(v: Any, kind: Any = None, style: Any = None) -> Any:
    return _stringify_date(v, "%b", kind, style)


def _f_date_to_long_string(v: Any, kind: Any = None, style: Any = None) -> Any:
    return _stringify_date(v, "%B", kind, style)


# --- environment ----------------------------------------------------------------------------

class _LiquidJSError(_LiquidSyntaxError):
    """An error whose message LiquidJS suffixes with `, line:L, col:C`."""


class _DisabledFilterError(_LiquidFilterArgumentError):
    pass


class _JSOutputNode(_LiquidOutputNode):
    __slots__ = ()

    def render_to_output(self, context: Any, buffer: Any) -> int:
        written: int = buffer.write(_l_str(self.expression.evaluate(context)))
        return written


class _JSOutput(_LiquidOutput):
    node_class = _JSOutputNode


class _JSEchoNode(_LiquidEchoNode):
    __slots__ = ()

    def render_to_output(self, context: Any, buffer: Any) -> int:
        written: int = buffer.write(_l_str(self.expression.evaluate(context)))
        return written


class _JSEcho(_LiquidEchoTag):
    node_class = _JSEchoNode


def _disabled_tag(tag_name: str) -> type:
    class DisabledTag(_LiquidTag):
        name = tag_name
        block = False

        def parse(self, stream: Any) -> Any:
            raise _LiquidJSError(f'tag "{tag_name}" is disabled', token=stream.current)
    return DisabledTag


def _disabled_filter(filter_name: str) -> Callable[..., Any]:
    def disabled(*_args: Any, **_kwargs: Any) -> Any:
        raise _DisabledFilterError(f'filter "{filter_name}" is disabled', token=None)
    return disabled


class _SegmentLiquidEnvironment(_LiquidEnvironment):
    suppress_blank_control_flow_blocks = False  # LiquidJS renders whitespace-only blocks
    string_sequences = True  # LiquidJS indexes strings: `s[0]`
    string_first_and_last = True  # LiquidJS: `s.first`, `s | first`


def _make_liquid_environment() -> _LiquidEnvironment:
    env = _SegmentLiquidEnvironment(tolerance=_LiquidMode.STRICT, strict_filters=False)
    env.add_tag(_JSOutput)
    env.add_tag(_JSEcho)
    for name in ("base64_url_safe_decode", "base64_url_safe_encode", "escapejs", "safe"):
        env.filters.pop(name, None)  # not LiquidJS filters: LiquidJS ignores unknown filters
    js_math: dict[str, Callable[..., Any]] = {
        "abs": _math_filter(abs),
        "at_least": _math_filter(lambda *a: max(a) if all(x == x for x in a) else math.nan),
        "at_most": _math_filter(lambda *a: min(a) if all(x == x for x in a) else math.nan),
        "ceil": _math_filter(lambda x, *_: float(math.ceil(x)) if math.isfinite(x) else x),
        "floor": _math_filter(lambda x, *_: float(math.floor(x)) if math.isfinite(x) else x),
        "minus": _math_filter(lambda a, b=0.0, *_: a - b),
        "plus": _math_filter(lambda a, b=0.0, *_: a + b),
        "times": _math_filter(lambda a, b=0.0, *_: a * b),
        "modulo": _math_filter(lambda a, b=0.0, *_: _js_mod(_js_mod(a, b) + b, b)),
        "divided_by": _f_divided_by,
        "round": _f_round,
    }
    extra: dict[str, Callable[..., Any]] = {
        "join": _f_join, "size": _f_size, "sum": _f_sum, "append": _f_append, "prepend": _f_prepend,
        "json": _f_json, "jsonify": _f_json, "inspect": _f_json, "to_integer": _f_to_integer,
        "push": _f_push, "pop": _f_pop, "shift": _f_shift, "unshift": _f_unshift,
        "normalize_whitespace": _f_normalize_whitespace, "number_of_words": _f_number_of_words,
        "escape": _f_escape, "xml_escape": _f_escape, "escape_once": _f_escape_once,
        "sample": _f_sample, "cgi_escape": _f_cgi_escape,
        "uri_escape": _f_uri_escape, "url_encode": _f_url_encode, "slugify": _f_slugify,
        "sha256": _f_sha256, "hmac_sha256": _f_hmac_sha256, "raw": _f_identity,
        "date": _liquid_date, "date_to_xmlschema": _f_date_to_xmlschema,
        "date_to_rfc822": _f_date_to_rfc822, "date_to_string": _f_date_to_string,
        "date_to_long_string": _f_date_to_long_string,
    }
    for name, fn in {**js_math, **extra}.items():
        env.add_filter(name, fn)
    for name in DISABLED_LIQUID_TAGS:
        env.add_tag(_disabled_tag(name))
    for name in DISABLED_LIQUID_FILTERS:
        env.add_filter(name, _disabled_filter(name))
    return env


_LIQUID_ENV = _make_liquid_environment()


def _line_col(source: str, index: int) -> tuple[int, int]:
    line = source.count("\n", 0, index) + 1
    col = index - (source.rfind("\n", 0, index) + 1) + 1
    return line, col


def _markup_starts(source: str) -> list[int]:
    """Where each `{{ ... }}` and `{% ... %}` of `source` starts."""
    starts = []
    for token in _LIQUID_ENV.tokenizer()(source):
        if token.kind == _TOKEN_OUTPUT:
            starts.append(token.start_index)
        elif token.kind == _TOKEN_TAG:
            starts.append(max(source.rfind("{%", 0, token.start_index), 0))
    return starts


_UNKNOWN_TAG = re.compile(r"unexpected tag '(.+)'")


def _liquid_message(err: Exception, source: str) -> str:
    if not isinstance(err, _LiquidError):
        return str(err)
    message = str(err.message)
    token = err.token
    unknown = _UNKNOWN_TAG.fullmatch(message)
    if unknown is not None and isinstance(err, _LiquidSyntaxError):
        message = f'tag "{unknown.group(1)}" not found'
    if (unknown is not None or isinstance(err, (_LiquidJSError, _DisabledFilterError))) \
            and token is not None \
            and token.start_index >= 0:
        # LiquidJS reports the position of the markup (`{{` / `{%`) that holds the error.
        try:
            starts = [s for s in _markup_starts(source) if s <= token.start_index]
        except _LiquidError:
            starts = []
        index = starts[-1] if starts else token.start_index
        line, col = _line_col(source, index)
        return f"{message}, line:{line}, col:{col}"
    return message


def liquid_syntax_error(source: str) -> str | None:
    """Why a template cannot be parsed (the message an event would get), or None: the config
    loader asks, so that `validate` fails on a broken template instead of every event."""
    try:
        _LIQUID_ENV.from_string(source)
    except _LiquidError as e:
        return _liquid_message(e, source)
    return None


def liquid_compile(source: str) -> Resolver:
    try:
        template = _LIQUID_ENV.from_string(source)
    except _LiquidError as e:
        return raiser(_liquid_message(e, source))

    def render_liquid(p: Any) -> str:
        try:
            return template.render(p if type(p) is dict else {})
        except _LiquidError as e:
            raise MappingError(_liquid_message(e, source)) from None
        except (TypeError, ValueError, ArithmeticError, RecursionError) as e:
            raise MappingError(str(e)) from None
    return render_liquid


def liquid_filter_names() -> frozenset[str]:
    """The filters Segment's LiquidJS has (a template may use no other: LiquidJS would ignore it)."""
    return frozenset(_LIQUID_ENV.filters)


def liquid_filters_used(source: str) -> list[str]:
    """The filters a template uses, in order (none when it cannot be parsed: that is said elsewhere)."""
    try:
        return list(_LIQUID_ENV.from_string(source).analyze().filters)
    except _LiquidError:
        return []
