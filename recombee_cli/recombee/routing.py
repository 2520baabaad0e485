"""Routing: which sender lane keeps a user's order. Which users a request touches is the request
kind's (request_kinds.route); what may share a Batch is the lanes' (lanes.py)."""

from __future__ import annotations

DEFAULT_CONCURRENCY = 4     # sender lanes


def lane_of(user: str, lanes: int) -> int:
    """A user's home lane: the same for the whole run (lanes live in one process, where a
    string's hash does not change: the sender alone asks)."""
    return hash(user) % lanes
