"""Users' and items' values: names, types, definitions before values, the opt-in presets.

Everything that sends runs for real: the CLI in-process, the emulator over 127.0.0.1 with real
signatures, and the official SDK reading the store back."""

from __future__ import annotations

import json

import pytest
from helpers import DATA, SAMPLES, invoke, ndjson
from recombee_api_client.api_client import RecombeeClient
from recombee_api_client.api_requests import GetUserValues, ListItemProperties, ListUserProperties

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
    values, dropped, renamed = property_values({
        "firstName": "Ann", "address": {"city": "Brno", "geo": {"lat": 49.2}}, "first name": "x", "a.b": 1,
        "audience_30days": True, "tags": ["a", "b"], "Größe": "M"})
    assert values == {"firstName": "Ann", "address_city": "Brno", "address_geo_lat": 49.2,
                      "first_name": "x", "a_b": 1, "audience_30days": True, "tags": ["a", "b"], "Gro_e": "M"}
    assert dropped == []
    assert renamed == {"address_city": "address.city", "address_geo_lat": "address.geo.lat",
                       "first_name": "first name", "a_b": "a.b", "Gro_e": "Größe"}


@pytest.mark.parametrize("values, reason", [
    ({"id": 1}, "reserved"),
    ({"UserId": 1}, "reserved"),
    ({"x" * 64: 1}, "longer than 63"),
    ({"a.b": 1, "a_b": 2}, "is already set from 'a.b'"),
    ({"a": {"b": 1}, "a_b": 2}, "is already set from 'a.b'"),
    ({"bio": "x" * (2 * 1024 * 1024)}, f"the {MAX_STRING_BYTES:,} bytes allowed"),
    ({"tags": ["a", 1]}, "a list may hold only strings"),
    ({"n": float("inf")}, "not a finite number"),
    ({"Покупатели": True}, "is empty once made of Recombee's characters"),
])
def test_a_value_recombee_would_refuse_is_dropped_alone(values, reason):
    kept, dropped, _ = property_values({"plan": "pro", **values})
    assert len(dropped) == 1 and reason in dropped[0][2], dropped
    assert kept.pop("plan") == "pro"
    assert len(kept) == len(values) - 1   # (a collision keeps the first key's value)


def test_engage_names_are_snake_cased_as_engage_makes_its_keys():
    from recombee_cli.segment.properties import engage_name
    assert engage_name("Order Completed Last 30days") == "order_completed_last_30days"
    assert engage_name("first_time_shopper") == "first_time_shopper"
    assert engage_name("  Käufer -- Größe ") == "kaufer_gro_e"
    assert engage_name("Покупатели") == ""


def test_inference_and_fit():
    assert [infer_type(value_class(v)) for v in (True, 3, 2.5, "x", "2024-01-02T03:04:05Z", ["a"],
                                                 "https://x.io/a.png")] == \
        ["boolean", "double", "double", "string", "string", "set", "string"]
    assert value_class(None) == "null" and infer_type("null") is None
    assert fits("double", value_class(19)) and fits("double", value_class(19.99))
    assert fits("int", value_class(3.0)) and not fits("int", value_class(3.5))
    assert fits("timestamp", value_class("2024-01-02")) and fits("timestamp", value_class(1704164645))
    assert not fits("timestamp", value_class("yesterday")) and not fits("string", value_class(3))
    assert fits("imageList", value_class(["https://x/a.png"])) and not fits("image", value_class(["https://x/a"]))
    assert fits("image", value_class("https://cdn.example.com/a.png?w=2")) and fits("image", value_class("HTTP://x"))
    for not_an_image in ("not a url at all", "", "ftp://nope", "https://", "https:// x.png", "/a.png"):
        assert not fits("image", value_class(not_an_image)), not_an_image
        assert fits("string", value_class(not_an_image))
    assert not fits("imageList", value_class(["https://x/a.png", "b.png"]))
    assert all(fits(kind, "null") for kind in ("int", "set", "image"))


def test_gate_decides_in_order_and_defines_once():
    gate = PropertyGate({"users": {"age": "int"}}, existing={"users": {"score": "double"}})
    describe = lambda params: describe_values({"method": "POST", "path": "/users/u", "params": params})[1]  # noqa: E731
    dropped, leave, new = gate.check("users", describe({"age": 3, "plan": "pro", "phone": None, "score": 1}))
    assert dropped == [] and leave == ["phone"]
    assert new == [{"method": "PUT", "path": "/users/properties/age", "params": {"type": "int"}},
                   {"method": "PUT", "path": "/users/properties/plan", "params": {"type": "string"}}]
    assert gate.check("users", describe({"age": 4, "plan": "free", "phone": "1"}))[2] == \
        [{"method": "PUT", "path": "/users/properties/phone", "params": {"type": "string"}}]
    dropped, leave, new = gate.check("users", describe({"plan": 3, "vip": True, "score": "high"}))
    assert dropped == [
        ("plan", "user property 'plan' is string (inferred from its first value, string); the value (integer) "
                 "does not fit"),
        ("score", "user property 'score' is double (in the database); the value (string) does not fit")]
    assert leave == ["plan", "score"]
    assert new == [{"method": "PUT", "path": "/users/properties/vip", "params": {"type": "boolean"}}]
    assert "declared in the config" in gate.check("users", describe({"age": 2.5}))[0][0][1]
    # Two keys that become one name across events: the first key keeps it.
    assert gate.check("users", describe({"kaufer": True}), {"kaufer": "Käufer"})[0] == []
    assert gate.check("users", describe({"kaufer": False}), {"kaufer": "käufer"})[0] == [
        ("kaufer", "user property 'kaufer' already holds the values of key 'Käufer'; key 'käufer' would write "
                   "over them")]
    assert gate.check("users", describe({"kaufer": False}), {"kaufer": "Käufer"})[0] == []


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


def test_one_refused_value_is_dropped_alone_and_said_once_per_property(tmp_path):
    long_name = "n" * 70
    events = [_identify("u5", {"id": "x123", "plan": "pro"}),                            # Segment's standard trait
              _identify("u6", {long_name: 1, "plan": "free", "tags": ["a", 2]}),
              _identify("u7", {"a.b": 1, "a_b": 2, "plan": "pro"}),
              _identify("u8", {"age": 30, "id": "x124"}), _identify("u9", {"age": "thirty", "vip": True}),
              _identify("u10", {"bio": "x" * (2 * 1024 * 1024), "plan": "team"}),
              {"type": "track", "event": "Product Viewed", "userId": "u5", "timestamp": "2024-03-01T00:00:00Z",
               "properties": {"product_id": "p1", "price": "24.50", "name": "Hoodie",
                              "image_url": "https://cdn.example.com/p1.png"}}]
    path = _write(tmp_path, events)
    rejects = tmp_path / "rejects.ndjson"
    result, requests = _dry(["--preset", USERS, "--preset", ITEMS, "--rejects", str(rejects), "--max-line-bytes",
                             str(4 << 20), "--report", str(tmp_path / "r.json"), path])
    assert result.exit_code == 0, result.stderr
    values = {r["path"]: r["params"] for r in requests if r["method"] == "POST" and "/properties/" not in r["path"]}
    assert values["/users/u5"] == {"plan": "pro", "!cascadeCreate": True}
    assert values["/users/u6"] == {"plan": "free", "!cascadeCreate": True}
    assert values["/users/u7"] == {"a_b": 1, "plan": "pro", "!cascadeCreate": True}
    assert values["/users/u8"] == {"age": 30, "!cascadeCreate": True}
    assert values["/users/u9"] == {"vip": True, "!cascadeCreate": True}
    assert values["/users/u10"] == {"plan": "team", "!cascadeCreate": True}
    assert values["/items/p1"] == {"name": "Hoodie", "image_url": "https://cdn.example.com/p1.png",
                                   "!cascadeCreate": True}
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outcomes"]["invalid"] == 0 and report["outcomes"]["sent"] == len(events)
    assert report["values_dropped"] == 8
    dropped = report["dropped_values"]
    assert {k: v["count"] for k, v in dropped.items()} == {
        "user property 'id'": 2, f"user property '{long_name}'": 1, "user property 'tags'": 1,
        "user property 'a_b'": 1, "user property 'age'": 1, "user property 'bio'": 1, "item property 'price'": 1}
    assert dropped["user property 'id'"] == {
        "count": 2, "reason": "property name 'id' is reserved by Recombee (id, userid, itemid)",
        "example": {"value": "x123", "field": "values.id", "mapping": USERS, "source": path, "line": 1}}
    assert dropped["item property 'price'"]["reason"] == \
        "item property 'price' is double (declared in the config); the value (string) does not fit"
    assert dropped["item property 'price'"]["example"]["value"] == "24.50"
    assert dropped["user property 'age'"]["reason"] == \
        "user property 'age' is double (inferred from its first value, integer); the value (string) does not fit"
    assert dropped["user property 'bio'"]["example"]["value"].endswith("...")
    # The rejects file keeps each dropped value's event with its field (replayable as ever).
    records = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["event"]["userId"], r["field"]) for r in records] == [
        ("u5", "values.id"), ("u6", f"values.{long_name}"), ("u6", "values.tags"), ("u7", "values.a_b"),
        ("u8", "values.id"), ("u9", "values.age"), ("u10", "values.bio"), ("u5", "values.price")]
    assert all(r["outcome"] == "invalid" and r["reason"].startswith("value dropped: ") for r in records)
    assert "values left out (the rest of each event was sent), per property:" in result.stderr
    assert "user property 'id': property name 'id' is reserved" in result.stderr


def test_dry_run_output_folder_prints_the_definitions_as_stdout_does(tmp_path):
    args = ["--preset", USERS, "--preset", ITEMS, str(DATA / "segment-export-20k.ndjson.gz"), str(SAMPLES)]
    stdout = invoke(["replay", "--dry-run", *args]).stdout.splitlines()
    result = invoke(["replay", "--dry-run", "--output", str(tmp_path / "out"), "--report",
                     str(tmp_path / "r.json"), *args])
    assert result.exit_code in (0, 1), result.stderr   # (the 20k export has invalid lines on purpose)
    files = sorted((tmp_path / "out").rglob("*.ndjson"))
    assert len(files) == 1 + len(list(SAMPLES.rglob("*.*")))
    written = [line for path in files for line in path.read_text().splitlines()]
    assert sorted(written) == sorted(stdout) and len(written) == len(stdout)
    definitions = [line for line in written if '"/users/properties/' in line or '"/items/properties/' in line]
    assert definitions and len(definitions) == json.loads((tmp_path / "r.json").read_text())["property_definitions"]
    # Each input's file holds its part of stdout, definitions where stdout has them.
    def where(lines):   # where this file's lines stand in stdout, as one run of lines
        return next(i for i, line in enumerate(stdout) if line == lines[0] and stdout[i:i + len(lines)] == lines)

    parts = sorted((p.read_text().splitlines() for p in files if p.stat().st_size), key=where)
    assert [line for lines in parts for line in lines] == stdout


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


def test_the_databases_property_types_are_read_before_sending(tmp_path):
    """A trait that changed type between runs (`score: 1`, later `"high"`), and a property some
    other tool made with another type: a sending run reads the database's user and item
    properties first (signed GETs of the list endpoints), so such a value is dropped before
    sending, as within one run, instead of coming back 400 and keeping its file pending."""
    from recombee_api_client.api_requests import AddUserProperty
    first = _write(tmp_path, [_identify("u1", {"score": 1, "plan": "pro"})], "first.ndjson")
    later = _write(tmp_path, [_identify("u1", {"score": "high", "plan": "team", "seats": 3}),
                              _identify("u2", {"tier": "gold"})], "later.ndjson")
    with Emulator(DB, TOKEN) as emu:
        sdk = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})
        assert _send(emu, ["--preset", USERS, first]).exit_code == 0
        sdk.send(AddUserProperty("tier", "int"))
        emu.reset_stats()
        result = _send(emu, ["--preset", USERS, "--report", str(tmp_path / "r.json"), later])
        report = json.loads((tmp_path / "r.json").read_text())
        assert result.exit_code == 0, result.stderr
        assert report["outcomes"] == {**report["outcomes"], "sent": 2, "failed": 0, "invalid": 0}
        assert emu.stats.sub_codes.get(400, 0) == 0 and emu.stats.http_calls == emu.stats.batch_calls + 2
        assert {k: (v["count"], v["reason"]) for k, v in report["dropped_values"].items()} == {
            "user property 'score'": (1, "user property 'score' is double (in the database); the value (string) "
                                         "does not fit"),
            "user property 'tier'": (1, "user property 'tier' is int (in the database); the value (string) "
                                        "does not fit")}
        assert report["property_definitions"] == 1    # seats: the others are there already
        assert sdk.send(GetUserValues("u1")) == {"score": 1.0, "plan": "team", "seats": 3.0, "tier": None}
    # A dry run has no database: the same events define what they use, as before.
    dry = ndjson(invoke(["replay", "--dry-run", "--preset", USERS, later]).stdout)
    assert [r["path"] for r in dry if "/properties/" in r["path"]] == [
        "/users/properties/score", "/users/properties/plan", "/users/properties/seats", "/users/properties/tier"]


def test_reading_the_types_with_a_wrong_token_stops_before_anything_is_sent(tmp_path):
    path = _write(tmp_path, [_identify("u1", {"plan": "pro"})])
    with Emulator(DB, "another-token") as emu:
        result = _send(emu, ["--preset", USERS, path])
        assert result.exit_code == 3 and "refused the credentials" in result.stderr
        assert emu.stats.batch_calls == 0 and TOKEN not in result.stderr + result.stdout


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
    """The first two Batch calls (the first chunk's definitions, sent before anything else) answer 503:
    definitions are retried until answered, so no value ever meets a missing property."""
    from recombee_cli.recombee.emulator import Faults
    events = [_identify(f"u{n}", {"plan": "pro", "seats": n, "vip": n % 2 == 0, "tags": ["a", str(n)]})
              for n in range(40)]
    events += [{"type": "track", "event": "Product Viewed", "userId": f"u{n}", "timestamp": "2024-03-01T00:00:00Z",
                "properties": {"product_id": f"p{n % 5}", "name": f"P{n % 5}", "price": n + 0.5}} for n in range(40)]
    path = _write(tmp_path, events)
    with Emulator(DB, TOKEN, faults=Faults(p_503=1.0, limit=2, batch_calls_only=True)) as emu:
        result = _send(emu, ["--preset", USERS, "--preset", ITEMS, "--batch-size", "10",
                             "--report", str(tmp_path / "r.json"), path])
        report = json.loads((tmp_path / "r.json").read_text())
        assert result.exit_code == 0, result.stderr
        assert report["outcomes"]["failed"] == 0 and report["property_definitions_answered"] == 6
        assert emu.stats.faults["503"] >= 2 and emu.stats.sub_codes.get(404, 0) == 0
        sdk = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})
        assert sdk.send(GetUserValues("u7")) == {"plan": "pro", "seats": 7.0, "vip": False, "tags": ["7", "a"]}
        assert {p["name"]: p["type"] for p in sdk.send(ListItemProperties())} == {"name": "string", "price": "double"}


# ------------------------------------------------------------------------------------------------
# Engage as Segment sends it; products of list events
# ------------------------------------------------------------------------------------------------

def _track(user, event, properties, minute=0):
    return {"type": "track", "event": event, "userId": user, "properties": properties,
            "timestamp": f"2024-03-01T00:{minute:02d}:00Z"}


def test_engage_audiences_and_computed_traits_in_both_forms(tmp_path):
    """Segment's "Using Engage Data": an audience is an identify trait `key: true/false`, or the
    track events "Audience Entered" / "Audience Exited" with `audience_key` and `key: true/false`;
    a computed trait is an identify trait, or a "Trait Computed" track event with `trait_key`."""
    events = [
        _identify("u1", {"first_time_shopper": True, "total_revenue_180_days": 120.5}),
        _track("u2", "Audience Entered", {"audience_key": "order_completed_last_30days",
                                          "order_completed_last_30days": True}, 1),
        _track("u3", "Audience Entered", {"audience_key": "order_completed_last_30days",
                                          "order_completed_last_30days": True}, 2),
        _track("u3", "Audience Exited", {"audience_key": "order_completed_last_30days",
                                         "order_completed_last_30days": False}, 3),
        _track("u1", "Audience Exited", {"audience_key": "first_time_shopper"}, 4),  # the exit alone says false
        _track("u2", "Trait Computed", {"trait_key": "total_revenue_180_days", "total_revenue_180_days": 450.0}, 5),
        # Not snake_case, not ASCII: snake_cased as Engage makes keys, accents dropped.
        _track("u4", "Audience Entered", {"audience_key": "Käufer Stammkunden"}, 6),
        # Another key that becomes the same name: detected, the first key keeps the property.
        _track("u5", "Audience Entered", {"audience_key": "kaufer stammkunden"}, 7),
        # Other scripts only: no name can be made of it.
        _track("u6", "Audience Entered", {"audience_key": "Постоянные"}, 8),
    ]
    path = _write(tmp_path, events)
    with Emulator(DB, TOKEN) as emu:
        result = _send(emu, ["--preset", USERS, "--report", str(tmp_path / "r.json"), path])
        assert result.exit_code == 0, result.stderr
        report = json.loads((tmp_path / "r.json").read_text())
        assert report["outcomes"]["sent"] == len(events) and report["outcomes"]["unmatched"] == 0
        sdk = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})
        types = {p["name"]: p["type"] for p in sdk.send(ListUserProperties())}
        assert types == {"first_time_shopper": "boolean", "total_revenue_180_days": "double",
                         "order_completed_last_30days": "boolean", "kaufer_stammkunden": "boolean"}
        values = {u: sdk.send(GetUserValues(u)) for u in ("u1", "u2", "u3", "u4", "u5", "u6")}
    assert values["u1"] == {**values["u1"], "first_time_shopper": False, "total_revenue_180_days": 120.5}
    assert values["u2"] == {**values["u2"], "order_completed_last_30days": True, "total_revenue_180_days": 450.0}
    assert values["u3"]["order_completed_last_30days"] is False
    assert values["u4"]["kaufer_stammkunden"] is True and values["u5"]["kaufer_stammkunden"] is None
    assert not any(values["u6"].values())     # the user exists (the event says so), with no value
    dropped = report["dropped_values"]
    assert dropped["user property 'kaufer_stammkunden'"]["reason"] == (
        "user property 'kaufer_stammkunden' already holds the values of key 'Käufer Stammkunden'; "
        "key 'kaufer stammkunden' would write over them")
    assert dropped["user property 'Постоянные'"]["reason"] == \
        "property name 'Постоянные' is empty once made of Recombee's characters"


def test_products_of_list_events_feed_the_item_preset_last_value_wins(tmp_path):
    def product(pid, price, **more):
        return {"product_id": pid, "price": price, "name": f"P-{pid}", **more}

    events = [
        _track("u1", "Product List Viewed", {"list_id": "hot", "category": "Deals",
                                             "products": [product("p1", 10), product("p2", 20, brand="B")]}, 1),
        _track("u1", "Cart Viewed", {"cart_id": "c1", "products": [product("p2", 21), {"sku": "s3", "price": 3}]}, 2),
        _track("u1", "Checkout Started", {"order_id": "o1", "products": [product("p1", 11,
                                                                                 image_url="https://x.io/p1.png")]}, 3),
    ]
    path = _write(tmp_path, events)
    result, requests = _dry(["--preset", ITEMS, path])
    assert result.exit_code == 0, result.stderr
    assert [r["path"] for r in requests if not r["path"].startswith("/items/properties/")] == [
        "/items/p1", "/items/p2", "/items/p2", "/items/s3", "/items/p1"]
    with Emulator(DB, TOKEN) as emu:
        assert _send(emu, ["--preset", ITEMS, path]).exit_code == 0
        sdk = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})
        from recombee_api_client.api_requests import ListItems
        items = {i.pop("itemId"): i for i in sdk.send(ListItems(return_properties=True))}
    assert items["p1"] == {**items["p1"], "price": 11.0, "name": "P-p1", "image_url": "https://x.io/p1.png"}
    assert items["p2"] == {**items["p2"], "price": 21.0, "brand": "B"}
    assert items["s3"]["sku"] == "s3" and items["s3"]["price"] == 3.0
    assert all(i.get("category") != "Deals" for i in items.values())   # the list's category is not theirs


def test_explain_shows_the_values_left_out_with_their_field(tmp_path):
    path = _write(tmp_path, [_identify("u5", {"id": "x123", "plan": "pro"})])
    result = invoke(["explain", "--preset", USERS, path])
    assert result.exit_code == 0, result.stderr
    assert "value left out: values.id: property name 'id' is reserved by Recombee" in result.stdout
    assert '"params":{"plan":"pro","!cascadeCreate":true}' in result.stdout
    assert "~values" not in result.stdout
