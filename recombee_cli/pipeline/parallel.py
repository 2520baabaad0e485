"""The worker-pool engine (`--workers N`): forked processes read, decode and translate chunks
while the main process keeps the order and does the accounting and the sending exactly as in one
process.

Workers are forked after the translator is compiled, so they inherit it (closures cannot be
pickled). A plain local file is read by the workers themselves: the main process only finds where
its blocks start and end (reader.plain_ranges, a few KB read per MB) and hands out those byte
ranges; a worker reads its range, cuts it into lines and chunks, and sends back each chunk's
`BlockResult`. The main process never touches the input's bytes (on two cores it shares them with
the workers, and moving every byte through it cost a third of a core). Compressed files, streams,
stdin and remote objects are read by the main process as before, and a chunk goes out as the bytes
read. Either way a result comes back with the requests already serialised in one blob sent apart
from the rest, and the main process does per chunk what it would do per event. Two tasks are in
flight per worker (one translated, one waiting), so memory stays flat and a worker never waits
for the main process, at the end of a file neither: the tasks of every file are one stream.
`--dedupe` needs every event in input order, so it runs in one process (engines.InlineEngine).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
from typing import cast

from recombee_cli.errors import WorkerError, WorkerStartError
from recombee_cli.mapping.translate import BlockResult, EventFilter, Translator, translate_block
from recombee_cli.pipeline.engines import Reading, Translated
from recombee_cli.pipeline.ranges import RangeAnswer, RangeNumbering, translate_range
from recombee_cli.pipeline.replay import STREAMING_GC_THRESHOLD
from recombee_cli.sources.base import widen_pipe
from recombee_cli.sources.lines import cut_lines
from recombee_cli.sources.reader import Block, Source, plain_ranges

IN_FLIGHT = 2             # chunks handed to each worker before its first result is taken
RESULTS_PIPE = 1 << 20    # bytes of a worker's results pipe, where Linux allows it

_translator: Translator | None = None   # set in the parent before forking; inherited by the workers
_window_filter: EventFilter | None = None
_routes = False           # note each request's users (a sender's lanes)


DATA, RANGE = b"D", b"R"   # what a task is: a chunk's bytes, or a range of a file to read

# A range task: (path, start, end, resume offset, lines per chunk); its answer is ranges.RangeAnswer.
RangeTask = tuple[str, int, int, int, int]
_START, _END = b"<", b">"   # where a file's tasks start and end in the stream of every file's tasks


class _PoolFile:
    """A file whose tasks are handed out: the chunks read here waiting for their results, or the
    numbering of its lines (a plain file the workers read by ranges)."""

    __slots__ = ("source", "numbering", "pending")

    def __init__(self, source: Source, numbering: RangeNumbering | None) -> None:
        self.source = source
        self.numbering = numbering
        self.pending: deque[Block] = deque()


_Task = tuple[_PoolFile, bytes, bytes]   # a file, what the task is (DATA, RANGE or a marker), its bytes


def _serve(tasks: Connection, results: Connection, inherited: list[Connection]) -> None:
    """A worker: tasks in (a kind, then the task), (result, requests blob) out, until the tasks'
    pipe closes."""
    # Ctrl-C and SIGTERM reach the whole process group: they are the parent's to handle (it saves
    # what was acknowledged and closes our pipe, which ends us); a worker killed first would look
    # like a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for other in inherited:   # the parent's ends (ours and earlier workers'): they would keep pipes open
        other.close()
    # Forked before the run tunes the collector (replay.collector_for_streaming), a worker did it
    # with the default thresholds: hundreds of collections, each walking (and so copying, page by
    # page, from the parent) every object it inherited. What it inherited is frozen out instead.
    gc.freeze()
    gc.set_threshold(STREAMING_GC_THRESHOLD, *gc.get_threshold()[1:])
    files = _OpenFile()
    try:
        while True:
            try:
                kind = tasks.recv_bytes()
                blob = tasks.recv_bytes()
            except (EOFError, OSError):
                return
            try:
                if _translator is None:
                    raise WorkerError("the worker has no translator (not forked from a TranslatorPool)")
                if kind == RANGE:
                    path, start, end, resume, chunk_lines = cast(RangeTask, pickle.loads(blob))
                    answer, blobs = translate_range(files.read(path, start, end), start, resume, chunk_lines,
                                                    _translator, _window_filter, _routes)
                    head = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
                    blob = blobs[0] if len(blobs) == 1 else b"".join(blobs)
                else:
                    result = translate_block(cut_lines(blob), _translator, window_filter=_window_filter,
                                             routes=_routes)
                    blob, result.requests = result.requests, b""   # the requests go apart: no copy into the pickle
                    head = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # noqa: BLE001 - reported by the parent, which stops the run
                head, blob = pickle.dumps(f"{type(exc).__name__}: {exc}"), b""
            try:
                results.send_bytes(head)
                results.send_bytes(blob)
            except OSError:   # the parent is gone or stopped reading (Ctrl-C, an error): nothing to say
                return
    finally:
        files.close()


class _OpenFile:
    """The file a worker reads ranges of, kept open from one range to the next."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.fd = -1

    def read(self, path: str, start: int, end: int) -> bytes:
        if path != self.path:
            self.close()
            self.fd, self.path = os.open(path, os.O_RDONLY), path
        data = os.pread(self.fd, end - start, start)
        if len(data) != end - start:
            raise WorkerError(f"{path} is shorter than when the run began (changed while read?)")
        return data

    def close(self) -> None:
        if self.path is not None:
            os.close(self.fd)
            self.path, self.fd = None, -1


_LENGTH, _LONG_LENGTH = struct.Struct("!i"), struct.Struct("!Q")


def _read_message(fd: int) -> bytes:
    """One message as Connection.send_bytes frames it (its length in 4 bytes, big-endian; -1 then
    8 bytes from 2 GiB), read straight from the pipe: Connection.recv_bytes copies it through a
    BytesIO, here a copy of every chunk's requests in the process that does the accounting."""
    size = _LENGTH.unpack(_read_exact(fd, 4))[0]
    if size == -1:
        size = _LONG_LENGTH.unpack(_read_exact(fd, 8))[0]
    return _read_exact(fd, size)


def _read_exact(fd: int, size: int) -> bytes:
    data = os.read(fd, size)   # usually all of it: the worker wrote it whole into a wide pipe
    if len(data) == size:
        return data
    parts, got = [data], len(data)
    while got < size:
        if not data:
            raise EOFError
        data = os.read(fd, size - got)
        parts.append(data)
        got += len(data)
    return b"".join(parts)


class TranslatorPool:
    """Forked translator processes, each fed over a pipe of its own and answering over another
    (of RESULTS_PIPE bytes); create it before any thread.

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
        self._conns: list[Connection] = []     # the results of each worker, read here
        self._orders: list[Connection] = []    # the tasks of each worker, written by its feeder
        self._procs: list[multiprocessing.process.BaseProcess] = []
        for _ in range(workers):
            tasks_in, tasks_out = context.Pipe(duplex=False)
            results_in, results_out = context.Pipe(duplex=False)
            # A chunk's requests are about 250 KB (a socket pair holds about 200 KB, a pipe 64 KiB):
            # a worker waiting for the main process to take them in is a core idle (measured: 3-5 %
            # of each worker's time, the main process busy with the chunk before).
            widen_pipe(results_out.fileno(), RESULTS_PIPE)
            ours = [*self._conns, *self._orders, tasks_out, results_in]
            process = context.Process(target=_serve, args=(tasks_in, results_out, ours), daemon=True)
            process.start()
            tasks_in.close()
            results_out.close()
            self._conns.append(results_in)
            self._orders.append(tasks_out)
            self._procs.append(process)
        self._feeds: list[queue.SimpleQueue[tuple[bytes, bytes] | None]] = [queue.SimpleQueue() for _ in self._conns]
        self._feeders = [threading.Thread(target=self._feed, args=(conn, feed), daemon=True,
                                          name=f"recombee-feed-{n}")
                         for n, (conn, feed) in enumerate(zip(self._orders, self._feeds))]
        for feeder in self._feeders:   # threads only now: the workers are forked
            feeder.start()

    @staticmethod
    def _feed(conn: Connection, feed: queue.SimpleQueue[tuple[bytes, bytes] | None]) -> None:
        """Write a worker's tasks in turn; a worker that died shows when its result is read."""
        while True:
            task = feed.get()
            if task is None:
                return
            try:
                conn.send_bytes(task[0])
                conn.send_bytes(task[1])
            except (OSError, ValueError):   # died, or the pool closed its end
                return

    def translate(self, sources: Iterable[tuple[Source, int]], reading: Reading
                  ) -> Iterator[tuple[Source, Iterator[Translated]]]:
        """The Engine interface: a plain local file read by the workers, range by range; any other
        source read here, in chunks of bytes left uncut (a worker cuts them into lines).

        The tasks of every file are one stream, handed out IN_FLIGHT per worker ahead of the
        results taken: at the end of a file the workers already have the next file's first
        tasks, so many small files keep every worker busy. (The next file is opened, and for a
        file read here read, that far ahead.) Results still come back in input order, file by
        file, each file's marked by where it starts and ends."""
        if reading.routes and not self.lanes:
            raise ValueError("this pool was made for a dry run (lanes=0): a sender needs routes")
        stream = self._ordered(self._tasks(sources, reading))
        for file, marker in stream:
            if marker is not _START:   # the Engine's contract: a source's results are read to the end first
                raise ValueError("the next source was asked for before the results of the last were read")
            yield file.source, self._results(file, stream, reading)

    def _tasks(self, sources: Iterable[tuple[Source, int]], reading: Reading) -> Iterator[_Task]:
        """Every file's tasks in input order, each file's between its two markers."""
        for source, start in sources:
            found = plain_ranges(source, reading.max_line_bytes)
            if found is None:
                file = _PoolFile(source, None)
                yield file, _START, b""
                for block in reading.read(source, start, split=False):
                    file.pending.append(block)
                    yield file, DATA, block.raw()
            else:
                path, ranges = found
                file = _PoolFile(source, RangeNumbering(source.name, path))
                yield file, _START, b""
                for begin, end in ranges:
                    yield file, RANGE, pickle.dumps((path, begin, end, start, reading.chunk_lines))
            yield file, _END, b""

    def _results(self, file: _PoolFile, stream: Iterator[tuple[_PoolFile, object]],
                 reading: Reading) -> Iterator[Translated]:
        """One file's results from the stream, up to its end marker: the main process numbers a
        plain file's lines (ranges), or pairs each chunk it read with its result."""
        progress = reading.progress
        numbering = file.numbering
        for _, answer in stream:
            if answer is _END:
                return
            if numbering is None:
                yield file.pending.popleft(), cast(BlockResult, answer)
            else:
                ranged = cast(tuple[RangeAnswer, bytes], answer)
                yield from numbering.blocks(*ranged)
                if progress is not None and ranged[0][1]:
                    progress.reached(ranged[0][1][-1][3] - 1)

    def _ordered(self, tasks: Iterator[_Task]) -> Iterator[tuple[_PoolFile, object]]:
        """Tasks handed out round-robin, IN_FLIGHT per worker; their answers (a BlockResult, or a
        range's answer and blob) in the same order, and the files' markers where they were."""
        conns, feeds = self._conns, self._feeds
        in_flight: deque[tuple[_PoolFile, bytes, int]] = deque()   # each task's file, kind and worker

        def hand_out(index: int) -> bool:
            """The next task to worker `index` (the markers before it queued in their place)."""
            for file, kind, blob in tasks:
                if kind in (_START, _END):
                    in_flight.append((file, kind, -1))
                    continue
                feeds[index].put((kind, blob))
                in_flight.append((file, kind, index))
                return True
            return False

        for _ in range(IN_FLIGHT):
            for index in range(len(feeds)):
                if not hand_out(index):
                    break
        while in_flight:
            file, kind, index = in_flight.popleft()
            if index < 0:
                yield file, kind
                continue
            answer: object = self._receive_range(conns[index]) if kind == RANGE else \
                self._receive_data(conns[index])[0]
            hand_out(index)   # first keep the worker busy, then do our part
            yield file, answer

    @staticmethod
    def _answer(conn: Connection) -> tuple[object, bytes]:
        try:
            fd = conn.fileno()
            head = pickle.loads(_read_message(fd))
            blob = _read_message(fd)
        except (EOFError, OSError):
            raise WorkerError("a translator worker process died (out of memory?); "
                              "what was acknowledged is saved, run the same command to go on") from None
        if type(head) is str:
            raise WorkerError(f"a translator worker failed: {head}")
        return head, blob

    @classmethod
    def _receive_data(cls, conn: Connection) -> tuple[BlockResult, bytes]:
        result, requests = cls._answer(conn)
        if not isinstance(result, BlockResult):
            raise WorkerError(f"a translator worker answered {type(result).__name__}, not a BlockResult")
        result.requests = requests
        return result, b""

    @classmethod
    def _receive_range(cls, conn: Connection) -> tuple[RangeAnswer, bytes]:
        answer, blob = cls._answer(conn)
        if not isinstance(answer, tuple):
            raise WorkerError(f"a translator worker answered {type(answer).__name__}, not a range's results")
        return cast(RangeAnswer, answer), blob   # the shape ranges.translate_range made

    def close(self) -> None:
        for feed in self._feeds:
            feed.put(None)
        for feeder in self._feeders:   # idle ones end at once; one stuck writing ends with its worker
            feeder.join(timeout=0.2)
        for conn in (*self._orders, *self._conns):
            conn.close()
        for process in self._procs:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join()
