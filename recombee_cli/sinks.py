"""Sinks: where built requests go. The dry-run printer and the Recombee sender are two
implementations of one interface, so the pipeline does not know which one it feeds.

The pipeline hands a sink one `Ticket` per event (its requests, in input order). The sink fills
in a status code per request and hands finished tickets back from `poll()` / `close()`; only then
does the pipeline decide the event's outcome, write rejects, and advance checkpoints.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

import orjson

from .errors import OutputError
from .jsvalues import orjson_default
from .reader import Line

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
