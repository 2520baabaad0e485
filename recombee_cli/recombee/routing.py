"""Routing: which sender lane keeps a user's order. Which users a request touches is the request
kind's (request_kinds.route); what may share a Batch is the lanes' (lanes.py)."""

from __future__ import annotations

import zlib

DEFAULT_CONCURRENCY = 4     # sender lanes


def lane_of(user: str, lanes: int) -> int:
    """A user's home lane: the same for the whole run, whoever asks."""
    return zlib.crc32(user.encode("utf-8", "replace")) % lanes
