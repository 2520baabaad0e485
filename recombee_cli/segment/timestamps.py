"""Timestamp conversion exactly as Segment's Recombee destination does it (`datetimeToEpochSeconds`).

Numbers: >= 1e10 are milliseconds, else seconds, negatives refused. Strings: JS `Number()` first,
then a date string; a string with no zone designator gets `Z` appended (so it is UTC). The
string forms accepted are those V8's `new Date()` accepts for ISO-like input, including its
quirks (a trailing `-01` in a date-only string counts as an offset; `+02` alone is refused;
`2024-02-30` rolls over to 1 March). Results are epoch seconds with at most millisecond precision.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from recombee_cli.errors import PayloadInvalid
from recombee_cli.segment.jsvalues import js_to_number

try:   # compiled, Cython's directives; else decorators that do nothing
    import cython  # type: ignore[import-not-found, unused-ignore]
except ImportError:
    from recombee_cli import pure as cython  # type: ignore[no-redef, unused-ignore]

# [0-9], not \d: Python's \d (and int()) also read Arabic-Indic and full-width digits.
_HAS_ZONE = re.compile(r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)\Z")
_DATE = re.compile(
    r"\s*(?P<y>[+-][0-9]{6}|[0-9]{4})-(?P<mo>[0-9]{1,2})-(?P<d>[0-9]{1,2})"
    r"(?:[T ](?P<h>[0-9]{1,2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]+))?)?)?"
    r"\s*(?P<z>[Zz]|[+-][0-9]{2}:?[0-9]{2})?\s*\Z"
)
_DATE_ONLY_WITH_FAKE_OFFSET = re.compile(r"\s*(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})\s*\Z")

_DAYS_IN_MONTH_MAX = 31
# A JavaScript Date holds at most 8.64e15 ms either side of 1970 (ECMA-262 "TimeClip"): beyond it
# `new Date()` is an Invalid Date, which Segment reports as an invalid timestamp.
_JS_DATE_LIMIT_SECONDS = 8.64e12
# Our own limit (a deliberate difference, docs/behaviour.md): no event happens after 9999-12-31, and
# Recombee's timestamps are ISO 8601 (four-digit years) or epoch seconds.
AFTER_YEAR_9999 = 253402300800


def _normalise(seconds: float) -> float | int:
    """Epoch seconds as JSON will print them: integral values without `.0`."""
    if seconds == int(seconds):
        return int(seconds)
    return seconds


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date, for any year (V8's MakeDay; Python's
    datetime, and so calendar.timegm, stops at the years 1 and 9999)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _parse_date_string(text: str) -> float | None:
    """Epoch seconds for the ISO-like strings V8 accepts once a missing zone became `Z`."""
    if not _HAS_ZONE.search(text):
        text = text + "Z"
    elif _DATE_ONLY_WITH_FAKE_OFFSET.match(text):
        # "2024-03-01": the "-01" looked like an offset so no Z was added, but V8 reads a
        # date-only ISO string as UTC midnight anyway.
        text = text.strip() + "Z"
    m = _DATE.match(text)
    if not m:
        return None
    year = int(m["y"])
    month, day = int(m["mo"]), int(m["d"])
    hour = int(m["h"] or 0)
    minute = int(m["mi"] or 0)
    second = int(m["s"] or 0)
    if not (1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH_MAX and hour <= 24
            and minute <= 59 and second <= 59):
        return None
    if hour == 24 and (minute or second or (m["f"] and int(m["f"]))):
        return None
    millis = int((m["f"] or "0")[:3].ljust(3, "0"))
    zone = m["z"] or "Z"
    offset_minutes = 0
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset_minutes = sign * (int(digits[:2]) * 60 + int(digits[2:4]))
    if m["y"] == "-000000":
        return None   # ECMA-262: "-000000" is not a year
    # Day overflow (Feb 30 -> Mar 1) is what V8 does for ISO dates: count from the month's first day.
    base = _days_from_civil(year, month, 1) * 86400
    total_ms = ((base + (day - 1) * 86400 + hour * 3600 + minute * 60 + second
                 - offset_minutes * 60) * 1000 + millis)
    seconds = total_ms / 1000
    if abs(seconds) > _JS_DATE_LIMIT_SECONDS:
        return None   # an Invalid Date in JavaScript
    return seconds


_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()


_HOUR_MILLIS: dict[str, int | None] = {}   # "2024-03-01T12" -> epoch ms of that hour (None: invalid)
_HOUR_CACHE_LIMIT = 1 << 16                # an hour per entry: about 7 years of history
# The hour _fast_canonical found last, as (its 13 characters, epoch ms): checked first, without
# cutting the text or hashing it. Before the first, a text longer than any it reads: none starts so.
_LAST_HOUR: tuple[str, int] = ("\x00" * 30, 0)


def _hour_millis(prefix: str) -> int | None:
    try:
        moment = datetime.fromisoformat(prefix + ":00:00")
    except ValueError:
        return None   # e.g. 2024-02-30, which V8 rolls over: the general parser handles it
    return ((moment.toordinal() - _EPOCH_ORDINAL) * 86400 + moment.hour * 3600) * 1000


@cython.boundscheck(False)   # (every index read is below the length checked first)
@cython.wraparound(False)
def _fast_canonical(text: str) -> float | int | None:
    """Segment's own format, `2024-03-01T12:00:00.123Z` (or `+00:00`): nearly every timestamp in
    an archive looks like this. The shape is checked, the hour looked up in a cache (an archive
    has few distinct hours per million events) and minutes, seconds and milliseconds added as
    integers, as V8 does. Every other form (and every V8 quirk) goes through the general parser.
    The digits are read one by one (typed as C integers in the compiled build: timestamps.pxd)."""
    n = len(text)
    if n == 24:
        if text[23] != "Z":
            return None
    elif n != 29 or text[23:] != "+00:00":
        return None
    if text[13] != ":" or text[16] != ":" or text[19] != ".":
        return None
    m1, m2, s1, s2 = ord(text[14]) - 48, ord(text[15]) - 48, ord(text[17]) - 48, ord(text[18]) - 48
    f1, f2, f3 = ord(text[20]) - 48, ord(text[21]) - 48, ord(text[22]) - 48
    # ASCII digits only (Python's isdigit() also takes other scripts' digits), minutes and seconds <= 59
    if not (0 <= m1 <= 5 and 0 <= m2 <= 9 and 0 <= s1 <= 5 and 0 <= s2 <= 9
            and 0 <= f1 <= 9 and 0 <= f2 <= 9 and 0 <= f3 <= 9):
        return None
    last = _LAST_HOUR
    if text.startswith(last[0]):   # the hour of the call before (an archive's events come hour by hour)
        base = last[1]
    else:
        prefix = text[:13]
        found = _HOUR_MILLIS.get(prefix, -1)
        if found == -1:
            found = _learn_hour(prefix)
        if found is None:
            return None
        base = found
        _remember_hour(prefix, base)
    offset = ((m1 * 10 + m2) * 60 + s1 * 10 + s2) * 1000
    millis = f1 * 100 + f2 * 10 + f3
    if millis:
        return (base + offset + millis) / 1000
    return (base + offset) // 1000


def _remember_hour(prefix: str, base: int) -> None:
    global _LAST_HOUR
    _LAST_HOUR = (prefix, base)   # one tuple: read whole by a thread that reads it at any moment


def _learn_hour(prefix: str) -> int | None:
    digits = prefix[:4] + prefix[5:7] + prefix[8:10] + prefix[11:13]
    if prefix[10] != "T" or prefix[4] != "-" or prefix[7] != "-" or not (digits.isascii() and digits.isdigit()):
        return None
    base = _hour_millis(prefix)
    if base is not None and base < 0:
        base = None   # before 1970: the general parser refuses it with the reason
    if len(_HOUR_MILLIS) < _HOUR_CACHE_LIMIT:
        _HOUR_MILLIS[prefix] = base
    return base


def to_epoch_seconds(value: Any) -> float | int:
    """Segment's `datetimeToEpochSeconds`; raises PayloadInvalid with Segment's message."""
    if type(value) is str:
        fast = _fast_canonical(value)
        if fast is not None:
            return fast
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PayloadInvalid(f"Invalid timestamp provided: {value}")
    number = js_to_number(value) if value != "" else math.nan
    if not math.isnan(number):
        if number < 0:
            raise PayloadInvalid("Timestamp cannot be negative.")
        if math.isinf(number):
            raise PayloadInvalid(f"Invalid timestamp provided: {value}")
        if number >= 1e10:
            number = number / 1000
        if number >= AFTER_YEAR_9999:
            raise PayloadInvalid(f"Timestamp is after the year 9999: {value}")
        return _normalise(number)
    seconds = _parse_date_string(value) if isinstance(value, str) else None
    if seconds is None:
        raise PayloadInvalid(f"Invalid timestamp provided: {value}")
    if seconds < 0:
        # Segment passes a date before 1970 on (Date.parse); Recombee refuses a negative time
        # (400), so it is caught here, with Segment's own message for negative numbers.
        raise PayloadInvalid(f"Timestamp cannot be negative: {value} is before 1970.")
    if seconds >= AFTER_YEAR_9999:
        raise PayloadInvalid(f"Timestamp is after the year 9999: {value}")
    return _normalise(seconds)


def try_epoch_seconds(value: Any) -> float | int | None:
    """Like to_epoch_seconds, but None instead of an error (for the fallback chain)."""
    try:
        return to_epoch_seconds(value)
    except PayloadInvalid:
        return None


def first_epoch_seconds(event: dict[str, Any], keys: tuple[str, ...]) -> float | int | None:
    """Epoch seconds of the first of `keys` in the event that holds a usable timestamp."""
    for key in keys:
        value = event.get(key)
        if value is not None:
            seconds = try_epoch_seconds(value)
            if seconds is not None:
                return seconds
    return None


fast_canonical = _fast_canonical  # for the pipeline's compiled fast path (mapping/fastpath.py)
