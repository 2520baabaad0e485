"""Translation on several cores: worker processes decode and translate chunks of lines; the main
process reads, keeps the order, and does the accounting and the sending exactly as in one process.

Workers are forked after the translator is compiled, so they inherit it (closures cannot be
pickled). A chunk of lines goes out as one bytes blob and comes back as a summary (counts, the
invalid events, where each event's requests are) plus the requests already serialised; the main
process then does per chunk what it would do per event. At most `2 * workers + 2` chunks are in
flight, so memory stays flat. `--dedupe` needs every event in input order, so it runs in one
process.
"""

from __future__ import annotations

import multiprocessing
import zlib
from collections import deque
from typing import Callable, Iterator

import orjson

from .decode import decode
from .jsvalues import orjson_default

CHUNK_LINES = 2000

_translator = None        # set in the parent before forking; inherited by the workers
_window_filter = None
_lanes = 0                # the sender's lane count (0: dry run, no routing needed)


def _lane(user: str) -> int:
    return zlib.crc32(user.encode("utf-8", "replace")) % _lanes


def _translate_chunk(blob: bytes) -> tuple[bytes, bytes]:
    """Lines in; a chunk summary and the serialised requests out.

    The summary carries counts, not events: the main process's work per chunk must stay small,
    or it becomes the bottleneck. Requests come back serialised, one per line of the second
    blob, so the main process never parses or re-serialises them; when sending, each carries its
    sender lane(s), computed here the way the sender would."""
    from .pipeline import unmatched_name
    from .sender import lenient_404, request_users

    translate = _translator.translate
    keep = _window_filter
    dumps = orjson.dumps
    lanes = _lanes
    n = filtered = 0
    unmatched: dict[str, int] = {}
    stats: dict[str, list[int]] = {}
    mapping_errors: list = []
    invalid: list = []     # [line, index, reason, mapping or None]
    events: list = []      # [line, index, first request, end, errors or None]
    routes: list = []      # per request: [lane, second lane or -1, 404 means done]
    bodies: list[bytes] = []
    for number, data in enumerate(blob.split(b"\n")):
        for index, event in enumerate(decode(data)):
            n += 1
            if type(event) is str:
                invalid.append((number, index, event, None))
                continue
            if keep is not None and keep(event) is not None:
                filtered += 1
                continue
            result = translate(event)
            if not result.matched:
                name = unmatched_name(event)
                unmatched[name] = unmatched.get(name, 0) + 1
                continue
            for name in result.matched:
                stats.setdefault(name, [0, 0])[0] += 1
            for name in result.built:
                stats[name][1] += 1
            mapping_errors.extend(result.errors)
            if not result.requests:
                name, reason = result.errors[0]
                invalid.append((number, index, reason, name))
                continue
            first = len(bodies)
            for request in result.requests:
                bodies.append(dumps(request, default=orjson_default))
                if lanes:
                    users = request_users(request)
                    routes.append((_lane(users[0]) if users else 0,
                                   _lane(users[1]) if len(users) > 1 else -1, lenient_404(request)))
            events.append((number, index, first, len(bodies), result.errors or None))
    summary = {"n": n, "filtered": filtered, "unmatched": unmatched, "stats": stats,
               "mapping_errors": mapping_errors, "invalid": invalid, "events": events, "routes": routes}
    return orjson.dumps(summary), b"\n".join(bodies)


class TranslatorPool:
    """A pool of forked translator processes; create it before any thread is started."""

    def __init__(self, translator, workers: int, *, window_filter: Callable | None = None, lanes: int = 0):
        global _translator, _window_filter, _lanes
        try:
            context = multiprocessing.get_context("fork")
        except ValueError:
            raise RuntimeError("--workers needs the 'fork' start method (Linux, macOS)") from None
        _translator, _window_filter, _lanes = translator, window_filter, lanes
        self.workers = workers
        self.lanes = lanes
        self._pool = context.Pool(workers)

    def map_ordered(self, chunks: Iterator[tuple[object, bytes]]) -> Iterator[tuple[object, dict, list[bytes]]]:
        """Translate (context, blob) chunks; yield (context, summary, request bodies) in order,
        with a bounded number in flight."""
        in_flight: deque = deque()
        limit = 2 * self.workers + 2
        for context, blob in chunks:
            in_flight.append((context, self._pool.apply_async(_translate_chunk, (blob,))))
            if len(in_flight) >= limit:
                yield self._unpack(*in_flight.popleft())
        while in_flight:
            yield self._unpack(*in_flight.popleft())

    @staticmethod
    def _unpack(context, pending) -> tuple[object, dict, list[bytes]]:
        summary, bodies = pending.get()
        return context, orjson.loads(summary), bodies.split(b"\n") if bodies else []

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()
