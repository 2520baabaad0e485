"""Where the translate stage runs: the `Engine` interface, and the in-process engine.

An engine takes the sources to read (each with where to start) and gives back, source by source
and in input order, each chunk of lines with its `BlockResult` (mapping.translate.translate_block).
Three engines: `InlineEngine` (this process, one core), `parallel.TranslatorPool` (worker
processes on this machine) and `cluster.DaskEngine` (files read and translated on a Dask
cluster). Whatever the engine, the results, their order and every count are the same: the
accounting, the checkpoints and the sink stay in the process that runs `replay.run`, and nothing
an engine is handed calls back into it: what could not be read comes back in the chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from recombee_cli.mapping.translate import BlockResult, EventFilter, Seen, Translator, translate_block
from recombee_cli.sources.reader import DEFAULT_MAX_LINE_BYTES, Block, ReadProgress, Source, pieces, read_blocks

Translated = tuple[Block, BlockResult]
CHUNK_LINES = 2000    # lines translated, sent and acknowledged together (a sender's: about a Batch)


class Reading:
    """How sources are read for a run, handed to its engine: the chunk size (how many lines are
    translated, sent and acknowledged together: also how much a crash can make a run send again),
    the longest line, whether the sink needs each request's routes, where warnings about a source
    go, and the raw bytes read so far (`progress`, which an engine that reads a source by itself
    moves on). `read` reads a source here. What could not be read travels in the chunks
    (`Block.errors`), wherever they were read: the replay loop counts it as it accounts for them."""

    __slots__ = ("chunk_lines", "max_line_bytes", "routes", "warn", "progress")

    def __init__(self, *, chunk_lines: int = CHUNK_LINES, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 routes: bool = False, warn: Callable[[str], None] | None = None,
                 progress: ReadProgress | None = None) -> None:
        self.chunk_lines = chunk_lines
        self.max_line_bytes = max_line_bytes
        self.routes = routes
        self.warn = warn
        self.progress = progress

    def read(self, source: Source, start: int, *, split: bool) -> Iterator[Block]:
        """A source's chunks from byte `start` (a resumed file), cut into lines here (`split`) or
        left as bytes for a worker to cut."""
        for block in read_blocks(source, max_line_bytes=self.max_line_bytes, start_offset=start,
                                 progress=self.progress, split=split, warn=self.warn):
            yield from pieces(block, self.chunk_lines)


class Engine(Protocol):
    """Translates sources' chunks: for each (source, where to start), in input order, the source
    and an iterator of its (chunk, result) in order. The caller reads each source's results to
    the end before it asks for the next source."""

    def translate(self, sources: Iterable[tuple[Source, int]], reading: Reading
                  ) -> Iterator[tuple[Source, Iterator[Translated]]]: ...


class InlineEngine:
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
