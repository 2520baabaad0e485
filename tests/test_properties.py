"""Users' and items' values: names, types, definitions before values, the opt-in presets.

Everything that sends runs for real: the CLI in-process, the emulator over 127.0.0.1 with real
signatures, and the official SDK reading the store back."""

from __future__ import annotations

import json

import pytest
from helpers import DATA, SAMPLES, invoke, ndjson
from recombee_api_client.api_client import RecombeeClient
from recombee_api_client.api_requests import GetUserValues, ListItemProperties, ListUserProperties

from recombee_cli.errors import PayloadInvalid
from recombee_cli.recombee.emulator import Emulator
from recombee_cli.segment.properties import (
    MAX_STRING_BYTES,
    PropertyGate,
    describe_values,
    fits,
    infer_type,
    property_values,
    value_class,
)

DB, TOKEN = "props-db", "props-token-9f2"
USERS = "Identify - User Traits"
ITEMS = "Ecommerce - Item Properties"


@pytest.fixture(autouse=True)
def _no_rapi_uri(monkeypatch):
    monkeypatch.delenv("RAPI_URI", raising=False)


def _identify(user, traits, **extra):
    return {"type": "identify", "userId": user, "traits": traits, "timestamp": "2024-03-01T00:00:00Z",
            **extra}


def _write(tmp_path, events, name="events.ndjson"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


def _dry(args):
    result = invoke(["replay", "--dry-run", *args])
    return result, ndjson(result.stdout)


def _send(emu, args, *extra):
    return invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, "--no-state",
                   *extra, *args], env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})


# ------------------------------------------------------------------------------------------------
# Names and values (state-free: the builder)
# ------------------------------------------------------------------------------------------------

def test_names_are_flattened_and_made_valid():
    values = property_values({"firstName": "Ann", "address": {"city": "Brno", "geo": {"lat": 49.2}},
                              "first name": "x", "a.b": 1, "audience_30days": True, "tags": ["a", "b"]})
    assert values == {"firstName": "Ann", "address_city": "Brno", "address_geo_lat": 49.2,
                      "first_name": "x", "a_b": 1, "audience_30days": True, "tags": ["a", "b"]}


@pytest.mark.parametrize("values, reason", [
    ({"id": 1}, "reserved"),
    ({"UserId": 1}, "reserved"),
    ({"x" * 64: 1}, "longer than 63"),
    ({"a.b": 1, "a_b": 2}, "comes from both"),
    ({"a": {"b": 1}, "a_b": 2}, "comes from both"),
    ({"bio": "x" * (2 * 1024 * 1024)}, f"the {MAX_STRING_BYTES:,} bytes allowed"),
    ({"tags": ["a", 1]}, "a list may hold only strings"),
    ({"n": float("inf")}, "not a finite number"),
])
def test_values_recombee_would_refuse_are_invalid(values, reason):
    with pytest.raises(PayloadInvalid, match=reason):
        property_values(values)


def test_inference_and_fit():
    assert [infer_type(value_class(v)) for v in (True, 3, 2.5, "x", "2024-01-02T03:04:05Z", ["a"])] == \
        ["boolean", "double", "double", "string", "string", "set"]
    assert value_class(None) == "null" and infer_type("null") is None
    assert fits("double", value_class(19)) and fits("double", value_class(19.99))
    assert fits("int", value_class(3.0)) and not fits("int", value_class(3.5))
    assert fits("timestamp", value_class("2024-01-02")) and fits("timestamp", value_class(1704164645))
    assert not fits("timestamp", value_class("yesterday")) and not fits("string", value_class(3))
    assert fits("imageList", value_class(["u"])) and not fits("image", value_class(["u"]))
    assert all(fits(kind, "null") for kind in ("int", "set", "image"))


def test_gate_decides_in_order_and_defines_once():
    gate = PropertyGate({"users": {"age": "int"}})
    describe = lambda params: describe_values({"method": "POST", "path": "/users/u", "params": params})[1]  # noqa: E731
    reason, skip, new = gate.check("users", describe({"age": 3, "plan": "pro", "phone": None}))
    assert reason is None and skip == ["phone"]
    assert new == [{"method": "PUT", "path": "/users/properties/age", "params": {"type": "int"}},
                   {"method": "PUT", "path": "/users/properties/plan", "params": {"type": "string"}}]
    assert gate.check("users", describe({"age": 4, "plan": "free", "phone": "1"}))[2] == \
        [{"method": "PUT", "path": "/users/properties/phone", "params": {"type": "string"}}]
    reason, _, new = gate.check("users", describe({"plan": 3, "vip": True}))
    assert reason == ("user property 'plan' is string (inferred from its first value, string); "
                      "the value (integer) does not fit")
    assert new == [] and ("users", "vip") not in gate.types     # nothing of a refused request counts
    assert "declared in the config" in gate.check("users", describe({"age": 2.5}))[0]


# ------------------------------------------------------------------------------------------------
# The CLI: presets, dry-run, validate, explain, config
# ------------------------------------------------------------------------------------------------

def test_presets_are_off_by_default(tmp_path):
    path = _write(tmp_path, [_identify("u1", {"plan": "pro"})])
    result, requests = _dry([path])
    assert requests == [] and "unmatched" in result.stderr
    assert "Identify - User Traits" not in invoke(["presets"]).stdout
    assert "Identify - User Traits" in invoke(["presets", "--all"]).stdout


def test_dry_run_prints_definitions_before_the_first_value_once(tmp_path):
    events = [
        _identify("u1", {"plan": "pro", "address": {"city": "Brno"}, "order_completed_last_30days": True}),
        _identify("u2", {"plan": "free", "age": 30}),
        {"type": "track", "event": "Product Viewed", "userId": "u1", "timestamp": "2024-03-01T00:00:00Z",
         "properties": {"product_id": "p1", "name": "Hoodie", "price": 19, "image_url": "https://x/i.png"}},
        {"type": "track", "event": "Order Completed", "userId": "u2", "timestamp": "2024-03-01T00:00:01Z",
         "properties": {"products": [{"product_id": "p1", "price": 19.99}, {"sku": "s-2", "name": "Cap"}]}},
    ]
    path = _write(tmp_path, events)
    result, requests = _dry(["--preset", USERS, "--preset", ITEMS, path])
    assert result.exit_code == 0, result.stderr
    assert requests[:3] == [
        {"method": "PUT", "path": "/users/properties/plan", "params": {"type": "string"}},
        {"method": "PUT", "path": "/users/properties/address_city", "params": {"type": "string"}},
        {"method": "PUT", "path": "/users/properties/order_completed_last_30days", "params": {"type": "boolean"}},
    ]
    assert {"method": "POST", "path": "/users/u1", "params": {
        "plan": "pro", "address_city": "Brno", "order_completed_last_30days": True, "!cascadeCreate": True}} in requests
    paths = [r["path"] for r in requests]
    # every definition once, and before the first value of its property
    definitions = [p for p in paths if "/properties/" in p]
    assert len(definitions) == len(set(definitions))
    assert paths.index("/users/properties/age") < paths.index("/users/u2")
    assert paths.index("/items/properties/image_url") < paths.index("/items/p1")
    assert {"method": "PUT", "path": "/items/properties/image_url", "params": {"type": "image"}} in requests
    assert {"method": "PUT", "path": "/items/properties/price", "params": {"type": "double"}} in requests
    assert {"method": "POST", "path": "/items/s-2", "params": {"sku": "s-2", "name": "Cap", "!cascadeCreate": True}} \
        in requests
    # interactions are exactly those of a run without the presets
    plain = ndjson(invoke(["replay", "--dry-run", path]).stdout)
    assert [r for r in requests if not r["path"].startswith(("/users/", "/items/"))] == plain


def test_same_output_with_workers(tmp_path):
    args = ["--preset", USERS, "--preset", ITEMS, str(DATA / "segment-export-20k.ndjson.gz")]
    one = invoke(["replay", "--dry-run", "--report", str(tmp_path / "1.json"), *args])
    two = invoke(["replay", "--dry-run", "--workers", "2", "--report", str(tmp_path / "2.json"), *args])
    assert one.stdout == two.stdout and "/users/properties/" in one.stdout
    r1, r2 = (json.loads((tmp_path / n).read_text()) for n in ("1.json", "2.json"))
    assert r1["outcomes"] == r2["outcomes"] and r1["invalid_reasons"] == r2["invalid_reasons"]


def test_a_trait_that_changes_type_is_invalid_with_the_reason(tmp_path):
    events = [_identify("u1", {"age": 30}), _identify("u2", {"age": "thirty"}),
              _identify("u3", {"bio": "x" * (2 * 1024 * 1024)}), _identify("u4", {"id": "x"}),
              _identify("u5", {"age": 31})]
    path = _write(tmp_path, events)
    rejects = tmp_path / "rejects.ndjson"
    result, requests = _dry(["--preset", USERS, "--rejects", str(rejects), "--max-line-bytes", str(4 << 20),
                             "--report", str(tmp_path / "r.json"), path])
    assert result.exit_code == 1
    assert [r["path"] for r in requests] == ["/users/properties/age", "/users/u1", "/users/u5"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outcomes"]["invalid"] == 3 and report["outcomes"]["sent"] == 2
    reasons = "\n".join(report["invalid_reasons"])
    assert "user property 'age' is double (inferred from its first value, integer); the value (string) does not fit" \
        in reasons
    assert "a string of 2,097,152 bytes is longer than the 65,536 bytes allowed" in reasons
    assert "property name 'id' is reserved" in reasons
    assert [json.loads(line)["event"]["userId"] for line in rejects.read_text().splitlines()] == ["u2", "u3", "u4"]


def test_config_declares_types_and_enables_presets(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[replay]\nenable_presets = ["Identify - User Traits"]\n'
                      '[user_properties]\nage = "int"\nsignup = "timestamp"\n')
    path = _write(tmp_path, [_identify("u1", {"age": 30, "signup": "2024-01-02"}), _identify("u2", {"age": 2.5})])
    result, requests = _dry(["--config", str(config), path])
    assert requests[:2] == [{"method": "PUT", "path": "/users/properties/age", "params": {"type": "int"}},
                            {"method": "PUT", "path": "/users/properties/signup", "params": {"type": "timestamp"}}]
    assert "user property 'age' is int (declared in the config); the value (number) does not fit" in result.stderr
    config.write_text('[user_properties]\nage = "integer"\n')
    bad = invoke(["validate", "--config", str(config)])
    assert bad.exit_code == 2 and "not one of int, double" in bad.stderr
    config.write_text('[replay]\nenable_presets = ["Page - Viewed"]\n')
    assert invoke(["validate", "--config", str(config)]).exit_code == 2
    assert invoke(["replay", "--dry-run", "--preset", "Nope", path]).exit_code == 2


def test_custom_set_item_values_mapping_and_explain(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('''
[replay]
presets = true
[[mappings]]
name = "Catalog"
trigger = 'type = "track" and event = "Product Updated"'
action = "setItemValues"
[mappings.fields]
itemId = "$.properties.id"
values = { title = "$.properties.title", tags = "$.properties.tags" }
''')
    path = _write(tmp_path, [{"type": "track", "event": "Product Updated", "userId": "x",
                              "properties": {"id": "i-1", "title": "T", "tags": ["a", "b"]}}])
    result, requests = _dry(["--config", str(config), path])
    assert requests[-1] == {"method": "POST", "path": "/items/i-1",
                            "params": {"title": "T", "tags": ["a", "b"], "!cascadeCreate": True}}
    assert {"method": "PUT", "path": "/items/properties/tags", "params": {"type": "set"}} in requests
    explained = ndjson(invoke(["explain", "--json", "--config", str(config), path]).stdout)
    assert explained[0]["outcome"] == "sent" and explained[0]["requests"] == [requests[-1]]
    validated = json.loads(invoke(["validate", "--json", "--config", str(config), path]).stdout)
    assert validated["mappings"]["Catalog"]["built"] == 1


# ------------------------------------------------------------------------------------------------
# Sending: definitions answered before any value, in every lane; order per user; merges
# ------------------------------------------------------------------------------------------------

def test_definitions_precede_values_in_every_lane_and_a_later_identify_wins(tmp_path):
    events = []
    for round_ in range(3):
        for n in range(60):
            events.append(_identify(f"u{n}", {"plan": f"p{round_}", "score": n + round_,
                                              f"flag_{n % 7}": round_ % 2 == 0}))
    events.append({"type": "alias", "userId": "u1", "previousId": "u2", "timestamp": "2024-03-02T00:00:00Z"})
    events.append(_identify("u1", {"plan": "after-merge"}))
    path = _write(tmp_path, events)
    with Emulator(DB, TOKEN) as emu:
        result = _send(emu, ["--preset", USERS, "--batch-size", "7", "--concurrency", "4", path])
        assert result.exit_code == 0, result.stderr
        assert emu.stats.sub_codes.get(404, 0) == 0
        sdk = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})
        types = {p["name"]: p["type"] for p in sdk.send(ListUserProperties())}
        assert types == {"plan": "string", "score": "double", **{f"flag_{k}": "boolean" for k in range(7)}}
        u5 = sdk.send(GetUserValues("u5"))
        assert u5["plan"] == "p2" and u5["score"] == 7.0 and u5["flag_5"] is True
        assert sdk.send(GetUserValues("u1"))["plan"] == "after-merge"
        assert "u2" not in [u for u in _all_users(sdk)]


def _all_users(sdk):
    from recombee_api_client.api_requests import ListUsers
    return sdk.send(ListUsers())


def test_sample_events_default_run_sends_no_values():
    requests = ndjson(invoke(["replay", "--dry-run", str(SAMPLES)]).stdout)
    assert requests and not [r for r in requests if "/properties/" in r["path"] or r["path"].startswith("/items/")
                             or (r["method"] == "POST" and r["path"].startswith("/users/"))]


def test_a_property_already_in_recombee_with_another_type_fails_with_recombees_answer(tmp_path):
    """409 on the definition is fine (idempotent re-runs), but the run cannot know the existing
    type: values that do not fit it fail with Recombee's reason, nothing is hidden."""
    from recombee_api_client.api_requests import AddUserProperty
    path = _write(tmp_path, [_identify("u1", {"plan": "pro", "seats": 3})])
    with Emulator(DB, TOKEN) as emu:
        sdk = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})
        sdk.send(AddUserProperty("plan", "int"))
        result = _send(emu, ["--preset", USERS, "--report", str(tmp_path / "r.json"), path])
        report = json.loads((tmp_path / "r.json").read_text())
        assert result.exit_code == 1 and report["outcomes"]["failed"] == 1
        assert report["property_definitions"] == 2 and report["property_definitions_answered"] == 2
        assert "Recombee answered 400: Value 'pro' of property 'plan' is not a valid int" in \
            "".join(report["failed_reasons"])


def test_presets_all_is_a_config_that_enables_both_with_their_types(tmp_path):
    config = tmp_path / "all.toml"
    config.write_text(invoke(["presets", "--all"]).stdout)
    path = _write(tmp_path, [_identify("u1", {"createdAt": "2024-01-02T03:04:05Z"})])
    result, requests = _dry(["--config", str(config), path])
    assert result.exit_code == 0, result.stderr
    assert requests == [
        {"method": "PUT", "path": "/users/properties/createdAt", "params": {"type": "timestamp"}},
        {"method": "POST", "path": "/users/u1", "params": {"createdAt": "2024-01-02T03:04:05Z", "!cascadeCreate": True}}]


def test_definitions_survive_5xx(tmp_path):
    """The first two calls (the first chunk's definitions, sent before anything else) answer 503:
    definitions are retried until answered, so no value ever meets a missing property."""
    from recombee_cli.recombee.emulator import Faults
    events = [_identify(f"u{n}", {"plan": "pro", "seats": n, "vip": n % 2 == 0, "tags": ["a", str(n)]})
              for n in range(40)]
    events += [{"type": "track", "event": "Product Viewed", "userId": f"u{n}", "timestamp": "2024-03-01T00:00:00Z",
                "properties": {"product_id": f"p{n % 5}", "name": f"P{n % 5}", "price": n + 0.5}} for n in range(40)]
    path = _write(tmp_path, events)
    with Emulator(DB, TOKEN, faults=Faults(p_503=1.0, limit=2)) as emu:
        result = _send(emu, ["--preset", USERS, "--preset", ITEMS, "--batch-size", "10",
                             "--report", str(tmp_path / "r.json"), path])
        report = json.loads((tmp_path / "r.json").read_text())
        assert result.exit_code == 0, result.stderr
        assert report["outcomes"]["failed"] == 0 and report["property_definitions_answered"] == 6
        assert emu.stats.faults["503"] >= 2 and emu.stats.sub_codes.get(404, 0) == 0
        sdk = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})
        assert sdk.send(GetUserValues("u7")) == {"plan": "pro", "seats": 7.0, "vip": False, "tags": ["7", "a"]}
        assert {p["name"]: p["type"] for p in sdk.send(ListItemProperties())} == {"name": "string", "price": "double"}
