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


class RejectsWriter:
    def __init__(self, path: str):
        self.path = path
        self._known = self._keys_in(path)
        try:
            self._fh: BinaryIO = open_private(path, "ab")
        except OSError as exc:
            raise InputError(f"cannot write the rejects file {path}: {exc.strerror or exc}") from None
        self.count = 0
        self.repeated = 0   # events already in the file from an earlier run, not written again
        self._keys: dict[str, str] = {}   # source name -> the file's lasting key (state_key)

    def source_started(self, source: Source) -> None:
        """Events of this source are known across runs (a file or an object, not a pipe)."""
        if source.identity is not None:
            self._keys[source.name] = display_name(source.state_key)

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
            for raw in fh:
                try:
                    record = orjson.loads(raw)
                    key = record["key"], record["offset"], record.get("index", 0)
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue   # not a keyed record (a pipe's, written by hand or by an older version)
                known.add(hash(key))
        return known

    def write(self, line: Line, event: dict[str, Any] | None, outcome: str, reason: str,
              mapping: str | None = None, status: int | None = None, index: int = 0) -> None:
        record: dict[str, Any] = {REJECT_MARKER: 1, "outcome": outcome, "reason": reason,
                        "source": display_name(line.source), "line": line.number, "offset": line.offset}
        key = self._keys.get(line.source)
        if key is not None:
            digest = hash((key, line.offset, index))
            if digest in self._known:
                self.repeated += 1
                return
            self._known.add(digest)
            record["key"] = key
        if index:
            record["index"] = index
        if mapping:
            record["mapping"] = mapping
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

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError as exc:
            raise OutputError(f"cannot write the rejects file {self.path}: {exc.strerror or exc}") from None
