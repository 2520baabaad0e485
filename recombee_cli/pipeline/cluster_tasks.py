"""What runs on the workers of a Dask cluster for `--dask` (pipeline/cluster.py is the driver's side).

A file is read by one *reader* task on a worker and translated by *segment* tasks on any worker,
each a few MB of input (SEGMENT_BYTES), whose results the driver takes in input order as they
come. So a worker holds a few segments, never a whole file, and every worker translates even when
one big file is all there is.

- **The reader** opens the file on its worker (a path every worker can read, or an object URL).
  A plain local NDJSON file (`reader.plain_ranges`: the reader reads only its head and where each
  block ends) is handed out as byte ranges, which each segment task reads from the path itself
  (`translate_ranges`). Anything else (compressed, remote, a JSON document) the reader reads and
  decompresses, cuts into the chunks one machine would make, and hands out as segments of chunks
  with their bytes (`translate_blocks`), which Dask carries to the worker that translates them.
- **Handing out, in order, a bounded window ahead.** The reader submits each segment as its own
  task and puts its future on the file's `results` queue (Dask's `Queue`, through the scheduler),
  its number in its key. It submits a segment only when the driver allows it: the file's
  `credits` queue carries (first segment to submit, segments allowed), so whatever waits for the
  driver is bounded whatever the file's size. It ends with a record of how many segments there
  were and the warnings of the read.
- **Workers that die.** A segment's result depends only on the file and the configuration, and
  its task holds what it reads (a path and ranges, or the chunks' bytes): Dask runs it again
  elsewhere. A reader whose worker died is run again from the file's start: it says so first
  (`hello`), the driver answers with where it has got to (the segments before are not submitted
  again) and drops any segment it is given twice.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from recombee_cli.errors import ClusterError
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config
from recombee_cli.mapping.filters import make_filter
from recombee_cli.mapping.translate import EventFilter, Translator, translate_block
from recombee_cli.pipeline.engines import Translated
from recombee_cli.pipeline.ranges import RangeAnswer, translate_range
from recombee_cli.sources.reader import Block, ReadProgress, Source, pieces, plain_ranges, read_blocks

# Input bytes a segment task translates. A plain file's segment is ranges its task reads itself:
# 16 MB (about 22,000 server events; each segment costs the driver a few ms of Dask's bookkeeping:
# 4 MB ones took a quarter more of its CPU). A segment the reader read carries its bytes in the
# task, through the scheduler (in the driver's process with local:N): a quarter of that.
SEGMENT_BYTES = 16 << 20
READ_SHARE = 4            # a read segment is SEGMENT_BYTES // READ_SHARE
# A file this small on disk (compressed: about ten times that decompressed) is one task, read and
# translated whole (translate_whole): a reader, its queues and their messages cost the driver
# about 18 ms of CPU a file, as much as translating 0.7 MB.
SMALL_FILE_BYTES = 1 << 20
CREDIT_WAIT = 5.0         # seconds a reader waits for credits before it checks it is still wanted
STOP = -1                 # credits that end a reader: the driver stopped


@dataclass(frozen=True)
class Job:
    """What a worker needs to translate like the driver: the configuration (compiled once per
    worker process, cached by its digest) and the --since/--until window."""

    config: Config
    since: float | None
    until: float | None
    digest: str


_compiled: dict[str, tuple[Translator, EventFilter | None]] = {}   # on a worker: job digest -> (translator, filter)


def translator_for(job: Job) -> tuple[Translator, EventFilter | None]:
    found = _compiled.get(job.digest)
    if found is None:
        found = (Translator(compile_config(job.config)), make_filter(since=job.since, until=job.until))
        _compiled.clear()   # one configuration at a time per worker
        _compiled[job.digest] = found
    return found


@dataclass(frozen=True)
class FileTask:
    """One file for a reader: where to start (a resumed file), how to cut and translate it, and
    the names of its two queues and of its segments' keys."""

    source: Source
    start: int
    job: Job
    chunk_lines: int
    max_line_bytes: int
    routes: bool
    segment_bytes: int
    results: str
    credits: str
    keys: str


@dataclass(slots=True)
class RangeSegment:
    """A segment of a plain file read by ranges: each range's answer and its requests' blob (the
    driver numbers the lines), and where the file is read up to."""

    path: str
    answers: list[tuple[RangeAnswer, bytes]]
    done: int


@dataclass(slots=True)
class BlockSegment:
    """A segment of chunks the reader read: each chunk as read (its bytes) with its result, and
    how far the file's raw (compressed) bytes are read."""

    parts: list[Translated]
    done: int


def segment_number(key: str) -> int:
    """The number of a segment from its task's key (`<keys>-<number>-<attempt>`)."""
    return int(key.rsplit("-", 2)[1])


def translate_ranges(job: Job, path: str, ranges: list[tuple[int, int]], resume: int, chunk_lines: int,
                     routes: bool) -> RangeSegment:
    """A segment task: byte ranges of a plain file read from its path and translated."""
    translator, window_filter = translator_for(job)
    answers = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for start, end in ranges:
            data = os.pread(fd, end - start, start)
            if len(data) != end - start:
                raise ClusterError(f"{path} is shorter than when the run began (changed while read?)")
            answer, blobs = translate_range(data, start, resume, chunk_lines, translator, window_filter, routes)
            answers.append((answer, blobs[0] if len(blobs) == 1 else b"".join(blobs)))
    finally:
        os.close(fd)
    return RangeSegment(path, answers, ranges[-1][1] + 1)


def translate_blocks(job: Job, blocks: list[Block], routes: bool, done: int) -> BlockSegment:
    """A segment task: chunks read by a reader translated. A chunk keeps its bytes (each line
    once: the joined bytes or the cut lines, never both)."""
    translator, window_filter = translator_for(job)
    parts = []
    for block in blocks:
        result = translate_block(block.lines, translator, window_filter=window_filter, routes=routes)
        block.release_lines()   # shipped once: the bytes as read are cut again on the driver
        parts.append((block, result))
    return BlockSegment(parts, done)


@dataclass(slots=True)
class WholeFile:
    """A small file translated in one task: its segments in order, and the reader's warnings."""

    segments: list[RangeSegment | BlockSegment]
    warnings: list[str]


def translate_whole(task: FileTask) -> WholeFile:
    """A task for a small file: every segment of it made and translated here, in order."""
    warnings: list[str] = []
    segments = [function(task.job, *args) for function, args in _segments(task, warnings)]
    return WholeFile(segments, warnings)


def read_file(task: FileTask) -> int:
    """A reader task (see the module's docstring): the file's segments submitted in order as the
    driver allows, their futures put on its queue. Returns how many segments there were."""
    import distributed

    queue: Any = distributed.Queue   # untyped: what its calls return is Any here
    # Seceded from the worker's threads while it reads: the worker translates meanwhile.
    with distributed.worker_client() as client:
        results, credits = queue(task.results, client=client), queue(task.credits, client=client)
        try:
            results.put({"hello": uuid.uuid4().hex})
            window = _Credits(credits)
            warnings: list[str] = []
            attempt = uuid.uuid4().hex[:8]
            count = 0
            for function, args in _segments(task, warnings):
                if not window.allows(count):
                    return count   # the driver stopped, or left: nobody waits for the rest
                if count >= window.first:
                    future = client.submit(function, task.job, *args, key=f"{task.keys}-{count}-{attempt}",
                                           pure=False)
                    results.put(future)
                    del future   # the queue holds it now, then the driver
                count += 1
            results.put({"end": count, "warnings": warnings})
            return count
        finally:
            results.close()
            credits.close()


def _segments(task: FileTask, warnings: list[str]) -> Iterator[tuple[Callable[..., Any], tuple[Any, ...]]]:
    """A file's segment tasks in order: (function, its arguments after the job)."""
    found = plain_ranges(task.source, task.max_line_bytes)
    if found is not None:
        path, ranges = found
        group: list[tuple[int, int]] = []
        size = 0
        for begin, end in ranges:
            group.append((begin, end))
            size += end - begin
            if size >= task.segment_bytes:
                yield translate_ranges, (path, group, task.start, task.chunk_lines, task.routes)
                group, size = [], 0
        if group:
            yield translate_ranges, (path, group, task.start, task.chunk_lines, task.routes)
        return
    progress = ReadProgress()
    blocks: list[Block] = []
    size = 0
    limit = max(1, task.segment_bytes // READ_SHARE)
    for block in read_blocks(task.source, max_line_bytes=task.max_line_bytes, start_offset=task.start,
                             progress=progress, split=False, warn=warnings.append):
        for chunk in pieces(block, task.chunk_lines):
            blocks.append(chunk)
            size += len(chunk.data) if chunk.data is not None else sum(map(len, chunk.lines))
            if size >= limit:
                yield translate_blocks, (blocks, task.routes, progress.done)
                blocks, size = [], 0
    if blocks:
        yield translate_blocks, (blocks, task.routes, progress.done)


class _Credits:
    """What the driver allows a reader: segments from `first` to `allowed` (not included)."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.first = 0
        self.allowed = 0

    def allows(self, number: int) -> bool:
        """Wait until the driver allows segment `number`; False once it stopped or left."""
        while number >= self.allowed:
            try:
                record = self.queue.get(timeout=CREDIT_WAIT)
            except TimeoutError:
                if _abandoned():
                    return False
                continue
            for first, allowed in (record, *self.queue.get(batch=True)):
                if allowed == STOP:
                    return False
                self.first, self.allowed = max(self.first, first), max(self.allowed, allowed)
        return True


def _abandoned() -> bool:
    """Whether this task is no longer wanted (the driver released it: it ended or died). Dask
    has no public way to ask; where its internals differ, assume it is still wanted."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        state = get_worker().state.tasks.get(thread_state.key)
        return state is None or state.state in ("cancelled", "released", "forgotten")
    except Exception:  # noqa: BLE001 - internals of another version: keep waiting
        return False
