"""The rejects file: one NDJSON record per invalid or failed event, replayable with `replay`.

It is appended to, run after run. An event is written once: a resumed run reads part of a file
again, and a file left pending by failures is sent again by the next run, so the writer first
reads the keys (file, byte offset, position in a batch envelope) of what the file already holds
and skips those events. Only sources the state can know again are keyed (`source_started`):
events of stdin and pipes are always written, since their offsets name other data every night.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

import orjson

from recombee_cli.errors import InputError, OutputError
from recombee_cli.private import open_private
from recombee_cli.sources.decode import REJECT_MARKER
from recombee_cli.sources.reader import Line, Source, display_name

_RECORD_START = b'{"' + REJECT_MARKER.encode() + b'":'


def _origin_of(line: Line) -> dict[str, Any] | None:
    """When a line is itself a rejects record (a rejects file replayed), where its event first came
    from: so that rejecting it again keeps its origin, and its key, instead of naming the rejects
    file (and writing the same event twice)."""
    if not line.data.startswith(_RECORD_START):
        return None
    try:
        record = orjson.loads(line.data)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("source"), str) else None


class RejectsWriter:
    """Appends rejects records to `path`; `also`, another writer, gets a copy of each (the state's
    kept rejects and a --rejects FILE asked for on the command line)."""

    def __init__(self, path: str, also: RejectsWriter | None = None):
        self.path = path
        self.also = also
        self._known = self._keys_in(path)
        try:
            self._fh: BinaryIO = open_private(path, "ab")
        except OSError as exc:
            if also is not None:
                also.close()
            raise InputError(f"cannot write the rejects file {path}: {exc.strerror or exc}") from None
        self.count = 0
        self.repeated = 0   # events already in the file from an earlier run, not written again
        self._keys: dict[str, str] = {}   # source name -> the file's lasting key (state_key)
        self._rewriting: str | None = None   # the file being written instead of `path` (rewrite())

    @property
    def paths(self) -> list[str]:
        return [self.path, *(self.also.paths if self.also is not None else [])]

    def rewrite(self) -> None:
        """Write a new file instead of appending, to replace `path` at `commit()`: a run that reads
        this very file again (re-sending kept rejects) leaves in it only the events rejected again,
        with their new reasons. Until `commit()`, the file stays as it was."""
        self._fh.close()
        self._rewriting = f"{self.path}.next"
        try:
            self._fh = open(self._rewriting, "wb")
        except OSError as exc:
            raise InputError(f"cannot write the rejects file {self._rewriting}: {exc.strerror or exc}") from None
        self._known = set()

    def source_started(self, source: Source) -> None:
        """Events of this source are known across runs (a file or an object, not a pipe)."""
        if source.identity is not None:
            self._keys[source.name] = display_name(source.state_key)
        if self.also is not None:
            self.also.source_started(source)

    @staticmethod
    def _keys_in(path: str) -> set[int]:
        known: set[int] = set()
        if not os.path.isfile(path):   # a new file, or a device or pipe (/dev/stderr): nothing to read
            return known
        try:
            fh = open(path, "rb")
        except OSError:
            return known   # one we cannot read: opening it to append will say why
        with fh:
            first = True
            for raw in fh:
                if first and raw.strip():   # refuse to append to a file that is not a rejects file
                    first = False
                    if not raw.startswith(_RECORD_START):
                        raise InputError(f"{path}: the file exists and is not a rejects file (its first line "
                                         f"is no rejects record); refusing to append to it (name a new file)")
                try:
                    record = orjson.loads(raw)
                    key = record["key"], record["offset"], record.get("index", 0), record.get("field")
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue   # not a keyed record (a pipe's, written by hand or by an older version)
                known.add(hash(key))
        return known

    def write(self, line: Line, event: dict[str, Any] | None, outcome: str, reason: str,
              mapping: str | None = None, status: int | None = None, index: int = 0,
              field: str | None = None) -> None:
        """One record. `field`: the record is about one value of the event that was left out (its
        mapping field, e.g. `values.id`); the event's other requests were sent."""
        if self.also is not None:
            self.also.write(line, event, outcome, reason, mapping, status, index, field)
        record: dict[str, Any] = {REJECT_MARKER: 1, "outcome": outcome, "reason": reason,
                        "source": display_name(line.source), "line": line.number, "offset": line.offset}
        key = self._keys.get(line.source)
        origin = _origin_of(line)
        if origin is not None:   # a record of a rejects file, rejected again: where it came from
            record.update(source=origin["source"], line=origin.get("line"), offset=origin.get("offset"))
            key, index = origin.get("key"), origin.get("index", 0)
            if event is None and isinstance(origin.get("raw"), str):
                line = Line(line.source, line.number, line.offset, origin["raw"].encode("utf-8"))
        if key is not None:
            digest = hash((key, line.offset, index, field))
            if digest in self._known:
                self.repeated += 1
                return
            self._known.add(digest)
            record["key"] = key
        if index:
            record["index"] = index
        if mapping:
            record["mapping"] = mapping
        if field:
            record["field"] = field
        if status is not None:
            record["status"] = status
        if event is not None:
            record["event"] = event
        else:
            record["raw"] = line.data.decode("utf-8", "replace")
        try:
            self._fh.write(orjson.dumps(record) + b"\n")
        except OSError as exc:
            raise OutputError(f"cannot write the rejects file {self.path}: {exc.strerror or exc}") from None
        self.count += 1

    def close(self, *, commit: bool = False) -> None:
        """Close the file (and the copy). After `rewrite()`, `commit` puts the new file in place of
        the old one; without it (the run failed) the new file is dropped and the old one stays."""
        try:
            if self.also is not None:
                self.also.close()
            self._fh.close()
            if self._rewriting is not None:
                if commit:
                    os.replace(self._rewriting, self.path)
                else:
                    os.unlink(self._rewriting)
                self._rewriting = None
        except OSError as exc:
            raise OutputError(f"cannot write the rejects file {self.path}: {exc.strerror or exc}") from None


def count_rejects(path: str) -> dict[str, int] | None:
    """How many records a rejects file holds, by outcome (None: there is no such file)."""
    counts: dict[str, int] = {}
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                try:
                    outcome = orjson.loads(raw).get("outcome", "?")
                except (orjson.JSONDecodeError, AttributeError):
                    outcome = "?"
                counts[outcome] = counts.get(outcome, 0) + 1
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    return counts
