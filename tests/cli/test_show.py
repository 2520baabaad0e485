"""`recombee-cli show user|item ID`: what a replay sent, read back with signed GETs, newest first;
the official SDK reading the same emulator is the oracle."""

from __future__ import annotations

import json

import pytest
from helpers import SAMPLES, invoke
from recombee_api_client.api_client import RecombeeClient
from recombee_api_client.api_requests import GetUserValues, ListItemPurchases, ListUserDetailViews, ListUserPurchases

from recombee_cli.recombee.emulator import Emulator

DB, TOKEN = "demo", "show-secret-token"


@pytest.fixture(scope="module")
def sent():
    """An emulator holding what a replay of the samples (with users' traits) sent."""
    with Emulator(DB, TOKEN) as emu:
        result = invoke(["replay", "--quiet", "--no-state", "--preset", "Identify - User Traits",
                         "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, str(SAMPLES)],
                        env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        assert result.exit_code == 0, result.stderr
        yield emu


def show(emu, *args, token=TOKEN):
    result = invoke(["show", *args, "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB],
                    env={"RECOMBEE_PRIVATE_TOKEN": token})
    assert "Traceback" not in result.stderr and TOKEN not in result.stdout + result.stderr
    assert "hmac_sign" not in result.stdout + result.stderr
    return result


def test_show_user_reads_back_values_and_each_kind_newest_first_as_the_sdk_reads_them(sent):
    result = show(sent, "user", "alice@example.com", "--json")
    assert result.exit_code == 0, result.stderr
    held = json.loads(result.stdout)
    sdk = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": sent.host_port})
    by_time = lambda rows: sorted(rows, key=lambda r: r["timestamp"], reverse=True)
    assert held["found"] is True and held["user"] == "alice@example.com"
    assert held["values"] == sdk.send(GetUserValues("alice@example.com"))
    assert held["interactions"]["purchases"] == by_time(sdk.send(ListUserPurchases("alice@example.com")))
    assert held["interactions"]["detailviews"] == by_time(sdk.send(ListUserDetailViews("alice@example.com")))
    assert set(held["interactions"]) == {"detailviews", "purchases", "cartadditions", "bookmarks", "ratings",
                                         "viewportions"}
    stamps = [row["timestamp"] for rows in held["interactions"].values() for row in rows]
    assert stamps, "the samples gave alice interactions"
    for rows in held["interactions"].values():
        assert [r["timestamp"] for r in rows] == sorted((r["timestamp"] for r in rows), reverse=True)


def test_show_item_lists_who_interacted_with_it(sent):
    result = show(sent, "item", "sku-1001", "--json")
    held = json.loads(result.stdout)
    sdk = RecombeeClient(DB, TOKEN, protocol="http", options={"base_uri": sent.host_port})
    assert result.exit_code == 0 and held["item"] == "sku-1001"
    assert len(held["interactions"]["purchases"]) == len(sdk.send(ListItemPurchases("sku-1001"))) > 0


def test_the_text_view_says_values_and_interactions_per_kind_with_times(sent):
    result = show(sent, "user", "alice@example.com")
    out = result.stdout
    assert result.exit_code == 0
    assert out.startswith(f"user alice@example.com (database 'demo' at {sent.base_uri})\n")
    assert "interactions:" in out and "newest first" in out
    assert "  purchases: " in out and "itemId sku-1001" in out and "2024-05-02 " in out


def test_a_user_recombee_does_not_have_is_exit_1_in_one_line(sent):
    result = show(sent, "user", "nobody-here")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip() == (f"recombee-cli: error: Recombee has no user 'nobody-here' in database "
                                     f"'demo' ({sent.base_uri})")
    as_json = json.loads(show(sent, "user", "nobody-here", "--json").stdout)
    assert as_json["found"] is False


def test_an_id_recombee_never_holds_is_a_usage_error(sent):
    result = show(sent, "item", "Home Page")
    assert result.exit_code == 2 and "'Home Page' is not a valid Recombee ID" in result.stderr


def test_a_refused_token_is_exit_3_pointing_at_doctor(sent):
    result = show(sent, "user", "alice@example.com", token="wrong")
    assert result.exit_code == 3 and "Recombee refused the credentials (401" in result.stderr
    assert "recombee-cli doctor" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_no_token_is_a_usage_error_naming_where_to_set_it():
    result = invoke(["show", "user", "alice", "--database-id", DB])
    assert result.exit_code == 2 and "no private token: set RECOMBEE_PRIVATE_TOKEN" in result.stderr


def test_limit_cuts_each_kind_and_says_how_many_more(sent):
    held = json.loads(show(sent, "user", "alice@example.com", "--json").stdout)
    kind, rows = max(held["interactions"].items(), key=lambda kv: len(kv[1]))
    assert len(rows) > 1, "the samples gave alice several interactions of one kind"
    result = show(sent, "user", "alice@example.com", "--limit", "1")
    assert f"  {kind}: {len(rows)}\n" in result.stdout
    assert f"    ... and {len(rows) - 1} more (--limit 0 shows all)\n" in result.stdout
