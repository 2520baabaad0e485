"""The emulator's users, items, properties and read-back endpoints against the official SDK (the
oracle for paths, methods and parameters), singly, in a Batch, and over TLS from `sandbox --tls`."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from recombee_api_client.api_client import RecombeeClient
from recombee_api_client.api_requests import (
    AddBookmark,
    AddCartAddition,
    AddDetailView,
    AddItem,
    AddItemProperty,
    AddPurchase,
    AddRating,
    AddUserProperty,
    Batch,
    DeleteItem,
    DeleteItemProperty,
    DeleteUserProperty,
    GetItemPropertyInfo,
    GetItemValues,
    GetUserPropertyInfo,
    GetUserValues,
    ListItemBookmarks,
    ListItemCartAdditions,
    ListItemDetailViews,
    ListItemProperties,
    ListItemPurchases,
    ListItemRatings,
    ListItems,
    ListItemViewPortions,
    ListUserBookmarks,
    ListUserCartAdditions,
    ListUserDetailViews,
    ListUserProperties,
    ListUserPurchases,
    ListUserRatings,
    ListUsers,
    ListUserViewPortions,
    MergeUsers,
    SetItemValues,
    SetUserValues,
    SetViewPortion,
)
from recombee_api_client.exceptions import ResponseException

from recombee_cli.recombee.emulator import Emulator

DB, TOKEN = "emu-props", "emu-props-token"
TYPES = {"i": "int", "d": "double", "s": "string", "b": "boolean", "t": "timestamp", "tags": "set",
         "img": "image", "imgs": "imageList"}


@pytest.fixture(autouse=True)
def _no_rapi_uri(monkeypatch):
    monkeypatch.delenv("RAPI_URI", raising=False)


@pytest.fixture
def emu():
    with Emulator(DB, TOKEN) as e:
        yield e


@pytest.fixture
def sdk(emu):
    return RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": emu.host_port})


def _error(sdk, request) -> tuple[int, str]:
    with pytest.raises(ResponseException) as e:
        sdk.send(request)
    return e.value.status_code, e.value.description


def test_properties_of_every_type_and_their_values(sdk):
    for name, kind in TYPES.items():
        assert sdk.send(AddUserProperty(name, kind)) == "ok"
        assert sdk.send(AddItemProperty(name, kind)) == "ok"
    assert _error(sdk, AddUserProperty("i", "int"))[0] == 409
    assert _error(sdk, AddItemProperty("x", "integer"))[0] == 400
    assert _error(sdk, AddItemProperty("itemId", "string"))[0] == 400      # reserved, any case
    assert _error(sdk, AddUserProperty("a.b", "string"))[0] == 400
    assert _error(sdk, AddUserProperty("x" * 64, "string"))[0] == 400
    assert sdk.send(GetUserPropertyInfo("tags")) == {"name": "tags", "type": "set"}
    assert sdk.send(GetItemPropertyInfo("img")) == {"name": "img", "type": "image"}
    assert sorted((p["name"], p["type"]) for p in sdk.send(ListUserProperties())) == sorted(TYPES.items())
    assert sorted((p["name"], p["type"]) for p in sdk.send(ListItemProperties())) == sorted(TYPES.items())

    values = {"i": 3, "d": 2, "s": "x", "b": True, "t": "2024-01-02T03:04:05Z", "tags": {"b", "a"},
              "img": "https://x/a.png", "imgs": ["https://x/a.png"]}
    assert sdk.send(SetUserValues("u1", values, cascade_create=True)) == "ok"
    assert sdk.send(SetItemValues("i1", values, cascade_create=True)) == "ok"
    stored = {"i": 3, "d": 2.0, "s": "x", "b": True, "t": 1704164645.0, "tags": ["a", "b"],
              "img": "https://x/a.png", "imgs": ["https://x/a.png"]}
    assert sdk.send(GetUserValues("u1")) == stored
    assert sdk.send(GetItemValues("i1")) == stored
    # Recombee's validation: unknown property 404, a value of the wrong type 400, nothing written.
    assert _error(sdk, SetUserValues("u1", {"s": "y", "nope": 1})) == \
        (404, '{"statusCode":404,"error":"User property \'nope\' not found"}')
    for bad in ({"i": 2.5}, {"d": "1"}, {"b": 1}, {"t": "yesterday"}, {"tags": ["a", 1]}, {"s": 3}):
        assert _error(sdk, SetItemValues("i1", {"s": "y", **bad}))[0] == 400, bad
    assert sdk.send(GetItemValues("i1"))["s"] == "x"
    assert _error(sdk, SetItemValues("i2", {"s": "y"}))[0] == 404               # no cascadeCreate
    assert sdk.send(SetUserValues("u1", {"s": None})) == "ok"
    assert sdk.send(GetUserValues("u1"))["s"] is None
    assert _error(sdk, GetUserValues("nobody"))[0] == 404
    # Deleting a property deletes its values.
    assert sdk.send(DeleteUserProperty("s")) == "ok" and sdk.send(DeleteItemProperty("s")) == "ok"
    assert "s" not in sdk.send(GetUserValues("u1")) and "s" not in sdk.send(GetItemValues("i1"))
    assert _error(sdk, GetUserPropertyInfo("s"))[0] == 404


def test_lists_of_users_and_items(sdk):
    sdk.send(AddUserProperty("country", "string"))
    sdk.send(AddItemProperty("name", "string"))
    sdk.send(AddItemProperty("price", "double"))
    for n in range(5):
        sdk.send(SetUserValues(f"u{n}", {"country": f"C{n}"}, cascade_create=True))
    sdk.send(AddItem("a"))
    assert _error(sdk, AddItem("a"))[0] == 409
    sdk.send(SetItemValues("b", {"name": "B", "price": 2.5}, cascade_create=True))
    assert sdk.send(ListUsers()) == [f"u{n}" for n in range(5)]
    assert sdk.send(ListUsers(count=2, offset=1)) == ["u1", "u2"]
    assert sdk.send(ListUsers(count=1, return_properties=True)) == [{"userId": "u0", "country": "C0"}]
    assert sdk.send(ListItems(return_properties=True)) == [{"itemId": "a", "name": None, "price": None},
                                                           {"itemId": "b", "name": "B", "price": 2.5}]
    assert sdk.send(ListItems(return_properties=True, included_properties=["price"])) == \
        [{"itemId": "a", "price": None}, {"itemId": "b", "price": 2.5}]
    assert _error(sdk, ListItems(filter="'price' > 1"))[0] == 400   # no ReQL in the emulator
    assert sdk.send(DeleteItem("b")) == "ok" and sdk.send(ListItems()) == ["a"]


def test_interactions_of_a_user_and_of_an_item(sdk):
    sdk.send(AddDetailView("u1", "i1", timestamp=10, duration=5, cascade_create=True, recomm_id="r"))
    sdk.send(AddDetailView("u2", "i1", timestamp=11, cascade_create=True))
    sdk.send(AddPurchase("u1", "i1", timestamp=12, amount=2, price=3.5, cascade_create=True,
                         additional_data={"o": 1}))
    sdk.send(AddCartAddition("u1", "i2", timestamp=13, amount=1, cascade_create=True))
    sdk.send(AddBookmark("u1", "i2", timestamp=14, cascade_create=True))
    sdk.send(AddRating("u1", "i2", 0.5, timestamp=15, cascade_create=True))
    sdk.send(SetViewPortion("u1", "i3", 0.25, session_id="s", timestamp=16, cascade_create=True))
    assert sdk.send(ListUserDetailViews("u1")) == [
        {"userId": "u1", "itemId": "i1", "timestamp": 10.0, "duration": 5.0, "recommId": "r"}]
    assert [v["userId"] for v in sdk.send(ListItemDetailViews("i1"))] == ["u1", "u2"]
    assert sdk.send(ListUserPurchases("u1")) == sdk.send(ListItemPurchases("i1")) == [
        {"userId": "u1", "itemId": "i1", "timestamp": 12.0, "amount": 2.0, "price": 3.5, "additionalData": {"o": 1}}]
    assert sdk.send(ListUserCartAdditions("u1")) == sdk.send(ListItemCartAdditions("i2"))
    assert sdk.send(ListUserBookmarks("u1")) == sdk.send(ListItemBookmarks("i2")) != []
    assert sdk.send(ListUserRatings("u1"))[0]["rating"] == 0.5 and sdk.send(ListItemRatings("i2"))
    assert sdk.send(ListUserViewPortions("u1")) == sdk.send(ListItemViewPortions("i3")) == [
        {"userId": "u1", "itemId": "i3", "timestamp": 16.0, "portion": 0.25, "sessionId": "s"}]
    assert _error(sdk, ListUserPurchases("nobody"))[0] == 404
    assert _error(sdk, ListItemRatings("nothing"))[0] == 404


def test_a_merge_moves_interactions_and_deletes_the_source_with_its_values(sdk):
    """Recombee's MergeUsers (API reference, every official SDK): "all the interactions of the
    source user are attributed to the target user, and the source user is deleted". Nothing is
    said of property values, so the source's values are deleted with it; the target keeps its own."""
    sdk.send(AddUserProperty("a", "string"))
    sdk.send(AddUserProperty("b", "string"))
    sdk.send(SetUserValues("anon", {"a": "from-anon", "b": "from-anon"}, cascade_create=True))
    sdk.send(AddDetailView("anon", "i1", timestamp=10, cascade_create=True))
    sdk.send(SetUserValues("user", {"a": "user's"}, cascade_create=True))
    sdk.send(MergeUsers("user", "anon"))
    assert sdk.send(GetUserValues("user")) == {"a": "user's", "b": None}
    assert [v["itemId"] for v in sdk.send(ListUserDetailViews("user"))] == ["i1"]
    assert sdk.send(ListUsers()) == ["user"]
    assert _error(sdk, GetUserValues("anon"))[0] == 404


def test_image_values_must_be_http_urls(sdk):
    """Recombee documents `image` as the URL of an image and `imageList` as a list of them: the
    emulator refuses a value that is no http(s) URL (400), as for any value of the wrong type."""
    sdk.send(AddItemProperty("img", "image"))
    sdk.send(AddItemProperty("imgs", "imageList"))
    assert sdk.send(SetItemValues("i1", {"img": "https://cdn.example.com/a.png", "imgs": ["http://x.io/b.gif"]},
                                  cascade_create=True)) == "ok"
    for bad in ({"img": "not a url at all"}, {"img": ""}, {"img": "ftp://nope/a.png"}, {"img": "https://"},
                {"imgs": ["https://x.io/a.png", "b.png"]}):
        status, text = _error(sdk, SetItemValues("i1", bad))
        assert status == 400 and "http(s) URL" in text, (bad, text)
    assert sdk.send(GetItemValues("i1")) == {"img": "https://cdn.example.com/a.png", "imgs": ["http://x.io/b.gif"]}


def test_batch_with_definitions_values_and_reads(emu, sdk):
    batch = Batch([AddItemProperty("name", "string"), SetItemValues("i1", {"name": "N"}, cascade_create=True),
                   SetItemValues("i1", {"nope": "N"}), GetItemValues("i1"), ListItemProperties(),
                   AddUserProperty("n", "int"), SetUserValues("u", {"n": 1}, cascade_create=True),
                   ListUsers(return_properties=True)])
    batch.ensure_https = False
    results = sdk.send(batch)
    assert [r["code"] for r in results] == [201, 200, 404, 200, 200, 201, 200, 200]
    assert results[3]["json"] == {"name": "N"}
    assert results[7]["json"] == [{"userId": "u", "n": 1}]


def _read_line(stream, deadline: float) -> str:
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0, f"no complete line from the sandbox in time: {line!r}"
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            chunk = os.read(stream.fileno(), 1)
            assert chunk, f"the sandbox ended: {line!r}"
            line += chunk
    return line.decode()


def test_sandbox_tls_serves_the_official_sdk_unmodified(monkeypatch):
    process = subprocess.Popen([sys.executable, "-c", "from recombee_cli.cli.main import main; main()", "sandbox", "--tls", "--port", "0",
                                "--database-id", DB, "--token", TOKEN], stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        first = _read_line(process.stderr, deadline)
        base = re.search(r"on https://([\d.]+:\d+) ", first).group(1)
        cert = re.search(r"TLS certificate: (\S+)", _read_line(process.stderr, deadline)).group(1)
        assert os.path.exists(cert)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
        client = RecombeeClient(DB, TOKEN, options={"base_uri": base})   # https, as with Recombee
        batch = Batch([AddUserProperty("plan", "string"), SetUserValues("u1", {"plan": "pro"}, cascade_create=True)])
        assert batch.ensure_https is True
        assert [r["code"] for r in client.send(batch)] == [201, 200]
        assert client.send(GetUserValues("u1")) == {"plan": "pro"}
        assert client.send(ListUserProperties()) == [{"name": "plan", "type": "string"}]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()
