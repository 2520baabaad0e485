"""What a Recombee request is lives in one table (request_kinds.py): a new action's requests are one
table entry, and the sender, the export and the resume all know them from it."""

from __future__ import annotations

import orjson
import pytest

import recombee_cli.request_kinds as request_kinds
from recombee_cli.recombee.batching import SendQueue
from recombee_cli.recombee.client import RecombeeClient
from recombee_cli.recombee.emulator import Emulator
from recombee_cli.recombee.items import Item
from recombee_cli.recombee.sender import RecombeeSender
from recombee_cli.request_kinds import (
    KEY_OF_PART,
    LENIENT,
    REMOVES,
    SOLO,
    RequestKind,
    action_of,
    interaction_table,
    kind_of,
    route,
    value_target,
)
from recombee_cli.segment.actions import ACTIONS
from recombee_cli.sinks.files import NotRepresentable
from recombee_cli.sinks.protocol import EventTicket
from recombee_cli.sinks.reco_interactions import RecoInteractions
from recombee_cli.sources.reader import Line

DB, TOKEN = "kinds-db", "kinds-token-1c5e"


def test_every_request_the_presets_build_has_its_kind():
    assert route({"method": "POST", "path": "/purchases/", "params": {"userId": "u", "itemId": "i", "timestamp": 3}}) \
        == (("u",), KEY_OF_PART, ("/purchases/", "u", "i", 3), -1, "i")
    assert route({"method": "DELETE", "path": "/bookmarks/", "params": {"userId": "u", "itemId": "i"}}, 7) \
        == (("u",), LENIENT, None, 7, "i")
    assert route({"method": "PUT", "path": "/users/t/merge/s", "params": {"cascadeCreate": True}}) \
        == (("t", "s"), LENIENT | SOLO | REMOVES, None, -1, None)
    assert route({"method": "DELETE", "path": "/users/u", "params": {}})[:2] == (("u",), LENIENT | SOLO | REMOVES)


def test_only_a_merge_that_surely_removes_its_source_says_so():
    # Without cascadeCreate a missing target leaves the source (404); a merge of a user into
    # themselves is refused (400): neither may let a later merge of that source pass as moving nothing.
    assert route({"method": "PUT", "path": "/users/t/merge/s", "params": {}})[1] == LENIENT | SOLO
    assert route({"method": "PUT", "path": "/users/t/merge/s", "params": {"cascadeCreate": False}})[1] \
        == LENIENT | SOLO
    assert route({"method": "PUT", "path": "/users/s/merge/s", "params": {"cascadeCreate": True}})[1] == LENIENT | SOLO
    assert route({"method": "POST", "path": "/items/p", "params": {"a": 1}})[0] == ("/items/p",)
    assert route({"method": "PUT", "path": "/users/properties/age", "params": {"type": "int"}})[0] == ()
    assert value_target({"method": "POST", "path": "/users/properties", "params": {}}) == ("users", "properties")
    assert interaction_table({"method": "DELETE", "path": "/cartadditions/", "params": {}}) == "cartadditions"
    assert action_of({"method": "PUT", "path": "/users/t/merge/s"}) == "mergeUsers"


def test_ordering_keys_come_from_the_path_or_the_params_and_only_as_text(delete_item, monkeypatch):
    """A template of one name (`{userId}`) is that value, from the path or else the params; one with
    more text (`/items/{itemId}`) is the text with the value put in; a key the request lacks, or one
    that is not a string, orders nothing (Recombee will refuse the request)."""
    monkeypatch.setattr(request_kinds, "KINDS", list(request_kinds.KINDS))
    monkeypatch.setattr(request_kinds, "_TEMPLATED", list(request_kinds._TEMPLATED))
    request_kinds.register(RequestKind("tagThing", "PUT", "/things/{thingId}", order=("{userId}", "/t/{thingId}")))
    assert route({"method": "PUT", "path": "/users/t/merge/s", "params": {"cascadeCreate": True}})[0] == ("t", "s")
    assert route({"method": "DELETE", "path": "/items/p1", "params": {}})[0] == ("/items/p1",)
    for params, keys in (({"userId": "u1"}, ("u1", "/t/x1")), ({}, ("/t/x1",)), ({"userId": 7}, ("/t/x1",))):
        assert route({"method": "PUT", "path": "/things/x1", "params": params})[0] == keys


# A value of each field type, and of the object fields the actions have, to build every action's requests.
_SAMPLES = {"string": "x1", "datetime": "2024-03-01T06:42:07.728Z", "integer": 3, "number": 0.5, "any": "v"}
_OBJECTS = {"item": {"itemId": "p1", "amount": 1, "price": 2.0},
            "items": [{"itemId": "p1", "amount": 1, "price": 2.0}],
            "portion": {"totalLength": 10, "watchTime": 5}, "values": {"colour": "red"}}


@pytest.mark.parametrize("slug", sorted(ACTIONS))
def test_every_action_builds_requests_of_a_known_kind(slug):
    # An action added to segment/actions.py without its entry in request_kinds.KINDS fails here: its
    # requests would be sent with no ordering key and exported as nothing.
    action = ACTIONS[slug]
    payload = {f.name: _OBJECTS.get(f.name, {}) if f.type == "object" else _SAMPLES[f.type] for f in action.fields}
    if slug == "setItemValues":
        del payload["items"]   # one item's values, not a list of them
    requests = action.build(payload, {"timestamp": _SAMPLES["datetime"]})
    assert requests
    assert all(kind_of(request) is not None for request in requests), requests


@pytest.fixture
def delete_item(monkeypatch):
    """A new action, `deleteItem`, added by one table entry (in this test alone)."""
    monkeypatch.setattr(request_kinds, "KINDS", list(request_kinds.KINDS))
    monkeypatch.setattr(request_kinds, "_TEMPLATED", list(request_kinds._TEMPLATED))
    return request_kinds.register(RequestKind("deleteItem", "DELETE", "/items/{itemId}", LENIENT | SOLO,
                                              order=("/items/{itemId}",)))


def test_a_request_built_with_a_dict_subclass_is_ordered_like_any_other():
    """The Python API may hand the sender params in an OrderedDict (orjson writes it like a dict):
    its user and item order it, as they do a plain dict's."""
    from collections import OrderedDict

    params = {"userId": "u", "itemId": "i", "timestamp": 3}
    for path in ("/purchases/", "/users/u"):   # an interaction's quick way, and a templated path
        method = "POST"
        assert route({"method": method, "path": path, "params": OrderedDict(params)}, 5) == \
            route({"method": method, "path": path, "params": params}, 5)
    assert route({"method": "POST", "path": "/purchases/", "params": OrderedDict(params)})[0] == ("u",)


def _values(item: str, **values) -> dict:
    return {"method": "POST", "path": f"/items/{item}", "params": {**values, "!cascadeCreate": True}}


def test_a_new_action_is_one_table_entry_and_the_sender_keeps_its_order(delete_item):
    gone = {"method": "DELETE", "path": "/items/p1", "params": {}}
    assert route(gone) == (("/items/p1",), LENIENT | SOLO, None, -1, None)
    # Batched as the sender batches: the deletion alone, after the item's earlier values and
    # before its later ones (without its entry it had no ordering key and shared their Batch).
    requests = [_values("p1", colour="red"), gone, _values("p1", size="L"), _values("p2", colour="blue")]
    queue = SendQueue()
    queue.queue.extend(Item(None, n, b"", *route(r, n)[:3], n, 0.0) for n, r in enumerate(requests))
    batches = []
    while queue.waiting():
        built = queue.build(10, frozenset())
        queue.take(built)
        with queue.cond:
            queue.release(built)   # answered
        batches.append([item.index for item in built.batch])
    assert batches == [[0, 3], [1], [2]]
    with pytest.raises(NotRepresentable, match="not representable in Reco_Interactions: deleteItem"):
        RecoInteractions().convert(gone, lambda: None)
    with Emulator(DB, TOKEN) as emu:
        client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=4, timeout=10)
        assert client.batch([orjson.dumps({"method": "PUT", "path": f"/items/properties/{n}", "params": {"type": "string"}})
                             for n in ("colour", "size")])[0]["code"] == 201
        sender = RecombeeSender(client, batch_size=10, concurrency=4)
        ticket = EventTicket(Line("t", 1, 0, b""), None,
                             [_values("p1", colour="red"), gone, _values("p1", size="L"), _values("p2", colour="blue")])
        try:
            sender.submit(ticket)
            sender.close()
        finally:
            sender.abort()
        values = emu.snapshot()["item_values"]
    assert ticket.codes == [200, 200, 200, 200]
    # Applied in input order: p1 deleted between its two values, so only the later one is there.
    assert values == [("p1", "size", '"L"'), ("p2", "colour", '"blue"')]
