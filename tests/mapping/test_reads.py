"""What a replay reads of an event (mapping/reads.py), and the translate loop decoding only that:
the same BlockResult (requests, outcomes, reasons, hours) as decoding every line whole, on every
corpus we have, with the presets and with custom mappings that read deeper."""

from __future__ import annotations

import dataclasses
import gzip
import os

import orjson
import pytest
from helpers import DATA, MISTAKES, SAMPLES, generate
from hypothesis import given, settings
from hypothesis import strategies as st

from recombee_cli.mapping.compile import compile_mapping
from recombee_cli.mapping.config import MappingSpec
from recombee_cli.mapping.filters import Deduplicator, make_filter
from recombee_cli.mapping.reads import LEAN_LEFT_OUT, LOOP_PATHS, event_reads, lean_reads, mapping_paths, reads_table
from recombee_cli.mapping.translate import PROBE_LINES, Translator, translate_block
from recombee_cli.segment.presets import PRESETS
from recombee_cli.sources import scan
from recombee_cli.sources.lines import cut_lines


def _presets():
    return [compile_mapping(MappingSpec(p.name, p.trigger, p.action, p.mapping(), "preset")) for p in PRESETS]


def _mapping(fields, trigger='type = "track"', action="addDetailView", name="custom"):
    return compile_mapping(MappingSpec(name, trigger, action, fields, "test"))


VIEW = {"userId": {"@path": "$.userId"}, "itemId": {"@path": "$.properties.item.id"}}


def test_the_presets_read_a_few_paths_and_nothing_of_context_metadata_or_integrations():
    mappings = _presets()
    assert event_reads(mappings) is not None
    paths = {path for m in mappings for path in mapping_paths(m)} | set(LOOP_PATHS)
    assert ("properties", "product_id") in paths and ("anonymousId",) in paths
    assert not {path[0] for path in paths} & {"context", "_metadata", "integrations"}


def test_a_replay_decodes_only_what_is_read_where_the_scanner_is_compiled():
    # compiled: the restricted decode is what a replay takes (the benchmark's figures depend on
    # it); pure Python: whole lines, orjson being faster than a scanner in Python
    translator = Translator(_presets())
    assert (translator.reads is not None) == scan.COMPILED
    if os.environ.get("RECOMBEE_CLI_EXPECT_COMPILED") == "1":
        assert scan.COMPILED


@pytest.mark.parametrize("fields, trigger", [
    ({"userId": {"@template": "{{userId}}"}, "itemId": {"@path": "$.name"}}, 'type = "track"'),
    ({"userId": {"@path": "$.userId"}, "itemId": {"@case": {"operator": "lower", "value": {"@path": "$.name"}}}},
     'type = "track"'),
    ({"userId": {"@path": "$.userId"}, "itemId": {"@path": "$.name"}, "additionalData": {"@path": "$."}},
     'type = "track"'),                                                          # the whole event
    ({"userId": {"@path": "$.userId"}}, 'type = "track"'),                        # itemId unmapped
])
def test_what_cannot_be_listed_decodes_whole_events(fields, trigger):
    mapping = _mapping(fields, trigger)
    assert mapping_paths(mapping) is None
    assert event_reads([*_presets(), mapping]) is None


def test_a_mappings_paths_are_its_triggers_and_its_programs():
    mapping = _mapping({"userId": {"@if": {"exists": {"@path": "$.userId"}, "then": {"@path": "$.userId"},
                                           "else": {"@path": "$.context.traits.id"}}},
                        "itemId": {"@path": "$.properties.item.id"},
                        "additionalData": {"a": {"@path": "$.properties['x y'].z"}, "b": 1}},
                       'type = "track" and context.page.path = "/a" and contains(properties.q, "x")')
    assert sorted(mapping_paths(mapping)) == sorted([
        ("type",), ("context", "page", "path"), ("properties", "q"), ("userId",), ("context", "traits", "id"),
        ("properties", "item", "id"), ("properties", "x y", "z")])


def test_a_shorter_path_reads_the_value_whole():
    table = reads_table([("properties", "a"), ("properties",), ("context", "a", "b"), ("context", "a")])
    assert scan.restrict(b'{"properties":{"z":1},"context":{"a":{"c":2},"z":3},"q":4}', table) == \
        b'{"properties":{"z":1},"context":{"a":{"c":2}}}'


# -- the translate loop: restricted and whole decodes give the same BlockResult -------------------

def _blocks():
    """Every corpus we have, as the blocks a replay translates (lines cut as the reader cuts)."""
    found = {}
    for path in sorted(DATA.glob("*.gz")):
        found[path.name] = gzip.decompress(path.read_bytes())
    for folder in (SAMPLES, MISTAKES):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                found[str(path.relative_to(folder.parent))] = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    for mix in ("browser", "server"):
        found[f"generated-{mix}"] = b"\n".join(orjson.dumps(e) for e in generate(2000, seed=5, mix=mix)) + b"\n"
    return {name: cut_lines(data) for name, data in found.items()}


BLOCKS = _blocks()
DEEPER = [_mapping({"userId": {"@if": {"exists": {"@path": "$.userId"}, "then": {"@path": "$.userId"},
                                       "else": {"@path": "$.context.traits.email"}}},
                    "itemId": {"@path": "$.context.page.path"},
                    "additionalData": {"title": {"@path": "$.context.page.title"},
                                       "first": {"@path": "$.properties.products[0].sku"}},
                    "timestamp": {"@path": "$.timestamp"}},   # (a path: the lean table's other form)
                   'type = "page" or context.library.name = "analytics.js"', name="deeper")]


def _both(translator, lines, options=dict, table="full"):
    """translate_block's result decoding only what is read (on every line it can: no probe) with
    the full table (`table` "full") or the lean one ("lean"), and decoding whole lines (`options`
    gives its keyword arguments, anew for each); but for the count of lines decoded in part, which
    it gives beside."""
    reads, lean = event_reads(translator.mappings), lean_reads(translator.mappings)
    assert reads is not None and (lean is not None or table == "full")
    translator.reads, translator.lean, translator.probe = reads, (lean if table == "lean" else None), 0
    restricted = translate_block(lines, translator, **options())
    translator.reads = translator.lean = None
    whole = translate_block(lines, translator, **options())
    assert whole.in_part == 0
    return dataclasses.replace(restricted, in_part=0), whole, restricted.in_part


@pytest.mark.parametrize("table", ["full", "lean"])
@pytest.mark.parametrize("mappings", [_presets(), _presets() + DEEPER], ids=["presets", "presets+deeper"])
def test_the_translate_loop_gives_the_same_result_either_way_on_every_corpus(mappings, table):
    translator = Translator(mappings)
    for name, lines in BLOCKS.items():
        if not scan.COMPILED:
            lines = lines[:1500]   # (the pure scanner is slow; the compiled build reads them all)
        restricted, whole, in_part = _both(translator, lines, table=table)
        assert restricted == whole, name
        if name.startswith("generated") or name == "segment-export-20k.ndjson.gz":
            assert in_part == restricted.events, name   # every event of a clean export, decoded in part
    assert any(r.invalid for r in (_both(translator, lines, table=table)[0] for lines in BLOCKS.values()))


@pytest.mark.parametrize("table", ["full", "lean"])
def test_the_window_filter_and_the_deduplicator_read_what_the_loop_reads(table):
    # (with the lean table at hand too: a run that filters must not take it, as it lacks messageId)
    translator = Translator(_presets())
    lines = BLOCKS["segment-export-20k.ndjson.gz"][:3000]
    lines = lines + lines[:500]   # repeated messageIds
    day = 86400.0
    for options in (lambda: {"window_filter": make_filter(since=1709251200.0 + day, until=1709251200.0 + 5 * day),
                             "dedupe": Deduplicator()},
                    lambda: {"dedupe": Deduplicator()}):
        restricted, whole, _ = _both(translator, lines, options, table=table)
        assert restricted == whole
        assert 500 <= restricted.filtered < restricted.events - 500


# -- the lean table: no stand-in clocks, no messageId; a line that may need them decoded whole ------

def _event(**fields):
    base = {"type": "track", "event": "Product Viewed", "userId": "u-1", "messageId": "m-1",
            "timestamp": "2024-03-01T10:00:00.000Z", "originalTimestamp": "2024-03-01T09:00:00.000Z",
            "receivedAt": "2024-03-01T11:00:00.000Z", "sentAt": "2024-03-01T12:00:00.000Z",
            "properties": {"product_id": "p-1"}, "context": {"ip": "1.2.3.4"}}
    def present(value):   # (... marks a member left out, at any depth)
        return {k: present(v) for k, v in value.items() if v is not ...} if type(value) is dict else value
    return orjson.dumps(present({**base, **fields}))


# Events whose mapped timestamp or hour comes from a stand-in clock (or may: any doubt), each with
# the clock its request takes (epoch seconds), and plain events decoded in part between them.
NEEDS_A_CLOCK = [
    (_event(timestamp=...), 1709283600),                                   # no timestamp: originalTimestamp
    (_event(timestamp=None), 1709283600),                                  # null
    (_event(timestamp=""), 1709283600),                                    # empty
    (_event(timestamp=None, originalTimestamp=...), 1709290800),           # ...else receivedAt
    (_event(properties={"product_id": "p-1", "timestamp": ""}), 1709283600),   # the presets' `@if exists`
    (_event(timestamp=True), None),                                        # not a time: refused
    (_event(timestamp="yesterday"), None),                                 # refused: its hour a stand-in's
    (_event(timestamp="2024-03-01, after lunch"), None),                   # the same, Segment's length
    (_event(timestamp="2024-03-01 10:00:00"), None),                       # not Segment's form: its hour
    (_event(timestamp=1709287200), None),                                  # a number: its hour
]


def test_the_lean_table_leaves_out_the_stand_in_clocks_and_the_message_id():
    lean, _stamps = lean_reads(_presets())
    line = _event()
    full_part, lean_part = scan.restrict(line, event_reads(_presets())), scan.restrict(line, lean)
    left_out = {path[0] for path in LEAN_LEFT_OUT}
    assert left_out <= orjson.loads(full_part).keys()
    assert not left_out & orjson.loads(lean_part).keys()
    assert orjson.loads(lean_part)["timestamp"] == "2024-03-01T10:00:00.000Z"


def test_an_event_that_may_need_a_stand_in_clock_is_decoded_whole():
    translator = Translator(_presets())
    plain = [_event(), _event(properties={"product_id": "p-1", "timestamp": None})]   # (null: the timestamp)
    lines = list(plain)
    for line, _ in NEEDS_A_CLOCK:
        lines += [line, *plain]
    restricted, whole, in_part = _both(translator, lines, table="lean")
    assert restricted == whole
    assert in_part == len(plain) * (1 + len(NEEDS_A_CLOCK))   # the plain events only
    requests = [orjson.loads(body) for body in whole.requests.split(b"\n")]
    stamps = [r["params"]["timestamp"] for r in requests]
    assert stamps[0] == 1709287200 and stamps.count(1709287200) >= len(plain) * (1 + len(NEEDS_A_CLOCK))
    for want in {want for _, want in NEEDS_A_CLOCK if want is not None}:
        assert want in stamps


# A clock: absent (...), or a value of any kind a Segment event might carry there.
_CLOCK = st.one_of(st.just(...), st.just(""), st.none(),
                   st.sampled_from(["2024-03-01T10:00:00.000Z", "2024-03-01T10:00:00+00:00",
                                    "2024-03-01T10:00:00.000+02:00", "2024-03-01 10:00"]),
                   st.sampled_from(["not a time", "2024-03-01T1x:00:00.000Z"]),
                   st.integers(-10, 2_000_000_000), st.floats(allow_nan=False, allow_infinity=False),
                   st.booleans(), st.sampled_from([{}, []]))
_PROPERTIES = st.one_of(st.fixed_dictionaries({"product_id": st.just("p-1"), "timestamp": _CLOCK}),
                        st.fixed_dictionaries({"product_id": st.sampled_from(["p-1", "p 2"])},
                                              optional={"timestamp": _CLOCK}),
                        st.sampled_from([..., None, "abc", [1]]))


_PRESETS_TRANSLATOR = Translator(_presets())   # (one for every example: _both sets its tables each time)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["track", "track", "page", "identify"]),
    "event": st.sampled_from(["Product Viewed", "Product Viewed", ..., "Order Completed"]),
    "timestamp": st.one_of(st.just("2024-03-01T10:00:00.000Z"), _CLOCK),   # (often Segment's own: decoded in part)
    "originalTimestamp": _CLOCK, "receivedAt": _CLOCK, "sentAt": _CLOCK,
    "properties": _PROPERTIES}), min_size=1, max_size=12))
def test_the_lean_decode_is_the_whole_decode_whatever_the_clocks(events):
    # every mix of present, missing, empty, unusable and odd clocks, in blocks whose hour changes
    lines = [_event(**event) for event in events]
    restricted, whole, _ = _both(_PRESETS_TRANSLATOR, lines, table="lean")
    assert restricted == whole


def test_a_mapping_that_reads_the_clocks_itself_keeps_them():
    # a timestamp mapped from the event's receivedAt: the lean table keeps what a mapping reads
    mapping = _mapping({**VIEW, "timestamp": {"@path": "$.receivedAt"}})
    lean, stamps = lean_reads([*_presets(), mapping])
    kept = orjson.loads(scan.restrict(_event(properties={"item": {"id": "i-1"}}), lean))
    assert len(stamps) == 2   # the presets' `@if exists` and this path
    assert "receivedAt" in kept and "sentAt" not in kept


def test_a_builder_that_reads_the_clocks_with_no_timestamp_mapped_has_no_lean_table():
    # an add-type mapping without a timestamp reads a stand-in clock for every event
    mapping = _mapping(VIEW)
    assert event_reads([*_presets(), mapping]) is not None
    assert lean_reads([*_presets(), mapping]) is None
    assert Translator([*_presets(), mapping]).lean is None


def test_a_filter_of_its_own_sees_whole_events():
    # a library user's filter may read anything: the loop then decodes whole lines
    translator = Translator(_presets())
    translator.reads = event_reads(translator.mappings)
    lines = BLOCKS["generated-browser"][:200]
    result = translate_block(lines, translator, window_filter=lambda e: None if "context" in e else "no context")
    assert result.filtered == 0 and result.events == 200 and result.in_part == 0


@pytest.mark.skipif(not scan.COMPILED, reason="the pure build decodes whole lines")
def test_a_block_decodes_in_part_while_it_pays():
    # a browser event is mostly context: every line in part. A server event is about half read
    # with the full table (its properties, and the clocks and messageId a --dedupe run reads): the
    # block goes back to whole lines after its probe; with the lean table, under a third: in part.
    translator = Translator(_presets())
    browser = translate_block(BLOCKS["generated-browser"], translator)
    assert browser.in_part == browser.events == 2000
    server = translate_block(BLOCKS["generated-server"], translator)
    assert server.in_part == server.events == 2000
    server = translate_block(BLOCKS["generated-server"], translator, dedupe=Deduplicator(window=10))
    assert server.in_part == PROBE_LINES
