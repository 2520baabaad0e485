"""Request signing exactly as the official Recombee SDKs do it (the Python SDK is the tests' oracle).

The string signed is the request target without scheme and host: ``/{databaseId}{path}{?query}``
followed by ``hmac_timestamp=<int unix seconds>``; the signature (HMAC-SHA1, lowercase hex) is
appended last as ``hmac_sign``. Our output is byte-identical to recombee-api-client 6.3.1 for the
vectors in ``tests/conformance/signing.json``.

Build the whole URL string with these helpers and hand it to httpx as a string: httpx's ``params=``
encodes differently (space as ``+``) and would no longer match the SDK.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote

__all__ = ["quote_query", "sign", "hmac_hex", "verify"]

_SIGN_SEP = "&hmac_sign="


def _format_value(value: Any) -> str:
    # The SDK's __format_query_parameter_value: str() then quote() with the default safe set "/",
    # so a Python bool prints as True/False (what MergeUsers really sends), lists comma-joined.
    if isinstance(value, (list, tuple)):
        return ",".join(quote(str(v)) for v in value)
    return quote(str(value))


def quote_query(params: Iterable[tuple[str, Any]] | dict[str, Any]) -> str:
    """``?k=v&k=v`` in the given order, names verbatim, values quoted as the SDK does; '' if empty."""
    items = params.items() if isinstance(params, dict) else params
    parts = [f"{name}={_format_value(value)}" for name, value in items]
    return "?" + "&".join(parts) if parts else ""


def hmac_hex(token: str, message: str | bytes) -> str:
    """Lowercase hex HMAC-SHA1 of ``message`` keyed with the token (both UTF-8)."""
    msg = message.encode("utf-8") if isinstance(message, str) else message
    return hmac.new(token.encode("utf-8"), msg, hashlib.sha1).hexdigest()


def sign(database_id: str, path_and_query: str, token: str, now: float) -> str:
    """The signed request target ``/{db}{path_and_query}{?|&}hmac_timestamp=T&hmac_sign=H``.

    ``now`` is Unix time in seconds; it is truncated like the SDK's ``int(time.time())``.
    Sign immediately before each send, and again for every retry: signatures live about 10 s.
    """
    unsigned = "/" + database_id + path_and_query
    unsigned += ("&" if "?" in unsigned else "?") + f"hmac_timestamp={int(now)}"
    return unsigned + _SIGN_SEP + hmac_hex(token, unsigned)


def verify(target: str | bytes, token: str) -> tuple[bool, int | None]:
    """Check a received request target as the server does; returns (signature ok, hmac_timestamp).

    The signature covers everything before the trailing ``&hmac_sign=<hex>`` byte for byte (clients
    such as the Go SDK order the query differently, so no canonical re-ordering is possible).
    ``hmac_timestamp`` may sit anywhere in the query; it is None when absent or not an integer.
    """
    raw = target.encode("utf-8") if isinstance(target, str) else target
    unsigned, sep, signature = raw.rpartition(_SIGN_SEP.encode())
    if not sep or b"?" not in unsigned or b"&" in signature:
        return False, _timestamp_of(raw)
    expected = hmac_hex(token, unsigned).encode()
    ok = hmac.compare_digest(expected, signature.lower())
    return ok, _timestamp_of(unsigned)


def _timestamp_of(raw: bytes) -> int | None:
    query = raw.partition(b"?")[2].decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "hmac_timestamp":
            try:
                return int(value)
            except ValueError:
                return None
    return None
