"""The sinks of dry runs and `validate`: print the requests (to one stream, or one file per
input), or only count them. Every request is answered as accepted (200)."""

from __future__ import annotations

import os
import posixpath
from typing import Any, BinaryIO

import orjson

from recombee_cli.errors import InputError, OutputError
from recombee_cli.private import make_folders, open_private
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.sinks.protocol import ChunkTicket, LocalSink, Ticket


class DryRunPrinter(LocalSink):
    """Prints each request as one JSON object per line, exactly as it would go into a Batch's
    `requests` array, and answers every request as accepted."""

    _FLUSH_EVERY = 512

    def __init__(self, out: BinaryIO):
        super().__init__()
        self._out = out
        self._pending: list[bytes] = []
        self.requests_printed = 0

    def submit(self, ticket: Ticket) -> None:
        pending = self._pending
        n = ticket.request_count()
        if isinstance(ticket, ChunkTicket):   # as the pipeline makes them: the requests, joined
            pending.append(ticket.blob)
            # A whole chunk at once, handed on at once: hold no more than that, and a dry run of
            # a live pipe (`tail -f … | recombee-cli replay --dry-run -`) shows each chunk's
            # requests when its lines come, not when the output's buffer fills.
            self._flush(handed_on=True)
        else:
            dumps = orjson.dumps
            for request in ticket.requests:
                pending.append(request if type(request) is bytes else dumps(request, default=orjson_default))
            if len(pending) >= self._FLUSH_EVERY:
                self._flush()
        self._done.append(self._answered(ticket, n))

    def define(self, requests: list[dict[str, Any]]) -> list[str]:
        """Property definitions the run would send before the next requests: printed first, in
        the order they would be sent (see pipeline.values.apply_property_gate)."""
        self._pending.extend(orjson.dumps(r, default=orjson_default) for r in requests)
        self.requests_printed += len(requests)
        return []

    def _answered(self, ticket: Ticket, n: int) -> Ticket:
        ticket.codes = [200] * n
        ticket.messages = [None] * n
        self.requests_printed += n
        return ticket

    def _flush(self, handed_on: bool = False) -> None:
        pending = self._pending
        if pending:
            self._pending = []
            if len(pending) == 1:   # a chunk's requests, joined: written as they are, not copied for a newline
                self._write((pending[0], b"\n"), handed_on)
            else:
                pending.append(b"")
                self._write((b"\n".join(pending),), handed_on)

    def _write(self, parts: tuple[bytes, ...], handed_on: bool = False) -> None:
        try:
            self._out.writelines(parts)
            if handed_on:
                self._out.flush()
        except BrokenPipeError:
            raise   # `| head`: the reader has all it wanted (the CLI ends quietly)
        except OSError as exc:
            raise OutputError(f"cannot write the requests to the output: {exc.strerror or exc}") from None

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


_DOT_SEGMENTS = {".": "%2E", "..": "%2E%2E"}


def _object_path(url: str) -> str:
    """An object's URL as a path: its bucket and key, segment by segment. A key is any text:
    `a/../b` is an object of its own, not `b`, so its `.` and `..` segments are written `%2E`
    and `%2E%2E` (never a step out of the output folder), and empty segments (`a//b`) are left out."""
    segments = url.split("://", 1)[1].split("/")
    return "/" + "/".join(_DOT_SEGMENTS.get(segment, segment) for segment in segments if segment)


def output_names(names: list[str], suffix: str = ".ndjson") -> dict[str, str]:
    """Per input, the relative name of its output file: its path below the folder all inputs
    share (a URL's scheme and bucket count as folders), its compression and data suffixes
    replaced by `suffix`: `part-0001.gz` -> `part-0001.ndjson`. Stdin becomes `stdin.ndjson`. Every
    name stays inside the output folder, and two inputs never share one (InputError, before
    anything is written)."""

    def as_path(name: str) -> str:
        if "://" in name:
            return _object_path(name)
        return os.path.abspath(name).replace(os.sep, "/") if name != "<stdin>" else "/stdin"

    paths = {name: as_path(name) for name in names}
    folders = [posixpath.dirname(p) for p in paths.values()]
    root = posixpath.commonpath(folders) if folders else "/"
    relative = _without_input_suffixes({name: posixpath.relpath(path, root) for name, path in paths.items()},
                                       suffix)
    owners: dict[str, str] = {}
    for name, path in relative.items():
        if posixpath.isabs(path) or ".." in path.split("/") or "." in path.split("/"):
            raise InputError(f"{name}: its output file {path} would not be inside the --output folder")
        other = owners.setdefault(path, name)
        if other != name:
            raise InputError(f"{other} and {name} would write the same output file {path}: "
                             f"give them in separate runs")
    return relative


_COMPRESSED = (".gz", ".gzip", ".zst", ".zstd", ".bz2")
_DATA = (".ndjson", ".jsonl", ".json")


def _without_input_suffixes(relative: dict[str, str], suffix: str) -> dict[str, str]:
    """`part-0001.gz` -> `part-0001.ndjson`, `x.ndjson` -> `x.ndjson` (not `x.ndjson.ndjson`): an
    input's compression and data suffixes give way to `suffix`. Inputs that would then share a
    name (`a.ndjson` beside `a.ndjson.gz`) keep their whole names, plus `suffix`."""
    def stem(path: str) -> str:
        for ends in (_COMPRESSED, _DATA):
            for end in ends:
                if path.lower().endswith(end) and len(posixpath.basename(path)) > len(end):
                    path = path[:-len(end)]
                    break
        return path

    stems = {name: stem(path) for name, path in relative.items()}
    taken: dict[str, int] = {}
    for short in stems.values():
        taken[short] = taken.get(short, 0) + 1
    named = {name: (stems[name] if taken[stems[name]] == 1 else relative[name]) + suffix for name in relative}
    if len(set(named.values())) < len(named):   # names made to collide on purpose: the whole names
        return {name: path + suffix for name, path in relative.items()}
    return named


class PerFileDryRun(LocalSink):
    """The dry-run printer writing one file per input (`--dry-run --output DIR`): the requests
    of each input, in order, in `DIR/<its name>.ndjson`, exactly what the printer would print.
    Tickets come in input order, so each output file is written once, start to end; an input
    that produced no request gets an empty file. Property definitions are not printed (nor
    counted) in per-input files."""

    def __init__(self, folder: str, source_names: list[str]):
        super().__init__()
        self._folder = folder
        self._names = output_names(source_names)
        self._current: str | None = None
        self._file: BinaryIO | None = None
        self._printer: DryRunPrinter | None = None
        self._written: set[str] = set()
        self._definitions: list[dict[str, Any]] = []   # to print before the next ticket's requests
        self.requests_printed = 0
        try:
            make_folders(folder)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None

    def path_of(self, source: str) -> str:
        return os.path.join(self._folder, *self._names[source].split("/"))

    def _switch(self, source: str) -> DryRunPrinter:
        self._end_file()
        path = self.path_of(source)
        try:
            make_folders(os.path.dirname(path))
            self._file = open_private(path, "wb")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        self._printer = DryRunPrinter(self._file)
        self._current = source
        self._written.add(source)
        return self._printer

    def _end_file(self) -> None:
        if self._printer is not None:
            try:
                self._done.extend(self._printer.close())
                self.requests_printed += self._printer.requests_printed
            finally:
                if self._file is not None:
                    self._file.close()
                self._printer = self._file = None

    def submit(self, ticket: Ticket) -> None:
        printer = self._printer
        if ticket.source != self._current or printer is None:
            printer = self._switch(ticket.source)
        if self._definitions:
            printer.define(self._definitions)
            self._definitions = []
        printer.submit(ticket)

    def define(self, requests: list[dict[str, Any]]) -> list[str]:
        """Property definitions the run would send before the next requests: printed first in the
        file those requests go to, as `--dry-run` prints them on stdout."""
        self._definitions.extend(requests)
        return []

    def poll(self) -> list[Ticket]:
        if self._printer is not None:
            self._done.extend(self._printer.poll())
        return super().poll()

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


class NullSink(LocalSink):
    """Accepts everything and prints nothing: `validate` only wants the counts (and counts no
    property definitions)."""

    def submit(self, ticket: Ticket) -> None:
        ticket.answer_all(200)
        self._done.append(ticket)
