"""The deadline of a Batch call: every connect, TLS handshake, write and read of a call waits at
most what is left of the calling thread's deadline.

httpcore gives each socket operation its own timeout, so a server that trickles a byte now and then
would hold a call forever; the network backend below cuts every one to what is left of the deadline
set with `start_deadline` (a sync call runs entirely in the thread that makes it).
"""

from __future__ import annotations

import ssl
import threading
import time
from typing import Any

import httpcore
import httpx

__all__ = ["start_deadline", "clear_deadline", "with_deadlines"]

_call = threading.local()


def start_deadline(seconds: float) -> float:
    """Give the calls this thread makes from now on `seconds` in all; returns when that ends
    (time.monotonic())."""
    _call.deadline = end = time.monotonic() + seconds
    return end


def clear_deadline() -> None:
    """The call is over: this thread's socket operations have their own timeouts again."""
    _call.deadline = None


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    end: float | None = getattr(_call, "deadline", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise expired("the call's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend):
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(host, port, _bounded(timeout, httpcore.ConnectTimeout),
                                                       local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(
            path, _bounded(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def with_deadlines(client: httpx.Client) -> None:
    """Put the deadline backend under every connection pool of `client`: the default transport
    and the proxies httpx took from the environment. httpx has no public way to choose the network
    backend without giving up the environment's proxies, so this sets httpcore's attribute (there
    since httpcore 0.17); if a version renames it, this fails loudly rather than leave calls
    without a deadline."""
    for transport in [client._transport, *(t for t in client._mounts.values() if t is not None)]:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if pool is None or backend is None:
            raise RuntimeError("this httpx/httpcore version hides its network backend: Batch calls "
                               "cannot be given a deadline")
        if not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)
