"""The emulator's request parameters: how each is read and checked, the errors it answers, and
the shape of a Batch body."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, Literal, overload

import orjson

from recombee_cli.recombee.service import MAX_BATCH

ID_RE = re.compile(r"[a-zA-Z0-9_\-:@.]+")          # used with fullmatch (no "\n" before $)
PROPERTY_RE = re.compile(r"[a-zA-Z0-9_\-:]+")
# Recombee documents an `image` value as the URL of an image (`imageList`: a list of them); the
# emulator accepts an http(s) URL with a host, nothing else.
IMAGE_URL_RE = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?", re.IGNORECASE)
ID_RULE = r"^[a-zA-Z0-9_\-:@.]+$"


class ApiError(Exception):
    """A request answered with an error status; becomes ``{"statusCode", "error"}``."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"statusCode": self.code, "error": self.message}


class QueryValue(str):
    """A parameter that came from a query string: always text, so numbers/booleans get parsed."""


# ----------------------------------------------------------------------------------------------
# Parameter validation
# ----------------------------------------------------------------------------------------------

def check_names(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise ApiError(400, f"Unknown parameter '{name}'")


def required_param(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None:
        raise ApiError(400, f"Missing required parameter '{name}'")
    return value


def valid_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ApiError(400, f"Invalid {what} {value!r}: must match {ID_RULE}")
    return str(value)


@overload
def id_param(params: dict[str, Any], name: str, required: Literal[True] = True) -> str: ...
@overload
def id_param(params: dict[str, Any], name: str, required: bool) -> str | None: ...
def id_param(params: dict[str, Any], name: str, required: bool = True) -> str | None:
    """An ID parameter, checked; None when it may be missing and is (required: never None)."""
    value = required_param(params, name) if required else params.get(name)
    return None if value is None else valid_id(value, name)


def number_param(params: dict[str, Any], name: str, *, lo: float | None = None, hi: float | None = None,
                 required: bool = False) -> float | int | None:
    value = required_param(params, name) if required else params.get(name)
    if value is None:
        return None
    if isinstance(value, QueryValue):
        try:
            value = float(value)
        except ValueError:
            raise ApiError(400, f"Parameter '{name}' must be a number, got {str(value)!r}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"Parameter '{name}' must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ApiError(400, f"Parameter '{name}' must be a real number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ApiError(400, f"Parameter '{name}' must be in [{lo}, {hi}], got {value}")
    return value


_QUERY_BOOLS = {"true": True, "True": True, "false": False, "False": False}


def boolean_param(params: dict[str, Any], name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, QueryValue):
        # The Python SDK prints Python booleans into the query (True/False), Node/Go send true/false.
        if value not in _QUERY_BOOLS:
            raise ApiError(400, f"Parameter '{name}' must be a boolean, got {str(value)!r}")
        return _QUERY_BOOLS[value]
    if not isinstance(value, bool):
        raise ApiError(400, f"Parameter '{name}' must be a boolean, got {value!r}")
    return value


def string_param(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"Parameter '{name}' must be a string")
    return None if value is None else str(value)


def json_object_param(params: dict[str, Any], name: str) -> str | None:
    """An object parameter, stored as canonical JSON text (sorted keys, for stable snapshots)."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, QueryValue) or not isinstance(value, dict):
        raise ApiError(400, f"Parameter '{name}' must be a JSON object")
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def parse_timestamp(value: Any) -> float:
    """Epoch seconds from a number, numeric text or ISO-8601 text (naive means UTC)."""
    if isinstance(value, bool):
        raise ApiError(400, f"Invalid timestamp {value!r}")
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        ts = _timestamp_from_text(value)
    else:
        raise ApiError(400, f"Invalid timestamp {value!r}")
    if not math.isfinite(ts) or ts < 0:
        raise ApiError(400, f"Invalid timestamp {value!r}: must be a real number >= 0 or ISO-8601")
    return ts


def _timestamp_from_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"Invalid timestamp {text!r}: not a number nor ISO-8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def timestamp_param(params: dict[str, Any], now: float) -> float:
    value = params.get("timestamp")
    return now if value is None else parse_timestamp(value)


def body_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Request body is not a valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return value


def parse_batch(content_type: str | None, body: bytes) -> list[Any]:
    """The ``requests`` list of a batch body; 400 for anything malformed, 413 when too long."""
    if not content_type or content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(400, "Invalid or missing Content-Type (must be application/json)")
    value = body_object(body)
    requests = value.get("requests")
    if not isinstance(requests, list):
        raise ApiError(400, "Request JSON must have a 'requests' array")
    if set(value) - {"requests", "distinctRecomms"}:
        raise ApiError(400, f"Unknown batch field(s): {sorted(set(value) - {'requests', 'distinctRecomms'})}")
    if not isinstance(value.get("distinctRecomms", False), bool):
        raise ApiError(400, "'distinctRecomms' must be a boolean")
    if len(requests) > MAX_BATCH:
        raise ApiError(413, f"Too large batch ({len(requests)} requests; at most {MAX_BATCH:,} in case of "
                            "a server side request)")
    for i, r in enumerate(requests):
        if not (isinstance(r, dict) and isinstance(r.get("method"), str) and isinstance(r.get("path"), str)
                and isinstance(r.get("params", {}), (dict, type(None)))):
            raise ApiError(400, f"Request #{i} must be an object with string 'method' and 'path' "
                                "and an optional 'params' object")
    return requests
