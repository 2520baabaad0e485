"""Segment's 14 Recombee (Actions) presets: verbatim triggers, action defaults plus overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recombee_cli.segment.actions import ACTIONS, ECOMMERCE_ID, VIDEO_ID


@dataclass(frozen=True)
class Preset:
    name: str
    trigger: str
    action: str
    overrides: dict[str, Any]
    without: tuple[str, ...] = ()   # fields of the action's defaults this preset leaves unmapped

    def mapping(self) -> dict[str, Any]:
        """The preset's full field mapping: the action's field defaults, then the overrides."""
        fields = ACTIONS[self.action].default_mapping()
        fields.update(self.overrides)
        for name in self.without:
            fields.pop(name, None)
        return fields


def _track(event: str) -> str:
    return f'type = "track" and event = "{event}"'


PRESETS: tuple[Preset, ...] = (
    Preset("Page - Viewed", 'type = "page"', "addDetailView", {"itemId": {"@path": "$.name"}}),
    Preset("Ecommerce - Product Viewed", _track("Product Viewed"), "addDetailView", {"itemId": ECOMMERCE_ID}),
    Preset("Ecommerce - Product Added", _track("Product Added"), "addCartAddition", {}),
    Preset("Ecommerce - Product Removed", _track("Product Removed"), "deleteCartAddition",
           {"itemId": ECOMMERCE_ID}),
    Preset("Ecommerce - Order Completed", _track("Order Completed"), "addPurchase", {}),
    Preset("Ecommerce - Product Added to Wishlist", _track("Product Added to Wishlist"), "addBookmark",
           {"itemId": ECOMMERCE_ID}),
    Preset("Ecommerce - Product Removed from Wishlist", _track("Product Removed from Wishlist"),
           "deleteBookmark", {"itemId": ECOMMERCE_ID}),
    Preset("Ecommerce - Product Shared", _track("Product Shared"), "addBookmark", {"itemId": ECOMMERCE_ID}),
    Preset("Video - Playback Started", _track("Video Playback Started"), "setViewPortion",
           {"itemId": VIDEO_ID, "portion": {"@literal": 0}}),
    Preset("Video - Content Playing", _track("Video Content Playing"), "setViewPortionFromWatchTime",
           {"itemId": VIDEO_ID}),
    # Segment's preset reads only content_asset_id here, with no fallback: kept as Segment has it.
    Preset("Video - Playback Paused", _track("Video Playback Paused"), "setViewPortionFromWatchTime",
           {"itemId": {"@path": "$.properties.content_asset_id"}}),
    Preset("Video - Playback Completed", _track("Video Playback Completed"), "setViewPortion",
           {"itemId": VIDEO_ID, "portion": {"@literal": 1}}),
    Preset("Screen - Viewed", 'type = "screen"', "addDetailView", {"itemId": {"@path": "$.name"}}),
    Preset("Alias", 'type = "alias"', "mergeUsers", {}),
)

PRESETS_BY_NAME = {p.name: p for p in PRESETS}


# ---------------------------------------------------------------------------------------------
# Opt-in presets beyond Segment's destination (docs/behaviour.md): off unless enabled by name,
# `enable_presets = [...]` in [replay] or `--preset NAME`. Segment's destination sends nothing
# for identify calls and no item catalog, so by default neither do we.

PRODUCT_EVENTS = ("Product Viewed", "Product Clicked", "Product Added", "Product Removed",
                  "Product Added to Wishlist", "Product Removed from Wishlist", "Product Shared",
                  "Order Completed")
# Events of Segment's ecommerce spec that list products (`products`) and describe no single one.
PRODUCT_LIST_EVENTS = ("Product List Viewed", "Cart Viewed", "Checkout Started")
# Segment's ecommerce spec: the fields of a product that describe the item (not the event).
PRODUCT_FIELDS = ("sku", "name", "category", "brand", "variant", "price", "url", "image_url")
# Engage's track events for audiences and computed traits (Segment's "Using Engage Data"): the
# key in `audience_key` / `trait_key`, the value under that key in the properties.
ENGAGE_ENTERED, ENGAGE_EXITED, ENGAGE_COMPUTED = "Audience Entered", "Audience Exited", "Trait Computed"


def _product_values(prefix: str) -> dict[str, Any]:
    return {name: {"@path": f"{prefix}{name}"} for name in PRODUCT_FIELDS}


_PRODUCTS = {"@arrayPath": ["$.properties.products",
                             {"itemId": {"@if": {"exists": {"@path": "$.product_id"},
                                                 "then": {"@path": "$.product_id"},
                                                 "else": {"@path": "$.sku"}}},
                              "values": _product_values("$.")}]}

USER_TRAITS = "Identify - User Traits"
ITEM_PROPERTIES = "Ecommerce - Item Properties"

OPT_IN_PRESETS: tuple[Preset, ...] = (
    # Traits, Engage audiences (snake_cased name: true/false) and computed traits as an identify
    # call's traits: each becomes a user property.
    Preset(USER_TRAITS, 'type = "identify"', "setUserValues", {"values": {"@path": "$.traits"}}),
    # The same audiences and computed traits as Engage's track events: one property each, named
    # by its key as Engage names it; an exit sets false.
    Preset("Engage - Audience Entered", _track(ENGAGE_ENTERED), "setUserValue",
           {"key": {"@path": "$.properties.audience_key"}, "value": {"@literal": True}}),
    Preset("Engage - Audience Exited", _track(ENGAGE_EXITED), "setUserValue",
           {"key": {"@path": "$.properties.audience_key"}, "value": {"@literal": False}}),
    Preset("Engage - Trait Computed", _track(ENGAGE_COMPUTED), "setUserValue",
           {"key": {"@path": "$.properties.trait_key"}, "values": {"@path": "$.properties"}}),
    # Product events carry one product in `properties`, Order Completed a list in `products`.
    Preset(ITEM_PROPERTIES,
           'type = "track" and (' + " or ".join(f'event = "{e}"' for e in PRODUCT_EVENTS) + ")",
           "setItemValues",
           {"itemId": ECOMMERCE_ID, "values": _product_values("$.properties."), "items": _PRODUCTS}),
    # The list events: their products only (what a list says of an item is its catalogue entry);
    # one without a product list (a checkout started from elsewhere) says nothing of items.
    Preset("Ecommerce - Item Properties from Lists",
           'type = "track" and (' + " or ".join(f'event = "{e}"' for e in PRODUCT_LIST_EVENTS)
           + ") and properties.products != null",
           "setItemValues", {"items": _PRODUCTS}, without=("itemId",)),
)

# Types the opt-in presets declare (the config's [user_properties] / [item_properties] win);
# every other property's type is inferred from its first value (properties.py).
OPT_IN_TYPES: dict[str, dict[str, dict[str, str]]] = {
    USER_TRAITS: {"users": {"createdAt": "timestamp"}},
    ITEM_PROPERTIES: {"items": {"price": "double", "image_url": "image"}},
}

# The opt-in presets by the name that enables them: users' traits in both forms Engage sends them
# (identify calls and its track events), items' properties.
OPT_IN_GROUPS: dict[str, tuple[Preset, ...]] = {
    USER_TRAITS: OPT_IN_PRESETS[:4],
    ITEM_PROPERTIES: OPT_IN_PRESETS[4:6],
}
OPT_IN_BY_NAME = {p.name: p for p in OPT_IN_PRESETS}
ALL_PRESETS_BY_NAME = {**PRESETS_BY_NAME, **OPT_IN_BY_NAME}
