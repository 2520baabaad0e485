"""Translate stage, by chunks of lines: in this process, or on several cores in worker processes
that decode and translate while the main process reads, keeps the order, and does the accounting
and the sending exactly as in one process.

Workers are forked after the translator is compiled, so they inherit it (closures cannot be
pickled). A chunk of lines goes out as one bytes blob and comes back as a summary (counts, the
invalid events, where each event's requests are) plus the requests already serialised; the main
process then does per chunk what it would do per event. At most `2 * workers + 2` chunks are in
flight, so memory stays flat. `--dedupe` needs every event in input order, so it runs in one
process.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from typing import Callable, Iterator

import orjson

from .decode import REJECT_MARKER, decode
from .errors import MappingError, PayloadInvalid
from .jsvalues import orjson_default
from .translate import NOTHING_TO_SEND

CHUNK_LINES = 2000

_translator = None        # set in the parent before forking; inherited by the workers
_window_filter = None
_lanes = 0                # the sender's lane count (0: dry run, no routing needed)


def translate_lines(datas, translator, *, window_filter=None, dedupe=None, lanes: int = 0) -> tuple[dict, list[bytes]]:
    """Translate a chunk of lines: a summary and the serialised requests.

    The summary carries counts, not events, so that the accounting per chunk stays small: the
    invalid events (line, index, reason, mapping), where each event's requests are (line, index,
    first, end, errors), and, when sending, each request's users (for the sender's ordering).
    Requests are serialised here, once: the printer and the sender use bytes.

    This is the hot loop of a replay: it does per event what `Translator.translate` does, with
    the plan cached per (event, type) and the counts kept per mapping position."""
    from .pipeline import unmatched_name
    from .routing import lenient_404, request_users

    plan_for = translator.plan
    loads, dumps, decode_error = orjson.loads, orjson.dumps, orjson.JSONDecodeError
    n = filtered = blank = with_errors = 0
    unmatched: dict[str, int] = {}
    counts = [[0, 0] for _ in translator.mappings]   # per mapping: matched, built
    names = translator.names
    mapping_errors: list = []
    invalid: list = []     # [line, index, reason, mapping or None]
    events: list = []      # [line, index, first request, end, errors or None]
    routes: list = []      # when sending, per request: [its users, 404 means done]
    bodies: list[bytes] = []
    for number, data in enumerate(datas):
        try:
            value = loads(data)
        except decode_error:
            value = None
        if type(value) is dict and "batch" not in value and REJECT_MARKER not in value:
            items = (value,)   # one plain event: the common case
        elif value is None and (not data or data.isspace()):
            blank += 1         # blank lines (and unreadable ones, which the reader reported) are no events
            continue
        else:
            items = decode(data[:-1] if data[-1:] == b"\r" else data)
        for index, event in enumerate(items):
            n += 1
            if type(event) is str:
                invalid.append((number, index, event, None))
                continue
            if window_filter is not None and window_filter(event) is not None:
                filtered += 1
                continue
            if dedupe is not None:
                mid = event.get("messageId")
                if type(mid) is str and dedupe.seen(mid):
                    filtered += 1
                    continue
            matched = False
            requests = errors = None
            for position, matches, run in plan_for(event):
                if matches is not None and not matches(event):
                    continue
                matched = True
                entry = counts[position]
                entry[0] += 1
                try:
                    built = run(event)
                except (PayloadInvalid, MappingError) as exc:
                    (errors := errors or []).append((names[position], str(exc)))
                    continue
                if built:
                    entry[1] += 1
                    requests = built if requests is None else requests + built
                else:
                    (errors := errors or []).append((names[position], NOTHING_TO_SEND))
            if not matched:
                name = unmatched_name(event)
                unmatched[name] = unmatched.get(name, 0) + 1
                continue
            if errors:
                mapping_errors.extend(errors)
                if requests is None:
                    invalid.append((number, index, errors[0][1], errors[0][0]))
                    continue
            first = len(bodies)
            for request in requests:
                bodies.append(dumps(request, default=orjson_default))
                if lanes:
                    routes.append((request_users(request), lenient_404(request)))
            events.append((number, index, first, len(bodies), errors))
            if errors:
                with_errors += 1
    stats = {names[p]: entry for p, entry in enumerate(counts) if entry[0]}
    summary = {"n": n, "blank": blank, "filtered": filtered, "unmatched": unmatched, "stats": stats,
               "mapping_errors": mapping_errors, "invalid": invalid, "events": events, "events_with_errors": with_errors, "routes": routes}
    return summary, bodies


def _translate_chunk(blob: bytes) -> tuple[bytes, bytes]:
    summary, bodies = translate_lines(blob.split(b"\n"), _translator, window_filter=_window_filter,
                                      lanes=_lanes)
    return orjson.dumps(summary), b"\n".join(bodies)


class InlineTranslator:
    """Chunks translated in this process (one core); the same interface as the pool."""

    def __init__(self, translator, *, window_filter=None, dedupe=None, lanes: int = 0):
        self._args = dict(window_filter=window_filter, dedupe=dedupe, lanes=lanes)
        self._translator = translator

    def map_ordered(self, chunks):
        for lines, datas in chunks:
            summary, bodies = translate_lines(datas, self._translator, **self._args)
            yield lines, summary, bodies

    def close(self) -> None:
        pass


class TranslatorPool:
    """A pool of forked translator processes; create it before any thread is started."""

    joins = True   # chunks travel as one joined blob

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

    def map_ordered(self, chunks: Iterator[tuple[object, list[bytes]]]) -> Iterator[tuple[object, dict, list[bytes]]]:
        """Translate (context, lines) chunks; yield (context, summary, request bodies) in order,
        with a bounded number in flight."""
        in_flight: deque = deque()
        limit = 2 * self.workers + 2
        for context, datas in chunks:
            blob = b"\n".join(datas)
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
