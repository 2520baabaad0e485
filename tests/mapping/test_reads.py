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

from recombee_cli.mapping.compile import compile_mapping
from recombee_cli.mapping.config import MappingSpec
from recombee_cli.mapping.filters import Deduplicator, make_filter
from recombee_cli.mapping.reads import LOOP_PATHS, event_reads, mapping_paths, reads_table
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
                                       "first": {"@path": "$.properties.products[0].sku"}}},
                   'type = "page" or context.library.name = "analytics.js"', name="deeper")]


def _both(translator, lines, options=dict):
    """translate_block's result decoding only what is read (on every line it can: no probe), and
    decoding whole lines (`options` gives its keyword arguments, anew for each); but for the count
    of lines decoded in part, which it gives beside."""
    reads = event_reads(translator.mappings)
    assert reads is not None
    translator.reads, translator.probe = reads, 0
    restricted = translate_block(lines, translator, **options())
    translator.reads = None
    whole = translate_block(lines, translator, **options())
    assert whole.in_part == 0
    return dataclasses.replace(restricted, in_part=0), whole, restricted.in_part


@pytest.mark.parametrize("mappings", [_presets(), _presets() + DEEPER], ids=["presets", "presets+deeper"])
def test_the_translate_loop_gives_the_same_result_either_way_on_every_corpus(mappings):
    translator = Translator(mappings)
    for name, lines in BLOCKS.items():
        if not scan.COMPILED:
            lines = lines[:1500]   # (the pure scanner is slow; the compiled build reads them all)
        restricted, whole, in_part = _both(translator, lines)
        assert restricted == whole, name
        if name.startswith("generated") or name == "segment-export-20k.ndjson.gz":
            assert in_part == restricted.events, name   # every event of a clean export, decoded in part
    assert any(r.invalid for r in (_both(translator, lines)[0] for lines in BLOCKS.values()))


def test_the_window_filter_and_the_deduplicator_read_what_the_loop_reads():
    translator = Translator(_presets())
    lines = BLOCKS["segment-export-20k.ndjson.gz"][:3000]
    lines = lines + lines[:500]   # repeated messageIds
    day = 86400.0
    restricted, whole, _ = _both(translator, lines, lambda: {
        "window_filter": make_filter(since=1709251200.0 + day, until=1709251200.0 + 5 * day),
        "dedupe": Deduplicator()})
    assert restricted == whole
    assert 500 < restricted.filtered < restricted.events - 500


def test_a_filter_of_its_own_sees_whole_events():
    # a library user's filter may read anything: the loop then decodes whole lines
    translator = Translator(_presets())
    translator.reads = event_reads(translator.mappings)
    lines = BLOCKS["generated-browser"][:200]
    result = translate_block(lines, translator, window_filter=lambda e: None if "context" in e else "no context")
    assert result.filtered == 0 and result.events == 200 and result.in_part == 0


@pytest.mark.skipif(not scan.COMPILED, reason="the pure build decodes whole lines")
def test_a_block_decodes_in_part_while_it_pays():
    # a browser event is mostly context: every line in part; a server event is mostly read (its
    # properties): the block goes back to whole lines after its probe
    translator = Translator(_presets())
    browser = translate_block(BLOCKS["generated-browser"], translator)
    assert browser.in_part == browser.events == 2000
    server = translate_block(BLOCKS["generated-server"], translator)
    assert server.in_part == PROBE_LINES
