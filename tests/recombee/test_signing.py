"""Our signing is byte-identical to the official SDK (vectors + the SDK itself as an oracle)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from recombee_api_client import api_client
from recombee_api_client.api_client import RecombeeClient, Region
from recombee_api_client.api_requests import (
    AddBookmark,
    AddDetailView,
    AddUser,
    Batch,
    DeleteBookmark,
    DeleteCartAddition,
    DeleteUser,
    DeleteViewPortion,
    ListItemProperties,
    ListUserProperties,
    MergeUsers,
    SetUserValues,
)

from recombee_cli.recombee.service import DEFAULT_HOST, REGION_HOSTS
from recombee_cli.recombee.signing import hmac_hex, quote_query, sign, verify

SIGNING = json.loads((Path(__file__).resolve().parents[1] / "conformance" / "signing.json").read_text())
VECTORS = SIGNING["vectors"]


def _host(region: str | None) -> str:
    # The SDK's Region enum names (EU_WEST) are our lowercase region keys (eu-west).
    return DEFAULT_HOST if region is None else REGION_HOSTS[region.lower().replace("_", "-")]


@pytest.mark.parametrize("v", VECTORS, ids=[f"{v['request_class']}-{i}" for i, v in enumerate(VECTORS)])
def test_vector_is_byte_identical(v):
    signed = sign(v["database_id"], v["path_and_query_before_signing"], v["token"], v["fixed_time_time"])
    assert signed == v["signed_path_and_query"]
    assert signed.startswith(v["string_to_sign"] + "&hmac_sign=")
    assert hmac_hex(v["token"], v["string_to_sign"]) == v["hmac_sign"]
    assert f"hmac_timestamp={v['hmac_timestamp']}&" in signed
    assert _host(v["region"]) == v["base_uri"]
    assert "https://" + _host(v["region"]) + signed == v["final_url"]


@pytest.mark.parametrize("v", VECTORS, ids=[f"{v['request_class']}-{i}" for i, v in enumerate(VECTORS)])
def test_verify_accepts_vector_and_rejects_tampering(v):
    target = v["signed_path_and_query"]
    assert verify(target, v["token"]) == (True, v["hmac_timestamp"])
    assert verify(target, v["token"] + "x") == (False, v["hmac_timestamp"])
    tampered = target.replace(f"/{v['database_id']}/", f"/{v['database_id']}x/", 1)
    assert verify(tampered, v["token"])[0] is False
    unsigned = target.rpartition("&hmac_sign=")[0]
    assert verify(unsigned, v["token"]) == (False, v["hmac_timestamp"])


def test_docs_reference_checks():
    docs = SIGNING["docs_reference_checks"]
    assert hmac_hex(docs["token"], "Hello world") == docs["expected_Hello_world"] == docs["Hello world"]
    assert hmac_hex(docs["token"], docs["doc_string"]) == docs["expected_doc_string_hash"]
    assert docs["doc_string_hash"] == docs["expected_doc_string_hash"]


def test_verify_finds_timestamp_anywhere():
    # The Go SDK sorts the query, so hmac_timestamp can sit before other parameters.
    unsigned = "/db/bookmarks/?hmac_timestamp=1700000000&itemId=i&userId=u"
    target = unsigned + "&hmac_sign=" + hmac_hex("tok", unsigned)
    assert verify(target, "tok") == (True, 1700000000)
    assert verify(target.upper().replace("/DB/", "/db/"), "tok")[0] is False


@pytest.mark.parametrize("params, expected", [
    ([], ""),
    ({}, ""),
    ([("userId", "ú ser"), ("itemId", "a&b=c"), ("timestamp", "2024-01-02T03:04:05Z")],
     "?userId=%C3%BA%20ser&itemId=a%26b%3Dc&timestamp=2024-01-02T03%3A04%3A05Z"),
    ({"userId": "user-1", "itemId": "item-3", "timestamp": 1704164645.5},
     "?userId=user-1&itemId=item-3&timestamp=1704164645.5"),
    ({"cascadeCreate": True}, "?cascadeCreate=True"),
    ({"cascadeCreate": False}, "?cascadeCreate=False"),
    ({"ids": ["a b", "c/d", 3]}, "?ids=a%20b,c/d,3"),
    ({"sessionId": "sess 1"}, "?sessionId=sess%201"),
])
def test_quote_query(params, expected):
    assert quote_query(params) == expected


def test_quote_query_builds_the_vectors():
    v = {x["request_class"]: x for x in VECTORS}
    assert "/bookmarks/" + quote_query([("userId", "ú ser"), ("itemId", "a&b=c"),
                                        ("timestamp", "2024-01-02T03:04:05Z")]) \
        == v["DeleteBookmark"]["path_and_query_before_signing"]
    assert "/viewportions/" + quote_query({"userId": "user-1", "itemId": "item-6", "sessionId": "sess 1"}) \
        == v["DeleteViewPortion"]["path_and_query_before_signing"]


# --- The SDK itself as the oracle: capture the URL it would send, with its clock frozen ---------

class _Captured:
    """Stands in for the `requests` module inside the SDK and records each call."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def _record(self, method):
        def call(uri, **kwargs):
            self.calls.append((method, uri))
            return SimpleNamespace(status_code=200, json=lambda: "ok", text='"ok"')
        return call

    def __getattr__(self, method):
        return self._record(method)


@pytest.fixture
def sdk(monkeypatch):
    monkeypatch.delenv("RAPI_URI", raising=False)
    captured = _Captured()
    monkeypatch.setattr(api_client, "requests", captured)
    monkeypatch.setattr(api_client, "time", SimpleNamespace(time=lambda: 1712345678.999))
    return captured


SDK_CASES = [
    # (SDK request, the path + query we build for it)
    (AddDetailView("user-1", "item-1", timestamp=1704164645, cascade_create=True), "/detailviews/"),
    (DeleteCartAddition("user-1", "item-3", timestamp=1704164645.5),
     "/cartadditions/" + quote_query({"userId": "user-1", "itemId": "item-3", "timestamp": 1704164645.5})),
    (DeleteBookmark("ú ser", "a&b=c", timestamp="2024-01-02T03:04:05Z"),
     "/bookmarks/" + quote_query({"userId": "ú ser", "itemId": "a&b=c", "timestamp": "2024-01-02T03:04:05Z"})),
    (DeleteBookmark("user-1", "item-4"), "/bookmarks/" + quote_query({"userId": "user-1", "itemId": "item-4"})),
    (DeleteViewPortion("user-1", "item-6", session_id="sess 1"),
     "/viewportions/" + quote_query({"userId": "user-1", "itemId": "item-6", "sessionId": "sess 1"})),
    (MergeUsers("t:1", "s.2", cascade_create=True), "/users/t:1/merge/s.2" + quote_query({"cascadeCreate": True})),
    (MergeUsers("user-1", "anon-7", cascade_create=False),
     "/users/user-1/merge/anon-7" + quote_query({"cascadeCreate": False})),
    (MergeUsers("user-1", "anon-7"), "/users/user-1/merge/anon-7"),
    (AddUser("user@example.com"), "/users/user@example.com"),
    (DeleteUser("user-9"), "/users/user-9"),
    (SetUserValues("user-1", {"country": "US"}, cascade_create=True), "/users/user-1"),
    (AddBookmark("user-1", "item-4", cascade_create=True), "/bookmarks/"),
    (Batch([AddUser("u-x")]), "/batch/"),
    # what a sending run that sets values reads first (RecombeeClient.list_properties)
    (ListUserProperties(), "/users/properties/list/"),
    (ListItemProperties(), "/items/properties/list/"),
]


@pytest.mark.parametrize("region", [None, Region.EU_WEST, Region.US_WEST, Region.AP_SE, Region.CA_EAST])
@pytest.mark.parametrize("request_, path_and_query", SDK_CASES,
                         ids=[type(r).__name__ + str(i) for i, (r, _) in enumerate(SDK_CASES)])
def test_sdk_sends_what_we_sign(sdk, region, request_, path_and_query):
    client = RecombeeClient("prod-db", "Ab1Cd2Ef3Gh4", region=region)
    client.send(request_)
    (method, url), = sdk.calls
    assert method == request_.method
    host = DEFAULT_HOST if region is None else REGION_HOSTS[region.name.lower().replace("_", "-")]
    assert url == "https://" + host + sign("prod-db", path_and_query, "Ab1Cd2Ef3Gh4", 1712345678.999)
