"""The realistic export with both opt-in presets, sent into the emulator and read back through the
official SDK: users' traits with their types, items with their properties, interactions as without
the presets, the same store as one request at a time in input order, and a second replay that
changes no user, item, property or value.

Hand-made events are added to the export's input: values Recombee would refuse beside good ones
(each dropped alone), image values that are no URLs, Engage's audiences and computed traits in
both forms (identify traits, and its track events), and the products of list events; the second
replay brings a trait whose type changed, decided before sending from the database's types."""

from __future__ import annotations

import json

import pytest
from helpers import DATA, export_events, invoke, ndjson
from recombee_api_client.api_client import RecombeeClient
from recombee_api_client.api_requests import ListItemProperties, ListItems, ListUserProperties, ListUsers

from recombee_cli.recombee.emulator import KINDS, Emulator, parse_timestamp, resolve
from recombee_cli.recombee.emulator import run as execute
from recombee_cli.segment.actions import ID_PATTERN
from recombee_cli.segment.presets import OPT_IN_TYPES, PRODUCT_EVENTS, PRODUCT_FIELDS, PRODUCT_LIST_EVENTS
from recombee_cli.segment.properties import engage_name, fits, infer_type, property_values, value_class

DB, TOKEN = "props-20k", "props-20k-token"
EXPORT = DATA / "segment-export-20k.ndjson.gz"
PRESETS = ["--preset", "Identify - User Traits", "--preset", "Ecommerce - Item Properties"]
VALUE_TABLES = ("users", "items", "user_values", "item_values", "user_properties", "item_properties")


@pytest.fixture(autouse=True)
def _no_rapi_uri(monkeypatch):
    monkeypatch.delenv("RAPI_URI", raising=False)


def _events() -> list[dict]:
    return export_events(EXPORT) + HANDMADE


def _track(user, event, properties, n):
    return {"type": "track", "event": event, "userId": user, "properties": properties,
            "timestamp": f"2024-03-02T00:{n // 60:02d}:{n % 60:02d}Z", "messageId": f"hand-{n}"}


def _identify(user, traits, n):
    return {"type": "identify", "userId": user, "traits": traits,
            "timestamp": f"2024-03-02T00:{n // 60:02d}:{n % 60:02d}Z", "messageId": f"hand-{n}"}


HANDMADE = [
    # 1. one refused value beside good ones: each dropped alone
    _identify("hand-u1", {"id": "x123", "plan": "pro", "email": "u1@example.com"}, 1),
    _identify("hand-u2", {"n" * 70: 1, "plan": "free", "favourite_tags": ["a", 2]}, 2),
    _identify("hand-u3", {"a.b": 1, "a_b": 2, "plan": "team"}, 3),
    _track("hand-u1", "Product Viewed", {"product_id": "hand-p1", "price": "24.50", "name": "Hoodie",
                                         "image_url": "https://cdn.example.com/hand-p1.png"}, 4),
    # 3. image values that are no http(s) URLs
    _track("hand-u1", "Product Viewed", {"product_id": "hand-p2", "name": "Cap", "image_url": "not a url at all"}, 5),
    _track("hand-u1", "Product Viewed", {"product_id": "hand-p3", "name": "Mug", "image_url": ""}, 6),
    _track("hand-u1", "Product Viewed", {"product_id": "hand-p4", "name": "Pen", "image_url": "ftp://nope"}, 7),
    # 4. Engage: identify traits, and its track events
    _identify("hand-u4", {"first_time_shopper": True, "lifetime_orders": 3}, 8),
    _track("hand-u4", "Audience Entered", {"audience_key": "order_completed_last_30days",
                                           "order_completed_last_30days": True}, 9),
    _track("hand-u5", "Audience Entered", {"audience_key": "order_completed_last_30days",
                                           "order_completed_last_30days": True}, 10),
    _track("hand-u5", "Audience Exited", {"audience_key": "order_completed_last_30days",
                                          "order_completed_last_30days": False}, 11),
    _track("hand-u4", "Audience Exited", {"audience_key": "first_time_shopper", "first_time_shopper": False}, 12),
    _track("hand-u5", "Trait Computed", {"trait_key": "lifetime_orders", "lifetime_orders": 7}, 13),
    _track("hand-u6", "Audience Entered", {"audience_key": "Käufer Stammkunden"}, 14),
    # 5. products of list events
    _track("hand-u6", "Product List Viewed", {"list_id": "l1", "category": "Deals", "products": [
        {"product_id": "hand-p5", "name": "Scarf", "price": 20},
        {"product_id": "hand-p6", "name": "Gloves", "price": 15.5, "image_url": "https://cdn.example.com/p6.png"}]}, 15),
    _track("hand-u6", "Cart Viewed", {"products": [{"product_id": "hand-p5", "name": "Scarf", "price": 18}]}, 16),
    _track("hand-u6", "Checkout Started", {"order_id": "hand-o1", "products": [
        {"product_id": "hand-p6", "name": "Gloves", "price": 14.0, "brand": "Acme"}]}, 17),
]
# 2. the second replay: a trait whose type changed since the first (plan is a string there)
LATER = [_identify("hand-u1", {"plan": 3, "email": "u1@new.example.com"}, 30)]


def _send(emu, *extra, report=None, inputs=(EXPORT,)):
    args = ["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, "--no-state", "-q",
            "--batch-size", "250", "--concurrency", "4", *extra, *map(str, inputs)]
    if report:
        args[1:1] = ["--report", str(report)]
    result = invoke(args, env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert result.exit_code in (0, 1), result.stderr   # 1: the export has invalid events on purpose
    return result


def _typed(value, kind):
    if kind == "timestamp" and value is not None:
        return parse_timestamp(value)
    if kind == "double" and value is not None:
        return float(value)
    return value


class _Types:
    """An independent last-value-wins model of the types: declared by the presets, else the first
    non-null value's; a value that does not fit is left out."""

    def __init__(self, declared):
        self.types = dict(declared)

    def keep(self, name, value) -> bool:
        cls = value_class(value)
        kind = self.types.get(name) or infer_type(cls)
        if kind is None:
            return False               # a null of a property not known yet: left out
        if not fits(kind, cls):
            return False
        self.types.setdefault(name, kind)
        return True


def _expected_users(events) -> dict[str, dict]:
    """Each identified user's values, the newest winning per property: identify traits, and
    Engage's track events (Audience Entered: true, Audience Exited: false, Trait Computed)."""
    users: dict[str, dict] = {}
    types = _Types(OPT_IN_TYPES["Identify - User Traits"]["users"])
    for event in events:
        values = None
        if event.get("type") == "identify" and isinstance(event.get("traits"), dict):
            values = property_values(event["traits"])[0]
        elif event.get("type") == "track":
            props = event.get("properties") or {}
            name = event.get("event")
            if name in ("Audience Entered", "Audience Exited") and props.get("audience_key"):
                values = {engage_name(props["audience_key"]): name == "Audience Entered"}
            elif name == "Trait Computed" and props.get("trait_key") in props:
                values = {engage_name(props["trait_key"]): props[props["trait_key"]]}
        if values is not None:
            user = event.get("userId") or event.get("anonymousId")
            users.setdefault(user, {}).update((k, v) for k, v in values.items() if types.keep(k, v))
    return users


def _expected_items(events) -> dict[str, dict]:
    items: dict[str, dict] = {}
    types = _Types(OPT_IN_TYPES["Ecommerce - Item Properties"]["items"])

    def seen(item_id, product):
        if isinstance(item_id, str) and ID_PATTERN.fullmatch(item_id):
            values = {k: product[k] for k in PRODUCT_FIELDS if k in product and product[k] is not None
                      and types.keep(k, product[k])}
            items.setdefault(item_id, {}).update(values)

    for event in events:
        name = event.get("event")
        if event.get("type") != "track" or name not in PRODUCT_EVENTS + PRODUCT_LIST_EVENTS:
            continue
        props = event.get("properties") or {}
        if name in PRODUCT_EVENTS and ("product_id" in props or "sku" in props):
            seen(props.get("product_id", props.get("sku")), props)
        for product in props.get("products") or ():
            if isinstance(product, dict):
                seen(product.get("product_id", product.get("sku")), product)
    return items


def _sequential_store(requests: list[dict]) -> dict:
    """The oracle: every request of the dry run executed alone, in input order."""
    with Emulator(DB, TOKEN) as emu:
        with emu.store.transaction():
            for request in requests:
                execute(resolve(request["method"], request["path"]), emu.store, dict(request["params"] or {}),
                        1.0)
        return emu.snapshot()


def test_20k_export_with_both_presets_reads_back_through_the_sdk(tmp_path):
    events = _events()
    handmade, later = tmp_path / "handmade.ndjson", tmp_path / "later.ndjson"
    handmade.write_text("".join(json.dumps(e) + "\n" for e in HANDMADE))
    later.write_text("".join(json.dumps(e) + "\n" for e in LATER))
    dry = ndjson(invoke(["replay", "--dry-run", *PRESETS, str(EXPORT), str(handmade)]).stdout)
    with Emulator(DB, TOKEN) as plain:
        _send(plain, inputs=(EXPORT, handmade))
        without = plain.snapshot()
    with Emulator(DB, TOKEN) as emu:
        _send(emu, *PRESETS, report=tmp_path / "report.json", inputs=(EXPORT, handmade))
        first = emu.snapshot()
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["outcomes"]["failed"] == 0 and report["failed_reasons"] == {}
        sdk = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})

        # Types: declared by the presets (createdAt, price, image_url), the rest inferred.
        user_types = {p["name"]: p["type"] for p in sdk.send(ListUserProperties())}
        assert user_types == {"email": "string", "firstName": "string", "lastName": "string", "plan": "string",
                              "createdAt": "timestamp", "address_city": "string", "address_country": "string",
                              "first_time_shopper": "boolean", "lifetime_orders": "double",
                              "order_completed_last_30days": "boolean", "kaufer_stammkunden": "boolean",
                              "a_b": "double"}
        item_types = {p["name"]: p["type"] for p in sdk.send(ListItemProperties())}
        assert item_types == {"sku": "string", "name": "string", "category": "string", "brand": "string",
                              "variant": "string", "price": "double", "url": "string", "image_url": "image"}

        # Each refused value dropped alone, said once per property (1 and 3).
        dropped = {k: v["count"] for k, v in report["dropped_values"].items()}
        assert dropped == {"user property 'id'": 1, f"user property '{'n' * 70}'": 1,
                           "user property 'favourite_tags'": 1, "user property 'a_b'": 1,
                           "item property 'price'": 1, "item property 'image_url'": 3}

        # Every identify's traits and Engage's values on its user (users that an alias merged are
        # checked by the oracle).
        merged = {e.get(k) for e in events if e.get("type") == "alias" for k in ("userId", "previousId")}
        listed = {u.pop("userId"): u for u in sdk.send(ListUsers(return_properties=True))}
        expected_users = _expected_users(events)
        checked = 0
        for user, values in expected_users.items():
            if user in merged:
                continue
            got = listed[user]
            assert {k: got[k] for k in values} == {k: _typed(v, user_types[k]) for k, v in values.items()}, user
            checked += 1
        assert checked > 300, (checked, len(expected_users))
        assert listed["hand-u1"]["plan"] == "pro" and listed["hand-u2"]["plan"] == "free"
        assert listed["hand-u4"]["first_time_shopper"] is False and listed["hand-u4"]["order_completed_last_30days"]
        assert listed["hand-u5"]["order_completed_last_30days"] is False and listed["hand-u5"]["lifetime_orders"] == 7
        assert listed["hand-u6"]["kaufer_stammkunden"] is True

        # Every product seen is an item with its properties (list events' products included: 5).
        items = {i.pop("itemId"): i for i in sdk.send(ListItems(return_properties=True))}
        expected_items = _expected_items(events)
        assert expected_items and set(expected_items) <= set(items)
        for item, values in expected_items.items():
            assert {k: items[item][k] for k in values} == {k: _typed(v, item_types[k]) for k, v in values.items()}
        assert items["hand-p1"]["price"] is None and items["hand-p1"]["name"] == "Hoodie"
        assert [items[f"hand-p{n}"]["image_url"] for n in (2, 3, 4)] == [None, None, None]
        assert (items["hand-p5"]["price"], items["hand-p6"]["price"], items["hand-p6"]["brand"]) == (18.0, 14.0, "Acme")

        # Interactions are exactly those of a run without the presets.
        assert {k: first[k] for k in KINDS} == {k: without[k] for k in KINDS}

        # The same store as every request sent alone, in input order (definitions included).
        assert first == _sequential_store(dry)

        # A second replay changes no user, item, property or value. (Interactions change in the
        # same way as without the presets: aliases whose anonymous id is used again after the
        # merge are merged again - a limitation of replaying merges, not of values.)
        _send(emu, *PRESETS, inputs=(EXPORT, handmade))
        second = emu.snapshot()
        assert {k: second[k] for k in VALUE_TABLES} == {k: first[k] for k in VALUE_TABLES}

        # A trait whose type changed since (2): decided before sending from the database's types.
        _send(emu, *PRESETS, report=tmp_path / "later.json", inputs=(later,))
        again = json.loads((tmp_path / "later.json").read_text())
        assert again["outcomes"]["failed"] == 0 and again["dropped_values"]["user property 'plan'"]["reason"] == \
            "user property 'plan' is string (in the database); the value (integer) does not fit"
        from recombee_api_client.api_requests import GetUserValues
        assert sdk.send(GetUserValues("hand-u1"))["plan"] == "pro"
        assert sdk.send(GetUserValues("hand-u1"))["email"] == "u1@new.example.com"

        print(f"\n20k run: users {len(first['users'])}, with values {len({r[0] for r in first['user_values']})}, "
              f"items {len(first['items'])}, with values {len({r[0] for r in first['item_values']})}, "
              f"user properties {len(first['user_properties'])}, item properties {len(first['item_properties'])}, "
              f"user values {len(first['user_values'])}, item values {len(first['item_values'])}, "
              f"outcomes {report['outcomes']}, requests {report['requests']}, "
              f"definitions {report.get('property_definitions')}")
