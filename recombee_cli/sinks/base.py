"""Sinks: where built requests go. The dry-run printer and the Recombee sender are two
implementations of one interface, so the pipeline does not know which one it feeds.

The pipeline hands a sink one `Ticket` per event (its requests, in input order). The sink fills
in a status code per request and hands finished tickets back from `poll()` / `close()`; only then
does the pipeline decide the event's outcome, write rejects, and advance checkpoints.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

import orjson

from recombee_cli.errors import OutputError
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.sources.reader import Line

# What a sink that writes files instead of calling Recombee may answer besides 200 ("written").
# Negative, so no HTTP status can be taken for them; `messages` holds the reason.
REFUSED = -1            # the request breaks the output format's rules: the event is `invalid`
NOT_REPRESENTABLE = -2  # the format has no way to express it: `filtered` unless something was written


class Ticket:
    """One event on its way through a sink, or a chunk of events (`events` set).

    `requests` are Batch request objects or the same already serialised as JSON bytes; a chunk
    from the translate stage carries them as one newline-joined `blob`, split only if a sink asks
    for the list (the printer writes the blob as it is)."""

    __slots__ = ("line", "event", "_requests", "blob", "codes", "messages", "errors", "index", "routes",
                 "events", "event_errors", "block")

    def __init__(self, line: Line, event: dict | None, requests: list | None,
                 errors: list[tuple[str, str]] | None = None, index: int = 0, routes: list | None = None,
                 blob: bytes | None = None):
        self.line = line
        self.event = event
        self._requests = requests
        self.blob = blob
        self.routes = routes   # per request (users, 404 means done), when requests are bytes
        self.events = None     # a chunk: flat (line number in block, index, first, end) per event
        self.event_errors: dict[int, list] | None = None   # ...event position -> its mapping errors
        self.block = None      # ...and the block those line numbers are in
        self.codes: list[int] = []           # one per request once answered
        self.messages: list[str | None] = []  # Recombee's message for a failed request
        self.errors = errors                  # translation errors (the event is invalid)
        self.index = index                    # position inside a batch envelope line

    @property
    def requests(self) -> list:
        if self._requests is None:
            self._requests = self.blob.split(b"\n") if self.blob else []
        return self._requests

    def request_count(self) -> int:
        if self._requests is None and self.blob is not None:
            return self.blob.count(b"\n") + 1   # JSON bodies never hold a raw newline
        return len(self.requests)


class Sink(Protocol):
    def submit(self, ticket: Ticket) -> None: ...
    def poll(self) -> list[Ticket]: ...     # tickets answered since the last call
    def close(self) -> list[Ticket]: ...    # send what is left, wait, return the rest
    def drain(self) -> list[Ticket]: ...    # after an error: answered tickets, never raises


class DryRunPrinter:
    """Prints each request as one JSON object per line, exactly as it would go into a Batch's
    `requests` array, and answers every request as accepted."""

    _FLUSH_EVERY = 512

    def __init__(self, out: BinaryIO):
        self._out = out
        self._pending: list[bytes] = []
        self._done: list[Ticket] = []
        self.requests_printed = 0

    def submit(self, ticket: Ticket) -> None:
        pending = self._pending
        n = ticket.request_count()
        if ticket.blob is not None and ticket._requests is None:   # a chunk, as the pipeline makes
            pending.append(ticket.blob)
            self._flush()   # a whole chunk at once: hold no more than that
        else:
            dumps = orjson.dumps
            for request in ticket.requests:
                pending.append(request if type(request) is bytes else dumps(request, default=orjson_default))
            if len(pending) >= self._FLUSH_EVERY:
                self._flush()
        self._done.append(self._answered(ticket, n))

    def define(self, requests: list[dict]) -> list[str]:
        """Property definitions the run would send before the next requests: printed first, in
        the order they would be sent (see pipeline.apply_property_gate)."""
        self._pending.extend(orjson.dumps(r, default=orjson_default) for r in requests)
        self.requests_printed += len(requests)
        return []

    def _answered(self, ticket: Ticket, n: int) -> Ticket:
        ticket.codes = [200] * n
        ticket.messages = [None] * n
        self.requests_printed += n
        return ticket

    def _flush(self) -> None:
        if self._pending:
            self._pending.append(b"")
            data = b"\n".join(self._pending)
            self._pending = []
            self._write(data)

    def _write(self, data: bytes) -> None:
        try:
            self._out.write(data)
        except BrokenPipeError:
            raise   # `| head`: the reader has all it wanted (the CLI ends quietly)
        except OSError as exc:
            raise OutputError(f"cannot write the requests to the output: {exc.strerror or exc}") from None

    def poll(self) -> list[Ticket]:
        done, self._done = self._done, []
        return done

    def close(self) -> list[Ticket]:
        self._flush()
        try:
            self._out.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write the requests to the output: {exc.strerror or exc}") from None
        return self.poll()

    def drain(self) -> list[Ticket]:
        try:
            self._flush()
        except OSError:
            pass
        return self.poll()


def output_names(names: list[str], suffix: str = ".ndjson") -> dict[str, str]:
    """Per input, the relative name of its output file: its path below the folder all inputs
    share (a URL's scheme and bucket count as folders), plus `suffix`; `part-0001.gz` ->
    `part-0001.gz.ndjson`. Stdin becomes `stdin.ndjson`."""
    import posixpath

    def as_path(name: str) -> str:
        if "://" in name:
            return "/" + name.split("://", 1)[1].strip("/")
        import os

        return os.path.abspath(name).replace(os.sep, "/") if name != "<stdin>" else "/stdin"

    paths = {name: as_path(name) for name in names}
    folders = [posixpath.dirname(p) for p in paths.values()]
    root = posixpath.commonpath(folders) if folders else "/"
    return {name: posixpath.relpath(path, root) + suffix for name, path in paths.items()}


class PerFileDryRun:
    """The dry-run printer writing one file per input (`--dry-run --output DIR`): the requests
    of each input, in order, in `DIR/<its name>.ndjson`, exactly what the printer would print.
    Tickets come in input order, so each output file is written once, start to end; an input
    that produced no request gets an empty file."""

    def __init__(self, folder: str, source_names: list[str]):
        import os

        self._folder = folder
        self._names = output_names(source_names)
        self._current: str | None = None
        self._file = None
        self._printer: DryRunPrinter | None = None
        self._done: list[Ticket] = []
        self._written: set[str] = set()
        self.requests_printed = 0
        os.makedirs(folder, exist_ok=True)

    def path_of(self, source: str) -> str:
        import os

        return os.path.join(self._folder, *self._names[source].split("/"))

    def _switch(self, source: str) -> None:
        import os

        self._end_file()
        path = self.path_of(source)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            self._file = open(path, "wb")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        self._printer = DryRunPrinter(self._file)
        self._current = source
        self._written.add(source)

    def _end_file(self) -> None:
        if self._printer is not None:
            try:
                self._done.extend(self._printer.close())
                self.requests_printed += self._printer.requests_printed
            finally:
                self._file.close()
                self._printer = self._file = None

    def submit(self, ticket: Ticket) -> None:
        if ticket.line.source != self._current:
            self._switch(ticket.line.source)
        self._printer.submit(ticket)

    def poll(self) -> list[Ticket]:
        if self._printer is not None:
            self._done.extend(self._printer.poll())
        done, self._done = self._done, []
        return done

    def close(self) -> list[Ticket]:
        self._end_file()
        for source in self._names:   # inputs without a request: an empty file says so
            if source not in self._written:
                self._switch(source)
        self._end_file()
        return self.poll()

    def drain(self) -> list[Ticket]:
        try:
            self._end_file()
        except OSError:
            pass
        return self.poll()


class NullSink:
    """Accepts everything and prints nothing: `validate` only wants the counts."""

    def drain(self):
        return self.poll()

    def __init__(self) -> None:
        self._done = []

    def submit(self, ticket) -> None:
        ticket.codes = [200] * len(ticket.requests)
        ticket.messages = [None] * len(ticket.requests)
        self._done.append(ticket)

    def poll(self):
        done, self._done = self._done, []
        return done

    close = poll
