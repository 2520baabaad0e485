"""The Recombee HTTP client: signed Batch calls over one httpx connection pool.

The URL string is built by hand (httpx's `params=` encodes differently from the official SDK) and
signed afresh for every attempt, because a signature lives only about ten seconds.

Every call has a total deadline: `timeout + 0.01 * n` seconds for a Batch of n requests (10 s plus
10 ms per request by default: 20 s for 1000), from before connecting to the last byte of the
answer. httpx's timeouts are per socket operation, so a server that trickles a byte now and then
would hold a call forever; here every connect, TLS handshake, write and read of a call waits at
most what is left of its deadline (deadline.py). Past it, the call got no answer.

How a call can fail, as the sender sees it:
  * `TransportFailure` (a `Retryable`): no HTTP answer at all: refused, DNS, TLS, a timeout, the
    deadline, a connection broken mid-answer. Its reason is the true one, in one line
    ("cannot connect to https://host:1: connection refused", "TLS certificate verify failed for
    https://host: self-signed certificate", "cannot resolve host h: Name or service not known").
  * `Retryable` with a `status`: Recombee answered 429 or 5xx.
  * `CallFailed` (a `ServiceError`): a whole-Batch refusal that retrying cannot fix (400/404/413,
    `status` set), or a 200 whose body is not a Batch answer (`status` None): not JSON, not a
    list, not one result per request, a result that is not an object or whose `code` is not an
    integer HTTP status. Such an answer is never trusted in part.
  * `AuthenticationError`: 401/403.
"""

from __future__ import annotations

import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from recombee_cli.errors import AuthenticationError, ServiceError
from recombee_cli.outcomes import retryable
from recombee_cli.recombee.deadline import clear_deadline, start_deadline, with_deadlines
from recombee_cli.recombee.service import DEFAULT_REGION, REGION_HOSTS
from recombee_cli.recombee.signing import sign


def base_url_for(region: str | None, base_uri: str | None, *, allow_http: bool) -> str:
    """`https://rapi-<region>.recombee.com`, or a custom base URI (a bare host[:port] gets https)."""
    if base_uri:
        url = base_uri.strip().rstrip("/")
        scheme, sep, rest = url.partition("://")
        # A scheme is case-insensitive (RFC 3986): `HTTP://` is plain http too, so the scheme is
        # compared, and written, in lower case.
        url = f"{scheme.lower()}://{rest}" if sep else "https://" + url
        if urlsplit(url).scheme == "http" and not allow_http:
            raise ServiceError(f"{base_uri} is plain http: the token's signatures would travel "
                               f"unencrypted; pass --allow-http to do it anyway (local testing)")
        _check_url(base_uri, url)
        return url
    if region is None:
        region = DEFAULT_REGION
    if region not in REGION_HOSTS:
        raise ServiceError(f"unknown region {region!r} (regions: {', '.join(REGION_HOSTS)})")
    return "https://" + REGION_HOSTS[region]


def endpoint_of(base_url: str) -> str:
    """The address a state file records (`https://rapi-eu-west.recombee.com`): the base URL with its
    host in lower case and without the scheme's default port, so that one address is one text."""
    parts = urlsplit(base_url)
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme)
    netloc = (parts.hostname or "") + (f":{port}" if port and port != default else "")
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def _check_url(given: str, url: str) -> None:
    """A base URI that no call could use is a usage error now, not a crash at the first call
    (httpx parses `https://a..b` or port 99999 and only the socket refuses them)."""
    try:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("not an http(s)://host[:port] address")
        parsed.host.encode("idna")
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise ValueError(f"port {parsed.port} is out of range")
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise ServiceError(f"{given} is not a usable base URI: {exc}") from None


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
    """A whole call failed in a way worth retrying (connection, timeout, 429, 5xx). `status` is
    the HTTP status Recombee answered; None when nothing was answered (a TransportFailure).

    A signal from the client to the sender, not an error of the run: the sender catches it at
    both of its calls (it retries, then records a give-up or opens the circuit breaker, which
    raises UnreachableError), so it never reaches the CLI and has no exit code (errors.py holds
    the types that do)."""

    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None,
                 detail: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status
        self.detail = reason if detail is None else detail   # Recombee's own words, without the status


class TransportFailure(Retryable):
    """No HTTP answer: connection refused, DNS, TLS, a timeout, the deadline, a broken connection."""


class CallFailed(ServiceError):
    """A whole Batch call failed in a way retrying cannot fix: refused (`status` 400/404/413...),
    or answered with something that is not a Batch answer (`status` None)."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.status = status


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


# -- what is wrong with an answer --------------------------------------------------------------------

_KINDS = {str: "a string", float: "a float", bool: "a boolean", list: "a list", dict: "an object",
          type(None): "null", int: "a number"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


_CODE = itemgetter("code")


def odd_answer(results: Any, expected: int) -> str | None:
    """What is wrong with a decoded Batch answer, or None when it is a list of `expected` objects
    each with an integer HTTP status as `code`."""
    if type(results) is not list:
        return f"{_kind(results)}, not a list of results"
    if len(results) != expected:
        return f"{len(results)} results for {expected} requests"
    try:   # the common case at C speed: objects whose codes are integers (not bools) in range.
        # Of what JSON decodes to, only an object takes ["code"]: the rest raise here, and the
        # loop below says what is wrong
        codes = list(map(_CODE, results))
        if set(map(type, codes)) == {int} and 100 <= min(codes) and max(codes) <= 599:
            return None
    except (KeyError, TypeError, ValueError):
        pass
    for number, result in enumerate(results, 1):
        if type(result) is not dict:
            return f"result {number} of {expected} is {_kind(result)}, not an object"
        code = result.get("code")
        if type(code) is not int:
            if "code" not in result:
                return f"result {number} of {expected} has no code"
            return f"result {number} of {expected} has code {_short(code)} ({_kind(code)}), not a number"
        if not 100 <= code <= 599:
            return f"result {number} of {expected} has code {code}, not an HTTP status"
    return None


def _short(value: Any) -> str:
    text = orjson.dumps(value, default=repr).decode()
    return text if len(text) <= 40 else text[:37] + "..."


# -- why a call got no answer ------------------------------------------------------------------------

def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


def transport_reason(exc: BaseException, base_url: str) -> str:
    """The true reason a call got no answer, in one line, from the exception and its causes."""
    host = urlsplit(base_url).hostname or base_url
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verify failed for {base_url}: {cause.verify_message or cause.reason}"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve host {host}: {cause.strerror or _one_line(cause)}"
        if isinstance(cause, ConnectionRefusedError):
            return f"cannot connect to {base_url}: connection refused"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with {base_url} failed: {cause.reason or _one_line(cause)}"
    if isinstance(exc, httpx.ConnectTimeout):
        return f"cannot connect to {base_url}: timed out"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer from {base_url}: timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {base_url}: {_one_line(exc)}"
    return f"the connection to {base_url} broke: {_one_line(exc)}"


class RecombeeClient:
    """Sends Batch calls; one instance is shared by every sender thread, and each thread that sends
    Batches has a connection of its own (a pool shared by many threads costs every call a lock
    and a look at each idle connection; at 16 lanes both were among the client's top costs).

    `timeout`: seconds to connect, and the base of every call's deadline (plus 10 ms per request).
    `concurrency` is accepted for the callers that pass it: a lane's connection is its own."""

    def __init__(self, database_id: str, token: str, base_url: str, *, concurrency: int = 4,
                 timeout: float = 10.0, clock: Callable[[], float] = time.time):
        self.database_id = database_id
        self._token = token
        self.base_url = base_url
        self._clock = clock
        self._timeout = timeout
        # One TLS context for every connection: making one reads the CA bundle (40 ms). Calls go to
        # `base_url` only, so a plain-HTTP address (the local emulator, --allow-http) gets a context
        # that verifies as strictly and trusts no one, made without reading the bundle.
        https = base_url.lower().startswith("https:")
        self._tls = httpx.create_ssl_context() if https else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._http = self._new_http(2)             # the reads (`show`, `doctor`, property lists)
        self._lanes = threading.local()            # each sending thread's own httpx.Client
        self._lane_clients: list[httpx.Client] = []
        self._lane_lock = threading.Lock()
        self.bytes_sent = 0
        self.http_calls = 0

    def _new_http(self, connections: int) -> httpx.Client:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        http = httpx.Client(limits=limits, verify=self._tls, headers={
            "Content-Type": "application/json", "User-Agent": "recombee-cli"})
        with_deadlines(http)
        return http

    def _lane_http(self) -> httpx.Client:
        """The calling thread's own client (one connection: a lane has one call in flight)."""
        http: httpx.Client | None = getattr(self._lanes, "http", None)
        if http is None:
            http = self._lanes.http = self._new_http(1)
            with self._lane_lock:
                self._lane_clients.append(http)
        return http

    def __repr__(self) -> str:  # never show the token, not even in a traceback's locals
        return f"RecombeeClient(database_id={self.database_id!r}, base_url={self.base_url!r})"

    def signed_url(self, path_and_query: str) -> str:
        return self.base_url + sign(self.database_id, path_and_query, self._token, self._clock())

    def deadline_for(self, requests: int) -> float:
        """Seconds a Batch call of `requests` requests may take in all: Recombee needs time in
        proportion to the batch (the official SDK allows 3 s per request, 50 minutes for 1000)."""
        return self._timeout + 0.01 * requests

    def batch(self, requests: list[bytes]) -> list[dict[str, Any]]:
        """One Batch call, one attempt, for serialised request objects. Returns Recombee's
        `[{code, json}]` in request order, each `code` an integer HTTP status.

        Raises AuthenticationError (401/403), TransportFailure (no answer: network, TLS, timeout,
        the call's deadline), Retryable (429, 5xx), or CallFailed (a whole-batch refusal that
        retrying cannot fix, 400/404/413...; or an answer that is not a Batch answer)."""
        if not requests:
            return []  # Recombee (and the SDK) choke on an empty batch; there is nothing to do
        body = b'{"requests":[' + b",".join(requests) + b"]}"
        deadline = self.deadline_for(len(requests))
        timeout = httpx.Timeout(deadline, connect=min(self._timeout, deadline))
        end = start_deadline(deadline)
        try:
            response = self._lane_http().post(self.signed_url("/batch/"), content=body, timeout=timeout)
        except httpx.TransportError as exc:
            if time.monotonic() >= end:
                raise TransportFailure(f"no complete answer from {self.base_url} within the call's "
                                       f"deadline ({deadline:g} s)") from None
            raise TransportFailure(transport_reason(exc, self.base_url)) from None
        finally:
            clear_deadline()
            self.http_calls += 1
        # httpx's Response and its (read, closed) stream refer to each other: a reference cycle
        # that kept each Batch's body alive until the garbage collector ran, which a replay tunes
        # to run rarely (35 MB of peak RSS). Without the stream, all of it goes at once.
        response.stream = None  # type: ignore[assignment]  # httpx types it never None; unused from here
        self.bytes_sent += len(body)
        status = response.status_code
        if status == 200:
            try:
                results = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise CallFailed("Recombee answered the Batch call with a body that is not JSON") from None
            problem = odd_answer(results, len(requests))
            if problem is not None:
                raise CallFailed(f"Recombee's Batch answer is malformed: {problem}")
            answer: list[dict[str, Any]] = results   # checked just above
            return answer
        if status in (401, 403):
            raise AuthenticationError(
                f"Recombee refused the credentials ({status}: {_error_text(response)}); check the "
                f"private token (RECOMBEE_PRIVATE_TOKEN or --token-file), the database id "
                f"{self.database_id!r} and that this machine's clock is right")
        if retryable(status):
            text = _error_text(response)
            raise Retryable(f"Recombee answered {status}: {text}", _retry_after(response.headers.get("Retry-After")),
                            status, text)
        raise CallFailed(f"Recombee refused a whole Batch call ({status}: {_error_text(response)})", status)

    def list_properties(self, entity: str) -> dict[str, str]:
        """The database's user or item properties and their types: ListUserProperties
        (`GET /{db}/users/properties/list/`) or ListItemProperties (`.../items/properties/list/`),
        signed like every call, one attempt, within the call deadline. Returns {name: type}.

        Raises AuthenticationError (401/403), TransportFailure (no answer), Retryable (429, 5xx)
        or CallFailed (another refusal, or an answer that is not a list of {name, type})."""
        if entity not in ("users", "items"):
            raise ValueError(f"no such entity: {entity!r}")
        deadline = self._timeout
        end = start_deadline(deadline)
        try:
            response = self._http.get(self.signed_url(f"/{entity}/properties/list/"),
                                      timeout=httpx.Timeout(deadline))
        except httpx.TransportError as exc:
            if time.monotonic() >= end:
                raise TransportFailure(f"no complete answer from {self.base_url} within the call's "
                                       f"deadline ({deadline:g} s)") from None
            raise TransportFailure(transport_reason(exc, self.base_url)) from None
        finally:
            clear_deadline()
            self.http_calls += 1
        status = response.status_code
        if status in (401, 403):
            raise AuthenticationError(
                f"Recombee refused the credentials ({status}: {_error_text(response)}); check the "
                f"private token (RECOMBEE_PRIVATE_TOKEN or --token-file), the database id "
                f"{self.database_id!r} and that this machine's clock is right")
        if retryable(status):
            raise Retryable(f"Recombee answered {status}: {_error_text(response)}",
                            _retry_after(response.headers.get("Retry-After")), status)
        if status != 200:
            raise CallFailed(f"Recombee refused to list the {entity[:-1]} properties "
                             f"({status}: {_error_text(response)})", status)
        try:
            listed = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise CallFailed(f"Recombee's list of {entity[:-1]} properties is not JSON") from None
        if type(listed) is not list or not all(type(p) is dict and type(p.get("name")) is str
                                               and type(p.get("type")) is str for p in listed):
            raise CallFailed(f"Recombee's list of {entity[:-1]} properties is malformed: "
                             f"{_short(listed)} is not a list of {{name, type}}")
        return {p["name"]: p["type"] for p in listed}

    def close(self) -> None:
        self._http.close()
        with self._lane_lock:
            lanes, self._lane_clients = self._lane_clients, []
        for http in lanes:
            http.close()

    # -- reads for `show` and `doctor` (one attempt each, within the call deadline) ----------------

    def read(self, path_and_query: str, *, signed: bool = True) -> Answer:
        """One GET of `/{db}{path_and_query}` (signed like every call; `signed=False` asks the bare
        base URL, to see whether anything answers there). Any HTTP answer is returned, with its
        status, decoded body (None when not JSON), the server's `Date` and the seconds it took;
        no answer at all raises TransportFailure with the true reason."""
        url = self.signed_url(path_and_query) if signed else self.base_url + "/"
        deadline = self._timeout
        end = start_deadline(deadline)
        started = time.monotonic()
        sent_at = time.time()
        try:
            response = self._http.get(url, timeout=httpx.Timeout(deadline))
        except httpx.TransportError as exc:
            if time.monotonic() >= end:
                raise TransportFailure(f"no complete answer from {self.base_url} within "
                                       f"{deadline:g} s") from None
            raise TransportFailure(transport_reason(exc, self.base_url)) from None
        finally:
            clear_deadline()
            self.http_calls += 1
        seconds = time.monotonic() - started
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = None
        return Answer(response.status_code, body, _error_text(response), response.headers.get("Date"),
                      seconds, sent_at + seconds / 2)

    def read_json(self, path_and_query: str) -> Any:
        """A signed GET that must succeed: its decoded JSON. Raises AuthenticationError (401/403),
        TransportFailure (no answer), Retryable (429, 5xx) or CallFailed (another status, `status`
        set: 404 for a user or item Recombee does not have)."""
        answer = self.read(path_and_query)
        if answer.status in (401, 403):
            raise AuthenticationError(
                f"Recombee refused the credentials ({answer.status}: {answer.text}); check the "
                f"private token (RECOMBEE_PRIVATE_TOKEN or --token-file), the database id "
                f"{self.database_id!r} and that this machine's clock is right (`recombee-cli doctor`)")
        if retryable(answer.status):
            raise Retryable(f"Recombee answered {answer.status}: {answer.text}", None, answer.status)
        if answer.status != 200:
            raise CallFailed(f"Recombee answered {answer.status}: {answer.text}", answer.status)
        return answer.body


@dataclass
class Answer:
    """What a GET was answered: `status`, the decoded `body` (None unless JSON), Recombee's
    message (`text`), the server's `Date` header, the seconds the call took and the local time at
    its middle (what the server's Date is compared with)."""

    status: int
    body: Any
    text: str
    date: str | None
    seconds: float
    local_time: float
