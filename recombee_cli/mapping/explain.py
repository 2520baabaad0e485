"""`explain`: for each event of the inputs, which mappings matched, how each field resolved, the
requests built and the outcome a replay would give it. The mappings run on their reference path
(mapping-kit's resolvers and the action's builder), the one the generated fast path is checked
against."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from recombee_cli.mapping.translate import FieldTrace, Translator
from recombee_cli.outcomes import translated_outcome
from recombee_cli.sources.decode import REJECT_MARKER, decode
from recombee_cli.sources.reader import DEFAULT_MAX_LINE_BYTES, Source, read_lines


@dataclass
class Explanation:
    """One event (or one line that holds none), as `explain --json` prints it."""

    source: str
    line: int
    matched: list[str]
    requests: list[dict[str, Any]]
    outcome: str
    reason: str | None
    traces: list[FieldTrace] = field(default_factory=list)
    rejects: tuple[str, int] | None = None   # read from a rejects file: where in it (source, line: the original's)

    def record(self) -> dict[str, Any]:
        record = {"source": self.source, "line": self.line, "matched": self.matched, "requests": self.requests,
                  "outcome": self.outcome, "reason": self.reason}
        if self.rejects is not None:
            record["rejects_file"] = {"source": self.rejects[0], "line": self.rejects[1]}
        return record


def _original(data: bytes) -> tuple[str, int] | None:
    """The file and line a rejects record says its event came from, or None for any other line."""
    if REJECT_MARKER.encode() not in data:
        return None
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(record, dict) and REJECT_MARKER in record and isinstance(record.get("source"), str) \
            and type(record.get("line")) is int:
        return record["source"], record["line"]
    return None


def explain(sources: Iterable[Source], translator: Translator, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
            warn: Callable[[str], None] | None = None) -> Iterator[Explanation]:
    for source in sources:
        for line in read_lines(source, max_line_bytes=max_line_bytes, warn=warn):
            items: list[Any] = [line.error] if line.error else decode(line.data)
            # An event from a rejects file is cited where it came from, and where in the rejects it is.
            original = None if line.error else _original(line.data)
            where, number = original or (line.source, line.number)
            rejects = (line.source, line.number) if original else None
            for item in items:
                if isinstance(item, str):
                    yield Explanation(where, number, [], [], "invalid", item, rejects=rejects)
                    continue
                traces = translator.explain(item)
                errors = [(t.mapping, t.error) for t in traces if t.error]
                requests = [r for t in traces for r in t.requests]
                matched = [t.mapping for t in traces]
                outcome, reason = translated_outcome(item, matched, errors, len(requests))
                yield Explanation(where, number, matched, requests, outcome, reason, traces, rejects)
