"""Triggers as programs (segment/trigger_programs.py) against the closures of segment/triggers.py,
their reference: Segment's vectors, then generated triggers on generated events, one trigger at a
time and many at once (a selector, with the event's `event` and `type` known as a plan knows them)."""

from __future__ import annotations

import json
import math
import pathlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recombee_cli.errors import TriggerSyntaxError
from recombee_cli.segment import trigger_programs
from recombee_cli.segment.trigger_programs import compile_program, compile_selector, program_matches, select
from recombee_cli.segment.triggers import build_matcher, compile_trigger

FQL = json.loads((pathlib.Path(__file__).resolve().parents[1] / "conformance" / "fql.json").read_text(encoding="utf-8"))


def _compiled_vectors() -> list[dict]:
    out = []
    for case in FQL["vectors"]:
        try:
            out.append(dict(case, compiled=compile_trigger(case["trigger"])))
        except TriggerSyntaxError:
            pass
    return out


VECTORS = _compiled_vectors()


def test_the_vectors_match_as_segment_matches():
    assert len(VECTORS) > 200
    for case in VECTORS:
        program = compile_program(case["compiled"].ast)
        assert program_matches(program, case["event"]) is case["match"], case["trigger"]


# ---------------------------------------------------------------------------------------------
# Generated triggers (parseFql's trees) and events

_SEGMENTS = ["a", "b", "price", "length", "0", "1", "x", "tags"]
_STRINGS = ["", "a", "ab", "b", "abc", "track", "A", "B", "5", "150", "null", "true", "Ab", "x.y",
            "\U0001F600", "\U0001F600 Clicked", "\ud83d", "\ude00", "a\ud83d", "\ud83d\ude00", "é", "e\u0301"]
_INTS = [0, 1, -1, 5, 150, 2**53 - 1, 2**53, 2**53 + 1, -(2**53) - 1, 2**63, -(2**63), 2**64 - 1, 10**30, -(10**400)]
_FLOATS = [0.0, -0.0, 0.5, 5.0, 150.0, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan,
           9007199254740992.0, 9007199254740994.0, 1.5e16, 0.1 + 0.2]

_strings = st.one_of(st.sampled_from(_STRINGS), st.text(max_size=4))
_numbers = st.one_of(st.sampled_from(_INTS), st.sampled_from(_FLOATS), st.integers(-10, 200),
                     st.floats(allow_nan=True, allow_infinity=True))
_scalars = st.one_of(_strings, _numbers, st.booleans(), st.none())
_values = st.recursive(_scalars, lambda inner: st.dictionaries(st.sampled_from(_SEGMENTS), inner, max_size=4)
                       | st.lists(inner, max_size=3), max_leaves=10)
_events = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(["track", "identify", "page"]), _scalars),
    "event": st.one_of(st.sampled_from(["A", "B", "Order Completed"]), _scalars),
    "name": _scalars, "userId": _scalars,
    "properties": _values, "traits": _values, "context": _values})

_NUMERIC = ["<", "<=", ">", ">=", "number_equals", "number_not_equals"]
_TEXTUAL = ["=", "!=", "contains", "not_contains", "starts_with", "not_starts_with", "ends_with", "not_ends_with"]
_UNARY = ["exists", "not_exists", "is_true", "is_false"]
_names = st.one_of(st.just(""), st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=3).map(".".join),
                   st.sampled_from(["a[0]", "tags[1].x", "a..b", "[0]"]))
_expected = st.one_of(_scalars, st.lists(_scalars, max_size=2))


@st.composite
def _leaf(draw) -> dict:
    kind = draw(st.sampled_from(["event-type", "event", "name", "userId",
                                 "event-property", "event-property", "event-trait", "event-context"]))
    family = draw(st.sampled_from(["numeric", "numeric", "textual", "textual", "unary", "unknown"]))
    operator = draw(st.sampled_from({"numeric": _NUMERIC, "textual": _TEXTUAL, "unary": _UNARY,
                                     "unknown": ["is", "=="]}[family]))
    node = {"type": kind, "operator": operator}
    if kind.startswith("event-") and kind != "event-type":
        node["name"] = draw(_names)
    if family != "unary" or draw(st.booleans()):
        typed = {"numeric": _numbers, "textual": _strings}.get(family, _expected)
        node["value"] = draw(st.one_of(typed, typed, typed, _expected))
    return node


_nodes = st.recursive(_leaf(), lambda inner: st.builds(
    lambda op, children: {"type": "group", "operator": op, "children": children},
    st.sampled_from(["and"] * 4 + ["or"] * 4 + ["xor"]), st.lists(inner, min_size=1, max_size=3)), max_leaves=6)
_trees = st.builds(lambda op, children: {"type": "group", "operator": op, "children": children},
                   st.sampled_from(["and", "or"]), st.lists(_nodes, min_size=1, max_size=3))


def _closure(tree):
    return build_matcher(tree)


_PRICE = {"type": "group", "operator": "and", "children": [
    {"type": "event-type", "operator": "=", "value": "track"},
    {"type": "event-property", "name": "price", "operator": ">", "value": 100.0}]}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_trees, event=st.one_of(_events, _events, _events, _scalars, st.lists(_scalars, max_size=2)))
@example(tree=_PRICE, event={"type": "track", "properties": {"price": 2**53 + 1}})
@example(tree=_PRICE, event={"type": "track", "properties": {"price": 10**400}})
@example(tree=_PRICE, event={"type": "track", "properties": {"price": True}})
@example(tree=_PRICE, event={"type": "track", "properties": {"price": math.nan}})
@example(tree={"type": "group", "operator": "and", "children": [
    {"type": "event-property", "name": "s", "operator": "starts_with", "value": "\ud83d"}]},
    event={"properties": {"s": "\U0001F600"}})
@example(tree={"type": "group", "operator": "and", "children": [
    {"type": "event-property", "name": "s.0", "operator": "=", "value": "\ud83d"}]},
    event={"properties": {"s": "\U0001F600"}})
@example(tree={"type": "group", "operator": "and", "children": [
    {"type": "event-property", "name": "zero.deeper", "operator": "exists"}]},
    event={"properties": {"zero": 0}})
def test_a_program_matches_as_the_closure(tree, event):
    expected = _closure(tree)(event)
    assert program_matches(compile_program(tree), event) is expected


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees=st.lists(_trees, min_size=1, max_size=8), event=_events)
def test_a_selector_gives_exactly_the_triggers_that_match(trees, event):
    """Many triggers in one program, their reads shared, with the event's `event` and `type`
    decided when it is built (where they are strings or missing, as a translator's plan knows them)."""
    closures = [_closure(tree) for tree in trees]
    expected = [i for i, matches in enumerate(closures) if matches(event)]
    entries = [(tree, i) for i, tree in enumerate(trees)]
    assert list(select(compile_selector(entries), event)) == expected
    known = {key: event.get(key) for key in ("event", "type")}
    if all(value is None or type(value) is str for value in known.values()):
        assert list(select(compile_selector(entries, known), event)) == expected
        # entries already decided (None) stay where they are, in order
        decided = [(None if i % 2 else tree, i) for i, tree in enumerate(trees)]
        assert list(select(compile_selector(decided, known), event)) == [
            i for i, matches in enumerate(closures) if i % 2 or matches(event)]


class _Text(str):
    """A value of the Python API's own (not a JSON type): `=` compares it as Python does."""


def test_values_of_no_json_type_are_compared_as_the_closure_compares_them():
    for text in ('properties.s = "a"', 'properties.s != "a"', 'contains(properties.s, "a")', 'userId = "a"'):
        tree = compile_trigger(text).ast
        event = {"userId": _Text("a"), "properties": {"s": _Text("a")}}
        assert program_matches(compile_program(tree), event) is _closure(tree)(event), text


def test_a_path_is_read_once_for_every_trigger_that_reads_it():
    trees = [compile_trigger(f'type = "track" and properties.price > {n}').ast for n in range(50)]
    reads, groups, trees_left, decided, results, _ = compile_selector([(tree, n) for n, tree in enumerate(trees)],
                                                                       {"event": None, "type": "track"})
    assert reads == ((-1, "properties"), (0, "price"))
    assert len(groups) == 1 and groups[0][0] == 1 and len(groups[0][1]) == 50
    assert all(test[0] == trigger_programs.GT for test in groups[0][1])
    assert not trees_left and not decided and results == tuple(range(50))
    never = compile_selector([(tree, n) for n, tree in enumerate(trees)], {"event": None, "type": "page"})
    assert trigger_programs.decided_results(never) == ()


@pytest.mark.parametrize("event", ["", None, [], [{"type": "track"}], 5, "type", True])
def test_an_event_that_is_not_a_dict_matches_nothing(event):
    for text in ('properties.value != "x"', 'event != null', 'name = null', 'type != "group"'):
        assert program_matches(compile_program(compile_trigger(text).ast), event) is False


# ---------------------------------------------------------------------------------------------
# In a translator: its plans' selectors against asking each trigger's closure, on a real export

_PROPERTY_TRIGGERS = [
    'type = "track" and properties.price > 50', 'properties.quantity >= 3', 'contains(properties.name, "art")',
    'type = "track" and properties.category = "Shoes"', 'properties.full_screen = false', 'properties.order_id != null',
    'match(properties.sku, "ULT-*")', 'event = "Product Viewed" or properties.revenue < 100',
    'type = "page" and !contains(properties.url, "about")', 'properties.category != "Shoes"',
    'properties.products.length > 2', 'properties.products.\\0.sku != null', 'userId = "u_3530829"',
    'type = "identify" and traits.email exists', 'context.library.name = "analytics-python"',
    'type = "track" and (event = "Order Completed" or properties.value > 3)']


def test_a_translator_with_selectors_translates_as_with_closures():
    from helpers import DATA, export_events

    from recombee_cli.mapping.compile import compile_mapping
    from recombee_cli.mapping.config import MappingSpec
    from recombee_cli.mapping.translate import Translator

    mappings = [compile_mapping(MappingSpec(f"p{i}", trigger, "addDetailView",
                                            {"userId": {"@path": "$.userId"}, "itemId": {"@path": "$.messageId"}},
                                            "test"))
                for i, trigger in enumerate(_PROPERTY_TRIGGERS)]
    events = export_events(DATA / "segment-export-20k.ndjson.gz")
    by_closures, by_programs = Translator(mappings), Translator(mappings)
    by_closures.programs = False
    matched = 0
    for event in events:
        expected = by_closures.translate(event)
        assert by_programs.translate(event) == expected, event
        matched += bool(expected.matched)
    assert matched > len(events) // 2
    assert any(selector is not None for by_event in by_programs._plans.values() for _, selector in by_event.values())
