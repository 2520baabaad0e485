"""The rejects file: one NDJSON record per invalid or failed event, replayable with `replay`."""

from __future__ import annotations

from typing import BinaryIO

import orjson

from .decode import REJECT_MARKER
from .reader import Line


class RejectsWriter:
    def __init__(self, path: str):
        self.path = path
        self._fh: BinaryIO = open(path, "ab")
        self.count = 0

    def write(self, line: Line, event: dict | None, outcome: str, reason: str,
              mapping: str | None = None, status: int | None = None) -> None:
        record: dict = {REJECT_MARKER: 1, "outcome": outcome, "reason": reason,
                        "source": line.source, "line": line.number, "offset": line.offset}
        if mapping:
            record["mapping"] = mapping
        if status is not None:
            record["status"] = status
        if event is not None:
            record["event"] = event
        else:
            record["raw"] = line.data.decode("utf-8", "replace")
        self._fh.write(orjson.dumps(record) + b"\n")
        self.count += 1

    def close(self) -> None:
        self._fh.close()
