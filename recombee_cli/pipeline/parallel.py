"""The worker-pool engine (`--workers N`): forked processes decode and translate chunks while the
main process reads, keeps the order, and does the accounting and the sending exactly as in one
process.

Workers are forked after the translator is compiled, so they inherit it (closures cannot be
pickled). A chunk goes out as the bytes read and comes back as its `BlockResult`, the requests
already serialised in one blob sent apart from the rest; the main process then does per chunk
what it would do per event. Two chunks are in flight per worker (one translated, one waiting), so
memory stays flat and a worker never waits for the main process. `--dedupe` needs every event in
input order, so it runs in one process (engines.InlineTranslator).
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import signal
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection

from recombee_cli.errors import WorkerError, WorkerStartError
from recombee_cli.pipeline.engines import Reading, Translated
from recombee_cli.pipeline.translate import BlockResult, EventFilter, Translator, translate_block
from recombee_cli.sources.reader import Block, Source

IN_FLIGHT = 2             # chunks handed to each worker before its first result is taken

_translator: Translator | None = None   # set in the parent before forking; inherited by the workers
_window_filter: EventFilter | None = None
_routes = False           # note each request's users (a sender's lanes)


def _serve(conn: Connection, inherited: list[Connection]) -> None:
    """A worker: chunks in, (result, requests blob) out, until the pipe closes."""
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
            if _translator is None:
                raise WorkerError("the worker has no translator (not forked from a TranslatorPool)")
            result = translate_block(blob.split(b"\n"), _translator, window_filter=_window_filter, routes=_routes)
            blob, result.requests = result.requests, b""   # the requests go apart: no copy into the pickle
            head = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # noqa: BLE001 - reported by the parent, which stops the run
            head, blob = pickle.dumps(f"{type(exc).__name__}: {exc}"), b""
        try:
            conn.send_bytes(head)
            conn.send_bytes(blob)
        except OSError:   # the parent is gone or stopped reading (Ctrl-C, an error): nothing to say
            return


class TranslatorPool:
    """Forked translator processes, each fed over its own pipe; create it before any thread.

    Chunks go round-robin, IN_FLIGHT per worker, and come back in the same order, so a worker
    always has its next chunk at hand (with one in flight, workers waited for the main process
    half of the time when it was sending too). The main process reads results and only moves
    bytes; a feeder thread per worker writes that worker's chunks, so the main thread never
    blocks on a full pipe, and a worker writing a result while its next chunk is being written
    to it cannot deadlock. (A reading thread in the worker instead fought the translation for
    the GIL and slowed every hand-over; multiprocessing.Pool's two helper threads cost the main
    process more than the translation it saved.)

    `lanes`: the sender's lane count (0: a dry run or a file export, no routes needed)."""

    def __init__(self, translator: Translator, workers: int, *, window_filter: EventFilter | None = None,
                 lanes: int = 0):
        global _translator, _window_filter, _routes
        try:
            context = multiprocessing.get_context("fork")
        except ValueError:
            raise WorkerStartError("--workers needs the 'fork' start method, which this system does not "
                                   "have (it runs on Linux and macOS): use --workers 1") from None
        _translator, _window_filter, _routes = translator, window_filter, lanes > 0
        self.translator = translator
        self.workers = workers
        self.lanes = lanes
        self._conns: list[Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        for _ in range(workers):
            ours, theirs = context.Pipe(duplex=True)
            process = context.Process(target=_serve, args=(theirs, [*self._conns, ours]), daemon=True)
            process.start()
            theirs.close()
            self._conns.append(ours)
            self._procs.append(process)
        self._feeds: list[queue.SimpleQueue[bytes | None]] = [queue.SimpleQueue() for _ in self._conns]
        self._feeders = [threading.Thread(target=self._feed, args=(conn, feed), daemon=True,
                                          name=f"recombee-feed-{n}")
                         for n, (conn, feed) in enumerate(zip(self._conns, self._feeds))]
        for feeder in self._feeders:   # threads only now: the workers are forked
            feeder.start()

    @staticmethod
    def _feed(conn: Connection, feed: queue.SimpleQueue[bytes | None]) -> None:
        """Write a worker's chunks in turn; a worker that died shows when its result is read."""
        while True:
            blob = feed.get()
            if blob is None:
                return
            try:
                conn.send_bytes(blob)
            except (OSError, ValueError):   # died, or the pool closed its end
                return

    def translate(self, sources: Iterable[tuple[Source, int]], reading: Reading
                  ) -> Iterator[tuple[Source, Iterator[Translated]]]:
        """The Engine interface: each source read here, in chunks of bytes left uncut (a worker
        cuts them into lines), translated by the workers."""
        if reading.routes and not self.lanes:
            raise ValueError("this pool was made for a dry run (lanes=0): a sender needs routes")
        for source, start in sources:
            yield source, self.map_ordered(reading.read(source, start, split=False))

    def map_ordered(self, blocks: Iterable[Block]) -> Iterator[Translated]:
        """Translate chunks; yield (chunk, result) in order. The main process does no per-line
        work: a chunk goes out as the bytes read, its requests come back as one blob."""
        conns, feeds = self._conns, self._feeds
        in_flight: deque[tuple[Block, int]] = deque()   # (chunk, worker index), in input order
        chunks = iter(blocks)
        for _ in range(IN_FLIGHT):
            for index, feed in enumerate(feeds):
                block = next(chunks, None)
                if block is None:
                    break
                feed.put(block.raw())
                in_flight.append((block, index))
        while in_flight:
            block, index = in_flight.popleft()
            result = self._receive(conns[index])
            following = next(chunks, None)
            if following is not None:   # first keep the worker busy, then do our part
                feeds[index].put(following.raw())
                in_flight.append((following, index))
            yield block, result

    @staticmethod
    def _receive(conn: Connection) -> BlockResult:
        try:
            result = pickle.loads(conn.recv_bytes())
            requests = conn.recv_bytes()
        except (EOFError, OSError):
            raise WorkerError("a translator worker process died (out of memory?); "
                              "what was acknowledged is saved, run the same command to go on") from None
        if type(result) is str:
            raise WorkerError(f"a translator worker failed: {result}")
        if not isinstance(result, BlockResult):
            raise WorkerError(f"a translator worker answered {type(result).__name__}, not a BlockResult")
        result.requests = requests
        return result

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
