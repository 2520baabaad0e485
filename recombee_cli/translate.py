"""Trigger, map and build stages: one Segment event -> the Recombee requests it produces.

Mappings are indexed on the `event`/`type` equality their trigger guarantees, so an event is only
tested against the mappings that can match it: 50 mappings cost about as much as one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import CompiledMapping
from .errors import MappingError, PayloadInvalid
from .jsvalues import UNDEFINED

_CACHE_LIMIT = 4096


@dataclass(slots=True)
class Translation:
    matched: list[str] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)   # (mapping name, reason)
    built: list[str] = field(default_factory=list)                 # mappings that built requests


@dataclass
class FieldTrace:
    """How one mapping resolved an event, for `explain`."""

    mapping: str
    action: str
    resolved: dict[str, Any]
    payload: dict | None
    requests: list[dict]
    error: str | None


class Translator:
    def __init__(self, mappings: list[CompiledMapping]):
        self.mappings = mappings
        self._by_event: dict[str, list[int]] = {}
        self._by_type: dict[str, list[int]] = {}
        self._always: list[int] = []
        for position, mapping in enumerate(mappings):
            hint = mapping.trigger.index_hint
            if hint is None:
                self._always.append(position)
                continue
            table = self._by_event if hint[0] == "event" else self._by_type
            for value in hint[1]:
                table.setdefault(value, []).append(position)
        self._cache: dict[tuple, tuple[CompiledMapping, ...]] = {}

    def candidates(self, event: dict) -> tuple[CompiledMapping, ...]:
        name = event.get("event")
        kind = event.get("type")
        key = (name if type(name) is str else None, kind if type(kind) is str else None)
        found = self._cache.get(key)
        if found is None:
            positions = set(self._always)
            if key[0] is not None:
                positions.update(self._by_event.get(key[0], ()))
            if key[1] is not None:
                positions.update(self._by_type.get(key[1], ()))
            found = tuple(self.mappings[p] for p in sorted(positions))
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[key] = found
        return found

    def translate(self, event: dict) -> Translation:
        result = Translation()
        for mapping in self.candidates(event):
            if not mapping.trigger.matches(event):
                continue
            result.matched.append(mapping.name)
            try:
                requests = mapping.run(event)
            except (PayloadInvalid, MappingError) as exc:
                result.errors.append((mapping.name, str(exc)))
                continue
            if requests:
                result.built.append(mapping.name)
                result.requests.extend(requests)
            else:
                result.errors.append((mapping.name, "nothing to send (e.g. an order with no products)"))
        return result

    def explain(self, event: dict) -> list[FieldTrace]:
        """Every matching mapping with its resolved fields, prepared payload and requests."""
        traces = []
        for mapping in self.mappings:
            if not mapping.trigger.matches(event):
                continue
            resolved: dict[str, Any] = {}
            payload = None
            requests: list[dict] = []
            error = None
            try:
                for name, resolve in mapping.resolvers:   # for display: each field as resolved
                    value = resolve(event)
                    if value is not UNDEFINED:
                        resolved[name] = value
                payload = mapping.prepare(event)          # the very path a replay takes
                requests = mapping.action.build(payload, event)
            except (PayloadInvalid, MappingError) as exc:
                error = str(exc)
            traces.append(FieldTrace(mapping.name, mapping.action.slug, resolved, payload, requests, error))
        return traces
