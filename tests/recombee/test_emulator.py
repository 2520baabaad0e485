"""The emulator against the official SDK (the oracle) and raw signed httpx requests.

Everything runs on 127.0.0.1 with port 0. Loops waiting for random faults are bounded by count and
time. The SDK's Batch insists on https (ensure_https=True); most tests set ``ensure_https = False``
on the batch so they can stay on plain http, and one test sends the untouched Batch over TLS.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from recombee_api_client import api_client
from recombee_api_client.api_client import RecombeeClient
from recombee_api_client.api_requests import (
    AddBookmark,
    AddCartAddition,
    AddDetailView,
    AddPurchase,
    AddRating,
    AddUser,
    AddUserProperty,
    Batch,
    DeleteBookmark,
    DeleteCartAddition,
    DeleteUser,
    DeleteViewPortion,
    MergeUsers,
    SetUserValues,
    SetViewPortion,
)
from recombee_api_client.exceptions import ResponseException

from recombee_cli.recombee.emulator import MAX_BATCH, ODD_ANSWERS, Emulator, Faults
from recombee_cli.recombee.signing import hmac_hex, quote_query, sign

DB, TOKEN = "test-db", "secret-token-123"
CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"
TS = 1704164645.0                      # 2024-01-02T03:04:05Z
ISO = "2024-01-02T03:04:05Z"
EMPTY = {t: [] for t in ("users", "items", "user_values", "detailviews", "purchases", "cartadditions",
                         "bookmarks", "ratings", "viewportions", "item_values", "user_properties",
                         "item_properties")}


@pytest.fixture(autouse=True)
def _no_rapi_uri(monkeypatch):
    monkeypatch.delenv("RAPI_URI", raising=False)  # it would override the SDK's base_uri


@pytest.fixture
def emu():
    with Emulator(DB, TOKEN) as e:
        yield e


@pytest.fixture
def sdk(emu):
    return RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})


@pytest.fixture
def http():
    with httpx.Client(timeout=10) as client:
        yield client


def plain_batch(requests) -> Batch:
    batch = Batch(requests)
    batch.ensure_https = False  # the SDK forces https for Batch; these tests stay on http
    return batch


def call(emu, http, method, path_and_query, body: object = None, *, token=TOKEN, now=None,
         raw_body: bytes | None = None, content_type="application/json") -> httpx.Response:
    """A request signed by our signer, the URL passed as a string (byte-exact target)."""
    target = sign(DB, path_and_query, token, time.time() if now is None else now)
    content = raw_body if raw_body is not None else json.dumps({} if body is None else body).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    return http.request(method, emu.base_uri + target, content=content, headers=headers)


def send_batch(emu, http, requests, **kw) -> httpx.Response:
    return call(emu, http, "POST", "/batch/", {"requests": requests}, **kw)


def codes(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [r["code"] for r in response.json()]


def add(path, **params):
    return {"method": "POST", "path": path, "params": {"cascadeCreate": True, **params}}


def sdk_error(excinfo) -> tuple[int, dict]:
    return excinfo.value.status_code, json.loads(excinfo.value.description)


# ------------------------------------------------------------------------------------------------
# Every request type, singly and in a Batch, through the official SDK
# ------------------------------------------------------------------------------------------------

def every_add_request():
    return [
        AddDetailView("user-1", "item-1", timestamp=ISO, duration=35, cascade_create=True, recomm_id="r-0",
                      additional_data={"source": "cli", "n": 1}, auto_presented=False),
        AddPurchase("user-1", "item-2", timestamp=1704164645, cascade_create=True, amount=2, price=19.98,
                    profit=5.5, recomm_id="r-1", additional_data={"orderId": "o-9"}),
        AddCartAddition("user-1", "item-3", timestamp=1704164645.5, cascade_create=True, amount=1.0,
                        price=9.99),
        AddBookmark("user-1", "item-4", timestamp="2024-01-02T04:04:05+01:00", cascade_create=True),
        AddRating("user-1", "item-5", 0.5, timestamp="2024-01-02T03:04:05", cascade_create=True),
        SetViewPortion("user-1", "item-6", 0.25, session_id="sess-1", timestamp=TS, cascade_create=True,
                       auto_presented=True, time_spent=12.5),
    ]


EXPECTED_ADDS = {
    **EMPTY,
    "users": [("user-1",)],
    "items": [(f"item-{i}",) for i in range(1, 7)],
    "user_values": [],
    "detailviews": [("user-1", "item-1", TS, 35.0, 0, "r-0", '{"n":1,"source":"cli"}')],
    "purchases": [("user-1", "item-2", TS, 2.0, 19.98, 5.5, "r-1", '{"orderId":"o-9"}')],
    "cartadditions": [("user-1", "item-3", TS + 0.5, 1.0, 9.99, None, None)],
    "bookmarks": [("user-1", "item-4", TS, None, None)],
    "ratings": [("user-1", "item-5", TS, 0.5, None, None)],
    "viewportions": [("user-1", "item-6", "sess-1", TS, 0.25, 12.5, 1, None, None)],
}


def test_single_requests_of_every_type(emu, sdk):
    for request in every_add_request():
        assert sdk.send(request) == "ok"
    assert emu.snapshot() == EXPECTED_ADDS

    assert sdk.send(AddUser("user-2")) == "ok"
    assert sdk.send(AddUserProperty("country", "string")) == "ok"   # Recombee wants properties first
    assert sdk.send(AddUserProperty("tags", "set")) == "ok"
    assert sdk.send(SetUserValues("user-3", {"country": "US", "tags": {"a"}}, cascade_create=True)) == "ok"
    assert sdk.send(DeleteCartAddition("user-1", "item-3", timestamp=1704164645.5)) == "ok"
    assert sdk.send(DeleteBookmark("user-1", "item-4")) == "ok"
    assert sdk.send(DeleteViewPortion("user-1", "item-6", session_id="sess-1")) == "ok"
    assert sdk.send(MergeUsers("user-2", "user-1", cascade_create=True)) == "ok"
    snap = emu.snapshot()
    assert snap["cartadditions"] == snap["bookmarks"] == snap["viewportions"] == []
    assert snap["users"] == [("user-2",), ("user-3",)]
    assert snap["user_values"] == [("user-3", "country", '"US"'), ("user-3", "tags", '["a"]')]
    assert [r[0] for r in snap["detailviews"] + snap["purchases"] + snap["ratings"]] == ["user-2"] * 3
    assert sdk.send(DeleteUser("user-2")) == "ok"
    snap = emu.snapshot()
    assert snap["detailviews"] == snap["purchases"] == snap["ratings"] == []
    assert snap["users"] == [("user-3",)]
    assert emu.stats.codes == {200: 11, 201: 4}


def test_batch_of_every_type(emu, sdk):
    sdk.send(AddUserProperty("country", "string"))
    requests = every_add_request() + [
        AddUser("user-2"), AddUser("user-2"),
        SetUserValues("user-2", {"country": "US"}),
        DeleteCartAddition("user-1", "item-3", timestamp=1704164645.5),
        DeleteBookmark("user-1", "item-4"),
        DeleteViewPortion("user-1", "item-6", session_id="sess-1"),
        MergeUsers("user-2", "user-1"),
        DeleteUser("user-2"), DeleteUser("user-2"),
    ]
    results = sdk.send(plain_batch(requests))
    assert [r["code"] for r in results] == [200] * 6 + [201, 409, 200, 200, 200, 200, 201, 200, 404]
    assert results[7]["json"] == {"statusCode": 409, "error": "User 'user-2' already exists"}
    assert emu.snapshot() == {**EMPTY, "items": [(f"item-{i}",) for i in range(1, 7)],
                              "user_properties": [("country", "string")]}
    assert emu.stats.batch_calls == 1 and emu.stats.sub_requests == 15


def test_batch_of_every_type_only_adds(emu, sdk):
    results = sdk.send(plain_batch(every_add_request()))
    assert results == [{"code": 200, "json": "ok"}] * 6
    assert emu.snapshot() == EXPECTED_ADDS


def test_captured_sdk_batch_body_is_accepted(emu, sdk, http):
    for name, kind in (("country", "string"), ("tags", "set"), ("seen_at", "timestamp")):
        sdk.send(AddUserProperty(name, kind))   # the sample sets them: Recombee wants them defined
    sample = json.loads((CONFORMANCE / "batch-sample.json").read_text())
    response = call(emu, http, "POST", "/batch/", raw_body=sample["body_raw"].encode())
    # merge: source anon-7 does not exist; DeleteUser user-9 does not exist; the rest succeeds.
    assert codes(response) == [200] * 8 + [404, 404, 200, 201]
    snap = emu.snapshot()
    assert snap["users"] == [("user-1",), ("user-10",)]
    assert snap["cartadditions"] == snap["bookmarks"] == []
    assert snap["ratings"] == [("user-1", "item-5", TS, 0.5, "r-4", '{"stars":4}')]   # naive = UTC
    assert snap["viewportions"][0][:5] == ("user-1", "item-6", "sess-1", TS - 3600, 0.25)
    assert ("user-1", "seen_at", "1704164645.0") in snap["user_values"]


def test_sdk_batch_over_tls_untouched(monkeypatch):
    # The certificate comes from `cryptography` (a test dependency) or the openssl command.
    with Emulator(DB, TOKEN, tls=True) as emu:
        assert emu.base_uri.startswith("https://")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.cert_path)   # requests trusts our cert
        client = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})
        batch = Batch(every_add_request())
        assert batch.ensure_https is True
        assert client.send(batch) == [{"code": 200, "json": "ok"}] * 6
        assert emu.snapshot() == EXPECTED_ADDS


# ------------------------------------------------------------------------------------------------
# Authentication
# ------------------------------------------------------------------------------------------------

def test_wrong_token_is_401(emu):
    client = RecombeeClient(DB, "wrong-token", protocol="http", options={"base_uri": emu.host_port})
    with pytest.raises(ResponseException) as e:
        client.send(AddDetailView("u", "i", cascade_create=True))
    assert sdk_error(e) == (401, {"statusCode": 401, "error": "Invalid HMAC signature"})
    with pytest.raises(ResponseException) as e:
        client.send(plain_batch([AddUser("u")]))
    assert e.value.status_code == 401
    assert emu.snapshot() == EMPTY


@pytest.mark.parametrize("skew", [-60, 45])
def test_stale_or_future_timestamp_is_401(emu, sdk, monkeypatch, skew):
    frozen = time.time() + skew
    monkeypatch.setattr(api_client, "time", SimpleNamespace(time=lambda: frozen))
    with pytest.raises(ResponseException) as e:
        sdk.send(AddUser("u"))
    code, body = sdk_error(e)
    assert code == 401 and body["statusCode"] == 401
    assert re.fullmatch(r"Token has expired \(Current time: \d+ or \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, "
                        r"you are (\d+)s off\)", body["error"])
    off = int(re.search(r"you are (\d+)s off", body["error"]).group(1))
    assert abs(off - abs(skew)) <= 2
    assert emu.snapshot() == EMPTY


def test_small_skew_is_accepted(emu, sdk, monkeypatch):
    frozen = time.time() - 5
    monkeypatch.setattr(api_client, "time", SimpleNamespace(time=lambda: frozen))
    assert sdk.send(AddUser("u")) == "ok"


def test_other_auth_failures(emu, http):
    url = emu.base_uri + "/" + DB + "/users/u"
    assert http.put(url).status_code == 401                                  # no signature
    assert http.put(url + f"?hmac_timestamp={int(time.time())}").status_code == 401
    target = sign(DB, "/users/u", TOKEN, time.time())
    assert http.put(emu.base_uri + target.replace("/users/u", "/users/v")).status_code == 401  # tampered
    other = sign("other-db", "/users/u", TOKEN, time.time())
    response = http.put(emu.base_uri + other)
    assert response.status_code == 401 and "Unknown database" in response.json()["error"]
    assert emu.snapshot() == EMPTY
    assert call(emu, http, "PUT", "/users/u").status_code == 201


def test_timestamp_in_the_middle_of_the_query_is_accepted(emu, http):
    # Go SDK style: query sorted alphabetically, hmac_timestamp not last before hmac_sign.
    call(emu, http, "POST", "/bookmarks/", {"userId": "u", "itemId": "i", "timestamp": 1, "cascadeCreate": True})
    unsigned = f"/{DB}/bookmarks/?hmac_timestamp={int(time.time())}&itemId=i&userId=u"
    response = http.delete(emu.base_uri + unsigned + "&hmac_sign=" + hmac_hex(TOKEN, unsigned))
    assert response.status_code == 200 and emu.snapshot()["bookmarks"] == []


def test_reject_all_auth_and_clock_offset_switch_at_runtime(emu, sdk):
    assert sdk.send(AddUser("a")) == "ok"
    emu.reject_all_auth = True
    with pytest.raises(ResponseException) as e:
        sdk.send(AddUser("b"))
    assert e.value.status_code == 401
    emu.reject_all_auth = False
    emu.clock_offset = 120
    with pytest.raises(ResponseException) as e:
        sdk.send(AddUser("b"))
    assert "Token has expired" in e.value.description
    emu.clock_offset = 0
    assert sdk.send(AddUser("b")) == "ok"


# ------------------------------------------------------------------------------------------------
# Interaction semantics
# ------------------------------------------------------------------------------------------------

def test_duplicate_is_409_whatever_the_timestamp_spelling(emu, sdk):
    assert sdk.send(AddPurchase("u", "i", timestamp=1704164645, cascade_create=True)) == "ok"
    for same in (1704164645.0, ISO, "2024-01-02T04:04:05+01:00", "1704164645"):
        with pytest.raises(ResponseException) as e:
            sdk.send(AddPurchase("u", "i", timestamp=same, cascade_create=True))
        assert e.value.status_code == 409
    assert sdk.send(AddPurchase("u", "i", timestamp=1704164645.25, cascade_create=True)) == "ok"
    assert sdk.send(AddDetailView("u", "i", timestamp=1704164645)) == "ok"   # per interaction type
    assert len(emu.snapshot()["purchases"]) == 2


def test_missing_timestamp_means_now(emu, sdk):
    before = time.time()
    assert sdk.send(AddBookmark("u", "i", cascade_create=True)) == "ok"
    (row,) = emu.snapshot()["bookmarks"]
    assert before - 1 <= row[2] <= time.time() + 1


def test_validation_400_and_missing_entities_404(emu, http):
    call(emu, http, "PUT", "/users/known-user")
    bad = [
        add("/detailviews/", userId="Home Page", itemId="i"),
        add("/detailviews/", userId="u", itemId="a/b"),
        add("/viewportions/", userId="u", itemId="i", portion=0.5, sessionId="s 1"),
        add("/detailviews/", userId="u", itemId="i", timestamp="yesterday"),
        add("/detailviews/", userId="u", itemId="i", timestamp=-1),
        add("/detailviews/", userId="u", itemId="i", timestamp=True),
        add("/detailviews/", userId="u", itemId="i", duration="35"),
        add("/detailviews/", userId="u", itemId="i", duration=-3),
        add("/purchases/", userId="u", itemId="i", amount="2"),
        add("/purchases/", userId="u", itemId="i", price=True),
        add("/cartadditions/", userId="u", itemId="i", price=None, amount=[1]),
        add("/ratings/", userId="u", itemId="i", rating=1.5),
        add("/ratings/", userId="u", itemId="i", rating=-1.01),
        add("/ratings/", userId="u", itemId="i"),
        add("/viewportions/", userId="u", itemId="i", portion=1.1),
        add("/viewportions/", userId="u", itemId="i", portion=-0.1),
        add("/bookmarks/", userId="u", itemId="i", unknownField=1),
        add("/bookmarks/", userId="u"),
        add("/bookmarks/", userId="u\n", itemId="i"),
        add("/bookmarks/", userId="u", itemId="i", additionalData="not an object"),
        {"method": "POST", "path": "/bookmarks/", "params": {"userId": "u", "itemId": "i", "cascadeCreate": "yes"}},
    ]
    missing = [
        {"method": "POST", "path": "/bookmarks/", "params": {"userId": "nobody", "itemId": "i"}},
        {"method": "POST", "path": "/bookmarks/", "params": {"userId": "known-user", "itemId": "no-item"}},
    ]
    ok = [add("/ratings/", userId="u", itemId="i", rating=-1), add("/viewportions/", userId="u", itemId="i", portion=1)]
    response = send_batch(emu, http, bad + missing + ok)
    assert codes(response) == [400] * len(bad) + [404, 404, 200, 200]
    assert all(r["json"]["statusCode"] == r["code"] and r["json"]["error"] for r in response.json()[:-2])
    assert emu.snapshot()["bookmarks"] == []
    assert emu.snapshot()["users"] == [("known-user",), ("u",)]


def test_view_portion_updates_per_session(emu, http):
    def vp(portion, ts, **extra):
        return add("/viewportions/", userId="u", itemId="i", portion=portion, timestamp=ts, **extra)
    response = send_batch(emu, http, [
        vp(0.25, 100, sessionId="s1", timeSpent=10),
        vp(0.5, 200, sessionId="s1"),                 # update; timeSpent kept
        vp(0.4, 300, sessionId="s1"),                 # smaller portion -> 409
        vp(0.6, 200, sessionId="s1"),                 # equal timestamp -> 409
        vp(0.1, 150, sessionId="s2"),                 # another session: new row
        vp(0.3, 50),                                  # no session: its own row
        vp(0.3, 60),                                  # update of the null session
    ])
    assert codes(response) == [200, 200, 409, 409, 200, 200, 200]
    assert [r[2:6] for r in emu.snapshot()["viewportions"]] == [
        (None, 60.0, 0.3, None), ("s1", 200.0, 0.5, 10.0), ("s2", 150.0, 0.1, None)]
    response = send_batch(emu, http, [
        {"method": "DELETE", "path": "/viewportions/", "params": {"userId": "u", "itemId": "i"}},
        {"method": "DELETE", "path": "/viewportions/", "params": {"userId": "u", "itemId": "i", "sessionId": "s2"}},
        {"method": "DELETE", "path": "/viewportions/", "params": {"userId": "u", "itemId": "i", "sessionId": "s2"}},
    ])
    assert codes(response) == [200, 200, 404]
    assert [r[2] for r in emu.snapshot()["viewportions"]] == ["s1"]


def test_delete_with_and_without_timestamp(emu, sdk):
    for ts in (100, 200, 300):
        sdk.send(AddBookmark("u", "a", timestamp=ts, cascade_create=True))
        sdk.send(AddCartAddition("u", "a", timestamp=ts, cascade_create=True))
    sdk.send(AddBookmark("u", "b", timestamp=100, cascade_create=True))

    assert sdk.send(DeleteBookmark("u", "a", timestamp=100)) == "ok"
    with pytest.raises(ResponseException) as e:
        sdk.send(DeleteBookmark("u", "a", timestamp=100))
    assert e.value.status_code == 404
    assert sdk.send(DeleteBookmark("u", "a", timestamp="1970-01-01T00:03:20Z")) == "ok"   # = 200
    assert [r[1:3] for r in emu.snapshot()["bookmarks"]] == [("a", 300.0), ("b", 100.0)]

    assert sdk.send(DeleteCartAddition("u", "a")) == "ok"          # no timestamp: all of the pair
    with pytest.raises(ResponseException) as e:
        sdk.send(DeleteCartAddition("u", "a"))
    assert e.value.status_code == 404
    for request in (DeleteBookmark("nobody", "a"), DeleteBookmark("u", "no-item")):
        with pytest.raises(ResponseException) as e:
            sdk.send(request)
        assert e.value.status_code == 404
    snap = emu.snapshot()
    assert snap["cartadditions"] == [] and len(snap["bookmarks"]) == 2


def test_add_user_and_delete_user_cascade(emu, sdk, http):
    assert sdk.send(AddUser("user@example.com")) == "ok"
    with pytest.raises(ResponseException) as e:
        sdk.send(AddUser("user@example.com"))
    assert e.value.status_code == 409
    for request in every_add_request():       # all for user-1
        sdk.send(request)
    sdk.send(AddBookmark("keep", "item-4", timestamp=1, cascade_create=True))
    sdk.send(AddUserProperty("country", "string"))
    sdk.send(SetUserValues("user-1", {"country": "CZ"}))
    # Segment's destination deletes with a trailing slash.
    assert call(emu, http, "DELETE", "/users/user-1/").status_code == 200
    snap = emu.snapshot()
    assert snap["users"] == [("keep",), ("user@example.com",)]
    assert snap["bookmarks"] == [("keep", "item-4", 1.0, None, None)]
    assert all(snap[t] == [] for t in ("detailviews", "purchases", "cartadditions", "ratings",
                                       "viewportions", "user_values"))
    assert len(snap["items"]) == 6                              # items are not touched
    with pytest.raises(ResponseException) as e:
        sdk.send(DeleteUser("user-1"))
    assert sdk_error(e) == (404, {"statusCode": 404, "error": "User 'user-1' not found"})


def test_merge_moves_interactions_and_deletes_source(emu, sdk):
    sdk.send(AddDetailView("anon", "i1", timestamp=1, cascade_create=True))
    sdk.send(AddDetailView("anon", "i2", timestamp=2, cascade_create=True))
    sdk.send(AddRating("anon", "i1", 1, timestamp=3, cascade_create=True))
    sdk.send(AddDetailView("anon-2", "i1", timestamp=9, cascade_create=True))
    sdk.send(AddDetailView("known", "i1", timestamp=1, cascade_create=True))   # clashes with anon's

    with pytest.raises(ResponseException) as e:                 # target missing, no cascadeCreate
        sdk.send(MergeUsers("new", "anon"))
    assert e.value.status_code == 404
    with pytest.raises(ResponseException) as e:
        sdk.send(MergeUsers("new", "anon", cascade_create=False))
    assert e.value.status_code == 404
    assert sdk.send(MergeUsers("known", "anon")) == "ok"
    assert sdk.send(MergeUsers("new", "anon-2", cascade_create=True)) == "ok"   # ?cascadeCreate=True
    snap = emu.snapshot()
    assert snap["users"] == [("known",), ("new",)]
    assert [r[:3] for r in snap["detailviews"]] == [("known", "i1", 1.0), ("known", "i2", 2.0),
                                                    ("new", "i1", 9.0)]
    assert [r[:3] for r in snap["ratings"]] == [("known", "i1", 3.0)]
    with pytest.raises(ResponseException) as e:                 # replay: source is gone
        sdk.send(MergeUsers("known", "anon"))
    assert sdk_error(e)[0] == 404


@pytest.mark.parametrize("spelling", ["True", "true"])
def test_merge_cascade_create_spellings_in_query(emu, http, spelling):
    call(emu, http, "PUT", "/users/src")
    assert call(emu, http, "PUT", f"/users/dst/merge/src?cascadeCreate={spelling}").status_code == 201
    assert emu.snapshot()["users"] == [("dst",)]


@pytest.mark.parametrize("spelling", ["False", "false"])
def test_merge_cascade_create_false_spellings_in_query(emu, http, spelling):
    call(emu, http, "PUT", "/users/src")
    assert call(emu, http, "PUT", f"/users/dst/merge/src?cascadeCreate={spelling}").status_code == 404
    assert call(emu, http, "PUT", "/users/dst/merge/src?cascadeCreate=yes").status_code == 400


# ------------------------------------------------------------------------------------------------
# Batch structure
# ------------------------------------------------------------------------------------------------

def test_both_delete_styles_inside_a_batch(emu, http):
    adds = [add(p, userId="u", itemId=f"i{k}", timestamp=ts)
            for p in ("/bookmarks/", "/cartadditions/") for k in (1, 2) for ts in (1, 2)]
    assert codes(send_batch(emu, http, adds)) == [200] * 8
    params_style = [
        {"method": "DELETE", "path": "/bookmarks/", "params": {"userId": "u", "itemId": "i1", "timestamp": 1}},
        {"method": "DELETE", "path": "/cartadditions/", "params": {"userId": "u", "itemId": "i1"}},
    ]
    # Segment's destination: everything in the path's query, params {} or missing.
    def in_path(method, path, **query):
        return {"params": {}, "method": method, "path": path + quote_query(query)}

    path_style = [
        in_path("DELETE", "/bookmarks/", userId="u", itemId="i2", timestamp=2),
        {"method": "DELETE", "path": "/cartadditions/" + quote_query({"userId": "u", "itemId": "i2"})},
        in_path("DELETE", "/bookmarks/", userId="u", itemId="i2", timestamp="1970-01-01T00:00:01Z"),
        in_path("DELETE", "/bookmarks/", userId="u", itemId="i2", timestamp=1),   # already gone
        in_path("PUT", "/users/target/merge/u", cascadeCreate="true"),
    ]
    assert codes(send_batch(emu, http, params_style + path_style)) == [200, 200, 200, 200, 200, 404, 201]
    snap = emu.snapshot()
    assert snap["bookmarks"] == [("target", "i1", 2.0, None, None)]
    assert snap["cartadditions"] == []
    assert snap["users"] == [("target",)]


def test_empty_batch_is_200_empty_list(emu, http):
    response = send_batch(emu, http, [])
    assert response.status_code == 200 and response.json() == []


def test_batch_above_10000_is_413(emu, http):
    response = send_batch(emu, http, [{"method": "PUT", "path": "/users/u"}] * (MAX_BATCH + 1))
    assert response.status_code == 413
    assert response.json()["statusCode"] == 413 and "Too large batch" in response.json()["error"]
    assert emu.snapshot() == EMPTY
    full = [{"method": "PUT", "path": f"/users/u{k}"} for k in range(MAX_BATCH)]
    assert codes(send_batch(emu, http, full)) == [201] * MAX_BATCH


@pytest.mark.parametrize("bad", [
    {"method": "POST", "path": "/nope/", "params": {}},
    {"method": "GET", "path": "/detailviews/", "params": {}},
    {"method": "POST", "path": "/batch/", "params": {"requests": []}},
    {"method": "PATCH", "path": "/users/u"},
])
def test_unknown_url_in_batch_is_404_and_nothing_runs(emu, http, bad):
    requests = [add("/detailviews/", userId="u", itemId="i", timestamp=1), bad]
    response = send_batch(emu, http, requests)
    assert response.status_code == 404
    assert response.json()["statusCode"] == 404 and "#1" in response.json()["error"]
    assert emu.snapshot() == EMPTY


@pytest.mark.parametrize("raw_body, content_type", [
    (b"{not json", "application/json"),
    (b"[]", "application/json"),
    (b'{"requests": {}}', "application/json"),
    (b'{"requests": [{"method": "PUT"}]}', "application/json"),
    (b'{"requests": [{"method": "PUT", "path": "/users/u", "params": []}]}', "application/json"),
    (b'{"requests": [], "distinctRecomms": "yes"}', "application/json"),
    (b'{"requests": [], "extra": 1}', "application/json"),
    (b'{"requests": []}', "text/plain"),
    (b'{"requests": []}', None),
])
def test_malformed_batch_is_400(emu, http, raw_body, content_type):
    response = call(emu, http, "POST", "/batch/", raw_body=raw_body, content_type=content_type)
    assert response.status_code == 400 and response.json()["statusCode"] == 400


def test_single_request_errors(emu, http):
    assert call(emu, http, "POST", "/nope/").status_code == 404
    assert call(emu, http, "GET", "/detailviews/").status_code == 405
    assert call(emu, http, "POST", "/bookmarks/", raw_body=b"{oops").status_code == 400
    response = call(emu, http, "POST", "/batch/", {"requests": [], "distinctRecomms": True})
    assert response.status_code == 200 and response.headers["content-length"] == "2"


def test_keep_alive_and_content_length(emu, http):
    responses = [call(emu, http, "PUT", f"/users/u{k}") for k in range(5)]
    assert all(r.http_version == "HTTP/1.1" and "content-length" in r.headers for r in responses)
    assert all(r.headers.get("connection", "").lower() != "close" for r in responses)
    assert emu.stats.http_calls == 5


# ------------------------------------------------------------------------------------------------
# Faults, fast mode, latency, persistence
# ------------------------------------------------------------------------------------------------

def until(predicate, *, tries=200, seconds=10.0):
    """Call predicate() until it returns a truthy value; bounded by count and time."""
    deadline = time.monotonic() + seconds
    for _ in range(tries):
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            break
    pytest.fail("the expected fault never happened")


@pytest.mark.parametrize("faults, status", [
    (Faults(p_500=0.3, seed=1), 500),
    (Faults(p_503=0.3, seed=2), 503),
    (Faults(p_429=0.3, retry_after=0.5, seed=3), 429),
])
def test_whole_call_faults(emu, http, faults, status):
    emu.faults = faults
    seen = []

    def attempt():
        response = call(emu, http, "PUT", f"/users/u{len(seen)}")
        seen.append(response.status_code)
        return response if response.status_code == status else None

    response = until(attempt)
    assert response.json() == {"statusCode": status, "error": response.json()["error"]}
    if status == 429:
        assert response.headers["retry-after"] == "0.5"
    assert emu.stats.faults[str(status)] == seen.count(status)
    # Nothing was executed for the faulted calls.
    assert len(emu.snapshot()["users"]) == seen.count(201)


def test_slow_fault_executes_then_delays(emu, http):
    emu.faults = Faults(p_slow=0.5, slow_seconds=0.3, seed=4)

    def attempt():
        start = time.monotonic()
        call(emu, http, "PUT", f"/users/u{emu.stats.http_calls}")
        return time.monotonic() - start >= 0.3

    until(attempt, tries=50)
    assert emu.stats.faults["slow"] >= 1
    assert len(emu.snapshot()["users"]) == emu.stats.http_calls


def _connection_breaks(emu) -> bool:
    with httpx.Client(timeout=5) as http:
        try:
            call(emu, http, "PUT", f"/users/u{emu.stats.http_calls}")
        except httpx.TransportError:
            return True
    return False


def test_drop_after_executing(emu):
    emu.faults = Faults(p_drop=0.5, seed=5)
    until(lambda: _connection_breaks(emu))
    assert emu.stats.faults["drop"] >= 1
    # Executed although the client saw a broken connection.
    assert len(emu.snapshot()["users"]) == emu.stats.http_calls


def test_drop_before_executing(emu):
    emu.faults = Faults(p_drop_before=0.5, seed=6)
    until(lambda: _connection_breaks(emu))
    dropped = emu.stats.faults["drop_before"]
    assert dropped >= 1
    assert len(emu.snapshot()["users"]) == emu.stats.http_calls - dropped


def test_sub_request_5xx_inside_batch(emu, http):
    emu.faults = Faults(p_sub_5xx=0.2, seed=7)
    requests = [{"method": "PUT", "path": f"/users/u{k}"} for k in range(50)]
    response = until(lambda: (r := send_batch(emu, http, requests)) and set(codes(r)) & {500, 503} and r)
    results = response.json()
    failed = [r for r in results if r["code"] in (500, 503)]
    assert all(r["json"]["statusCode"] == r["code"] for r in failed)
    assert {r["code"] for r in results} <= {201, 409, 500, 503}
    assert emu.stats.faults["sub_5xx"] >= len(failed)


def test_sub_5xx_requests_are_not_executed(emu, http):
    emu.faults = Faults(p_sub_5xx=0.5, seed=8)
    requests = [{"method": "PUT", "path": f"/users/u{k}"} for k in range(100)]
    results = send_batch(emu, http, requests).json()
    executed = {f"u{k}" for k, r in enumerate(results) if r["code"] == 201}
    assert 0 < len(executed) < 100
    assert {u for (u,) in emu.snapshot()["users"]} == executed


def test_faults_are_seeded_limited_and_switchable(emu, http):
    def sequence(faults):
        emu.faults = faults
        return [call(emu, http, "PUT", "/users/x").status_code == 503 for _ in range(20)]

    first = sequence(Faults(p_503=0.5, seed=42))
    assert sequence(Faults(p_503=0.5, seed=42)) == first and 0 < sum(first) < 20
    assert sequence(Faults(p_503=0.5, seed=43)) != first
    assert sequence(Faults(p_503=1.0, limit=3)) == [True] * 3 + [False] * 17
    assert sequence(Faults()) == [False] * 20
    with pytest.raises(ValueError):
        Faults(p_500=0.6, p_503=0.6)


def test_faults_never_mask_a_401(emu, http):
    emu.faults = Faults(p_500=1.0)
    assert call(emu, http, "PUT", "/users/x", token="bad").status_code == 401
    assert call(emu, http, "PUT", "/users/x").status_code == 500


def test_fast_mode_counts_and_stores_nothing(http):
    with Emulator(DB, TOKEN, fast=True) as emu:
        requests = [add("/detailviews/", userId="Home Page", itemId="i")] * 1000
        for _ in range(3):
            assert codes(send_batch(emu, http, requests)) == [200] * 1000
        assert call(emu, http, "POST", "/batch/", raw_body=b"{oops").status_code == 400
        assert call(emu, http, "POST", "/batch/", token="bad").status_code == 401
        assert emu.snapshot() == EMPTY
        assert emu.stats.sub_requests == 3000 and emu.stats.batch_calls == 4
        assert emu.stats.codes == {200: 3, 400: 1, 401: 1}


def test_latency(http):
    with Emulator(DB, TOKEN, latency=100) as emu:
        start = time.monotonic()
        call(emu, http, "PUT", "/users/u")
        assert time.monotonic() - start >= 0.1


def test_store_file_persists_across_restarts(tmp_path, http):
    path = tmp_path / "store.sqlite"
    with Emulator(DB, TOKEN, store_path=path) as emu:
        assert call(emu, http, "POST", "/ratings/", {"userId": "u", "itemId": "i", "rating": 1,
                                                     "timestamp": 5, "cascadeCreate": True}).status_code == 200
        assert emu.describe()["store"] == str(path)
    with Emulator(DB, TOKEN, store_path=path) as emu:
        assert emu.snapshot()["ratings"] == [("u", "i", 5.0, 1.0, None, None)]
        with httpx.Client() as fresh:
            assert call(emu, fresh, "POST", "/ratings/", {"userId": "u", "itemId": "i", "rating": 1,
                                                          "timestamp": 5}).status_code == 409


def test_describe_and_columns(emu):
    info = emu.describe()
    assert info["base_uri"] == emu.base_uri == f"http://127.0.0.1:{emu.port}"
    assert info["database_id"] == DB and info["store"].startswith(":memory:")
    assert emu.store.columns()["bookmarks"] == ["user_id", "item_id", "timestamp", "recomm_id",
                                                "additional_data"]


def test_trickle_fault_dribbles_the_whole_reply_head_included(emu):
    """A server whose reply comes a byte at a time: each read gets something, so a per-read
    timeout never fires; the work is done before the reply starts."""
    emu.faults = Faults(p_trickle=1.0, trickle_seconds=0.02)
    target = sign(DB, "/users/slow", TOKEN, time.time())
    with socket.create_connection((emu.host, emu.port), timeout=10) as sock:
        sock.sendall(f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                     f"Connection: close\r\n\r\n".encode())
        reads = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(reads) < 1000:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reads.append(chunk)
    reply = b"".join(reads)
    assert reply.startswith(b"HTTP/1.1 201") and reply.endswith(b'"ok"')
    head = reply.index(b"\r\n\r\n")
    assert len(reads) >= len(reply) // 8 and sum(len(r) for r in reads[:8]) < head   # the head dribbled too
    assert emu.stats.faults["trickle"] == 1
    assert emu.snapshot()["users"] == [("slow",)]


def test_a_trickling_reply_ends_when_the_emulator_stops():
    emu = Emulator(DB, TOKEN, faults=Faults(p_trickle=1.0, trickle_seconds=5)).start()
    target = sign(DB, "/users/x", TOKEN, time.time())
    with socket.create_connection((emu.host, emu.port), timeout=10) as sock:
        sock.sendall(f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        assert sock.recv(10) == b"H"                   # the first byte; the next would be 5 s later
        emu.stop()
        sock.settimeout(20)
        for _ in range(3):                             # closed by the stop: the end comes at once,
            if not sock.recv(4096):                    # where a trickle would give a byte per 5 s
                break
        else:
            pytest.fail("the reply went on trickling after the emulator stopped")


@pytest.mark.parametrize("kind", sorted(ODD_ANSWERS))
def test_odd_answer_fault_executes_then_answers_a_malformed_batch_reply(emu, http, kind):
    emu.faults = Faults(p_odd=1.0, odd=kind)
    requests = [{"method": "PUT", "path": f"/users/u{k}"} for k in range(3)]
    response = send_batch(emu, http, requests)
    assert response.status_code == 200
    answer = response.json()
    proper = [{"code": 201, "json": "ok"}] * 3
    assert answer != proper
    if kind == "not_a_list":
        assert answer == {"results": proper}
    elif kind == "wrong_length":
        assert answer == proper[:2]
    else:
        assert answer[0] == answer[2] == proper[0]
        assert answer[1] == {"string_code": {"code": "201", "json": "ok"}, "null_result": None,
                             "not_an_object": [201, "ok"]}[kind]
    assert len(emu.snapshot()["users"]) == 3                       # executed all the same
    assert emu.stats.faults["odd"] == 1
    with pytest.raises(ValueError):
        Faults(odd="no-such-kind")


def test_a_client_that_goes_away_mid_request_leaves_no_traceback_on_stderr(capfd):
    """A replay stopped by a signal resets its connections: the emulator printed a traceback of
    ConnectionResetError for each, into the output of the test or the sandbox."""
    with Emulator(DB, TOKEN) as emu:
        before = set(threading.enumerate())
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", emu.port))
            sock.sendall(b"POST /" + DB.encode() + b"/batch/ HTTP/1.1\r\nHost: x\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close = reset
            sock.close()
        # One whole call after them: the server accepts in order, so their handlers have started.
        with socket.create_connection(("127.0.0.1", emu.port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.makefile("rb").read().startswith(b"HTTP/1.1 ")

        def handlers() -> list[threading.Thread]:   # this test's connections' threads
            return [t for t in threading.enumerate() if t not in before and t.name.endswith("(process_request_thread)")]

        deadline = time.monotonic() + 10   # they end once they have dealt with the reset
        while handlers() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not handlers()
    assert "Traceback" not in capfd.readouterr().err
