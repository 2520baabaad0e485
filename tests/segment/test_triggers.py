"""Segment's subscription triggers: conformance with fql.json, the quirks we warn about, index hints."""

from __future__ import annotations

import json
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recombee_cli.errors import TriggerSyntaxError
from recombee_cli.segment import triggers
from recombee_cli.segment.triggers import Trigger, compile_trigger

FQL = json.loads((pathlib.Path(__file__).resolve().parents[1] / "conformance" / "fql.json").read_text(encoding="utf-8"))
INVALID = {case["trigger"] for case in FQL["invalid"]}


def _case_id(i: int, trigger: str) -> str:
    return f"{i:03d}:{trigger[:50]}"


# ---------------------------------------------------------------------------------------------
# fql.json


@pytest.mark.parametrize("case", FQL["vectors"],
                         ids=[_case_id(i, c["trigger"]) for i, c in enumerate(FQL["vectors"])])
def test_vector(case):
    if case["trigger"] in INVALID:
        with pytest.raises(TriggerSyntaxError):
            compile_trigger(case["trigger"])
        assert case["match"] is False
        return
    trigger = compile_trigger(case["trigger"])
    assert trigger.matches(case["event"]) is case["match"]
    if "parsed_ast" in case:
        assert trigger.ast == case["parsed_ast"]


@pytest.mark.parametrize("case", FQL["invalid"],
                         ids=[_case_id(i, c["trigger"]) for i, c in enumerate(FQL["invalid"])])
def test_invalid_trigger_raises_with_a_one_line_reason(case):
    with pytest.raises(TriggerSyntaxError) as info:
        compile_trigger(case["trigger"])
    message = str(info.value)
    assert message and "\n" not in message and "\r" not in message
    assert "TypeError" not in message and "undefined" not in message


@pytest.mark.parametrize("case", FQL["parse"],
                         ids=[_case_id(i, c["trigger"]) for i, c in enumerate(FQL["parse"])])
def test_parse_tree_is_segments(case):
    assert compile_trigger(case["trigger"]).ast == case["ast"]


def test_vector_file_is_the_one_we_expect():
    # Guards against an emptied or truncated copy making the parametrized tests vacuous.
    assert len(FQL["vectors"]) >= 273 and len(FQL["invalid"]) >= 20 and len(FQL["parse"]) >= 44
    assert sum(c["match"] for c in FQL["vectors"]) > 50


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("text, expected", [
    ('type = "unterminated', "unterminated string starting at column 8"),
    ('type = "track"\r\n', "carriage return (\\r) is not allowed in a trigger"),
    ("anonymousId != null", 'field "anonymousId" is not one Segment\'s triggers can test (only type, '
                            "event, name, userId, properties.*, traits.*, context.*)"),
    ('type = "track" and (event = "A" or (event = "B" and properties.x = 1))',
     "nested parentheses are not supported by Segment's trigger parser"),
    ("type", 'missing value after "type"'),
    ("", "the trigger is empty"),
    (" \t\n", "the trigger is empty"),
    ('contains(type, "tr")', 'contains() cannot test "type"'),
    ('match(type, "t*")', 'match() cannot test "type"'),
    ("length(userId) > 0", "function length() is not supported"),
    ('"dark-mode" in properties.features', '"in" is not supported'),
    ('properties.items[0].sku = "x"', "bracket indexes are not supported"),
    ("properties.$x = 1", 'invalid character "$" at column 12'),
    ('type * "x"', 'invalid character "*" at column 6'),
    ('type = "track" && event = "A"', '"&" at column 16 is not supported'),
    ('type !="x"', '"!=" at column 6 must be followed by a space'),
    ("properties.x>5", '"x" must be separated from ">" by a space'),
    ("properties.x > 1.2.3", "more than one decimal point"),
    ("properties.x > 1. ", "ends with a decimal point"),
    ('(type = "track"', 'unclosed parenthesis "(" at column 1'),
    ("contains(event", "contains() at column 1 is missing its second argument"),
    ('type = "track" and event = "a \\" b"', "a backslash does not escape a quote"),
    ('type = "a \\" b" and event = "x"', "a backslash does not escape a quote"),
    ('type = “track”', "typographic quote"),
    ('userId = oops"', 'unexpected quote right after "oops" at column 14'),
    ('event = "A"and type = "B', "closing quote there is directly followed by"),
    # parseFql finds inherited JavaScript names such as "constructor" and takes the next two
    # tokens as their operator and value, so the parenthesised condition is swallowed.
    ('constructor (type = "track")', 'field "constructor" is not one'),
    ('type = "x" and\n  event = "A" and\n  name = "unterminated', "line 3, column 10"),
])
def test_error_messages_say_why(text, expected):
    with pytest.raises(TriggerSyntaxError) as info:
        compile_trigger(text)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


# Deliberate differences from Segment: parseFql accepts these, but `validate` then throws a
# TypeError on every event that reaches the broken part (an undefined group child; a path with no
# name, where the getter calls `null.reduce`). Segment never delivers such an event, and a trigger
# that crashes is a configuration error, so we refuse it at compile time with the reason.
DELIBERATE_DIFFERENCES = [
    ('type = "track" and ()', "parentheses at column 20 contain no condition",
     "empty parentheses: validate() throws on the undefined child"),
    ('event = "A" and lower(foo)', "function lower() is not supported",
     "lower(foo) leaves an empty group: validate() throws on the undefined child"),
    ("properties.\\. = 1", "names no property",
     "the path '.' has no segment: the getter throws on every event"),
]


@pytest.mark.parametrize("text, expected, reason", DELIBERATE_DIFFERENCES,
                         ids=[d[0] for d in DELIBERATE_DIFFERENCES])
def test_deliberate_difference_triggers_that_crash_segment_are_refused(text, expected, reason):
    with pytest.raises(TriggerSyntaxError) as info:
        compile_trigger(text)
    assert expected in str(info.value)


def test_non_string_trigger_is_a_syntax_error():
    with pytest.raises(TriggerSyntaxError):
        compile_trigger(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Semantics beyond the vectors (each checked against the reference rules of parse-fql/validate)

EVENT = {"type": "track", "event": "Order Completed", "userId": "u1",
         "properties": {"price": 150, "name": "Nike Air X", "items": [{"sku": "s1"}, {"sku": "s2"}],
                        "product 1": {"price": 3}, "a": {"b": "nested"}, "a.b": "flat", "zero": 0,
                        "empty": "", "off": False, "flag": True, "tags": ["x"], "emoji": "😀 Clicked"},
         "context": {"library": {"name": "analytics.js"}, "traits": {"email": "a@b.c"}}}


@pytest.mark.parametrize("text, event, expected", [
    # strict typing: `=` wants a string, numeric operators a JSON number, booleans are neither
    ('properties.flag = 1', EVENT, False),
    ('properties.flag > 0', EVENT, False),
    ('properties.price = 150', EVENT, True),
    ('properties.price = 150.0', EVENT, True),
    ('properties.price = "150"', EVENT, False),
    ('properties.price != 150', EVENT, False),
    ('properties.missing != 150', EVENT, False),       # number_not_equals needs a number
    ('properties.missing != "150"', EVENT, True),      # `!=` is true for a missing field
    ('properties.name != "x" and properties.missing != "y"', EVENT, True),
    ('properties.price > " 0x1A "', EVENT, True),      # expected goes through Number()
    ('properties.price < "1e3"', EVENT, True),
    ('properties.price > "abc"', EVENT, False),
    ('properties.price >= 150', EVENT, True),
    # the getter: dotted paths, escapes, falsy intermediates, arrays and strings
    ('properties.a.b = "nested"', EVENT, True),
    ('properties.a\\.b = "flat"', EVENT, False),       # an escaped dot is still a separator
    ('properties.a\\.b = "nested"', EVENT, True),
    ('properties.product\\ 1.price = 3', EVENT, True),
    ('properties.items.length = 2', EVENT, True),
    ('properties.name.length > 9', EVENT, True),
    ('properties.items.\\1.sku = "s2"', EVENT, True),  # an escaped digit is an identifier
    ('properties.items.\\5.sku != null', EVENT, False),
    ('properties.zero.deeper != null', EVENT, True),   # `0 && ...` is 0, which exists
    ('properties.zero.deeper < 1', EVENT, True),
    ('properties.empty.deeper = ""', EVENT, True),
    ('properties.off.deeper = false', EVENT, True),
    ('properties.tags.0 = "x"', EVENT, False),         # a number after a dot is not a path
    ('traits.email != null', EVENT, False),            # traits.* reads the top-level traits only
    ('context.traits.email != null', EVENT, True),
    ('context.library.name = "analytics.js"', EVENT, True),
    # values and operators as parseFql builds them
    ('userId = 123', {"userId": "123"}, True),
    ('userId = 123', {"userId": 123}, False),
    ('userId = 007', {"userId": "7"}, True),
    ('event = 1.50', {"event": "1.5"}, True),
    ('event = true', {"event": "true"}, True),
    ('userId = true', {"userId": True}, True),
    ('name = null', {"name": None}, True),
    ('event != null', {}, True),                        # a string compare with "null"
    ('event = null', {"event": "null"}, True),
    ('event contains "Order"', EVENT, True),            # the operator is the token's text
    ('event starts_with "Order"', EVENT, True),
    ('event is "Order Completed"', EVENT, False),       # an unknown operator is never true
    ('properties.x = 1e3', {"properties": {"x": 1}}, True),   # `1e3` is 1 then an identifier
    ('userId = an', {"userId": "a"}, True),             # fql-ts drops the "n" at end of input
    ('userId = anna', {"userId": "anna"}, True),
    ('type = "track" and AND event = "X"', EVENT, False),
    ('type = "track" OR event = "X"', EVENT, False),
    ('type = "track" and event = "X" or event = "Order Completed"', {"type": "identify",
                                                                      "event": "Order Completed"}, True),
    ('!(type = "identify")', {"type": "identify"}, True),
    ('not type = "identify"', {"type": "identify"}, True),
    ('type = ', {"type": "eos"}, True),
    ("event = 'Order Completed'", EVENT, False),
    ("event = 'Order Completed'", {"event": "'Order Completed'"}, True),
    ('match(event, "Order Completed")', {"event": "xrder Completed"}, True),
    ('match(event, "*Order*")', {"event": "*Order Completed"}, True),
    ('match(event, "*Order*")', EVENT, False),
    ('match(event, "O*d")', {"event": "Stuff*d"}, True),
    ("match(event, 'Order*')", {"event": "Order*'"}, True),  # single quotes: never starts_with
    ('!match(properties.missing, "x*")', EVENT, False),     # negated forms need a string
    ('!contains(properties.price, "1")', EVENT, False),
    ('contains(properties.tags, "x")', EVENT, False),
    ('match(properties.emoji, "😀 Clicked")', EVENT, True),    # slice(1) cuts a UTF-16 unit
    ('match(properties.emoji, "😀 Clicked")', {"properties": {"emoji": "X Clicked"}}, False),
    ('contains(propertiesX, "a")', {"properties": {"propertiesX": "abc"}}, True),
    ('event = "A"and type = "track"', {"event": "A", "type": "identify"}, True),  # glued quote
    ('properties.price <=5', {"properties": {"price": 1}}, False),
    ('type == "track"', {"type": "track"}, False),
    ('type == "track"', {"type": "="}, True),
    ('(contains(event, "Order") or type = "identify")', {"type": "identify", "event": "X"}, True),
    ('type = "track" and (contains(event, "X") or event = "B")', {"type": "track", "event": "Q"}, True),
    ('anonymousId = "zzz" and type = "track"', {"type": "track", "anonymousId": "a1"}, True),
    ('constructor = "x" and type = "track"', {"type": "track"}, True),
    ('type = "track" "extra"', {"type": "track"}, True),
    # values of any JSON type where a string is expected
    ('event = "A" or event = "B"', {"event": ["A"]}, False),
    ('event = "A" or event = "B"', {"event": {"A": 1}}, False),
    ('event = "A" or event = "B"', {"event": "B"}, True),
    ('type = "track" and event = "A"', {"type": "track", "event": ["A"]}, False),
    ('contains(event, "A")', {"event": {"A": 1}}, False),
    ('event != "A"', {"event": ["A"]}, True),
])
def test_semantics(text, event, expected):
    assert compile_trigger(text).matches(event) is expected


@pytest.mark.parametrize("text", [
    'properties.value != "x"', 'type != "group"', 'event != null', 'name = null',
    'properties.value = null', 'userId = null', 'type = "track"',
    'type = "track" and event = "A"', 'event = "A" or event = "B"',
])
@pytest.mark.parametrize("event", ["", None, [], [{"type": "track"}], 5, "type", True],
                         ids=["empty-string", "none", "empty-list", "list", "number", "string", "bool"])
def test_non_dict_event_never_matches(text, event):
    assert compile_trigger(text).matches(event) is False


def test_matching_does_not_parse_again(monkeypatch):
    compiled = [compile_trigger(c["trigger"]) for c in FQL["parse"]]
    before = [t.matches(c["event"]) for t in compiled for c in FQL["vectors"][:40]]

    def boom(*args, **kwargs):
        raise AssertionError("matching re-parsed a trigger")

    monkeypatch.setattr(triggers, "_Lexer", boom)
    monkeypatch.setattr(triggers, "_Parser", boom)
    monkeypatch.setattr(triggers, "_merge_paths", boom)
    after = [t.matches(c["event"]) for t in compiled for c in FQL["vectors"][:40]]
    assert after == before


def test_trigger_object():
    t = compile_trigger('type = "track" and event = "Order Completed"')
    assert isinstance(t, Trigger)
    assert t.source == 'type = "track" and event = "Order Completed"'
    assert t.describe() == 'type = "track" AND event = "Order Completed"'
    assert t.warnings == []
    assert t.index_hint == ("event", frozenset({"Order Completed"}))
    assert "Order Completed" in repr(t)


# ---------------------------------------------------------------------------------------------
# describe()


@pytest.mark.parametrize("text, described", [
    ('type = "track"', 'type = "track"'),
    ('type = "track" or type = "identify"', 'type = "track" OR type = "identify"'),
    ('type = "track" and (event = "A" or event = "B")', 'type = "track" AND (event = "A" OR event = "B")'),
    ('properties.price >= "100"', "properties.price >= 100"),
    ('properties.value = 123', "properties.value = 123"),
    ('properties.value = "123"', 'properties.value = "123"'),
    ('properties.value != true', 'properties.value != "true"'),
    ("traits.test = true", "traits.test = true"),
    ("userId != null", "userId != null"),
    ("properties.x = null", "properties.x = null"),
    ('event != null', 'event != "null"'),
    ('!contains(event, "Nike")', '!contains(event, "Nike")'),
    ('match(event, "X*")', 'event starts with "X"'),
    ('!match(event, "*X")', 'event does not end with "X"'),
    ('properties.product\\ 1.price = 3', "properties.product\\ 1.price = 3"),
    ('properties.price > "abc"', "properties.price > NaN (never true)"),
    ('type contains "x"', 'contains(type, "x")'),
    ('type "track"', 'type "track" "eos" (never true)'),
])
def test_describe(text, described):
    assert compile_trigger(text).describe() == described


# ---------------------------------------------------------------------------------------------
# Warnings: behave like Segment and say how Segment reads the trigger

ORDINARY = [
    'type = "track" and event = "Order Completed"', 'type = "page"', 'type = "alias"',
    'event = "Product Added" or event = "Order Completed"',
    'type = "track" and (event = "Product Added" or event = "Order Completed")',
    '(event = "Product Added" and properties.price >= 100) or (event = "Order Completed" and properties.total >= 500)',
    'match(event, "Order*")', 'match(event, "*Completed")', '!match(traits.name, "X*")',
    'contains(event, "Nike")', 'properties.name != null', 'userId = "u1"',
    'type = "track" and properties.revenue > 0', 'traits.test = true', 'type = "track" and event = "A" and',
    'properties.product\\ 1.price = 3', 'event = "Product \'Added\'"',
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_triggers_have_no_warnings(text):
    assert compile_trigger(text).warnings == []


def test_segment_presets_have_no_warnings():
    from recombee_cli.segment.presets import PRESETS
    for preset in PRESETS:
        trigger = compile_trigger(preset.trigger)
        assert trigger.warnings == [], preset.name
        assert trigger.index_hint is not None, preset.name


QUIRKS = [
    # (trigger, substrings of one warning, describe())
    ('type = "track" and event = "A" or event = "B"',
     ['mixes "and" and "or"', 'last keyword ("or")'], 'type = "track" OR event = "A" OR event = "B"'),
    ('type = "track" or event = "A" and event = "B"',
     ['mixes "and" and "or"', '("and")'], 'type = "track" AND event = "A" AND event = "B"'),
    ('!(type = "track")', ['"!"', "negation is dropped", "opposite"], 'type = "track"'),
    ('!type = "track"', ['"!"', "negation is dropped"], 'type = "track"'),
    ('not type = "track"', ['"not"', "negation is dropped", "opposite"], 'type = "track"'),
    ('NOT (event = "A")', ['"NOT"', "negation is dropped"], 'event = "A"'),
    ("event = 'Button Clicked'", ["single-quoted", "'Button Clicked' including the quotes"],
     'event = "\'Button Clicked\'"'),
    ("contains(event, 'Nike')", ["single-quoted"], 'contains(event, "\'Nike\'")'),
    ('match(event, "Order Completed")', ["not treat as a glob", 'event ends with "rder Completed"'],
     'event ends with "rder Completed"'),
    ('match(event, "*Order*")', ["not treat as a glob", 'event starts with "*Order"'],
     'event starts with "*Order"'),
    ('match(event, "O*d")', ["not treat as a glob", 'ends with "*d"'], 'event ends with "*d"'),
    ('match(name, "A?")', ["not treat as a glob", 'ends with "?"'], 'name ends with "?"'),
    ('anonymousId = "zzz" and type = "track"', ['"anonymousId"', "ignore"], 'type = "track"'),
    ('type = "track" and receivedAt != null', ['"receivedAt"', "ignore"], 'type = "track"'),
    ('type = "identify" OR event = "A"', ['"OR"', "not lower-case"], 'type = "identify" AND event = "A"'),
    ('type = "identify" or event = "A" AND name = "x"', ['"AND"', "not lower-case"],
     'type = "identify" OR event = "A" OR name = "x"'),
    ('type = "track" and and(event = "A")', ['"and"', 'directly followed by "("'],
     'type = "track" AND event = "A"'),
    ("type = ", ['"type ="', '"eos"'], 'type = "eos"'),
    ('type = "track" and properties.x = ', ['"properties.x ="', '"eos"'],
     'type = "track" AND properties.x = "eos"'),
    ("event != null", ['compares with the text "null"'], 'event != "null"'),
    ('type.foo = "track"', ['"type.foo"', 'top-level "type"'], 'type = "track"'),
    ("properties.price <=5", ['"<="', 'splits it into "<" and "="'], "properties.price < NaN (never true)"),
    ('type == "track"', ['"=="', 'splits it into "=" and "="'], 'type = "="'),
    ('event = "A"and type = "track"', ['closing quote at column 11', '"a"'], 'event = "A"'),
    ('properties.price , 3', ['"," as an operator', "never"],
     'properties.price , "3" (never true)'),
    ('properties.price > "abc"', ['"abc"', "not a number"], "properties.price > NaN (never true)"),
    ('type = "track" and contains(type, "tr")', ["contains(type, ...)", "silently drops"], 'type = "track"'),
    ('lower(properties.x, "a") and type = "track"', ["lower()", "do not support"],
     'properties.x , "a" (never true) AND type = "track"'),
    ('type = "track" and (contains(event, "A") or event = "B")', ["inside parentheses", "own \")\""],
     'type = "track" OR contains(event, "A") OR event = "B"'),
    ('contains(event "x")', ["malformed contains() call"], 'contains(event, ")")'),
    ('type = "track" "extra"', ['\'"extra"\' at column 16', "skips"], 'type = "track"'),
    ('properties.items.0.sku = "x"', ['"properties.items.0"', "array element"],
     'properties.items . "0" (never true)'),
]


@pytest.mark.parametrize("text, needles, described", QUIRKS, ids=[q[0] for q in QUIRKS])
def test_quirk_warning(text, needles, described):
    trigger = compile_trigger(text)
    assert trigger.describe() == described
    assert trigger.warnings, "expected a warning"
    assert any(all(n in w for n in needles) for w in trigger.warnings), trigger.warnings
    for w in trigger.warnings:
        assert repr(text) in w                    # names the trigger
        assert "\n" not in w and w.endswith(".")  # one sentence
        assert w.startswith("Trigger ")


def test_match_warning_only_for_patterns_that_are_not_plain_globs():
    for pattern in ("X*", "*X", "Order *", "*", "* Completed"):
        assert compile_trigger(f'match(event, "{pattern}")').warnings == [], pattern
    for pattern in ("X", "**", "*X*", "X*Y*", "X?*", "*[ab]", "a\\*"):
        assert compile_trigger(f'match(event, "{pattern}")').warnings, pattern


def test_warnings_are_not_repeated():
    t = compile_trigger("event = 'A' or event = 'A'")
    assert len(t.warnings) == len(set(t.warnings)) == 1


# ---------------------------------------------------------------------------------------------
# index_hint

@pytest.mark.parametrize("text, hint", [
    ('type = "track" and event = "Order Completed"', ("event", {"Order Completed"})),
    ('type = "page"', ("type", {"page"})),
    ('event = "A" or event = "B"', ("event", {"A", "B"})),
    ('type = "track" and (event = "A" or event = "B")', ("event", {"A", "B"})),
    ('(event = "A" and type = "track") or (event = "B" and type = "identify")', ("event", {"A", "B"})),
    ('type = "identify" or type = "group"', ("type", {"identify", "group"})),
    ('(type = "track" and event = "A") or type = "identify"', ("type", {"track", "identify"})),
    ('event = "A" and event = "B"', ("event", set())),          # can never match
    ('event = "A" and (event = "A" or event = "B")', ("event", {"A"})),
    ('type = "track" and event = "A" or event = "B"', None),     # Segment: an OR of all three
    ('event = "A" or type = "track"', None),
    ('event = "A" or contains(event, "B")', None),
    ('type != "track"', None),
    ('event != "A" and type = "track"', ("type", {"track"})),
    ('contains(event, "A")', None),
    ('match(event, "A*")', None),
    ('name = "Home"', None),
    ('userId = "u1"', None),
    ('properties.event = "A"', None),
    ('!(type = "track")', ("type", {"track"})),                  # how Segment reads it
    ("event = 'A'", ("event", {"'A'"})),
    ('type = ', ("type", {"eos"})),
    ('event = 5', ("event", {"5"})),
    ('type = "track" and event contains "A"', ("type", {"track"})),
])
def test_index_hint(text, hint):
    got = compile_trigger(text).index_hint
    if hint is None:
        assert got is None
    else:
        assert got is not None and got[0] == hint[0] and got[1] == frozenset(hint[1])
        assert isinstance(got[1], frozenset)


def _admits(trigger: Trigger, event) -> bool:
    if trigger.index_hint is None:
        return True
    field, allowed = trigger.index_hint
    value = event.get(field) if isinstance(event, dict) else None
    return type(value) is str and value in allowed


EXTRA_TRIGGERS = [
    'type = "track" and event = "Order Completed"',
    'type = "page"', 'type = "screen"', 'type = "alias"',
    'type = "track" and (event = "Product Added" or event = "Order Completed")',
    'event = "Product Added" or (event = "Order Completed" and type = "track")',
    '(event = "A" and type = "track") or (event = "B" and type = "identify")',
    'type = "identify" or type = "group"',
    'event = "A" and event = "B"',
    'event = "A" or type = "track"',
    'type = "track" and event != "A"',
    '!(type = "track")',
    "event = 'A'",
    'type = "identify" OR event = "A"',
    'type = "track" and event = "A" or event = "B"',
    'anonymousId = "a1" and event = "X Clicked"',
    'match(event, "Product*")',
    'contains(event, "Added") and type = "track"',
    'name = "Home" or name = "Catalog"',
    'userId = "u1"',
    'type = "track" and (event = "A" or contains(event, "B"))',
    'event = "Signed Up" and traits.age >= 50',
    'type = "group" or event = "identify"',
    'event = "true"', 'event = "null"', 'event = "123"',
]

TRIGGER_POOL = list(dict.fromkeys(
    [c["trigger"] for c in FQL["vectors"] if c["trigger"] not in INVALID]
    + [c["trigger"] for c in FQL["parse"]] + EXTRA_TRIGGERS))
COMPILED_POOL = [compile_trigger(t) for t in TRIGGER_POOL]
EVENTS = [c["event"] for c in FQL["vectors"]]


def _literals() -> list[str]:
    found: set[str] = set()

    def walk(node):
        if node["type"] == "group":
            for child in node["children"]:
                walk(child)
        elif isinstance(node.get("value"), str):
            found.add(node["value"])
    for t in COMPILED_POOL:
        walk(t.ast)
    return sorted(found)


LITERALS = _literals()


def test_hint_admits_every_matching_fql_event():
    checked = 0
    for trigger in COMPILED_POOL:
        for event in EVENTS:
            if trigger.matches(event):
                assert _admits(trigger, event), (trigger.source, event)
                checked += 1
    assert checked > 200


_scalars = st.one_of(st.sampled_from(LITERALS + ["track", "identify", "page", "group", "alias", ""]),
                     st.integers(-3, 600), st.floats(-1e3, 1e3), st.booleans(), st.none())
_keys = st.sampled_from(["value", "name", "price", "total", "x", "a", "b", "test", "logins", "plan",
                         "foo", "bar", "ip", "age", "premium", "flag", "tags", "email", "library",
                         "revenue", "traits"])
_objects = st.recursive(_scalars, lambda inner: st.dictionaries(_keys, inner, max_size=4)
                        | st.lists(inner, max_size=3), max_leaves=8)
_events = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(["track", "identify", "page", "group", "screen", "alias"]), _scalars),
    "event": st.one_of(_scalars, _scalars, _objects), "name": _scalars, "userId": _scalars,
    "anonymousId": _scalars,
    "properties": _objects, "traits": _objects, "context": _objects})
_anything = st.one_of(_events, _events, _events, _scalars, st.lists(_scalars, max_size=2))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=_anything)
def test_hint_admits_every_matching_generated_event(event):
    for trigger in COMPILED_POOL:
        if trigger.matches(event):
            assert _admits(trigger, event), (trigger.source, event)


class _Index:
    """Triggers indexed on their hints, the way the translator uses them."""

    def __init__(self, compiled: list[Trigger]):
        self.compiled = compiled
        self.by = {"event": {}, "type": {}}
        self.always = []
        for i, t in enumerate(compiled):
            if t.index_hint is None:
                self.always.append(i)
            else:
                field, values = t.index_hint
                for v in values:
                    self.by[field].setdefault(v, []).append(i)

    def matching(self, event) -> list[int]:
        candidates = set(self.always)
        if isinstance(event, dict):
            for field in ("event", "type"):
                value = event.get(field)
                if type(value) is str:
                    candidates.update(self.by[field].get(value, ()))
        return sorted(i for i in candidates if self.compiled[i].matches(event))


INDEX_TRIGGERS = list(dict.fromkeys(EXTRA_TRIGGERS + TRIGGER_POOL))[:50]
INDEX = _Index([compile_trigger(t) for t in INDEX_TRIGGERS])


def test_index_pool_is_a_real_mix():
    assert len(INDEX.compiled) == 50
    hints = [t.index_hint for t in INDEX.compiled]
    assert sum(h is None for h in hints) >= 5
    assert sum(h is not None and h[0] == "event" for h in hints) >= 10
    assert sum(h is not None and h[0] == "type" for h in hints) >= 5


def _brute(event) -> list[int]:
    return [i for i, t in enumerate(INDEX.compiled) if t.matches(event)]


def test_index_equals_testing_every_trigger_on_fql_events():
    total = 0
    for event in EVENTS:
        assert INDEX.matching(event) == _brute(event), event
        total += len(_brute(event))
    assert total > 50


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=_anything)
def test_index_equals_testing_every_trigger_on_generated_events(event):
    assert INDEX.matching(event) == _brute(event)
