"""The bytes a replay writes for each request, and the route a sender gets, against the dicts of
the Python API: `translate_block`'s requests are `orjson.dumps(request, default=orjson_default)`
of `Translator.translate`'s, joined by newlines, and its routes are `request_kinds.route` of them,
on events whose values are awkward (unicode, escapes, control characters, surrogate pairs, big
integers, floats of every size, booleans, objects where a text is expected) through the presets.

Issue 28 asked for the ADD builder's requests written as bytes without their dicts: compiled, a
block without routes writes an add-type request of one item by mapcore.pxd's C writer
(docs/architecture.md), and the property test below holds such a block to the same bytes. This
is the contract it keeps, and it holds the partial decoding (sources/scan.py) to the whole one.
"""

from __future__ import annotations

import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recombee_cli.mapping.compile import compile_mapping
from recombee_cli.mapping.config import MappingSpec
from recombee_cli.mapping.translate import Translator, translate_block
from recombee_cli.request_kinds import route, sid
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.segment.presets import PRESETS

TRANSLATOR = Translator([compile_mapping(MappingSpec(p.name, p.trigger, p.action, p.mapping(), "preset"))
                         for p in PRESETS])
TRANSLATOR.probe = 0   # decode in part on every line, where the scanner is compiled

# Texts with what JSON escapes or orjson writes as it is: quotes, backslashes, control characters,
# DEL, non-ASCII, characters outside the BMP (a surrogate pair when escaped).
_AWKWARD = st.text(alphabet=st.one_of(
    st.sampled_from('"\\/\x00\x01\x1f\x7f\u2028\u00e9\U0001F600 .:@-_'),
    st.characters(codec="utf-8"),
), max_size=12)
_PLAIN_IDS = st.one_of(st.sampled_from(["u1", "p-1", "user@x.cz", "a:b", "."]),
                       st.text(alphabet="abcXYZ019_-:@.", min_size=1, max_size=8))
_IDS = st.one_of(_PLAIN_IDS, _PLAIN_IDS, _PLAIN_IDS, _AWKWARD)   # (one_of draws its branches alike)
_NUMBERS = st.one_of(
    st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1),
    st.integers(min_value=-10, max_value=10),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-2, max_value=2),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _AWKWARD)
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_AWKWARD, inner, max_size=3)), max_leaves=6)
_ID_VALUES = st.one_of(_IDS, _IDS, _IDS, st.integers(-5, 5), _VALUES)

_EVENTS = [("track", name) for name in (
    "Product Viewed", "Product Added", "Product Removed", "Order Completed", "Product Added to Wishlist",
    "Product Removed from Wishlist", "Product Shared", "Video Playback Started", "Video Content Playing",
    "Video Playback Paused", "Video Playback Completed")] + [("page", None), ("screen", None), ("alias", None)]


@st.composite
def _event(draw):
    kind, name = draw(st.sampled_from(_EVENTS))
    event = {"type": kind, "messageId": draw(_AWKWARD),
             "timestamp": draw(st.one_of(*[st.sampled_from(["2024-03-01T12:00:00.123Z", "2024-03-01T12:00:00+01:00",
                                                            "2024-03-01T12:00:00Z", "2024-02-29 10:00"])] * 4,
                                         st.sampled_from(["not a time", ""]), _VALUES))}
    if name is not None:
        event["event"] = name
    for key in ("userId", "anonymousId", "previousId"):
        if draw(st.integers(0, 5)):
            event[key] = draw(_ID_VALUES)
    if kind in ("page", "screen"):
        event["name"] = draw(_ID_VALUES)
    product = st.fixed_dictionaries({"product_id": _ID_VALUES}, optional={
        "price": _VALUES, "quantity": _VALUES, "name": _VALUES})
    properties = draw(st.fixed_dictionaries({"product_id": _ID_VALUES, "content_asset_id": _ID_VALUES}, optional={
        "price": _VALUES, "quantity": _VALUES, "rating": _VALUES,
        "products": st.one_of(st.lists(product, max_size=3), st.lists(product, max_size=3), _VALUES),
        "content_asset_ids": st.lists(_ID_VALUES, max_size=2),
        "session_id": _ID_VALUES, "position": _NUMBERS, "total_length": _NUMBERS, "recommId": _VALUES,
        "extra": _VALUES}))
    event["properties"] = draw(st.one_of(st.just(properties), _VALUES)) if draw(st.integers(0, 9)) == 0 \
        else properties
    return event


def _line(event, ascii_only):
    # json.dumps writes what orjson would not: escaped non-ASCII (surrogate pairs too), and big
    # integers orjson cannot write; orjson decodes every line either way
    return json.dumps(event, ensure_ascii=ascii_only, allow_nan=False).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events=st.lists(_event(), min_size=1, max_size=6), ascii_only=st.booleans())
def test_a_blocks_request_bytes_and_routes_are_those_of_the_dicts(events, ascii_only):
    translator = TRANSLATOR
    lines = [_line(event, ascii_only) for event in events]
    result = translate_block(lines, translator, routes=True)
    bodies, routes = [], []
    for number, line in enumerate(lines):
        translation = translator.translate(orjson.loads(line))
        for ordinal, request in enumerate(translation.requests):
            bodies.append(orjson.dumps(request, default=orjson_default))
            routes.append(route(request, sid(number, 0, ordinal)))
    assert result.requests == b"\n".join(bodies)
    assert result.routes == routes
    assert result.request_count == len(bodies)
    # A block without routes (a dry run's, an export's): the add-type requests of one item come from
    # mapcore.pxd's writer where it is compiled, and must be the same bytes.
    assert translate_block(lines, translator).requests == result.requests


def test_a_lone_surrogate_is_refused_by_the_decoder_in_both_decodes():
    good = _line({"type": "page", "name": "home", "userId": "u1", "timestamp": "2024-03-01T12:00:00Z"}, True)
    lone = good.replace(b'"home"', b'"\\ud800"')
    result = translate_block([good, lone], TRANSLATOR, routes=True)
    assert [number for number, _, _, _ in result.invalid] == [1]
    assert result.requests == b"\n".join(orjson.dumps(r) for r in TRANSLATOR.translate(orjson.loads(good)).requests)
