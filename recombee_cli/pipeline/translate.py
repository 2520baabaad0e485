"""Trigger, map and build stages: one Segment event -> the Recombee requests it produces.

Mappings are indexed on the `event`/`type` equality their trigger guarantees, so an event is only
tested against the mappings that can match it: 50 mappings cost about as much as one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recombee_cli.errors import MappingError, PayloadInvalid
from recombee_cli.pipeline.compile import CompiledMapping
from recombee_cli.segment.jsvalues import UNDEFINED
from recombee_cli.segment.triggers import key_only

_CACHE_LIMIT = 4096
VALUE_ACTIONS = ("setUserValues", "setItemValues")
NOTHING_TO_SEND = "nothing to send (e.g. an order with no products)"


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


_MISSING = object()

# A step of a plan: (mapping position, its trigger or None when the key already decided it, the
# mapping's compiled function).
Plan = tuple[tuple[int, Callable[[dict], bool] | None, Callable[[dict], list[dict]]], ...]


class Translator:
    def __init__(self, mappings: list[CompiledMapping]):
        self.mappings = mappings
        self.names = [m.name for m in mappings]
        # Mappings that set users' or items' values: their requests go through the main
        # process's PropertyGate (types, definitions); declared types: {"users": {name: type}, ...}
        self.sets_values = any(m.action.slug in VALUE_ACTIONS for m in mappings)
        self.property_types: dict[str, dict[str, str]] = {"users": {}, "items": {}}
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
        self._plans: dict[tuple, Plan] = {}
        self._key_only = [key_only(m.trigger.ast) for m in mappings]

    def _positions(self, name, kind) -> list[int]:
        positions = set(self._always)
        if type(name) is str:
            positions.update(self._by_event.get(name, ()))
        if type(kind) is str:
            positions.update(self._by_type.get(kind, ()))
        return sorted(positions)

    def plan(self, event: dict) -> Plan:
        """The mappings to run for an event, as a plan cached per (event, type). Triggers that
        read nothing but `event` and `type` are decided once per key, not per event."""
        name = event.get("event", _MISSING)
        kind = event.get("type", _MISSING)
        if not ((type(name) is str or name is _MISSING) and (type(kind) is str or kind is _MISSING)):
            # a null, number, list... as event or type: no cache, every candidate's trigger asked
            return tuple((p, self.mappings[p].trigger.matches, self.mappings[p].run)
                         for p in self._positions(name, kind))
        key = (name, kind)
        plan = self._plans.get(key)
        if plan is None:
            probe = {k: v for k, v in (("event", name), ("type", kind)) if v is not _MISSING}
            steps = []
            for position in self._positions(name, kind):
                mapping = self.mappings[position]
                if not self._key_only[position]:
                    steps.append((position, mapping.trigger.matches, mapping.run))
                elif mapping.trigger.matches(probe):
                    steps.append((position, None, mapping.run))
            plan = tuple(steps)
            if len(self._plans) < _CACHE_LIMIT:
                self._plans[key] = plan
        return plan

    def translate(self, event: dict) -> Translation:
        result = Translation()
        mappings = self.mappings
        for position, matches, run in self.plan(event):
            if matches is not None and not matches(event):
                continue
            name = mappings[position].name
            result.matched.append(name)
            try:
                requests = run(event)
            except (PayloadInvalid, MappingError) as exc:
                result.errors.append((name, str(exc)))
                continue
            if requests:
                result.built.append(name)
                result.requests.extend(requests)
            else:
                result.errors.append((name, NOTHING_TO_SEND))
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
