"""Users' and items' values in the main process: per chunk and in input order, each value is
checked against the run's property types (segment.properties.PropertyGate); what cannot be sent
is taken out of its request alone, said in the report and the rejects file, and the definitions
of properties seen for the first time go to the sink before the chunk."""

from __future__ import annotations

from array import array
from collections import Counter
from typing import Any

import orjson

from recombee_cli.mapping.translate import BlockResult
from recombee_cli.record.recorder import event_at
from recombee_cli.record.rejects import RejectsWriter
from recombee_cli.record.report import REASON_LIMIT, RunReport, bounded_add
from recombee_cli.segment.jsvalues import orjson_default
from recombee_cli.segment.properties import ENTITY_NOUN, PropertyGate
from recombee_cli.sinks.protocol import Sink
from recombee_cli.sources.reader import Block


def _short(value: Any) -> Any:
    """A dropped value as an example in the report: long strings and lists cut short."""
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    if isinstance(value, list) and len(value) > 5:
        return [_short(v) for v in value[:5]] + ["..."]
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value


def _owner(spans: array[int], request: int) -> tuple[int, int]:
    """(line position in the block, index in the line) of the event that owns a request."""
    for k in range(0, len(spans), 4):
        if spans[k + 2] <= request < spans[k + 3]:
            return spans[k], spans[k + 1]
    raise ValueError(f"no event owns request {request}")


def apply_property_gate(gate: PropertyGate, result: BlockResult, sink: Sink, report: RunReport,
                        block: Block | None = None, rejects: RejectsWriter | None = None) -> None:
    """The main process's part of users' and items' values, per chunk and in input order: each
    value request's types are checked against the run's property types (PropertyGate); a value
    that cannot be sent (the builder's checks, or one that does not fit its property's type) is
    taken out of its request alone, said once per property in the report (`dropped_values`:
    count, reason, an example) and written to the rejects file with its field; nulls of
    properties not known yet are left out; and the definitions of properties seen for the first
    time go to the sink *before* the chunk (the sender sends them and waits for their answers;
    the dry-run printer prints them first). Workers only describe the values; deciding here keeps
    the result independent of --workers. Changes `result` in place."""
    leave: dict[int, list[str]] = {}
    drops: list[tuple[int, str, str, str, str, Any, str]] = []   # request, mapping, entity, field, name, value, why
    definitions: list[dict[str, Any]] = []
    for index, mapping, entity, described, notes in result.values:
        renamed = prefix = None
        if notes:
            renamed = notes.get("renamed")
            prefix = notes.get("field")
            for field_path, name, reason, value in notes.get("dropped", ()):
                drops.append((index, mapping, entity, field_path, name, value, reason))
        dropped, names, new = gate.check(entity, described, renamed)
        if names:
            leave[index] = names
        for name, reason in dropped:
            where = (renamed or {}).get(name, name)
            drops.append((index, mapping, entity, f"{prefix or 'values'}.{where}", name, None, reason))
        definitions.extend(new)
    if definitions:
        extra = report.extra
        counted = extra.get("property_definitions")
        extra["property_definitions"] = (counted or 0) + len(definitions)   # (counted even if sending them fails)
        problems = sink.define(definitions)
        if problems is None:   # the sink has no use for them (a file export): not counted
            if counted is None:
                del extra["property_definitions"]
            else:
                extra["property_definitions"] = counted
        else:
            for problem in problems:
                bounded_add(extra.setdefault("property_definitions_failed", Counter()), problem)
    if not leave and not drops:
        return
    parts = result.requests.split(b"\n")
    taken: dict[int, dict[str, Any]] = {}
    for index, names in leave.items():
        request = orjson.loads(parts[index])
        taken[index] = {name: request["params"].pop(name, None) for name in names}
        parts[index] = orjson.dumps(request, default=orjson_default)
    result.requests = b"\n".join(parts)
    _record_drops(drops, taken, result, report, block, rejects)


def _record_drops(drops: list[tuple[int, str, str, str, str, Any, str]], taken: dict[int, dict[str, Any]],
                  result: BlockResult, report: RunReport, block: Block | None, rejects: RejectsWriter | None) -> None:
    """Each dropped value: counted per property in the report (the first reason and example kept)
    and written to the rejects file with its field (the event's other values were sent)."""
    if not drops:
        return
    extra = report.extra
    extra["values_dropped"] = extra.get("values_dropped", 0) + len(drops)
    table: dict[str, dict[str, Any]] = extra.setdefault("dropped_values", {})
    for index, mapping, entity, field_path, name, value, reason in drops:
        if value is None:
            value = taken.get(index, {}).get(name)
        number, position = _owner(result.spans, index)
        line = block.line(number) if block is not None else None
        key = f"{ENTITY_NOUN[entity]} property {name!r}"
        entry = table.get(key)
        if entry is None:
            if len(table) >= REASON_LIMIT:
                key = "(other properties)"
                entry = table.get(key)
            if entry is None:
                entry = table[key] = {"count": 0, "reason": reason, "example": {
                    "value": _short(value), "field": field_path, "mapping": mapping,
                    **({"source": line.source, "line": line.number} if line is not None else {})}}
        entry["count"] += 1
        if rejects is not None and line is not None:
            rejects.write(line, event_at(line, position), "invalid", f"value dropped: {reason}", mapping=mapping,
                          index=position, field=field_path)
