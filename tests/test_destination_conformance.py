"""Every case of destination.json: our requests against the requests Segment's destination sent.

Segment sends single requests (deletes and merges with a query string, purchases as a Batch);
we emit Batch request objects with parameters in `params` (the official SDK's style). The
comparison therefore turns Segment's requests into Batch objects first; URLs and signatures aside,
everything else must be equal.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from helpers import load_json

from recombee_cli.mapping.compile import compile_mapping
from recombee_cli.mapping.config import MappingSpec
from recombee_cli.mapping.translate import Translator
from recombee_cli.segment.actions import ACTIONS
from recombee_cli.segment.presets import PRESETS_BY_NAME

VECTORS = load_json("destination.json")
DB = VECTORS["settings"]["databaseId"]

# Where we deliberately differ from Segment (SPEC §6), by case name, with the reason.
DELIBERATE = {
    "addRating out of range (sent; Recombee answers 400)":
        "a rating outside [-1, 1] is invalid here; Segment sends it and Recombee refuses it",
    "setViewPortion portion -1 (sent; Recombee answers 400)":
        "a portion outside [0, 1] is invalid here; Segment sends it and Recombee refuses it",
    "TS6 no timestamp at all -> omitted":
        "an interaction without any timestamp is invalid here: Recombee would store it as 'now'",
}


def _number(text: str):
    value = float(text)
    return int(value) if value == int(value) else value


def _query_params(query: str) -> dict:
    params = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in ("hmac_timestamp", "hmac_sign"):
            continue
        if key == "timestamp":
            params[key] = _number(value)
        elif key == "cascadeCreate":
            params[key] = value.lower() == "true"
        else:
            params[key] = value
    return params


def _normalise_path(path: str) -> str:
    # Segment deletes a user at /users/{id}/, the SDK (and we) at /users/{id}.
    return path.rstrip("/") if path.startswith("/users/") else path


def as_batch_objects(segment_request: dict) -> list[dict]:
    """Segment's {method, url, body} -> the Batch request objects it stands for."""
    url = urlsplit(segment_request["url"])
    assert url.path.startswith(f"/{DB}/")
    path = url.path[len(DB) + 1:]
    body = json.loads(segment_request["body"])
    if path == "/batch/":
        out = []
        for sub in body["requests"]:
            sub_path, _, query = sub["path"].partition("?")
            params = {**_query_params(query), **sub.get("params", {})}
            out.append({"method": sub["method"], "path": _normalise_path(sub_path), "params": params})
        return out
    if segment_request["method"] in ("DELETE", "PUT"):
        return [{"method": segment_request["method"], "path": _normalise_path(path),
                 "params": _query_params(url.query)}]
    return [{"method": "POST", "path": path, "params": body}]


def _translator(action: str, fields: dict) -> Translator:
    spec = MappingSpec("case", 'type != "__never__"', action, fields)
    return Translator([compile_mapping(spec)])


def _run(case: dict, translator: Translator) -> tuple[list[dict], list[str]]:
    repeats = 2 if case.get("mode", "").startswith("performBatch with the same event twice") else 1
    requests, errors = [], []
    for _ in range(repeats):
        result = translator.translate(case["event"])
        requests += result.requests
        errors += [reason for _, reason in result.errors]
    return requests, errors


def _check(case: dict, translator: Translator) -> None:
    requests, errors = _run(case, translator)
    expect = case["expect"]
    if case["name"] in DELIBERATE:
        assert requests == [] and errors, f"{case['name']}: expected our deliberate refusal"
        return
    if "error" in expect:
        assert requests == [], "Segment rejected this event, we built requests"
        assert errors, "Segment rejected this event, we did not"
        field = expect["message"].split("'")[1] if "'" in expect["message"] else None
        if field:
            assert f"'{field}'" in errors[0], (errors[0], expect["message"])
        else:
            assert errors[0].startswith(expect["message"].split(" (")[0]), (errors[0], expect["message"])
        return
    assert errors == []
    wanted = [obj for r in expect["requests"] for obj in as_batch_objects(r)]
    assert requests == wanted


@pytest.mark.parametrize("case", VECTORS["unit_test_replays"], ids=lambda c: c["name"])
def test_action_defaults_match_segment(case):
    fields = ACTIONS[case["action"]].default_mapping()
    fields.update(case.get("mapping_overrides", {}))
    _check(case, _translator(case["action"], fields))


@pytest.mark.parametrize("case", VECTORS["preset_vectors"], ids=lambda c: c["name"])
def test_presets_match_segment(case):
    preset = PRESETS_BY_NAME[case["preset"]]
    assert preset.action == case["action"]
    _check(case, Translator([compile_mapping(MappingSpec(preset.name, preset.trigger, preset.action,
                                                          preset.mapping()))]))


def _destination_case(name: str) -> dict:
    return next(c for c in VECTORS["destination_level_vectors"] if c["name"].startswith(name))


def test_user_deletion_matches_segment_on_delete():
    case = _destination_case("onDelete (user deletion")
    translator = _translator("deleteUser", ACTIONS["deleteUser"].default_mapping())
    result = translator.translate(case["payload"])
    assert result.requests == [o for r in case["expect"]["requests"] for o in as_batch_objects(r)]


def test_user_deletion_without_user_sends_nothing():
    case = _destination_case("onDelete without userId")
    translator = _translator("deleteUser", ACTIONS["deleteUser"].default_mapping())
    result = translator.translate(case["payload"])
    assert case["expect"]["requests"] == [] and result.requests == []
    assert "userId" in result.errors[0][1]


def test_authentication_check_is_never_an_empty_batch():
    """Segment checks credentials with an empty Batch; we never send one (the official SDK crashes
    on it, and it proves nothing the first real Batch does not)."""
    case = _destination_case("testAuthentication")
    assert json.loads(case["expect"]["requests"][0]["body"]) == {"requests": []}
    from recombee_cli.recombee.client import RecombeeClient

    client = RecombeeClient(DB, "VALID_TOKEN", "http://127.0.0.1:9")  # nothing listens: must not connect
    assert client.batch([]) == []
    assert client.http_calls == 0


SEGMENT_PRESET_TRIGGERS = {  # destination-behaviour.md §3, verbatim
    "Page - Viewed": 'type = "page"',
    "Ecommerce - Product Viewed": 'type = "track" and event = "Product Viewed"',
    "Ecommerce - Product Added": 'type = "track" and event = "Product Added"',
    "Ecommerce - Product Removed": 'type = "track" and event = "Product Removed"',
    "Ecommerce - Order Completed": 'type = "track" and event = "Order Completed"',
    "Ecommerce - Product Added to Wishlist": 'type = "track" and event = "Product Added to Wishlist"',
    "Ecommerce - Product Removed from Wishlist": 'type = "track" and event = "Product Removed from Wishlist"',
    "Ecommerce - Product Shared": 'type = "track" and event = "Product Shared"',
    "Video - Playback Started": 'type = "track" and event = "Video Playback Started"',
    "Video - Content Playing": 'type = "track" and event = "Video Content Playing"',
    "Video - Playback Paused": 'type = "track" and event = "Video Playback Paused"',
    "Video - Playback Completed": 'type = "track" and event = "Video Playback Completed"',
    "Screen - Viewed": 'type = "screen"',
    "Alias": 'type = "alias"',
}


def test_presets_are_segments_fourteen_with_verbatim_triggers():
    assert {name: p.trigger for name, p in PRESETS_BY_NAME.items()} == SEGMENT_PRESET_TRIGGERS
