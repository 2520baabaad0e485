"""The realistic export with both opt-in presets, sent into the emulator and read back through the
official SDK: users' traits with their types, items with their properties, interactions as without
the presets, the same store as one request at a time in input order, and a second replay that
changes no user, item, property or value."""

from __future__ import annotations

import gzip
import json

import pytest
from helpers import DATA, invoke, ndjson
from recombee_api_client.api_client import RecombeeClient
from recombee_api_client.api_requests import ListItemProperties, ListItems, ListUserProperties, ListUsers

from recombee_cli.recombee.emulator import KINDS, Emulator, parse_timestamp, resolve
from recombee_cli.recombee.emulator import run as execute
from recombee_cli.segment.actions import ID_PATTERN
from recombee_cli.segment.presets import PRODUCT_EVENTS, PRODUCT_FIELDS
from recombee_cli.segment.properties import property_values

DB, TOKEN = "props-20k", "props-20k-token"
EXPORT = DATA / "segment-export-20k.ndjson.gz"
PRESETS = ["--preset", "Identify - User Traits", "--preset", "Ecommerce - Item Properties"]
VALUE_TABLES = ("users", "items", "user_values", "item_values", "user_properties", "item_properties")


@pytest.fixture(autouse=True)
def _no_rapi_uri(monkeypatch):
    monkeypatch.delenv("RAPI_URI", raising=False)


def _events() -> list[dict]:
    out = []
    with gzip.open(EXPORT, "rb") as fh:
        for line in fh:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
    return out


def _send(emu, *extra, report=None):
    args = ["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, "--no-state", "-q",
            "--batch-size", "250", "--concurrency", "4", *extra, str(EXPORT)]
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


def _expected_users(events) -> dict[str, dict]:
    """Each identified user's values, the newest identify winning per property."""
    users: dict[str, dict] = {}
    for event in events:
        if event.get("type") == "identify" and isinstance(event.get("traits"), dict):
            user = event.get("userId") or event.get("anonymousId")
            users.setdefault(user, {}).update(property_values(event["traits"]))
    return users


def _expected_items(events) -> dict[str, dict]:
    items: dict[str, dict] = {}

    def seen(item_id, product):
        if isinstance(item_id, str) and ID_PATTERN.fullmatch(item_id):
            values = {k: product[k] for k in PRODUCT_FIELDS if k in product and product[k] is not None}
            items.setdefault(item_id, {}).update(values)

    for event in events:
        if event.get("type") != "track" or event.get("event") not in PRODUCT_EVENTS:
            continue
        props = event.get("properties") or {}
        if "product_id" in props or "sku" in props:
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
    dry = ndjson(invoke(["replay", "--dry-run", *PRESETS, str(EXPORT)]).stdout)
    with Emulator(DB, TOKEN) as plain:
        _send(plain)
        without = plain.snapshot()
    with Emulator(DB, TOKEN) as emu:
        _send(emu, *PRESETS, report=tmp_path / "report.json")
        first = emu.snapshot()
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["outcomes"]["failed"] == 0 and report["failed_reasons"] == {}
        sdk = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})

        # Types: declared by the presets (createdAt, price, image_url), the rest inferred.
        user_types = {p["name"]: p["type"] for p in sdk.send(ListUserProperties())}
        assert user_types == {"email": "string", "firstName": "string", "lastName": "string", "plan": "string",
                              "createdAt": "timestamp", "address_city": "string", "address_country": "string"}
        item_types = {p["name"]: p["type"] for p in sdk.send(ListItemProperties())}
        assert item_types == {"sku": "string", "name": "string", "category": "string", "brand": "string",
                              "variant": "string", "price": "double", "url": "string", "image_url": "image"}

        # Every identify's traits on its user (users that an alias merged are checked by the oracle).
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

        # Every product seen is an item with its properties.
        items = {i.pop("itemId"): i for i in sdk.send(ListItems(return_properties=True))}
        expected_items = _expected_items(events)
        assert expected_items and set(expected_items) <= set(items)
        for item, values in expected_items.items():
            assert {k: items[item][k] for k in values} == {k: _typed(v, item_types[k]) for k, v in values.items()}

        # Interactions are exactly those of a run without the presets.
        assert {k: first[k] for k in KINDS} == {k: without[k] for k in KINDS}

        # The same store as every request sent alone, in input order (definitions included).
        assert first == _sequential_store(dry)

        # A second replay changes no user, item, property or value. (Interactions change in the
        # same way as without the presets: aliases whose anonymous id is used again after the
        # merge are merged again - a limitation of replaying merges, not of values.)
        _send(emu, *PRESETS)
        second = emu.snapshot()
        assert {k: second[k] for k in VALUE_TABLES} == {k: first[k] for k in VALUE_TABLES}

        print(f"\n20k run: users {len(first['users'])}, with values {len({r[0] for r in first['user_values']})}, "
              f"items {len(first['items'])}, with values {len({r[0] for r in first['item_values']})}, "
              f"user properties {len(first['user_properties'])}, item properties {len(first['item_properties'])}, "
              f"user values {len(first['user_values'])}, item values {len(first['item_values'])}, "
              f"outcomes {report['outcomes']}, requests {report['requests']}, "
              f"definitions {report.get('property_definitions')}")
