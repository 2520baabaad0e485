"""JavaScript `Number(string)` on every path that turns a string into a number.

The vectors (tests/conformance/js-number.json) are node's own answers. Segment runs JavaScript, so
a trigger's `properties.price > " 5"`, a `{{ v | plus: 1 }}`, a string timestamp and a numeric
string in a number field all read the string the way `Number()` does: only JavaScript's white
space is trimmed (U+FEFF and U+2028 are, U+001C and U+0085 are not), digits are ASCII, `0x1A`,
`0o7` and `0b11` are numbers, `1_000` and `inf` are not, and a blank string is 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from recombee_cli.errors import PayloadInvalid
from recombee_cli.segment.actions import FieldSpec, coerce_field
from recombee_cli.segment.mappingkit import resolve
from recombee_cli.segment.timestamps import AFTER_YEAR_9999, to_epoch_seconds
from recombee_cli.segment.triggers import compile_trigger

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "conformance" / "js-number.json").read_text(encoding="utf-8"))
STRINGS = [(v["input"], v["number"]) for v in VECTORS["strings"]]
IDS = [json.dumps(s) for s, _ in STRINGS]


def _shown(x: float) -> str:
    """String(x) as the vectors write it ("-0" for negative zero)."""
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    if x != x:
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    from recombee_cli.segment.jsvalues import js_number_to_string
    return js_number_to_string(x)


def test_the_vectors_cover_the_known_disagreements():
    inputs = {s for s, _ in STRINGS}
    for s in ("\ufeff5", "\x1c5", "\x855", "\u20285", "\u180e5", "0x1A", "0b11", "0o7", "1_000",
              "Infinity", "-Infinity", "inf", "nan", "", "  ", "\u0665", "\uff15"):
        assert s in inputs


@pytest.mark.parametrize(("text", "number"), STRINGS, ids=IDS)
def test_jsvalues_number_of_a_string(text, number):
    from recombee_cli.segment.jsvalues import js_string_to_number, js_to_number

    assert _shown(js_string_to_number(text)) == number
    assert _shown(js_to_number(text)) == number


@pytest.mark.parametrize(("value", "number"), [(v["input"], v["number"]) for v in VECTORS["values"]],
                         ids=[json.dumps(v["input"]) for v in VECTORS["values"]])
def test_jsvalues_number_of_other_json_values(value, number):
    from recombee_cli.segment.jsvalues import UNDEFINED, js_to_number

    assert _shown(js_to_number(value)) == number
    assert _shown(js_to_number(UNDEFINED)) == "NaN"


@pytest.mark.parametrize(("text", "number"), STRINGS, ids=IDS)
def test_trigger_compares_with_the_javascript_number(text, number):
    n = float(number)
    trigger = compile_trigger(f'properties.n >= "{text}"')
    shown = "0" if number == "-0" else number
    assert trigger.describe() == f"properties.n >= {shown}" + (" (never true)" if n != n else "")
    if n == n:
        assert trigger.matches({"properties": {"n": n}})
        assert compile_trigger(f'properties.n <= "{text}"').matches({"properties": {"n": n}})
    else:
        for event_value in (0, 5, 5.0, -1e300, math.inf):
            assert not trigger.matches({"properties": {"n": event_value}})


@pytest.mark.parametrize(("text", "number"), STRINGS, ids=IDS)
def test_liquid_filters_read_the_javascript_number(text, number):
    payload = {"properties": {"v": text}}
    n = float(number)
    shown = "0" if number == "-0" else number
    assert resolve({"@liquid": "{{ properties.v | to_integer }}"}, payload) == shown
    # LiquidJS's math filters take `+v || 0`: NaN becomes 0.
    assert resolve({"@liquid": "{{ properties.v | plus: 0 }}"}, payload) == ("0" if n != n else _shown(n + 0.0))
    assert resolve({"@liquid": "{{ properties.v | abs }}"}, payload) == ("0" if n != n else _shown(abs(n)))


@pytest.mark.parametrize(("text", "number"), STRINGS, ids=IDS)
def test_string_timestamp_is_read_as_the_javascript_number(text, number):
    n = float(number)
    if text == "" or n != n or n < 0 or math.isinf(n):
        # None of the NaN vectors is a date string, so the date parser refuses them too.
        with pytest.raises(PayloadInvalid):
            to_epoch_seconds(text)
    elif (n / 1000 if n >= 1e10 else n) >= AFTER_YEAR_9999:
        # Segment sends such a number as it is; we refuse a time after 9999 (docs/behaviour.md).
        with pytest.raises(PayloadInvalid, match="after the year 9999"):
            to_epoch_seconds(text)
    else:
        assert to_epoch_seconds(text) == (n / 1000 if n >= 1e10 else n)


@pytest.mark.parametrize(("text", "number"), STRINGS, ids=IDS)
def test_numeric_string_in_a_number_field_is_coerced_as_ajv_does(text, number):
    # AJV coerceTypes: `data && data == +data` then `+data`; integer fields also need `!(data % 1)`.
    n = float(number)
    number_field, integer_field = FieldSpec("n", "number"), FieldSpec("n", "integer")
    if text == "" or n != n or math.isinf(n):
        with pytest.raises(PayloadInvalid, match="must be number"):
            coerce_field(number_field, text)
        with pytest.raises(PayloadInvalid, match="must be integer"):
            coerce_field(integer_field, text)
        return
    assert coerce_field(number_field, text) == n
    if n == int(n):
        assert coerce_field(integer_field, text) == n
    else:
        with pytest.raises(PayloadInvalid, match="must be integer"):
            coerce_field(integer_field, text)


DATES = [(v["input"], v["date_parse"], v["date_parse_z"]) for v in VECTORS["dates"]]


@pytest.mark.parametrize(("text", "parsed", "parsed_z"), DATES, ids=[json.dumps(d[0]) for d in DATES])
def test_timestamp_digits_are_ascii_as_in_javascript(text, parsed, parsed_z):
    # Python's \d and int() read Arabic-Indic and full-width digits; JavaScript's do not.
    millis = [float(p) for p in (parsed, parsed_z) if p != "NaN"]
    if not millis:
        with pytest.raises(PayloadInvalid, match="Invalid timestamp provided"):
            to_epoch_seconds(text)
    else:
        assert to_epoch_seconds(text) == millis[0] / 1000
