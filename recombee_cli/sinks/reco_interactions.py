"""Microsoft Intelligent Recommendations' `Reco_Interactions` entity (its data contract for
interactions). Microsoft retired the service on 31 March 2026; the files remain a clean export
of interactions, one folder per type, that any data lake or loader reads.

Columns, in the contract's order, with its limits and its "drop entry" / "trim value" rules:

    InteractionGroupingId  String(256) required  drop    purchases: the order id; else the user id
    ItemId                 String(16)  required  drop    the Recombee itemId
    ItemVariantId          String(16)            drop    empty (Recombee has no variants)
    UserId                 String(256)           drop    the Recombee userId (empty = anonymous)
    InteractionType        String                drop    "Transaction" (the only valid value)
    TimeStamp              DateTime              drop    ISO 8601 UTC with milliseconds
    String Attribute       String(64)            drop    recommId (view portions: sessionId)
    Double Attribute       Double                drop    price / duration / rating / portion
    Channel                String(64)            trim    empty ("0" makes the service fail)
    Catalog                String(64)            trim    empty ("0" makes the service fail)
    Strength               Double                drop    ratings: 3 + 2 * rating (1-5 stars)
    IsPositive             Bool                          False for deletions and negative ratings

One table (folder) per Recombee interaction type, because the contract asks that one entity hold
interactions of one type: purchases, cartadditions, detailviews, bookmarks, ratings,
viewportions. Each is an IR root folder as the data contract describes it: `model.json` (the
entities it holds: here Reco_Interactions, its columns and their types) beside the entity's
folder of CSV partitions, `<type>/Reco_Interactions/part-NNNNN.csv` (this module gives the rows;
`sinks.encoders.csv` writes them, and the model.json). Merges and user deletions
have no row (not representable). Only the contract's rules apply, not Recombee's ID rule. An
event with no userId is anonymous: its UserId is empty, as the contract says ("an empty value
represents an anonymous interaction"), unless `anonymous_ids` keeps its anonymousId there.
docs/behaviour.md explains each choice.
"""

from __future__ import annotations

from typing import Any

from recombee_cli.request_kinds import INTERACTIONS, action_of, interaction_table
from recombee_cli.segment.actions import FALLBACK_TIMESTAMPS
from recombee_cli.segment.jsvalues import js_string
from recombee_cli.segment.timestamps import first_epoch_seconds
from recombee_cli.sinks.encoders.csv import CsvEncoder
from recombee_cli.sinks.rows import Column, EventLookup, NotRepresentable, Refused, RowFormat, format_datetime

ENTITY = "Reco_Interactions"

# The tables (the folders of the parts): Recombee's interaction types, as request_kinds names them.
TABLES = tuple(INTERACTIONS)

# The value each table keeps in "Double Attribute" (the contract leaves its use to the business).
DOUBLE_ATTRIBUTE = {"purchases": "price", "cartadditions": "price", "detailviews": "duration",
                    "ratings": "rating", "viewportions": "portion"}

EVENT_CLOCK = ("timestamp",) + FALLBACK_TIMESTAMPS



def anonymous(event: dict[str, Any] | None, user: Any) -> bool:
    """The request's user is the event's anonymousId because the event has no userId."""
    if not event or event.get("userId") not in (None, ""):
        return False
    return user is not None and user == event.get("anonymousId")


def order_id(event: dict[str, Any] | None) -> str | None:
    """Segment's ecommerce spec: `properties.order_id` (a string, or a number as JavaScript
    writes it); None when missing, empty or of another type."""
    if not event:
        return None
    properties = event.get("properties")
    if not isinstance(properties, dict):
        return None
    value = properties.get("order_id")
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return js_string(value)
    return None


class RecoInteractions(RowFormat):
    name = "reco-interactions"
    entity = ENTITY
    columns = (
        Column("InteractionGroupingId", max_length=256, required=True),
        Column("ItemId", max_length=16, required=True),
        Column("ItemVariantId", max_length=16),
        Column("UserId", max_length=256),
        Column("InteractionType", allowed=("Transaction",)),
        Column("TimeStamp", "datetime"),
        Column("String Attribute", max_length=64),
        Column("Double Attribute", "double"),
        Column("Channel", max_length=64, on_invalid="trim", forbidden=("0",)),
        Column("Catalog", max_length=64, on_invalid="trim", forbidden=("0",)),
        Column("Strength", "double"),
        Column("IsPositive", "bool"),
    )
    tables = TABLES
    entity_folder = ENTITY
    recombee_ids = False

    encoding = CsvEncoder   # the contract's partitions are CSV, with model.json beside them

    def table_description(self, table: str) -> str:
        return f"Interactions of one type ({table})"

    def describe(self, written: dict[str, Any]) -> dict[str, Any]:
        return {**super().describe(written), "entity_folder": ENTITY, "anonymous_user_ids": self.anonymous_ids}

    def convert(self, request: dict[str, Any], event: EventLookup) -> tuple[str, dict[str, Any]]:
        method = request.get("method", "")
        table = interaction_table(request)
        if table is None:
            raise NotRepresentable(f"not representable in {ENTITY}: {action_of(request)}")
        params = request.get("params") or {}
        user = params.get("userId")
        positive = method == "POST"
        seconds = params.get("timestamp")
        if seconds is None:
            # A delete without a timestamp (Segment's default mapping sends none): the event's own
            # time, as for add-type interactions. Never 1970, the contract's default.
            found = event()
            seconds = first_epoch_seconds(found, EVENT_CLOCK) if found else None
            if seconds is None:
                raise Refused("TimeStamp is missing (no timestamp in the request or the event)")
        values: dict[str, Any] = {
            "InteractionGroupingId": user,   # (an anonymous visitor's rows stay grouped by its id)
            "ItemId": params.get("itemId"),
            "UserId": user if self.anonymous_ids or not anonymous(event(), user) else "",
            "InteractionType": "Transaction",
            "TimeStamp": seconds,
            "String Attribute": params.get("sessionId" if table == "viewportions" else "recommId"),
            "IsPositive": positive,
        }
        if table == "purchases":
            # One row per product, grouped by order: the request has no order id, its event has.
            values["InteractionGroupingId"] = order_id(event()) or f"{user}@{format_datetime(seconds)}"
        if positive:
            key = DOUBLE_ATTRIBUTE.get(table)
            if key is not None:
                values["Double Attribute"] = params.get(key)
            if table == "ratings":
                rating = params.get("rating")
                if isinstance(rating, (int, float)) and not isinstance(rating, bool):
                    values["Strength"] = 3 + 2 * rating   # Recombee's [-1, 1] as the contract's 1-5
                    values["IsPositive"] = rating >= 0     # below neutral is a dislike
        return table, values
