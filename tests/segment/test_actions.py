"""Our deliberate improvements over Segment's destination, and Segment's coercions, event by event."""

from __future__ import annotations

import pytest

import recombee_cli
from recombee_cli.errors import PayloadInvalid

VIEW = {"type": "track", "event": "Product Viewed", "userId": "u1", "properties": {"product_id": "p1"}}


def test_missing_timestamp_falls_back_to_the_events_own_clock_fields():
    event = {**VIEW, "originalTimestamp": "2024-03-01T12:00:00.000Z", "receivedAt": "2024-03-02T00:00:00Z"}
    (request,) = recombee_cli.translate_event(event)
    assert request["params"]["timestamp"] == 1709294400
    event = {**VIEW, "originalTimestamp": "garbage", "receivedAt": "2024-03-02T00:00:00Z"}
    assert recombee_cli.translate_event(event)[0]["params"]["timestamp"] == 1709337600
    event = {**VIEW, "sentAt": 1709337600123}
    assert recombee_cli.translate_event(event)[0]["params"]["timestamp"] == 1709337600.123


def test_no_usable_time_at_all_is_invalid_never_now():
    with pytest.raises(PayloadInvalid, match="no usable timestamp"):
        recombee_cli.translate_event({**VIEW, "sentAt": "yesterday"})


def test_a_bad_mapped_timestamp_is_invalid_with_segments_message():
    with pytest.raises(PayloadInvalid, match="Invalid timestamp provided: soon"):
        recombee_cli.translate_event({**VIEW, "timestamp": "soon", "receivedAt": "2024-03-02T00:00:00Z"})


@pytest.mark.parametrize("field,event", [
    ("itemId", {**VIEW, "properties": {"product_id": "Red Shoe"}}),
    ("userId", {**VIEW, "userId": "a/b"}),
    ("sessionId", {"type": "track", "event": "Video Playback Completed", "userId": "u1",
                   "properties": {"content_asset_id": "v1", "session": "s 1"}}),
])
def test_ids_recombee_refuses_are_invalid_before_sending(field, event):
    event = {**event, "timestamp": "2024-03-01T12:00:00Z"}
    with pytest.raises(PayloadInvalid, match=f"{field} .* is not a valid Recombee ID"):
        recombee_cli.translate_event(event)


def test_numbers_become_strings_and_numeric_strings_numbers():
    event = {"type": "track", "event": "Product Added", "userId": 42, "timestamp": "2024-03-01T12:00:00Z",
             "properties": {"product_id": 4567, "quantity": "3", "price": "2.5"}}
    (request,) = recombee_cli.translate_event(event)
    params = request["params"]
    assert params["userId"] == "42" and params["itemId"] == "4567"
    assert params["amount"] == 3 and params["price"] == 7.5        # price is the line total


def test_empty_strings_are_dropped_and_a_missing_required_field_is_named():
    event = {**VIEW, "userId": "", "anonymousId": None, "timestamp": "2024-03-01T12:00:00Z"}
    with pytest.raises(PayloadInvalid, match="required field 'userId'"):
        recombee_cli.translate_event(event)


def test_purchase_with_one_bad_product_rejects_the_whole_order():
    event = {"type": "track", "event": "Order Completed", "userId": "u1", "timestamp": "2024-03-01T12:00:00Z",
             "properties": {"products": [{"product_id": "p1", "price": 3}, {"name": "no id"}]}}
    with pytest.raises(PayloadInvalid, match="/items/1 is missing the required field 'itemId'"):
        recombee_cli.translate_event(event)


def test_order_with_no_products_is_invalid_not_an_empty_batch():
    event = {"type": "track", "event": "Order Completed", "userId": "u1", "timestamp": "2024-03-01T12:00:00Z",
             "properties": {"products": []}}
    with pytest.raises(PayloadInvalid, match="nothing to send"):
        recombee_cli.translate_event(event)


def test_deletes_and_merges_use_params_like_the_official_sdk():
    delete = {"type": "track", "event": "Product Removed from Wishlist", "userId": "u1",
              "properties": {"sku": "s1", "timestamp": "2024-03-01T12:00:00.5Z"}}
    assert recombee_cli.translate_event(delete) == [
        {"method": "DELETE", "path": "/bookmarks/", "params": {"userId": "u1", "itemId": "s1",
                                                                "timestamp": 1709294400.5}}]
    alias = {"type": "alias", "userId": "known", "previousId": "anon-1"}
    assert recombee_cli.translate_event(alias) == [
        {"method": "PUT", "path": "/users/known/merge/anon-1", "params": {"cascadeCreate": True}}]
