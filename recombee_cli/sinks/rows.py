"""Which rows a request becomes, apart from how they are written: a file format's columns, the
rules its contract gives each (length in UTF-16 code units, required, drop or trim, allowed and
forbidden values, what a double or a time may be), and `RowFormat`, the interface of a format.

A row is a tuple of checked values in column order: a `str`, a `float`, a `bool`, a UTC
`datetime` to the millisecond, or None (empty: the contract's default). How those values are
spelled in a file is an encoder's (`sinks.protocol.Encoder`; CSV in `sinks.encoders.csv`). The text
forms below (`format_double`, `format_datetime`, `BOOL_TEXT`) are how the contract's own sample
data writes a value as text; a text encoding uses them, a typed one (Parquet) need not.

No click, no rich: the command line wires this; tests and other programs can use it directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from recombee_cli.segment.jsvalues import js_string, js_utf16_len
from recombee_cli.sinks.protocol import Encoder

Row = tuple[Any, ...]   # checked values in column order (None: empty)
EventLookup = Callable[[], "dict[str, Any] | None"]


class Refused(Exception):
    """A value breaks its column's rule and the rule says "drop entry": the row is not written."""


class NotRepresentable(Exception):
    """The request has no row in this format (a merge of two users, say)."""


# ---------------------------------------------------------------------------------------------
# Values: what a double and a time may be, and their text forms

def check_double(value: Any, name: str = "value") -> float:
    """A finite double (an int is taken as the double it is closest to); else Refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused(f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise Refused(f"{name} is out of the double range") from None
    if not math.isfinite(number):
        raise Refused(f"{name} is not a finite number")
    return number


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_datetime(seconds: Any, name: str = "TimeStamp") -> datetime:
    """Epoch seconds -> the UTC moment, rounded to the millisecond (the contract's precision);
    Refused when it is no time or outside the years 1-9999."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise Refused(f"{name} is not a time")
    try:
        return _EPOCH + timedelta(milliseconds=round(seconds * 1000))
    except OverflowError:
        raise Refused(f"{name} is outside the years 1-9999") from None


def double_text(number: float) -> str:
    """Shortest round-trip decimal, always with a point, never an exponent: 2.0, 0.0000001. Any
    culture-invariant parser reads it."""
    text = repr(number)
    if "e" in text:
        text = format(Decimal(text), "f")
        if "." not in text:
            text += ".0"
    return text


def datetime_text(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2024-03-01T06:42:07.728Z (the contract's samples)."""
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
            f"{moment.second:02d}.{moment.microsecond // 1000:03d}Z")


def bool_text(value: bool) -> str:
    """True / False, as the contract's samples write them."""
    return "True" if value else "False"


def format_double(value: Any, name: str = "value") -> str:
    """A number checked as a double and written as text: 2 -> 2.0, 1e-7 -> 0.0000001."""
    return double_text(check_double(value, name))


def format_datetime(seconds: Any, name: str = "TimeStamp") -> str:
    """Epoch seconds -> ISO 8601 UTC with milliseconds, e.g. 2024-03-01T06:42:07.728Z."""
    return datetime_text(check_datetime(seconds, name))


# The text of a checked value of each kind (a string is its own text).
TEXT_FORMS: dict[str, Callable[[Any], str] | None] = {
    "string": None, "double": double_text, "datetime": datetime_text, "bool": bool_text}


def trim_utf16(text: str, units: int) -> str:
    """The longest prefix of `text` of at most `units` UTF-16 code units (no pair split)."""
    if text.isascii():
        return text[:units]
    out, used = [], 0
    for char in text:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > units:
            break
        out.append(char)
        used += size
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Columns and their rules

@dataclass(frozen=True)
class Column:
    """One column of a contract: its type, its length limit, and what an invalid value does.

    kind: "string" (length counted in UTF-16 code units, as .NET and JavaScript count), "double",
    "datetime" (epoch seconds in, a UTC datetime to the millisecond out) or "bool".
    on_invalid: "drop" (the whole row is refused) or "trim" (a too-long string is cut)."""

    name: str
    kind: str = "string"
    max_length: int | None = None
    required: bool = False
    on_invalid: str = "drop"
    allowed: tuple[str, ...] = ()     # the only values accepted (besides empty)
    forbidden: tuple[str, ...] = ()   # values the consumer fails on

    def value(self, value: Any) -> Any:
        """The column's checked value for `value` (None or "" is None, empty: the contract's
        default applies). Raises Refused when the rule drops the entry."""
        if value is None or value == "":
            if self.required:
                raise Refused(f"{self.name} is empty but required")
            return None
        kind = self.kind
        if kind == "string":
            return self._string(value)
        if kind == "double":
            return check_double(value, self.name)
        if kind == "datetime":
            return check_datetime(value, self.name)
        if kind == "bool":
            if type(value) is not bool:
                raise Refused(f"{self.name} is not a boolean")
            return value
        raise AssertionError(kind)

    def cell(self, value: Any) -> str:
        """The checked value as text ("" for empty), in the text forms above."""
        checked = self.value(value)
        if checked is None:
            return ""
        text_of = TEXT_FORMS[self.kind]
        return checked if text_of is None else text_of(checked)

    def _string(self, value: Any) -> str:
        if isinstance(value, str):
            text = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            text = js_string(value)
        else:
            raise Refused(f"{self.name} is not a string")
        limit = self.max_length
        if limit is not None and len(text) * 2 > limit:   # (within the limit whatever it holds otherwise)
            length = js_utf16_len(text)
            if length > limit:
                if self.on_invalid != "trim":
                    raise Refused(f"{self.name} is longer than {limit} characters ({length})")
                text = trim_utf16(text, limit)
        if self.allowed and text not in self.allowed:
            raise Refused(f"{self.name} {text[:40]!r} is not one of {', '.join(self.allowed)}")
        if text in self.forbidden:
            raise Refused(f"{self.name} {text!r} is not allowed (the consumer fails on it)")
        return text


# ---------------------------------------------------------------------------------------------
# Formats

class RowFormat:
    """A file format's rows: the columns in file order, the tables (one folder each), and how a
    request becomes a row. A new format is a subclass with its columns and `convert`; every
    column rule is shared, and how the rows are written is an encoder's (`encoding`, the one it
    is written with unless an export is given another)."""

    name: str = ""                     # the --format value
    entity: str = ""                   # what the contract calls the data (named in reasons)
    columns: tuple[Column, ...] = ()
    tables: tuple[str, ...] = ()
    entity_folder: str = ""            # the parts go in <table>/<entity_folder>/ ("": in <table>/)
    recombee_ids: bool = True          # False: the contract's rules only, not Recombee's ID rule
    encoding: Callable[[RowFormat], Encoder]   # how it is written unless told otherwise (an encoder class)

    def __init__(self, *, anonymous_ids: bool = False):
        # True: an event with no userId keeps its anonymousId as the row's user (for formats
        # whose contract has a way to say "anonymous", which is otherwise used)
        self.anonymous_ids = anonymous_ids
        self._checks = tuple((column.name, column.value) for column in self.columns)
        self._own: Encoder | None = None

    def convert(self, request: dict[str, Any], event: EventLookup) -> tuple[str, dict[str, Any]]:
        """(table, {column name: value}) for one Recombee request; `event()` gives the Segment
        event it came from, decoded only when called. Raises Refused or NotRepresentable."""
        raise NotImplementedError

    def check(self, values: dict[str, Any]) -> Row:
        """Every column's rule applied: the row's values in column order. Raises Refused."""
        get = values.get
        return tuple([check(get(name)) for name, check in self._checks])

    def values(self, request: dict[str, Any], event: EventLookup) -> tuple[str, Row]:
        """(table, row) for one request: `convert`, then `check`."""
        table, values = self.convert(request, event)
        return table, self.check(values)

    def table_description(self, table: str) -> str:
        """What a table holds, in words (an encoder may describe the table's files with it)."""
        return f"{self.entity} ({table})"

    def describe(self, written: dict[str, Any]) -> dict[str, Any]:
        """What the manifest says about the files: the format, its columns, how they are
        written (`written`: the encoder's `describe()`), then the format's own settings."""
        return {"format": self.name, "entity": self.entity, "columns": [c.name for c in self.columns], **written}

    # -- in the format's own encoding (a shortcut for tests and scripts; an export uses its encoder)

    def encode(self, values: dict[str, Any]) -> bytes:
        """One row in the format's own encoding, every column's rule applied."""
        if self._own is None:
            self._own = self.encoding(self)
        return self._own.encode(self.check(values))

    def row(self, request: dict[str, Any], event: EventLookup) -> tuple[str, bytes]:
        table, values = self.convert(request, event)
        return table, self.encode(values)
