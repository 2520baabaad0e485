"""The compiled mapping functions (fastpath.py) against the interpreter they replace on the hot
path: the same requests, or the same first error with the same message, event by event."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import orjson
import pytest
from helpers import DATA, MISTAKES, SAMPLES, load_json
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recombee_cli.errors import MappingError, PayloadInvalid
from recombee_cli.mapping import mapcore
from recombee_cli.mapping.compile import compile_mapping
from recombee_cli.mapping.config import MappingSpec
from recombee_cli.mapping.fastpath import program_function, source_function, written_function
from recombee_cli.segment.actions import is_valid_id, recombee_id_rule
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.segment.presets import PRESETS


def _outcome(fn, event):
    """What a user sees: the requests as printed (key order matters), or the error."""
    try:   # (mapcore.run_written gives an add-type request as its bytes already)
        return "requests", [r if type(r) is bytes else orjson.dumps(r, default=orjson_default) for r in fn(event)]
    except (PayloadInvalid, MappingError) as exc:
        return type(exc).__name__, str(exc)


def _reference(mapping):
    return lambda event: mapping.action.build(mapping.prepare(event), event)


# Both fast paths, whichever the build runs: the generated source (the pure build's) and the
# program run by mapcore (the compiled build's; pure Python here under RECOMBEE_CLI_PURE=1).
# "written": the program run by mapcore.run_written, as a replay that only prints or sends bytes runs it.
FAST_PATHS = {"source": source_function, "program": program_function,
              "written": lambda mapping: written_function(mapping, program_function(mapping))}


def test_a_replay_runs_the_fast_path_of_its_build():
    mapping = _preset_mappings()[0]
    expected = "program" if mapcore.COMPILED else "source"
    assert (hasattr(mapping.run, "source") and not hasattr(mapping.run, "func")) == (expected == "source")
    assert mapcore.COMPILED == (not mapcore.__file__.endswith(".py"))


def _preset_mappings():
    return [compile_mapping(MappingSpec(p.name, p.trigger, p.action, p.mapping(), "preset"))
            for p in PRESETS]


def _objects(lines):
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:   # the dirty files hold broken lines on purpose
            continue
        if isinstance(value, dict):
            yield value


def _corpus():
    events = []
    for name in ("segment-export-20k.ndjson.gz", "segment-export-dirty-20k.ndjson.gz"):
        with gzip.open(DATA / name, "rb") as f:
            events += _objects(f)
    vectors = load_json("destination.json")
    events += [case["event"] for key in ("unit_test_replays", "preset_vectors") for case in vectors[key]]
    for path in sorted(SAMPLES.glob("*.ndjson")) + sorted(MISTAKES.glob("*.ndjson")):
        events += _objects(path.read_bytes().splitlines())
    return events


@pytest.mark.parametrize("fast", FAST_PATHS)
def test_presets_agree_with_the_interpreter_on_every_event_we_have(fast):
    mappings = _preset_mappings()
    runs = [FAST_PATHS[fast](mapping) for mapping in mappings]
    events = _corpus()
    assert len(events) > 35_000
    compared = 0
    for i, event in enumerate(events):
        for mapping, run in zip(mappings, runs):
            # every matching mapping, and every mapping on a slice: the function must not rely
            # on its trigger (an event of another type is just another shape)
            if i % 20 == 0 or mapping.trigger.matches(event):
                assert _outcome(run, event) == _outcome(_reference(mapping), event), \
                    (mapping.name, event)
                compared += 1
    assert compared > 50_000


@pytest.mark.parametrize("fast", FAST_PATHS)
def test_every_preset_is_compiled_and_resolves_common_events_without_the_interpreter(fast):
    """A normal event is resolved by the inlined lookups: resolvers that explode prove it; an
    event whose `properties` is not an object takes the resolvers' path and still agrees."""
    event = {"type": "track", "event": "Product Viewed", "userId": "u1", "name": "home",
             "timestamp": "2024-03-01T12:00:00.000Z",
             "properties": {"product_id": "p1", "content_asset_id": "v1", "total_length": 10,
                            "position": 5, "products": [{"product_id": "p2"}], "price": 3}}

    def explode(_event):
        raise AssertionError("the interpreter's resolver was called")

    for mapping in _preset_mappings():
        assert "def run(event)" in source_function(mapping).source
        if mapping.action.slug == "addPurchase" and fast == "source":   # the source leaves @arrayPath to its resolver
            continue
        spied = SimpleNamespace(name=mapping.name, action=mapping.action, spec=mapping.spec,
                                prepare=mapping.prepare,
                                resolvers=tuple((name, explode) for name, _ in mapping.resolvers))
        assert _outcome(FAST_PATHS[fast](spied), event) == _outcome(_reference(mapping), event)
        odd = dict(event, properties=["not", "an", "object"])
        assert _outcome(FAST_PATHS[fast](mapping), odd) == _outcome(_reference(mapping), odd)


# --- custom mappings over generated events -----------------------------------------------------

_CUSTOM = [
    ("addRating", {
        "userId": {"@if": {"exists": {"@path": "$.context.traits.id"}, "then": {"@path": "$.context.traits.id"},
                           "else": {"@path": "$.userId"}}},
        "itemId": {"@path": "$.properties.item.id"},
        "rating": {"@path": "$.properties.rating"},
        "timestamp": {"@path": "$.properties.when"},
        "recommId": "constant-recomm",
        "additionalData": {"source": {"@path": "$.properties.source"}, "fixed": 1, "none": None,
                           "2": {"@literal": "two"},
                           "nested": {"deep": {"@path": "$.properties.item.id"}, "k": "v"},
                           "pick": {"@if": {"exists": {"@path": "$.properties.a.b"},
                                            "then": {"@path": "$.properties.a.b"},
                                            "else": {"@path": "$.properties.source"}}}},
    }),
    ("setViewPortion", {
        "userId": {"@path": "$.properties.items[0]"},
        "itemId": {"@template": "{{properties.source}}"},          # not inlined: its resolver
        "portion": {"@literal": 0.5},
        "sessionId": {"@path": "$.properties.session"},
        "internalAdditionalData": {"constant": {"a": 1, "1": 2}},  # an object without directives
    }),
    ("addCartAddition", {
        "userId": {"@path": "$.userId"},
        "item": {"itemId": {"@path": "$.properties.item.id"}, "amount": {"@path": "$.properties.rating"},
                 "price": {"@path": "$.properties.price"}},
        "additionalData": {"@path": "$.properties.a"},
    }),
    ("deleteBookmark", {
        "userId": {"@path": "$.userId"},
        "itemId": {"@case": {"operator": "lower", "value": {"@path": "$.properties.source"}}},
        "timestamp": {"@path": "$.properties.when"},
    }),
    ("addDetailView", {
        "userId": {"@path": "$.userId"},
        "itemId": {"@path": "$.properties.item.id"},
        "duration": {"@path": "$.properties.price"},
    }),
    ("addPurchase", {   # no timestamp mapped: the event's own clock fields, unless nothing is sent
        "userId": {"@path": "$.userId"},
        "items": {"@arrayPath": ["$.properties.lines", {"itemId": {"@path": "$.id"}, "amount": {"@path": "$.b"},
                                                        "price": {"@path": "$.x"}, "profit": 1}]},
    }),
    ("addBookmark", {   # a path of no keys is the whole event (it once broke compiling: IndexError)
        "userId": {"@path": "$.userId"},
        "itemId": {"@path": "$.properties.source"},
        "additionalData": {"@path": ".."},
    }),
    ("setViewPortionFromWatchTime", {
        "userId": {"@path": "$.userId"},
        "itemId": {"@path": "$.properties.source"},
        "portion": {"totalLength": {"@path": "$.properties.price"}, "watchTime": {"@path": "$.properties.rating"}},
        "sessionId": {"@path": "$.properties.session"},
        "timestamp": {"@path": "$.properties.when"},
    }),
]

_SCALAR = st.one_of(
    st.sampled_from(["", "p-1", "u_2", "has space", "0", "1e3", "0.5", "-1", "2024-03-01T12:00:00.000Z",
                     "2024-02-30T00:00:00.000Z", "yesterday"]),
    st.integers(-3, 3), st.sampled_from([0.25, 1.5, -0.5, 1.7e12]), st.booleans(), st.none())
_VALUE = st.recursive(_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(["id", "b", "x"]), inner, max_size=2)),
    max_leaves=4)


def _maybe(key, value):
    return st.one_of(st.just({}), st.builds(lambda v: {key: v}, value))


def _merge(*parts):
    out = {}
    for part in parts:
        out.update(part)
    return out


_LINES = st.lists(st.dictionaries(st.sampled_from(["id", "b", "x"]), _SCALAR, max_size=3), max_size=3)
_PROPERTIES = st.builds(_merge, _maybe("lines", _LINES), *[_maybe(k, _VALUE) for k in
                                  ("item", "rating", "when", "source", "a", "items", "session", "price", "lines")])
_EVENTS = st.builds(
    _merge,
    _maybe("userId", _VALUE), _maybe("timestamp", _SCALAR), _maybe("originalTimestamp", _SCALAR),
    _maybe("context", st.one_of(_VALUE, st.builds(lambda v: {"traits": {"id": v}}, _VALUE))),
    _maybe("properties", st.one_of(_PROPERTIES, _VALUE)),
    st.just({"type": "track", "event": "Anything"}))

_CUSTOM_MAPPINGS = [compile_mapping(MappingSpec(f"custom {i}", 'type = "track"', action, fields, "test"))
                    for i, (action, fields) in enumerate(_CUSTOM)]
_CUSTOM_PROGRAMS = [program_function(mapping) for mapping in _CUSTOM_MAPPINGS]
_CUSTOM_WRITTEN = [written_function(mapping, program) for mapping, program in zip(_CUSTOM_MAPPINGS, _CUSTOM_PROGRAMS)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_EVENTS)
@example({"type": "track", "event": "Anything", "userId": "u1", "properties": {"lines": []}})  # no clock, nothing to send
@example({"type": "track", "event": "Anything", "userId": "u1", "properties": {"price": 0, "rating": 1}})
def test_custom_mappings_agree_with_the_interpreter_on_any_event_shape(event):
    for mapping, program, written in zip(_CUSTOM_MAPPINGS, _CUSTOM_PROGRAMS, _CUSTOM_WRITTEN):
        expected = _outcome(_reference(mapping), event)
        assert _outcome(source_function(mapping), event) == expected, mapping.spec.fields
        assert _outcome(program, event) == expected, mapping.spec.fields
        assert _outcome(written, event) == expected, mapping.spec.fields


def test_custom_mappings_produce_requests_for_a_well_formed_event():
    """So that the property test above compares requests, not only errors."""
    event = {"type": "track", "event": "Anything", "userId": "u1", "timestamp": "2024-03-01T12:00:00.000Z",
             "originalTimestamp": "2024-03-01T11:59:59.500Z",
             "properties": {"item": {"id": "p1"}, "rating": 0.5, "source": "Web", "session": "s-1",
                            "items": ["u2"], "lines": [{"id": "u2", "b": 2, "x": 1.5}, {"id": "u3"}],
                            "when": "2024-03-01T12:00:01.000Z", "a": {"b": "x"}, "price": 2}}
    for mapping in _CUSTOM_MAPPINGS:
        for fast in FAST_PATHS.values():
            kind, requests = _outcome(fast(mapping), event)
            assert kind == "requests" and requests, (mapping.name, requests)
            assert requests == _outcome(_reference(mapping), event)[1]


# --- plans: triggers decided once per (event, type) --------------------------------------------

_TRIGGERS = ['type = "track" and event = "Order Completed"', 'type = "page"', 'event = "A" or event = "B"',
             'type != "track"', 'event exists', 'type = "track" and !(event = "A")', 'event contains "Prod"',
             'type = "track" and properties.x = 1', 'name = "Home"', 'event = "A" or type = "page"',
             'event = "A" and properties.x > 0', 'type = "page" or properties.x = "A"', 'properties.x exists',
             'type = "track" and (event = "B" or properties.x != "A")']
_PLAN_MAPPINGS = [compile_mapping(MappingSpec(f"t{i}", trigger, "addDetailView",
                                              {"userId": {"@path": "$.userId"}, "itemId": {"@path": "$.name"}},
                                              "test"))
                  for i, trigger in enumerate(_TRIGGERS)]
_KEY_VALUE = st.one_of(st.none(), st.integers(0, 1), st.booleans(), st.just(["A"]),
                       st.sampled_from(["track", "page", "A", "B", "Order Completed", "Product Viewed", ""]))


@pytest.mark.parametrize("programs", [False, True], ids=["closures", "programs"])
@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "event", "name"]), _KEY_VALUE),
       st.dictionaries(st.sampled_from(["x"]), _KEY_VALUE))
def test_a_cached_plan_runs_exactly_the_mappings_whose_trigger_matches(programs, event, properties):
    """With the triggers' closures, or their programs (segment/trigger_programs.py: the compiled
    build's), the key decided in them."""
    from recombee_cli.mapping.translate import Translator
    from recombee_cli.segment.trigger_programs import select

    event = dict(event, properties=properties)
    translator = Translator(_PLAN_MAPPINGS)
    translator.programs = programs
    for _ in range(2):   # the second time from the cache
        steps, selector = translator.plan(event)
        if selector is not None:
            steps = select(selector, event)
        ran = [translator.names[p] for p, matches, _run in steps
               if matches is None or matches(event)]
        assert ran == [m.name for m in _PLAN_MAPPINGS if m.trigger.matches(event)]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(max_codepoint=0x7f), st.sampled_from("\u0665\uff21é\u212a\n")),
               max_size=12))
@example("")
@example("a-b_c:d@e.f")
def test_the_compiled_id_check_is_the_id_pattern(value):
    """The character loop the compiled build checks IDs with accepts exactly what actions.ID_PATTERN
    accepts (an ID Recombee refuses would fail the whole Batch)."""
    assert mapcore.id_chars_ok(value) == bool(is_valid_id(value))


# --- requests written as bytes (mapcore.run_written) -------------------------------------------


def test_an_add_type_request_is_written_as_orjsons_bytes_without_its_dicts():
    """What a dry run prints of a view: compiled, the program writes the bytes (pure Python builds
    the dicts), and they are orjson's bytes of the dict run_program builds. A cart addition, whose
    items make their own parameters, is left to its dicts."""
    event = {"type": "track", "event": "Product Viewed", "userId": "u1", "timestamp": "2024-03-01T12:00:00.123Z",
             "properties": {"product_id": "p1", "price": 3.5, "quantity": 2}}
    by_name = {mapping.name: mapping for mapping in _preset_mappings()}
    for name, added, as_bytes in (("Ecommerce - Product Viewed", "Product Viewed", mapcore.COMPILED),
                                  ("Ecommerce - Product Added", "Product Added", False)):
        mapping = by_name[name]
        event = dict(event, event=added)
        written = written_function(mapping, program_function(mapping))(event)
        assert written and [type(r) is bytes for r in written] == [as_bytes] * len(written)
        assert _outcome(lambda _: written, event) == ("requests", [orjson.dumps(r) for r in program_function(mapping)(event)])


_TEXT = st.text(st.characters(codec="utf-8"), max_size=6) | st.sampled_from(['a"b', "a\\b", "\x00", "\x7f", "é", "\u2028"])


# Mappings whose requests the C writer writes whole (flat additionalData, no items of their own),
# with numbers of the event in them: a rating, a portion and additionalData's members.
_FLAT = [compile_mapping(MappingSpec(f"flat {i}", 'type = "track"', action, fields, "test")) for i, (action, fields) in
         enumerate([("addRating", {"userId": {"@path": "$.userId"}, "itemId": {"@path": "$.properties.item.id"},
                                   "rating": {"@path": "$.properties.rating"}, "timestamp": {"@path": "$.properties.when"},
                                   "recommId": {"@path": "$.properties.recomm_id"},
                                   "additionalData": {"n": {"@path": "$.properties.price"}, "s": {"@path": "$.userId"},
                                                      "b": True, "z": None, "i": 7}}),
                    ("setViewPortion", {"userId": {"@path": "$.userId"}, "itemId": {"@path": "$.properties.source"},
                                        "portion": {"@path": "$.properties.rating"},
                                        "sessionId": {"@path": "$.properties.session"},
                                        "timestamp": {"@path": "$.properties.when"},
                                        "internalAdditionalData": {"q": {"@path": "$.properties.quantity"}}})])]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXT, _TEXT, _TEXT,
       st.sampled_from([0, 1.5, -0.0, 1e300, 1e-05, 1e16, 5e-324, 2 ** 63 - 1, -2 ** 63, 2 ** 64, "2", True, None])
       | st.floats(allow_nan=False, allow_infinity=False) | st.integers(),
       st.sampled_from(["2024-03-01T12:00:00.000Z", "2024-03-01T12:00:00.1Z"]) | st.floats(0, 4e12) | st.integers(0, 4e12))
@example("u1", "p1", "s1", 1.5, 1709251203.619)
@example("u1", "p1", "s1", 1e-05, "2024-03-01T12:00:00.000Z")   # orjson: 1e-5, Python's repr: 1e-05
def test_written_requests_are_orjsons_bytes_for_ids_of_any_text(user, item, session, number, stamp):
    """With Recombee's ID rule off (a file export), an ID may hold any character: quotes,
    backslashes, control characters, non-ASCII, all of which orjson escapes or writes its way; a
    number of any size (orjson's digits, with or without an exponent) and a timestamp of any
    form; a number orjson refuses (past 64 bits) fails as it does without run_written."""
    event = {"type": "track", "event": "Product Added", "userId": user, "timestamp": stamp,
             "properties": {"product_id": item, "sku": item, "price": number, "quantity": number, "session": session,
                            "item": {"id": item}, "source": item, "rating": number, "recomm_id": session,
                            "products": [{"product_id": item, "price": number}], "when": stamp,
                            "lines": [{"id": item, "b": number, "x": number}], "total_length": 2, "position": number},
             "originalTimestamp": "2024-03-01T12:00:00.000Z"}
    mappings = _preset_mappings() + _CUSTOM_MAPPINGS + _FLAT
    with recombee_id_rule(False):
        for mapping in mappings:
            written = written_function(mapping, program_function(mapping))
            for shape in (event, dict(event, event="Product Viewed"), dict(event, event="Order Completed")):
                try:
                    expected = _outcome(_reference(mapping), shape)
                except TypeError as exc:   # orjson refuses a number: so must the written path's caller
                    with pytest.raises(TypeError):
                        _outcome(written, shape)
                    assert "64-bit" in str(exc)
                    continue
                assert _outcome(written, shape) == expected, (mapping.name, shape)


def test_the_flat_mappings_are_written_by_the_program():
    """So that the property test above compares the writer's bytes, not only dicts."""
    event = {"type": "track", "userId": "u1", "properties": {"item": {"id": "p1"}, "rating": 0.5, "price": 1e-05,
                                                            "when": "2024-03-01T12:00:00.000Z", "source": "p1",
                                                            "quantity": 2, "session": "s1"}}
    for mapping in _FLAT:
        written = written_function(mapping, program_function(mapping))(event)
        assert [type(r) for r in written] == [bytes if mapcore.COMPILED else dict]


def test_the_writer_writes_floats_with_orjsons_digits():
    """A float's digits, written by the C writer where it can (mapcore_float) and by orjson where
    not, against orjson's: random doubles of every magnitude, timestamps to the millisecond and
    the microsecond, prices to the cent, and the edges of the writer's own range."""
    import random
    import struct

    draw = random.Random(28)
    floats = [1e-4, 9.999e-5, 1e15, 999999999999999.9, 0.1, 0.3, 2.675, 1.005, -0.0, 0.0, 5e-324, 1e-05,
              4503599627370495.5, 1709251203.619, 1709251203.0, -1709251203.5, 123456.000001, 1e-4 + 1e-19]
    while len(floats) < 6000:
        value = struct.unpack("<d", struct.pack("<Q", draw.getrandbits(64)))[0]
        if value == value and abs(value) != float("inf"):
            floats.append(value)
    floats += [draw.randrange(10 ** 12, 2 * 10 ** 12) / 1000 for _ in range(4000)]
    floats += [draw.randrange(10 ** 15, 2 * 10 ** 15) / 10 ** 6 for _ in range(2000)]
    floats += [draw.randrange(0, 10 ** 6) / 100 for _ in range(2000)]
    floats += [draw.uniform(-1e6, 1e6) for _ in range(2000)]
    mapping = _FLAT[0]
    written, reference = written_function(mapping, program_function(mapping)), _reference(mapping)
    event = {"type": "track", "userId": "u1", "properties": {"item": {"id": "p1"}, "rating": 0.5,
                                                            "when": "2024-03-01T12:00:00.000Z"}}
    for value in floats:
        shaped = dict(event, properties=dict(event["properties"], price=value))
        got = written(shaped)
        assert [type(r) for r in got] == [bytes if mapcore.COMPILED else dict]
        assert _outcome(lambda _: got, shaped) == _outcome(reference, shaped), value
