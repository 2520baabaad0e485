"""Event filters applied before translation: a time window and messageId de-duplication.
Filtered events count as `filtered`."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from recombee_cli.segment.timestamps import first_epoch_seconds

DEFAULT_DEDUPE_WINDOW = 250_000   # messageIds remembered (about 15 MB)

_TIME_FIELDS = ("timestamp", "originalTimestamp", "receivedAt", "sentAt")


def event_time(event: dict[str, Any]) -> float | None:
    """The event's own time: `timestamp`, else the other clock fields Segment records."""
    return first_epoch_seconds(event, _TIME_FIELDS)


class Deduplicator:
    """Remembers the last `window` messageIds (as 64-bit hashes, FIFO eviction): flat memory.

    Segment re-delivers within about a day, so a window of a few hundred thousand events catches
    the duplicates of an archive read in order; two copies further apart are both sent, and the
    second is answered 409 by Recombee anyway (same user, item and timestamp)."""

    def __init__(self, window: int = DEFAULT_DEDUPE_WINDOW):
        self.window = window
        self._seen: set[int] = set()
        self._order: deque[int] = deque()

    def seen(self, message_id: str) -> bool:
        key = hash(message_id)
        if key in self._seen:
            return True
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self.window:
            self._seen.discard(self._order.popleft())
        return False


class WindowFilter:
    """Why an event is filtered out (--since/--until, and --dedupe for library use), or None to
    keep it. It reads the event's clocks and `messageId` only (mapping/reads.py counts on it: a
    replay with another filter decodes whole events)."""

    __slots__ = ("since", "until", "dedupe")

    def __init__(self, since: float | None, until: float | None, dedupe: Deduplicator | None):
        self.since, self.until, self.dedupe = since, until, dedupe

    def __call__(self, event: dict[str, Any]) -> str | None:
        since, until = self.since, self.until
        if since is not None or until is not None:
            moment = event_time(event)
            if moment is None:
                return "no event time"
            if since is not None and moment < since:
                return "before --since"
            if until is not None and moment >= until:
                return "not before --until"
        if self.dedupe is not None:
            message_id = event.get("messageId")
            if isinstance(message_id, str) and self.dedupe.seen(message_id):
                return "repeated messageId"
        return None


def make_filter(*, since: float | None = None, until: float | None = None,
                dedupe: Deduplicator | None = None) -> Callable[[dict[str, Any]], str | None] | None:
    """A function returning why an event is filtered out, or None to keep it (a WindowFilter).
    (The pipeline applies --dedupe itself, in input order; `dedupe` here is for library use.)"""
    if since is None and until is None and dedupe is None:
        return None
    return WindowFilter(since, until, dedupe)
