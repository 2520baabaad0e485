"""Where the translate stage runs: the `Engine` interface, and the in-process engine.

An engine takes the sources to read (each with where to start) and gives back, source by source
and in input order, each chunk of lines with its `BlockResult` (mapping.translate.translate_block).
Three engines: `InlineTranslator` (this process, one core), `parallel.TranslatorPool` (worker
processes on this machine) and `cluster.DaskEngine` (files read and translated on a Dask
cluster). Whatever the engine, the results, their order and every count are the same: the
accounting, the checkpoints and the sink stay in the process that runs `replay.run`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from recombee_cli.mapping.translate import BlockResult, EventFilter, Seen, Translator, translate_block
from recombee_cli.sources.reader import Block, ReadProgress, Source

Translated = tuple[Block, BlockResult]


class ReadChunks(Protocol):
    def __call__(self, source: Source, start: int, *, split: bool) -> Iterator[Block]: ...


@dataclass(frozen=True, slots=True)
class Reading:
    """What `replay.run` tells an engine about reading: the chunk size, the longest line, whether
    the sink needs each request's routes, where warnings go, and two functions of its own, which
    count what could not be read. `read(source, start, split=...)` reads a source here, from
    `start`, in chunks (`split`: cut into lines here; else a worker does); `read_elsewhere(source,
    chunk)` is for a chunk an engine read on another machine. `progress`: the raw bytes read so
    far, which an engine that reads a source by itself (not through `read`) moves on."""

    chunk_lines: int
    max_line_bytes: int
    routes: bool
    warn: Callable[[str], None] | None
    read: ReadChunks
    read_elsewhere: Callable[[Source, Block], None]
    progress: ReadProgress | None = None


class Engine(Protocol):
    """Translates sources' chunks: for each (source, where to start), in input order, the source
    and an iterator of its (chunk, result) in order. The caller reads each source's results to
    the end before it asks for the next source."""

    def translate(self, sources: Iterable[tuple[Source, int]], reading: Reading
                  ) -> Iterator[tuple[Source, Iterator[Translated]]]: ...


class InlineTranslator:
    """Chunks read and translated in this process (one core). `dedupe` needs every event in input
    order, so only this engine takes it."""

    def __init__(self, translator: Translator, *, window_filter: EventFilter | None = None,
                 dedupe: Seen | None = None):
        self.translator = translator
        self.window_filter = window_filter
        self.dedupe = dedupe

    def translate(self, sources: Iterable[tuple[Source, int]], reading: Reading
                  ) -> Iterator[tuple[Source, Iterator[Translated]]]:
        for source, start in sources:
            yield source, self._chunks(reading.read(source, start, split=True), reading.routes)

    def _chunks(self, blocks: Iterable[Block], routes: bool) -> Iterator[Translated]:
        """orjson (3.12 and later) returns each request in a buffer of at least 4 KB, never
        trimmed; a sender keeps thousands of them waiting in lanes (~170 MB of 250 MB peak RSS).
        Joined in the result, then cut by the sink where it needs them one by one, each is its
        own size."""
        translator, window_filter, dedupe = self.translator, self.window_filter, self.dedupe
        for block in blocks:
            result = translate_block(block.lines, translator, window_filter=window_filter, dedupe=dedupe,
                                     routes=routes)
            block.release_lines()   # it waits for its answers holding its bytes once, not twice
            yield block, result

    def close(self) -> None:
        pass
