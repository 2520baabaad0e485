"""What every file export shares: the writer of parts (temporary names, bounded size, optional
gzip, rename, manifest, `_SUCCESS` last) and the sink.

Which rows a request becomes is a format's (`sinks.rows.RowFormat`: its columns, their rules and
`convert`; `sinks.formats.FORMATS`); how rows are written is an encoder's (`sinks.protocol.Encoder`:
CSV in `sinks.encoders.csv`; `sinks.formats.ENCODERS`). `FileExporter` writes what the encoder
gives, whatever it is. `ExportSink` is the pipeline's third sink: it hands each request to the
format and each row to the encoder and the `FileExporter`, and answers each request as written
(200), refused by a column rule or the encoding (`REFUSED`, the event is invalid) or not
representable in the format (`NOT_REPRESENTABLE`, counted as filtered).

No click, no rich: the command line wires this; tests and other programs can use it directly.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable
from functools import partial
from typing import Any, BinaryIO

import orjson

from recombee_cli.errors import ExportError, ExportWriteError
from recombee_cli.outcomes import NOT_REPRESENTABLE, REFUSED
from recombee_cli.private import FOLDER_MODE, make_folders, open_private
from recombee_cli.sinks.protocol import ChunkTicket, Encoder, EventTicket, LocalSink, Ticket
from recombee_cli.sinks.rows import Column as Column  # (also named here: tests and scripts import them so)
from recombee_cli.sinks.rows import NotRepresentable, Refused, RowFormat
from recombee_cli.sinks.rows import format_datetime as format_datetime
from recombee_cli.sinks.rows import format_double as format_double
from recombee_cli.sources.decode import decode
from recombee_cli.sources.reader import Line

DEFAULT_PART_ROWS = 1_000_000   # about 60-120 MB of CSV per part: big enough, small enough to move
MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
_PART_NAME = re.compile(r"^part-\d+\.")          # a finished part of some export
_TEMP_NAME = re.compile(r"^\.part-\d+\..*\.tmp$")  # a part still being written (or left by a crash)
_FLUSH_ROWS = 2048


# ---------------------------------------------------------------------------------------------
# Writing parts

class _Part:
    __slots__ = ("table", "number", "temp", "final", "fh", "compressor", "rows", "pending")

    def __init__(self, table: str, number: int, temp: str, final: str, fh: BinaryIO, gzip: bool):
        self.table, self.number, self.temp, self.final, self.fh = table, number, temp, final, fh
        # wbits 31: a gzip stream, no file name and mtime 0 in its header (the same bytes every time)
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
        self.rows = 0
        self.pending: list[bytes] = []

    def flush(self) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending = []
            self.fh.write(self.compressor.compress(data) if self.compressor else data)

    def close(self) -> None:
        self.flush()
        if self.compressor is not None:
            self.fh.write(self.compressor.flush())
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


class FileExporter:
    """Writes rows into `directory/<table>/part-NNNNN.<suffix>[.gz]`, at most `part_rows` rows each,
    as `encoder` gives them (default: the format's own, `fmt.encoding`): its header starts every
    part, its `root_files` go beside each table's parts, its words go in the manifest.

    Every part is written as `.part-NNNNN.<ext>[.gz].tmp` and renamed only by `commit()`, once all
    of them are complete; then `_manifest.json` (row counts per file) and last an empty `_SUCCESS`.
    An export that stops before that leaves no file with a final name and no `_SUCCESS`; `abort()`
    (Ctrl-C, an error) removes its temporary files.

    The folder must be empty or new; with `overwrite`, what an earlier export wrote there (parts,
    temporary parts, manifest, `_SUCCESS`) is replaced at commit and nothing else is touched."""

    def __init__(self, directory: str, fmt: RowFormat, *, encoder: Encoder | None = None, gzip: bool = False,
                 part_rows: int = DEFAULT_PART_ROWS, overwrite: bool = False):
        if part_rows < 1:
            raise ExportError("the part size must be at least 1 row")
        self.directory = directory
        self.format = fmt
        self.encoder = encoder if encoder is not None else fmt.encoding(fmt)
        self.gzip = gzip
        self.part_rows = part_rows
        self.suffix = f".{self.encoder.suffix}" + (".gz" if gzip else "")
        self._header = self.encoder.header()
        self._open: dict[str, _Part] = {}
        self._closed: list[_Part] = []
        self._renamed: list[str] = []
        self._made: list[str] = []   # folders this export created (removed again by abort)
        self._root_files: list[str] = []   # the tables' own files written at commit (model.json)
        self.rows: dict[str, int] = {table: 0 for table in fmt.tables}
        self.files: list[dict[str, Any]] = []
        self.manifest: dict[str, Any] | None = None
        self.committing = self.committed = False
        self._prepare(overwrite)

    # -- the folder ---------------------------------------------------------------------------

    def _prepare(self, overwrite: bool) -> None:
        directory = self.directory
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise ExportError(f"--output {directory} is a file, not a folder")
        try:
            make_folders(directory)
            entries = os.listdir(directory)
        except OSError as exc:
            raise ExportError(f"cannot use the output folder {directory}: {exc.strerror or exc}") from None
        if entries and not overwrite:
            raise ExportError(f"the output folder {directory} is not empty ({len(entries)} entries, e.g. "
                              f"{sorted(entries)[0]!r}); choose an empty or new folder, or pass --overwrite "
                              "to replace an earlier export there")
        if overwrite:   # temporary parts of a crashed export would be written over anyway
            for path in self._earlier(temporary=True):
                self._remove(path)

    def _parts_folder(self, table: str) -> str:
        folder = os.path.join(self.directory, table)
        return os.path.join(folder, self.format.entity_folder) if self.format.entity_folder else folder

    def _earlier(self, *, temporary: bool) -> list[str]:
        """Files an earlier export left: its parts (or temporary parts), the tables' own files
        (model.json), the manifest and _SUCCESS."""
        found = []
        pattern = _TEMP_NAME if temporary else _PART_NAME
        for table in self.format.tables:
            # (parts straight in the table's folder: an export written before entity folders)
            for folder in dict.fromkeys((self._parts_folder(table), os.path.join(self.directory, table))):
                if os.path.isdir(folder):
                    found += [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if pattern.match(n)]
            for name in self.encoder.root_files(table):
                path = os.path.join(self.directory, table, f".{name}.tmp" if temporary else name)
                if os.path.isfile(path):
                    found.append(path)
        if not temporary:
            found += [os.path.join(self.directory, n) for n in (SUCCESS, MANIFEST)
                      if os.path.isfile(os.path.join(self.directory, n))]
        return found

    @staticmethod
    def _remove(path: str) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass

    # -- rows -----------------------------------------------------------------------------------

    def write(self, table: str, line: bytes) -> None:
        part = self._open.get(table)
        if part is None:
            part = self._open[table] = self._new_part(table)
        part.pending.append(line)
        part.rows += 1
        self.rows[table] += 1
        if part.rows >= self.part_rows:
            self._guarded(self._finish_part, part)
        elif len(part.pending) >= _FLUSH_ROWS:
            self._guarded(part.flush)

    def _new_part(self, table: str) -> _Part:
        folder = self._parts_folder(table)
        number = sum(1 for p in self._closed if p.table == table)
        name = f"part-{number:05d}{self.suffix}"
        temp, final = os.path.join(folder, f".{name}.tmp"), os.path.join(folder, name)
        try:
            for path in dict.fromkeys((os.path.join(self.directory, table), folder)):
                if not os.path.isdir(path):
                    os.mkdir(path, FOLDER_MODE)
                    self._made.append(path)
            fh = open_private(temp, "wb")
        except OSError as exc:
            raise ExportWriteError(f"cannot write {temp}: {exc.strerror or exc}") from None
        part = _Part(table, number, temp, final, fh, self.gzip)
        if self._header:
            part.pending.append(self._header)
        return part

    def _finish_part(self, part: _Part) -> None:
        del self._open[part.table]
        self._closed.append(part)
        part.close()

    def _guarded(self, action: Callable[..., None], *args: Any) -> None:
        try:
            action(*args)
        except OSError as exc:
            where = getattr(exc, "filename", None) or self.directory
            raise ExportWriteError(f"cannot write in {where}: {exc.strerror or exc}") from None

    # -- the end --------------------------------------------------------------------------------

    def commit(self) -> dict[str, Any]:
        """Close the parts, replace an earlier export's files, rename the parts, then write the
        manifest and `_SUCCESS` (in that order). Returns the manifest."""
        self._guarded(self._commit)
        assert self.manifest is not None   # written by _commit
        return self.manifest

    def _commit(self) -> None:
        for part in list(self._open.values()):
            self._finish_part(part)
        self.committing = True
        for path in [os.path.join(self.directory, SUCCESS)] + self._earlier(temporary=False):
            self._remove(path)   # _SUCCESS first: from here the folder reads as incomplete
        for part in sorted(self._closed, key=lambda p: p.final):
            os.replace(part.temp, part.final)
            self._renamed.append(part.final)
            self.files.append({"path": os.path.relpath(part.final, self.directory), "table": part.table,
                               "rows": part.rows, "bytes": os.path.getsize(part.final)})
        for table in sorted({p.table for p in self._closed}):   # a folder per table with rows
            for name, data in self.encoder.root_files(table).items():
                self._write_small(os.path.join(table, name), data)
                self._root_files.append(os.path.join(self.directory, table, name))
        self._sync(self.directory, *{os.path.dirname(p.final) for p in self._closed},
                   *{os.path.join(self.directory, p.table) for p in self._closed})
        self.manifest = {**self.format.describe(self.encoder.describe()),
                         "compression": "gzip" if self.gzip else None,
                         "part_rows": self.part_rows,
                         "rows": sum(self.rows.values()),
                         "tables": {t: {"rows": self.rows[t], "files": [f["path"] for f in self.files
                                                                         if f["table"] == t],
                                        "root_files": [os.path.relpath(p, self.directory) for p in self._root_files
                                                       if os.path.dirname(p) == os.path.join(self.directory, t)]}
                                    for t in self.format.tables},
                         "files": self.files}
        self._write_small(MANIFEST, orjson.dumps(self.manifest, option=orjson.OPT_INDENT_2) + b"\n")
        self._write_small(SUCCESS, b"")
        self._sync(self.directory)
        self.committed = True

    def _write_small(self, name: str, data: bytes) -> None:
        """A small file under its final name, written under a temporary one first; `name` may
        be in a table's folder (`purchases/model.json`)."""
        folder, base = os.path.split(name)
        temp = os.path.join(self.directory, folder, f".{base}.tmp")
        final = os.path.join(self.directory, name)
        with open_private(temp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, final)

    @staticmethod
    def _sync(*folders: str) -> None:
        for folder in folders:
            try:
                fd = os.open(folder, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)

    def abort(self) -> None:
        """After an error or Ctrl-C: remove every file this export wrote (it never got as far as
        `_SUCCESS`), and the folders it created if they are empty. Never raises."""
        if self.committed:
            return
        for part in list(self._open.values()) + self._closed:
            try:
                part.fh.close()
            except OSError:
                pass
            self._remove_quietly(part.temp)
        for path in self._renamed + self._root_files:
            self._remove_quietly(path)
        for table in self.format.tables:
            for name in self.encoder.root_files(table):
                self._remove_quietly(os.path.join(self.directory, table, f".{name}.tmp"))
        names = [f".{MANIFEST}.tmp", f".{SUCCESS}.tmp"] + ([MANIFEST] if self.committing else [])
        for name in names:   # once committing, an earlier export's manifest is already gone
            self._remove_quietly(os.path.join(self.directory, name))
        for folder in reversed(self._made):
            try:
                os.rmdir(folder)
            except OSError:
                pass
        self._open.clear()
        self._closed.clear()

    def _remove_quietly(self, path: str) -> None:
        try:
            self._remove(path)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# The sink

class _Event:
    """The Segment event behind a request, decoded again only if the format asks for it."""

    __slots__ = ("_line", "_index", "_event", "_done")

    def __init__(self, line: Callable[[], Line] | None, index: int, event: dict[str, Any] | None = None):
        self._line, self._index, self._event, self._done = line, index, event, event is not None

    def __call__(self) -> dict[str, Any] | None:
        if not self._done:
            self._done = True
            data = self._line().data if self._line is not None else b""
            items = decode(data) if data else []
            item = items[self._index] if self._index < len(items) else None
            self._event = item if isinstance(item, dict) else None
        return self._event


class ExportSink(LocalSink):
    """The third sink: each request becomes a row of `fmt`, encoded by the encoder of `files` and
    written through it. A request is answered 200 when its row is written, `REFUSED` (with the
    rule's reason) when a column rule or the encoding drops it, `NOT_REPRESENTABLE` when the
    format has no such row. Property definitions have no row in an export (not counted). Nothing
    runs in the background; `drain` removes the export's temporary files."""

    def __init__(self, fmt: RowFormat, files: FileExporter):
        super().__init__()
        self.format = fmt
        self.files = files
        self.encode = files.encoder.encode
        self.refused = 0
        self.not_representable = 0

    def submit(self, ticket: Ticket) -> None:
        requests = ticket.requests
        codes = [200] * len(requests)
        messages: list[str | None] = [None] * len(requests)
        if isinstance(ticket, ChunkTicket):   # (position in block, index in line, first, end) per event
            block, spans = ticket.block, ticket.spans
            for k in range(0, len(spans), 4):
                number, index, first, end = spans[k:k + 4]
                event = _Event(partial(block.line, number), index)
                for i in range(first, end):
                    self._one(requests[i], event, codes, messages, i)
        elif isinstance(ticket, EventTicket):
            line = ticket.line
            event = _Event(lambda: line, ticket.index, ticket.event)
            for i, request in enumerate(requests):
                self._one(request, event, codes, messages, i)
        ticket.codes, ticket.messages = codes, messages
        self._done.append(ticket)

    def _one(self, request: dict[str, Any] | bytes, event: _Event, codes: list[int], messages: list[str | None],
             i: int) -> None:
        try:
            table, row = self.format.values(orjson.loads(request) if isinstance(request, bytes) else request, event)
            line = self.encode(row)
        except Refused as exc:
            codes[i], messages[i] = REFUSED, f"{self.format.entity} drops the entry: {exc}"
            self.refused += 1
        except NotRepresentable as exc:
            codes[i], messages[i] = NOT_REPRESENTABLE, str(exc)
            self.not_representable += 1
        else:
            self.files.write(table, line)

    def close(self) -> list[Ticket]:
        self.files.commit()
        return self.poll()

    def drain(self) -> list[Ticket]:
        self.files.abort()
        return self.poll()
