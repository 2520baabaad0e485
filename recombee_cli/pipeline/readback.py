"""Reading back what Recombee holds for one user or item (`recombee-cli show`): its property values
and its interactions of each kind, newest first, with the signed GETs the official SDK makes
(GetUserValues, ListUserDetailViews, ListUserPurchases, ..., and the same for items)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from recombee_cli.errors import ConfigError, ServiceError
from recombee_cli.segment.actions import ID_PATTERN

# Recombee's six interaction kinds, by the path segment their list is read under.
INTERACTION_KINDS = ("detailviews", "purchases", "cartadditions", "bookmarks", "ratings", "viewportions")


@dataclass
class Holding:
    """What Recombee holds for a user or an item; `found` False when it has no such user or item."""

    entity: str                       # "user" or "item"
    id: str
    found: bool
    values: dict[str, Any] = field(default_factory=dict)
    interactions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # kind -> newest first

    def to_dict(self) -> dict[str, Any]:
        return {self.entity: self.id, "found": self.found, "values": self.values,
                "interactions": self.interactions}


def _newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def when(row: dict[str, Any]) -> float:
        stamp = row.get("timestamp")
        return float(stamp) if isinstance(stamp, int | float) and not isinstance(stamp, bool) else 0.0

    return sorted(rows, key=when, reverse=True)


def read_holding(client: Any, entity: str, key: str) -> Holding:
    """The values and interactions of user or item `key`. Raises ConfigError for an ID Recombee
    would never hold, AuthenticationError (401/403) and ServiceError (no answer, 429/5xx, another
    refusal) with the reason."""
    from recombee_cli.recombee.client import CallFailed, Retryable

    if entity not in ("user", "item"):
        raise ValueError(f"no such entity: {entity!r}")
    if not ID_PATTERN.fullmatch(key):
        raise ConfigError(f"{key!r} is not a valid Recombee ID (letters, digits and _ - : @ . only): "
                          f"Recombee holds no {entity} under it")
    base = f"/{entity}s/{quote(key, safe='@:._-')}"
    holding = Holding(entity, key, found=True)
    try:
        try:
            values = client.read_json(base)
        except CallFailed as exc:
            if exc.status == 404:
                return Holding(entity, key, found=False)
            raise
        holding.values = values if isinstance(values, dict) else {}
        for kind in INTERACTION_KINDS:
            try:
                rows = client.read_json(f"{base}/{kind}/")
            except CallFailed as exc:
                if exc.status != 404:   # gone since the values were read: nothing of this kind
                    raise
                rows = []
            holding.interactions[kind] = _newest_first(rows if isinstance(rows, list) else [])
    except Retryable as exc:
        raise ServiceError(exc.reason) from None
    return holding
