"""The sink interface: where built requests go. The dry-run printers (sinks.printer), the file
export (sinks.files) and the Recombee sender (recombee.sender) implement `Sink`, so the pipeline
does not know which one it feeds. (And `Encoder`, at the end: how the file export writes rows.)

The pipeline hands a sink tickets in input order: an `EventTicket` (one event's requests) or a
`ChunkTicket` (the requests of a chunk of lines, as the translate stage gives them). The sink
answers a status code per request and hands finished tickets back from `poll()` / `close()`; only
then does the pipeline decide each event's outcome, write rejects, and advance checkpoints.
"""

from __future__ import annotations

from array import array
from typing import Any, Protocol

from recombee_cli.request_kinds import Route
from recombee_cli.sources.lines import cut_lines
from recombee_cli.sources.reader import Block, Line

MappingFailure = tuple[str, str]       # (mapping name, reason)


class Ticket:
    """What every ticket has: where it starts in its source (the checkpoint it advances), its
    requests (Batch request objects, or the same serialised as JSON bytes), the routes of
    serialised requests (for a sender's lanes; None: taken from the requests; a sender sets it to
    None once it has queued them, as a ticket may wait long for its last answer), and the answers,
    one code and message per request, which the sink fills in. Codes may come filled in for
    requests an earlier run had answered (a resumed file): a sender sends only those at 0."""

    __slots__ = ("source", "offset", "routes", "codes", "messages")

    def __init__(self, source: str, offset: int, routes: list[Route] | None):
        self.source = source
        self.offset = offset
        self.routes = routes
        self.codes: list[int] = []            # one per request once answered (0: not answered)
        self.messages: list[str | None] = []  # Recombee's message (or a sink's reason) per request

    @property
    def requests(self) -> list[Any]:
        raise NotImplementedError

    def request_count(self) -> int:
        raise NotImplementedError

    @property
    def first_line(self) -> int:
        """The line number (1-based, in its source) where the ticket starts."""
        raise NotImplementedError

    @property
    def index_in_line(self) -> int:
        """An event ticket's index in its batch-envelope line (0 for a chunk's)."""
        return 0

    def answer_all(self, code: int) -> None:
        """Every request answered `code` with no message (a printer's 200)."""
        n = self.request_count()
        self.codes = [code] * n
        self.messages = [None] * n


class EventTicket(Ticket):
    """One event's requests: the line it was read from, the event when it is at hand (else it is
    decoded again from the line if needed), its position in a batch envelope line, and the
    translation errors that make it invalid whatever the answers."""

    __slots__ = ("line", "event", "index", "errors", "_requests")

    def __init__(self, line: Line, event: dict[str, Any] | None, requests: list[Any],
                 errors: list[MappingFailure] | None = None, index: int = 0, routes: list[Route] | None = None,
                 *, codes: list[int] | None = None, messages: list[str | None] | None = None):
        super().__init__(line.source, line.offset, routes)
        self.line = line
        self.event = event
        self.index = index
        self.errors = errors
        self._requests = requests
        if codes is not None:    # already answered (an event cut out of an answered chunk)
            self.codes = codes
            self.messages = messages if messages is not None else [None] * len(codes)

    @property
    def requests(self) -> list[Any]:
        return self._requests

    def request_count(self) -> int:
        return len(self._requests)

    @property
    def first_line(self) -> int:
        return self.line.number

    @property
    def index_in_line(self) -> int:
        return self.index


class ChunkTicket(Ticket):
    """The requests of a chunk of lines, serialised and joined by newlines (`blob`) as the
    translate stage makes them, cut into a list only if a sink asks for `requests` (the printer
    writes the blob as it is; once cut, the blob is emptied). `spans` holds four numbers per
    event with requests: (line position in `block`, index in the line, first request, end);
    `event_errors` the translation errors of events by their span number."""

    __slots__ = ("block", "blob", "spans", "event_errors", "_requests")

    def __init__(self, block: Block, blob: bytes, spans: array[int],
                 event_errors: dict[int, list[MappingFailure]] | None = None, routes: list[Route] | None = None):
        super().__init__(block.source, block.offset, routes)
        self.block = block
        self.blob = blob
        self.spans = spans
        self.event_errors = event_errors or {}
        self._requests: list[bytes] | None = None

    @property
    def requests(self) -> list[Any]:
        if self._requests is None:
            self._requests = cut_lines(self.blob) if self.blob else []
            self.blob = b""   # once cut, the bytes are held once (a sender's chunks wait for answers)
        return self._requests

    def request_count(self) -> int:
        return self.spans[-1] if self.spans else 0   # the end of the last event's requests

    @property
    def first_line(self) -> int:
        return self.block.number

    def event_count(self) -> int:
        return len(self.spans) // 4


class Sink(Protocol):
    """Where requests go. `submit` takes tickets in input order; `poll` hands back those answered
    since the last call; `close` sends what is left, waits and returns the rest; after an error,
    `abort` stops at once and `drain` returns what was answered without raising."""

    @property
    def lane_count(self) -> int:
        """Lanes by user the sink sends in: >0 asks the translate stage for each request's
        routes (its users); 0 for sinks that keep no per-user order (printers, files)."""
        ...

    @property
    def batch_size(self) -> int | None:
        """Requests per call to Recombee (a chunk of about this many lines is what a crash may
        send again); None for sinks that make no calls."""
        ...

    @property
    def database_id(self) -> str | None:
        """The Recombee database written to (it names the default state file); None for sinks
        that write no database."""
        ...

    def submit(self, ticket: Ticket) -> None: ...
    def poll(self) -> list[Ticket]: ...
    def close(self) -> list[Ticket]: ...
    def drain(self) -> list[Ticket]: ...
    def abort(self) -> None: ...

    def define(self, requests: list[dict[str, Any]]) -> list[str] | None:
        """Property definitions to send (or print) before the next requests, for users' and
        items' values: the problems, one line each; None when the sink has no use for them (a
        file export), and then they are not counted either."""
        ...

    def counters(self) -> dict[str, int]:
        """The sink's figures for the run's report (the sender: Batch calls, retries, HTTP calls,
        bytes sent...); empty for sinks with nothing to add."""
        ...

    def keep_answers(self, journal: AnswerJournal) -> None:
        """A run with a state: record what the database accepted in `journal` before anything that
        depends on it is sent (the sender); sinks that write no database ignore it."""
        ...


class AnswerJournal(Protocol):
    """Where a sender records what Recombee accepted (record.state.Checkpoints makes one), per
    source: the places (sids, request_kinds.sid) of the accepted requests, and how many of them
    were merges or user deletions that Recombee applied."""

    def record(self, answered: dict[str, tuple[list[int], int]]) -> None: ...


class LocalSink:
    """What the sinks that make no calls share (the dry-run printers, `validate`'s, the file
    export): every ticket is answered when submitted and handed back by the next `poll`; they keep
    no per-user order, write no database, and have nothing in the background to stop."""

    lane_count = 0
    batch_size: int | None = None
    database_id: str | None = None

    def __init__(self) -> None:
        self._done: list[Ticket] = []

    def poll(self) -> list[Ticket]:
        done, self._done = self._done, []
        return done

    def close(self) -> list[Ticket]:
        return self.poll()

    def drain(self) -> list[Ticket]:
        return self.poll()

    def abort(self) -> None:
        """Nothing runs in the background: nothing to stop."""

    def define(self, requests: list[dict[str, Any]]) -> list[str] | None:
        """Property definitions: None, not counted (a printer that shows them says otherwise)."""
        return None

    def counters(self) -> dict[str, int]:
        return {}

    def keep_answers(self, journal: AnswerJournal) -> None:
        """No database, nothing to record."""


class Encoder(Protocol):
    """How a file export writes rows (`sinks.files.FileExporter`): CSV today (`sinks.encoders.csv`).
    An encoder is made for one format (`Encoder(fmt)`, a `sinks.rows.RowFormat`) and is given its
    rows, each a tuple of checked values in the format's column order (`str`, `float`, `bool`, a
    UTC `datetime`, None for empty); what it returns is written as it is."""

    suffix: str   # the parts' file suffix, without the dot ("csv"; ".gz" is added for --gzip)

    def header(self) -> bytes:
        """What starts every part (b"": nothing)."""
        ...

    def encode(self, row: tuple[Any, ...]) -> bytes:
        """One row. Raises `sinks.rows.Refused` for a row it cannot write (the event is invalid)."""
        ...

    def root_files(self, table: str) -> dict[str, bytes]:
        """Files a table's folder holds beside its parts (name -> content), written at commit."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the manifest says about how the files are written."""
        ...
