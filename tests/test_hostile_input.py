"""One bad line never stops a run: whatever a line holds (a timestamp out of every calendar, a
number beyond 64 bits, an ID that is a path's dot segment, a Liquid template fed odd values, a
file of nothing but newlines), it ends in an outcome with its reason, the lines around it are
printed, and the run finishes with the documented exit code. Every parser of the hot path is
fuzzed through the command line, in whichever build runs (the compiled one in CI, and the pure
one with RECOMBEE_CLI_PURE=1)."""

from __future__ import annotations

import json
import math

import orjson
import pytest
from helpers import invoke, ndjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recombee_cli.errors import PayloadInvalid
from recombee_cli.segment.timestamps import to_epoch_seconds

VIEW = {"type": "track", "event": "Product Viewed", "userId": "u1", "properties": {"product_id": "p1"}}
GOOD = "2024-03-01T12:00:00.000Z"


def _replay(tmp_path, events, *extra):
    """A dry run of `events` (dicts, or lines as text) from a file, with rejects and a report."""
    path = tmp_path / "in.ndjson"
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    rejects, report = tmp_path / "rejects.ndjson", tmp_path / "report.json"
    result = invoke(["replay", "--dry-run", "--rejects", str(rejects), "--report", str(report), *extra, str(path)])
    assert "Traceback" not in result.stderr
    return (result, ndjson(result.stdout), json.loads(report.read_text()),
            ndjson(rejects.read_text()) if rejects.exists() else [])


# -- timestamps ------------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("stamp, reason", [
    ("0000-01-01T00:00:00Z", "is before 1970"),
    ("0000-01-01", "is before 1970"),
    ("-000001-01-01T00:00:00Z", "is before 1970"),
    ("+010000-01-01T00:00:00Z", "after the year 9999"),
    ("+275760-09-13T00:00:00Z", "after the year 9999"),      # JavaScript's last valid Date
    ("+275760-09-13T00:00:00.001Z", "Invalid timestamp"),    # and one millisecond past it
    (1e300, "after the year 9999"),                          # milliseconds, as Segment reads numbers
])
def test_a_timestamp_out_of_every_calendar_is_one_invalid_event_and_the_run_goes_on(tmp_path, stamp, reason,
                                                                                      workers):
    events = [dict(VIEW, timestamp=GOOD), dict(VIEW, timestamp=stamp), dict(VIEW, timestamp="2024-03-02")]
    result, requests, report, rejects = _replay(tmp_path, events, "--workers", workers)
    assert result.exit_code == 1, result.stderr
    assert [r["params"]["timestamp"] for r in requests] == [1709294400, 1709337600]
    assert report["outcomes"]["invalid"] == 1 and report["outcomes"]["sent"] == 2
    assert len(rejects) == 1 and rejects[0]["line"] == 2 and reason in rejects[0]["reason"]


def test_the_last_millisecond_of_9999_is_a_time_and_the_next_is_not():
    assert to_epoch_seconds("9999-12-31T23:59:59.999Z") == 253402300799.999
    with pytest.raises(PayloadInvalid, match="after the year 9999"):
        to_epoch_seconds("+010000-01-01T00:00:00.000Z")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5)


@st.composite
def date_texts(draw):
    """ISO-like texts with years, months, days and zones of every size, V8's extended years included."""
    year = draw(st.sampled_from([0, 1, 1969, 1970, 2024, 9999, 10000, 275760, 275761, -1, -271821])
                | st.integers(-999_999, 999_999))
    text = draw(st.sampled_from([f"{year:04d}" if 0 <= year <= 9999 else f"{'+' if year >= 0 else '-'}{abs(year):06d}",
                                 f"+{abs(year):06d}", f"-{abs(year):06d}"]))
    text += f"-{draw(st.integers(0, 13)):02d}-{draw(st.integers(0, 32)):02d}"
    if draw(st.booleans()):
        text += (f"T{draw(st.integers(0, 25)):02d}:{draw(st.integers(0, 60)):02d}:{draw(st.integers(0, 60)):02d}"
                 + draw(st.sampled_from(["", ".0", ".999", ".123456789"])))
    return text + draw(st.sampled_from(["", "Z", "z", "+00:00", "-23:59", "+2359", "+14", " "]))


YEAR_10000 = 253402300800   # 10000-01-01T00:00:00Z as epoch seconds: a timestamp value, not a duration

@settings(max_examples=1000, deadline=None)
@given(date_texts() | JSON_VALUES | st.from_regex(r"\A\s*[+-]?[0-9]*\.?[0-9]*(e[+-]?[0-9]{1,4})?\s*\Z"))
def test_a_timestamp_is_a_time_recombee_can_store_or_a_reason(value):
    try:
        epoch = to_epoch_seconds(value)   # a point in time (a value), not a duration
    except PayloadInvalid:
        return
    assert isinstance(epoch, (int, float)) and math.isfinite(epoch) and 0 <= epoch < YEAR_10000
    orjson.dumps(epoch)   # a request can carry it


# -- numbers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("properties, price", [
    ({"price": "1e20"}, 1e20),                                             # a numeric string: AJV's coercion
    ({"price": 18446744073709551615, "quantity": 3}, 18446744073709551615 * 3.0),   # price x amount
    ({"price": -9223372036854775808, "quantity": "2"}, -9223372036854775808 * 2.0),
    ({"price": 9007199254740993, "quantity": 1}, 9007199254740993),        # an int orjson can write stays one
])
def test_a_number_beyond_64_bits_is_sent_as_the_number_it_is(tmp_path, properties, price):
    event = {"type": "track", "event": "Product Added", "userId": "u1", "timestamp": GOOD,
             "properties": {"product_id": "p1", **properties}}
    result, requests, report, _ = _replay(tmp_path, [event, dict(VIEW, timestamp=GOOD)])
    assert result.exit_code == 0, result.stderr
    assert len(requests) == 2 and requests[0]["params"]["price"] == price


# -- IDs -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("event", [
    dict(VIEW, timestamp=GOOD, userId="."),
    dict(VIEW, timestamp=GOOD, userId=".."),
    dict(VIEW, timestamp=GOOD, properties={"product_id": ".."}),
    {"type": "alias", "userId": "..", "previousId": "anon-1", "timestamp": GOOD},     # /users/../merge/anon-1
])
def test_dot_segments_are_no_recombee_ids(tmp_path, event):
    result, requests, report, rejects = _replay(tmp_path, [event, dict(VIEW, timestamp=GOOD, userId="...")])
    assert result.exit_code == 1, result.stderr
    assert [r["params"]["userId"] for r in requests] == ["..."]   # three dots are an ID like any other
    assert "is not a usable Recombee ID" in rejects[0]["reason"]


# -- every parser, fuzzed through the command line ----------------------------------------------------

LIQUID_FILTERS = ["date: '%Y-%m-%d %H %z %j %U %s'", "date_to_xmlschema", "date_to_rfc822", "date_to_long_string",
                  "round: properties.b", "times: properties.b", "divided_by: properties.b", "modulo: properties.b",
                  "plus: properties.b", "abs", "ceil", "at_least: properties.b", "to_integer", "size", "sum",
                  "join: properties.b", "json", "slugify", "url_encode", "escape_once", "sha256", "number_of_words",
                  "split: properties.b", "truncate: properties.b", "slice: properties.b, 2", "default: properties.b",
                  "sample: properties.b", "append: properties.b", "date: properties.b", "first", "times: 1e308"]
DIRECTIVES = ['{ "@json" = { value = { "@path" = "$.properties.a" }, mode = "decode" } }',
              '{ "@template" = "{{properties.a}}-{{properties.b}}" }',
              '{ "@replace" = { value = { "@path" = "$.properties.a" }, pattern = "1", replacement = "x" } }',
              '{ "@case" = { value = { "@path" = "$.properties.a" }, operator = "lower" } }',
              '{ "@flatten" = { value = { "@path" = "$.properties.a" }, separator = "." } }',
              '{ "@arrayPath" = [{ "@path" = "$.properties.a" }, { x = { "@path" = "$.y" } }] }']
FIELDS = [("setItemValues", "values"), ("addDetailView", "duration"), ("addRating", "rating"),
          ("setViewPortion", "portion"), ("addDetailView", "itemId"), ("addDetailView", "timestamp"),
          ("mergeUsers", "sourceUserId"), ("addCartAddition", "item")]


@pytest.fixture(scope="module")
def fuzz_config(tmp_path_factory):
    """Segment's presets, the opt-in ones (users' and items' values), a mapping per Liquid filter
    and one per directive and field, all triggered by one event name."""
    out = ['[replay]', 'presets = true', 'enable_presets = ["Identify - User Traits", "Ecommerce - Item Properties"]', '']
    mappings = [("setItemValues", "values", '{ v = { "@liquid" = ' + json.dumps("{{ properties.a | " + f + " }}") + " } }")
                for f in LIQUID_FILTERS]
    mappings += [(action, field, f"{{ v = {d} }}" if field == "values" else d) for d in DIRECTIVES for action, field in FIELDS]
    for n, (action, field, value) in enumerate(mappings):
        out += ["[[mappings]]", f'name = "fuzz {n}"', "trigger = 'type = \"track\" and event = \"Fuzz\"'",
                f'action = "{action}"', "[mappings.fields]"]
        if action not in ("addCartAddition", "mergeUsers") and field != "itemId":
            out.append('itemId = "x"')
        out += [f"{field} = {value}", ""]
    out += ["[user_properties]", 'createdAt = "timestamp"', 'age = "int"',
            "[item_properties]", 'price = "double"', 'when = "timestamp"', 'count = "int"']
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.toml"
    path.write_text("\n".join(out) + "\n")
    assert invoke(["validate", "--config", str(path)]).exit_code == 0
    return path


EDGE_NUMBERS = st.sampled_from([2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, -2**63, -2**63 - 1, 10**30, 1e308,
                                -1e308, 5e-324, 1e20, -0.0, "1e20", "1e308", "1e309", "-0", "0x1F", "1e-400",
                                "9007199254740993", "18446744073709551616", " 7 ", "1_000", "\u0665", "Infinity"])
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=12) | date_texts() | EDGE_NUMBERS
           | st.sampled_from([".", "..", "", " ", "a/b", "../x", "now", "a" * 70_000]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(["a", "b", "x", "y", "price", "1"]), inner, max_size=3),
                      max_leaves=6)
TOP = ["timestamp", "originalTimestamp", "receivedAt", "sentAt", "userId", "anonymousId", "previousId", "event",
       "type", "name", "properties", "traits", "context", "messageId"]
INNER = ["a", "b", "product_id", "sku", "price", "quantity", "rating", "position", "total_length", "watch_time",
         "products", "timestamp", "session_id", "order_id", "content_asset_id", "name", "image_url", "createdAt",
         "age", "when", "count", "email"]
SHAPES = [dict(VIEW, timestamp=GOOD), {"type": "track", "event": "Fuzz", "userId": "u", "timestamp": GOOD,
                                       "properties": {"a": 1, "b": 2}},
          {"type": "track", "event": "Order Completed", "userId": "u", "timestamp": GOOD,
           "properties": {"products": [{"product_id": "p", "price": 2, "quantity": 3}]}},
          {"type": "track", "event": "Product Added", "userId": "u", "timestamp": GOOD,
           "properties": {"product_id": "p", "price": 2, "quantity": 3}},
          {"type": "identify", "userId": "u", "timestamp": GOOD, "traits": {"age": 3, "createdAt": GOOD}},
          {"type": "alias", "userId": "u", "previousId": "a", "timestamp": GOOD},
          {"type": "track", "event": "Video Content Playing", "userId": "u", "timestamp": GOOD,
           "properties": {"content_asset_id": "v", "position": 5, "total_length": 10}}]


@st.composite
def hostile_events(draw):
    event = json.loads(json.dumps(draw(st.sampled_from(SHAPES))))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "time", "inner", "inner"]))
        if where == "time":
            event[draw(st.sampled_from(TOP[:4]))] = draw(date_texts() | EDGE_NUMBERS | st.floats(allow_nan=False,
                                                                                                allow_infinity=False))
        elif where == "top":
            event[draw(st.sampled_from(TOP))] = draw(VALUES)
        else:
            key = draw(st.sampled_from(["properties", "traits"]))
            if not isinstance(event.get(key), dict):
                event[key] = {}
            event[key][draw(st.sampled_from(INNER))] = draw(VALUES | EDGE_NUMBERS)
    return event


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(hostile_events(), min_size=1, max_size=20))
@example([{"type": "track", "event": "Product Viewed", "userId": "u1", "properties": {"product_id": "p1"},
           "timestamp": "\x85"}])   # (a reason that quotes U+0085: str.splitlines cuts there, JSON lines do not)
def test_whatever_an_event_holds_it_ends_in_an_outcome(fuzz_config, events):
    """Timestamps, numbers, IDs, Liquid and property values of every kind, through the whole
    pipeline: the run ends with 0 or 1, never an exception, and the counts add up."""
    text = "".join(json.dumps(e) + "\n" for e in events)   # (json writes ints past 64 bits: orjson reads them)
    result = invoke(["replay", "--dry-run", "--quiet", "--config", str(fuzz_config), "--log-format", "json", "-"],
                    input=text)
    assert result.exit_code in (0, 1), result.stderr[-3000:]
    summary = [json.loads(line) for line in result.stderr.split("\n") if '"summary"' in line]
    if summary:   # (--quiet says nothing when every event was fine)
        report = summary[-1]["report"]
        assert sum(report["outcomes"].values()) == report["events"] == len(events)


# -- blank lines -----------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", ["1", "2"])
def test_newlines_by_the_million_are_skipped_as_runs_not_cut_into_lines(tmp_path, monkeypatch, workers):
    """A file of newlines (3 million here; a 2 GB "newline bomb" in the wild) is read at the speed
    of a search for each run's end: the runs are never cut into lines one by one, and the events
    between them keep their line numbers and byte offsets."""
    import recombee_cli.sources.formats.ndjson as ndjson_format

    cut: list[int] = []
    real = ndjson_format.cut_lines
    monkeypatch.setattr(ndjson_format, "cut_lines", lambda data: cut.append(data.count(b"\n") + 1) or real(data))
    first, bad, last = (orjson.dumps(dict(VIEW, timestamp=GOOD)), orjson.dumps(dict(VIEW, timestamp="0000-01-01")),
                        orjson.dumps(dict(VIEW, timestamp="2024-03-02")))
    body = first + b"\n" * 3_000_000 + bad + b"\r\n" * 200_000 + b"\n" + last + b"\n" * 5000 + b"\r\n\n"
    path = tmp_path / "bomb.ndjson"
    path.write_bytes(body)
    rejects, report = tmp_path / "rejects.ndjson", tmp_path / "report.json"
    result = invoke(["replay", "--dry-run", "--workers", workers, "--rejects", str(rejects), "--report", str(report),
                     str(path)])
    assert result.exit_code == 1, result.stderr
    assert [r["params"]["timestamp"] for r in ndjson(result.stdout)] == [1709294400, 1709337600]
    rejected = ndjson(rejects.read_text())
    assert [(r["line"], r["offset"]) for r in rejected] == [(3_000_001, len(first) + 3_000_000)]
    figures = json.loads(report.read_text())
    assert figures["lines"] == 3 and figures["events"] == 3
    if workers == "1":   # (the workers cut their own byte ranges, in their own processes)
        assert sum(cut) < 20_000, f"{sum(cut):,} lines cut"
