"""The Recombee HTTP client: signed Batch calls over one httpx connection pool, with retries.

The URL string is built by hand (httpx's `params=` encodes differently from the official SDK) and
signed afresh for every attempt, because a signature lives only about ten seconds.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

import httpx
import orjson

from .errors import AuthenticationError, ServiceError
from .signing import REGION_HOSTS, sign

MAX_BATCH = 10_000


def base_url_for(region: str | None, base_uri: str | None, *, allow_http: bool) -> str:
    """`https://rapi-<region>.recombee.com`, or a custom base URI (a bare host[:port] gets https)."""
    if base_uri:
        url = base_uri.rstrip("/")
        if "://" not in url:
            url = "https://" + url
        if url.startswith("http://") and not allow_http:
            raise ServiceError(f"{base_uri} is plain http: the token's signatures would travel "
                               f"unencrypted; pass --allow-http to do it anyway (local testing)")
        return url
    if region is None:
        region = "eu-west"
    if region not in REGION_HOSTS:
        raise ServiceError(f"unknown region {region!r} (regions: {', '.join(REGION_HOSTS)})")
    return "https://" + REGION_HOSTS[region]


@dataclass
class RetryPolicy:
    max_attempts: int = 8          # per batch, first try included
    base_delay: float = 0.5        # seconds; doubles each attempt, full jitter
    max_delay: float = 30.0
    max_total: float = 600.0       # seconds spent retrying one batch before giving up
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return rng.uniform(0, min(self.max_delay, self.base_delay * (2 ** (attempt - 1))))


class Retryable(Exception):
    """A whole call failed in a way worth retrying (connection, timeout, 429, 5xx)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])
    except ValueError:
        pass
    return response.text[:200] or response.reason_phrase


class RecombeeClient:
    """Sends Batch calls; one instance is shared by every sender thread (httpx pools connections)."""

    def __init__(self, database_id: str, token: str, base_url: str, *, concurrency: int = 4,
                 timeout: float = 10.0, clock: Callable[[], float] = time.time):
        self.database_id = database_id
        self._token = token
        self.base_url = base_url
        self._clock = clock
        self._timeout = timeout
        limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
        self._http = httpx.Client(limits=limits, headers={
            "Content-Type": "application/json", "User-Agent": "recombee-cli"})
        self.bytes_sent = 0
        self.http_calls = 0

    def __repr__(self) -> str:  # never show the token, not even in a traceback's locals
        return f"RecombeeClient(database_id={self.database_id!r}, base_url={self.base_url!r})"

    def signed_url(self, path_and_query: str) -> str:
        return self.base_url + sign(self.database_id, path_and_query, self._token, self._clock())

    def batch(self, requests: list[bytes]) -> list[dict]:
        """One Batch call, one attempt, for serialised request objects. Returns Recombee's
        `[{code, json}]` in request order.

        Raises AuthenticationError (401/403), Retryable (network, timeout, 429, 5xx), or
        ServiceError for a whole-batch refusal that retrying cannot fix (400/404/413...)."""
        if not requests:
            return []  # Recombee (and the SDK) choke on an empty batch; there is nothing to do
        body = b'{"requests":[' + b",".join(requests) + b"]}"
        # Recombee needs time in proportion to the batch: 10 s plus 10 ms per request.
        timeout = httpx.Timeout(self._timeout + 0.01 * len(requests), connect=self._timeout)
        try:
            response = self._http.post(self.signed_url("/batch/"), content=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise Retryable(f"timed out ({exc.__class__.__name__})") from None
        except httpx.TransportError as exc:
            raise Retryable(f"connection failed ({exc.__class__.__name__}: {exc})") from None
        finally:
            self.http_calls += 1
        # httpx's Response and its (read, closed) stream refer to each other: a reference cycle
        # that kept each Batch's body alive until the garbage collector ran, which a replay tunes
        # to run rarely (35 MB of peak RSS). Without the stream, all of it goes at once.
        response.stream = None
        self.bytes_sent += len(body)
        status = response.status_code
        if status == 200:
            try:
                results = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise Retryable("Recombee answered 200 with a body that is not JSON") from None
            if not isinstance(results, list) or len(results) != len(requests):
                raise Retryable("Recombee's Batch answer does not have one result per request")
            return results
        if status in (401, 403):
            raise AuthenticationError(
                f"Recombee refused the credentials ({status}: {_error_text(response)}); check the "
                f"private token (RECOMBEE_PRIVATE_TOKEN or --token-file), the database id "
                f"{self.database_id!r} and that this machine's clock is right")
        if status == 429 or status >= 500:
            raise Retryable(f"Recombee answered {status}: {_error_text(response)}",
                            _retry_after(response.headers.get("Retry-After")))
        raise ServiceError(f"Recombee refused a whole Batch call ({status}: {_error_text(response)})")

    def close(self) -> None:
        self._http.close()
