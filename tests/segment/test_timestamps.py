"""Timestamp conversion: the table Segment's destination produced on Node 20 (destination-behaviour.md §2.3)."""

import subprocess
import sys

import pytest

from recombee_cli.errors import PayloadInvalid
from recombee_cli.segment.timestamps import to_epoch_seconds

SEGMENT_TABLE = [
    ("2021-09-01T00:00:00.000Z", 1630454400),
    ("2024-03-01T14:00:00+02:00", 1709294400),
    ("2024-03-01T12:00:00", 1709294400),
    ("2024-03-01 12:00:00", 1709294400),
    ("2024-03-01T12:00", 1709294400),
    ("2024-03-01T12:00:00.123Z", 1709294400.123),
    ("2024-03-01T12:00:00.123456Z", 1709294400.123),
    ("2024-03-01T12:00:00z", 1709294400),
    ("2024-03-01T12:00:00+0200", 1709287200),
    ("2024-03-01", 1709251200),
    ("2024-02-30T00:00:00Z", 1709251200),
    (1630454000000, 1630454000),
    ("1709294400000", 1709294400),
    (1630454000.5, 1630454000.5),
    ("1709294400", 1709294400),
    (" 1709294400 ", 1709294400),
    (9999999999, 9999999999),
    (10000000000, 10000000),
    (0, 0),
    ("0", 0),
]

SEGMENT_ERRORS = [
    ("2024-03-01T12:00:00+02", "Invalid timestamp provided: 2024-03-01T12:00:00+02"),
    ("Fri, 01 Mar 2024 12:00:00 GMT", "Invalid timestamp provided: Fri, 01 Mar 2024 12:00:00 GMT"),
    ("2024-13-01T00:00:00Z", "Invalid timestamp provided: 2024-13-01T00:00:00Z"),
    (-5, "Timestamp cannot be negative."),
    ("yesterday", "Invalid timestamp provided: yesterday"),
    ("", "Invalid timestamp provided: "),
]


@pytest.mark.parametrize("value,expected", SEGMENT_TABLE, ids=repr)
def test_converts_like_segment(value, expected):
    result = to_epoch_seconds(value)
    assert result == expected
    assert isinstance(result, int) == isinstance(expected, int)  # integral values print without .0


@pytest.mark.parametrize("value,message", SEGMENT_ERRORS, ids=repr)
def test_refuses_like_segment(value, message):
    with pytest.raises(PayloadInvalid) as info:
        to_epoch_seconds(value)
    assert str(info.value) == message


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from recombee_cli.segment.timestamps import _fast_canonical, _normalise, _parse_date_string  # noqa: E402


@given(st.datetimes(min_value=__import__("datetime").datetime(1970, 1, 1),
                    max_value=__import__("datetime").datetime(2200, 12, 31)),
       st.sampled_from(["Z", "+00:00"]))
def test_fast_path_for_segments_format_agrees_with_the_general_parser(moment, zone):
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + zone
    fast = _fast_canonical(text)
    assert fast is not None
    slow = _normalise(_parse_date_string(text))
    assert fast == slow and type(fast) is type(slow)


def test_fast_path_leaves_quirky_forms_to_the_general_parser():
    assert _fast_canonical("2024-02-30T00:00:00.000Z") is None       # V8 rolls over; fromisoformat refuses
    assert to_epoch_seconds("2024-02-30T00:00:00.000Z") == 1709251200


@given(st.datetimes(min_value=__import__("datetime").datetime(1970, 1, 1),
                    max_value=__import__("datetime").datetime(2200, 12, 31)),
       st.lists(st.tuples(st.integers(0, 23), st.sampled_from(list("0123456789:.-TZ +_٣"))), max_size=2),
       st.booleans())
def test_fast_path_never_disagrees_on_near_canonical_strings(moment, changes, offset_zone):
    """Segment's format with a character or two changed: the fast path either declines or gives
    the general parser's answer (the hour cache included: hypothesis repeats prefixes)."""
    chars = list(moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z")
    for position, char in changes:
        chars[position] = char
    text = "".join(chars)
    if offset_zone:
        text = text[:23] + "+00:00"
    fast = _fast_canonical(text)
    slow = _parse_date_string(text)
    if fast is not None:
        assert slow is not None and fast == _normalise(slow) and type(fast) is type(_normalise(slow))
    elif not changes:
        raise AssertionError(f"the fast path declined Segment's own format: {text}")


def test_fast_path_reads_digits_only_where_the_general_parser_does():
    for text in ("2024-03-01T12:0٣:00.000Z", "2024-03-01T12:00:00.+12Z", "2024-03-01T12:60:00.000Z",
                 "2024-03-01T24:00:00.000Z", "2024-03-01 12:00:00.000Z"):
        assert _fast_canonical(text) is None
    assert _fast_canonical("2024-03-01T12:34:56.789Z") == 1709296496.789
    assert _fast_canonical("2024-03-01T12:34:56.000+00:00") == 1709296496


def test_the_fast_path_takes_each_hour_as_its_own_whatever_came_before():
    """The fast path keeps the hour it found last: a timestamp of the same day, another hour,
    of the next year with the same day and hour, or of an hour seen before, gets its own."""
    texts = ["2024-03-01T10:59:59.999Z", "2024-03-01T10:00:00.000Z", "2024-03-01T11:00:00.000Z",
             "2024-03-01T01:30:00.500+00:00", "2025-03-01T01:30:00.500Z", "2024-03-01T10:15:00.000Z",
             "2024-03-02T10:15:00.000Z", "2024-03-01T10:15:00.000Z"]
    for text in texts * 2:
        assert _fast_canonical(text) == _normalise(_parse_date_string(text)), text


def test_the_first_timestamp_read_is_checked_like_any_other():
    """Before the fast path has found any hour, a text of Segment's shape whose hour is not one
    (a NUL first, where the hour it keeps has nothing yet) is still left to the general parser."""
    code = ("from recombee_cli.segment.timestamps import _fast_canonical; "
            "print(_fast_canonical('\\x00' + '024-03-01T10:00:00.000Z'), "
            "_fast_canonical('2024-03-01T10:00:00.000Z'))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.split() == ["None", "1709287200"]
