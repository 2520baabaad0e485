"""Decode stage: a physical line -> the Segment events it holds, or the reason it holds none.

One JSON object per line. A line holding an HTTP-API envelope `{"batch": [...]}` yields one event
per element, with the envelope's `context` and `integrations` as defaults for each. A line from one
of our rejects files is unwrapped back into the event it rejected, so a rejects file can be replayed.
"""

from __future__ import annotations

from typing import Any

import orjson

REJECT_MARKER = "recombee_cli_reject"
_BOM = b"\xef\xbb\xbf"


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _json_error(data: bytes, exc: Exception) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    message = str(exc)
    if "unexpected end of data" in message or "EOF" in message:
        return f"truncated JSON ({message})"
    return f"not JSON ({message})"


def _expand_envelope(envelope: dict[str, Any]) -> list[Any]:
    batch = envelope["batch"]
    context = envelope.get("context")
    integrations = envelope.get("integrations")
    events: list[dict[str, Any] | str] = []
    for item in batch:
        if isinstance(item, dict):
            if isinstance(context, dict):
                item["context"] = {**context, **item["context"]} if isinstance(item.get("context"), dict) \
                    else item.get("context", context)
            if isinstance(integrations, dict):
                item["integrations"] = ({**integrations, **item["integrations"]}
                                        if isinstance(item.get("integrations"), dict)
                                        else item.get("integrations", integrations))
            events.append(item)
        else:
            events.append(f"batch element is {_kind(item)}, not a JSON object")
    return events


def decode(data: bytes) -> list[Any]:
    """Events in a line: each element is a dict (an event) or a str (why it is not one)."""
    try:   # the common case first: one plain event object
        value = orjson.loads(data)
        if type(value) is dict and "batch" not in value and REJECT_MARKER not in value:
            return [value]
    except orjson.JSONDecodeError:
        pass
    if data[:3] == _BOM:
        data = data[3:]
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return [_json_error(data, exc)]
    if not isinstance(value, dict):
        return [f"not a JSON object (got {_kind(value)})"]
    if REJECT_MARKER in value:
        if isinstance(value.get("event"), dict):
            return [value["event"]]
        if isinstance(value.get("raw"), str):
            return decode(value["raw"].encode("utf-8"))
    batch = value.get("batch")
    if isinstance(batch, list) and "type" not in value:
        if not batch:
            return ["empty batch envelope"]
        return _expand_envelope(value)
    return [value]
