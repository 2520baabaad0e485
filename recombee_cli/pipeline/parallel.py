"""Translate stage, by blocks of lines: in this process, or on several cores in worker processes
that decode and translate while the main process reads, keeps the order, and does the accounting
and the sending exactly as in one process.

Workers are forked after the translator is compiled, so they inherit it (closures cannot be
pickled). A block goes out as the bytes read and comes back as a summary (counts, the invalid
events, where each event's requests are) plus the requests already serialised in one blob; the
main process then does per block what it would do per event. Two blocks are in flight per worker
(one translated, one waiting), so memory stays flat and a worker never waits for the main
process. `--dedupe` needs every event in input order, so it runs in one process.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import signal
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import orjson

from recombee_cli.errors import MappingError, PayloadInvalid, WorkerError
from recombee_cli.outcomes import unmatched_name
from recombee_cli.pipeline.translate import NOTHING_TO_SEND
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.sources.decode import REJECT_MARKER, decode

if TYPE_CHECKING:
    from recombee_cli.sources.reader import Block

CHUNK_LINES = 2000
IN_FLIGHT = 2             # blocks handed to each worker before its first result is taken

_translator = None        # set in the parent before forking; inherited by the workers
_window_filter = None
_lanes = 0                # the sender's lane count (0: dry run, no routing needed)


def translate_lines(datas, translator, *, window_filter=None, dedupe=None, lanes: int = 0) -> tuple[dict, list[bytes]]:
    """Translate a chunk of lines: a summary and the serialised requests.

    The summary carries counts, not events, so that the accounting per chunk stays small: the
    invalid events (line, index, reason, mapping), where each event's requests are (line, index,
    first, end as four numbers per event in one array; mapping errors by event position), and,
    when sending, each request's users (for the sender's ordering). Requests are serialised
    here, once: the printer and the sender use bytes.

    This is the hot loop of a replay: it does per event what `Translator.translate` does, with
    the plan cached per (event, type) and the counts kept per mapping position."""
    from recombee_cli.recombee.routing import lenient_404, request_users
    from recombee_cli.segment.properties import describe_values

    describe = getattr(translator, "sets_values", False)   # value requests, for the main process
    values: list = []      # per value request: (request index in the chunk, mapping, entity, names)

    plan_for = translator.plan
    loads, dumps, decode_error = orjson.loads, orjson.dumps, orjson.JSONDecodeError
    n = filtered = blank = 0
    unmatched: dict[str, int] = {}
    counts = [[0, 0] for _ in translator.mappings]   # per mapping: matched, built
    names = translator.names
    mapping_errors: list = []
    invalid: list = []     # [line, index, reason, mapping or None]
    events = array("l")    # per event: line, index, first request, end (flat: one buffer, not objects)
    event_errors: dict[int, list] = {}   # event position -> its mapping errors
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
            requests = errors = described = None
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
                    if describe:
                        base = 0 if requests is None else len(requests)
                        for j, request in enumerate(built):
                            d = describe_values(request)
                            if d is not None:
                                (described := described or []).append((base + j, names[position], *d))
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
            if described:
                values.extend((first + j, *rest) for j, *rest in described)
            for request in requests:
                bodies.append(dumps(request, default=orjson_default))
                if lanes:
                    routes.append((request_users(request), lenient_404(request)))
            if errors:
                event_errors[len(events) // 4] = errors
            events.extend((number, index, first, len(bodies)))
    stats = {names[p]: entry for p, entry in enumerate(counts) if entry[0]}
    summary = {"n": n, "blank": blank, "filtered": filtered, "unmatched": unmatched, "stats": stats,
               "mapping_errors": mapping_errors, "invalid": invalid, "events": events,
               "event_errors": event_errors, "routes": routes, "values": values}
    return summary, bodies


def _serve(conn, inherited: list) -> None:
    """A worker: blocks in, (summary, requests blob) out, until the pipe closes."""
    # Ctrl-C and SIGTERM reach the whole process group: they are the parent's to handle (it saves
    # what was acknowledged and closes our pipe, which ends us); a worker killed first would look
    # like a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for other in inherited:   # the parent's ends (ours and earlier workers'): they would keep pipes open
        other.close()
    while True:
        try:
            blob = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            summary, bodies = translate_lines(blob.split(b"\n"), _translator, window_filter=_window_filter,
                                              lanes=_lanes)
            head = pickle.dumps(summary, protocol=pickle.HIGHEST_PROTOCOL)
            blob = b"\n".join(bodies)
        except BaseException as exc:  # noqa: BLE001 - reported by the parent, which stops the run
            head, blob = pickle.dumps(f"{type(exc).__name__}: {exc}"), b""
        try:
            conn.send_bytes(head)
            conn.send_bytes(blob)
        except OSError:   # the parent is gone or stopped reading (Ctrl-C, an error): nothing to say
            return


class InlineTranslator:
    """Blocks translated in this process (one core); the same interface as the pool."""

    def __init__(self, translator, *, window_filter=None, dedupe=None, lanes: int = 0):
        self._args = dict(window_filter=window_filter, dedupe=dedupe, lanes=lanes)
        self._translator = translator

    def map_ordered(self, blocks):
        """Like the pool's: the requests come joined in one blob. orjson (3.12 and later) returns
        each request in a buffer of at least 4 KB, never trimmed; a sender keeps thousands of
        them waiting in lanes (~170 MB of 250 MB peak RSS). Joined, then cut by the sink where
        it needs them one by one, each is its own size."""
        for block in blocks:
            summary, bodies = translate_lines(block.lines, self._translator, **self._args)
            yield block, summary, b"\n".join(bodies) if bodies else b""

    def close(self) -> None:
        pass


class TranslatorPool:
    """Forked translator processes, each fed over its own pipe; create it before any thread.

    Blocks go round-robin, IN_FLIGHT per worker, and come back in the same order, so a worker
    always has its next block at hand (with one in flight, workers waited for the main process
    half of the time when it was sending too). The main process reads results and only moves
    bytes; a feeder thread per worker writes that worker's blocks, so the main thread never
    blocks on a full pipe, and a worker writing a result while its next block is being written
    to it cannot deadlock. (A reading thread in the worker instead fought the translation for
    the GIL and slowed every hand-over; multiprocessing.Pool's two helper threads cost the main
    process more than the translation it saved.)"""

    def __init__(self, translator, workers: int, *, window_filter: Callable | None = None, lanes: int = 0):
        global _translator, _window_filter, _lanes
        try:
            context = multiprocessing.get_context("fork")
        except ValueError:
            raise RuntimeError("--workers needs the 'fork' start method (Linux, macOS)") from None
        _translator, _window_filter, _lanes = translator, window_filter, lanes
        self.workers = workers
        self.lanes = lanes
        self._conns = []
        self._procs = []
        for _ in range(workers):
            ours, theirs = context.Pipe(duplex=True)
            process = context.Process(target=_serve, args=(theirs, [*self._conns, ours]), daemon=True)
            process.start()
            theirs.close()
            self._conns.append(ours)
            self._procs.append(process)
        self._feeds: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in self._conns]
        self._feeders = [threading.Thread(target=self._feed, args=(conn, feed), daemon=True,
                                          name=f"recombee-feed-{n}")
                         for n, (conn, feed) in enumerate(zip(self._conns, self._feeds))]
        for feeder in self._feeders:   # threads only now: the workers are forked
            feeder.start()

    @staticmethod
    def _feed(conn, feed: queue.SimpleQueue) -> None:
        """Write a worker's blocks in turn; a worker that died shows when its result is read."""
        while True:
            blob = feed.get()
            if blob is None:
                return
            try:
                conn.send_bytes(blob)
            except (OSError, ValueError):   # died, or the pool closed its end
                return

    def map_ordered(self, blocks: Iterator[Block]) -> Iterator[tuple[Block, dict, bytes]]:
        """Translate blocks; yield (block, summary, the requests joined by newlines) in order.
        The main process does no per-line work: a block goes out as the bytes read, its requests
        come back as one blob."""
        conns, feeds = self._conns, self._feeds
        in_flight: deque = deque()   # (block, worker index), in input order
        blocks = iter(blocks)
        for _ in range(IN_FLIGHT):
            for index, feed in enumerate(feeds):
                block = next(blocks, None)
                if block is None:
                    break
                feed.put(block.raw())
                in_flight.append((block, index))
        while in_flight:
            block, index = in_flight.popleft()
            summary, bodies = self._receive(conns[index])
            following = next(blocks, None)
            if following is not None:   # first keep the worker busy, then do our part
                feeds[index].put(following.raw())
                in_flight.append((following, index))
            yield block, summary, bodies

    @staticmethod
    def _receive(conn) -> tuple[dict, bytes]:
        try:
            summary = pickle.loads(conn.recv_bytes())
            bodies = conn.recv_bytes()
        except (EOFError, OSError):
            raise WorkerError("a translator worker process died (out of memory?); "
                              "what was acknowledged is saved, run the same command to go on") from None
        if type(summary) is str:
            raise WorkerError(f"a translator worker failed: {summary}")
        return summary, bodies

    def close(self) -> None:
        for feed in self._feeds:
            feed.put(None)
        for feeder in self._feeders:   # idle ones end at once; one stuck writing ends with its worker
            feeder.join(timeout=0.2)
        for conn in self._conns:
            conn.close()
        for process in self._procs:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join()
