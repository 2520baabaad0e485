"""Segment's 14 Recombee (Actions) presets: verbatim triggers, action defaults plus overrides."""

from __future__ import annotations

from dataclasses import dataclass

from .actions import ACTIONS, ECOMMERCE_ID, VIDEO_ID


@dataclass(frozen=True)
class Preset:
    name: str
    trigger: str
    action: str
    overrides: dict

    def mapping(self) -> dict:
        """The preset's full field mapping: the action's field defaults, then the overrides."""
        fields = ACTIONS[self.action].default_mapping()
        fields.update(self.overrides)
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
