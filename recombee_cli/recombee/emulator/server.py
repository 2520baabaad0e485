"""The emulator itself: dispatch of one HTTP call (no sockets), statistics, and the HTTP server."""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from recombee_cli.recombee.emulator.faults import FaultDice, Faults, fault_body, odd_answer
from recombee_cli.recombee.emulator.operations import BATCH_PATH, Operation, plan, query_params, resolve, run
from recombee_cli.recombee.emulator.params import ApiError, body_object, parse_batch
from recombee_cli.recombee.emulator.store import Store
from recombee_cli.recombee.emulator.tls import self_signed_cert, server_context
from recombee_cli.recombee.signing import verify


@dataclass
class Stats:
    """Counters since start (or reset_stats). ``codes``: HTTP status of each call answered in full;
    ``sub_codes``: code of each batch sub-request; ``faults``: injected faults by kind."""

    http_calls: int = 0
    batch_calls: int = 0
    sub_requests: int = 0
    codes: Counter[int] = field(default_factory=Counter)
    sub_codes: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    most_in_flight: int = 0     # the most calls being answered at once


# ----------------------------------------------------------------------------------------------
# The emulator: dispatch (no sockets) + HTTP server
# ----------------------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int = 200
    body: bytes = b'"ok"'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0          # seconds to wait before answering (p_slow)
    drop: bool = False          # send half the head, then close (p_drop)
    drop_silently: bool = False  # close without a byte (p_drop_before)
    trickle: float = 0.0        # seconds between the bytes of the reply (p_trickle)


def _error_reply(code: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(code, orjson.dumps({"statusCode": code, "error": message}), headers or {})


_OK_ITEM = b'{"code":200,"json":"ok"}'


class Emulator:
    """A Recombee API emulator on a local port (see the package docstring for its behaviour).

    ``with Emulator("db", "token") as emu: emu.base_uri`` -> ``http://127.0.0.1:PORT``.
    ``latency`` is milliseconds slept per HTTP call. Runtime-changeable attributes: ``faults``,
    ``reject_all_auth``, ``clock_offset`` (seconds added to the server clock), ``latency``,
    ``hold_after``: Batch calls after this many (counted from when it is set) are held unanswered
    until the emulator stops, so a test can interrupt a run that has had answers and cannot finish.
    ``one_at_a_time``: calls are answered one after another, each after its ``latency``, as by a
    Recombee at its capacity: the more calls a client sends at once, the longer each waits.
    """

    def __init__(self, database_id: str, token: str, *, store_path: str | Path | None = None,
                 fast: bool = False, faults: Faults | None = None, clock_skew_limit: float = 10.0,
                 host: str = "127.0.0.1", port: int = 0, latency: float = 0.0, tls: bool = False,
                 one_at_a_time: bool = False):
        self.database_id = database_id
        self.token = token
        self.fast = fast
        self.clock_skew_limit = clock_skew_limit
        self.host, self._port = host, port
        self.latency = latency
        self.tls = tls
        self.reject_all_auth = False
        self.clock_offset = 0.0
        self.store_path = str(store_path) if store_path is not None else None
        self.store = Store(self.store_path)
        self.faults = faults or Faults()
        self._stats = Stats()
        self._stats_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._stopping = threading.Event()   # ends trickled replies at once
        self.cert_path: str | None = None
        self._hold_after: int | None = None
        self._batch_calls_seen = 0                  # Batch calls seen so far; those past _hold_after wait
        self._hold_lock = threading.Lock()
        self._one_at_a_time = threading.Lock() if one_at_a_time else None
        self._in_flight = 0

    # -- runtime knobs ---------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._dice.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._dice = FaultDice(value)  # reseeded: a new Faults means a fresh, reproducible sequence

    @property
    def hold_after(self) -> int | None:
        return self._hold_after

    @hold_after.setter
    def hold_after(self, calls: int | None) -> None:
        with self._hold_lock:
            self._hold_after, self._batch_calls_seen = calls, 0

    @property
    def held_calls(self) -> int:
        """Batch calls held so far (those past `hold_after`): none is answered until the emulator stops."""
        with self._hold_lock:
            return 0 if self._hold_after is None else max(0, self._batch_calls_seen - self._hold_after)

    def _held(self, path: str) -> bool:
        """Whether this call is to be held (a Batch call past `hold_after`)."""
        if self._hold_after is None or "/batch/" not in path:
            return False
        with self._hold_lock:
            self._batch_calls_seen += 1
            return self._hold_after is not None and self._batch_calls_seen > self._hold_after

    @property
    def stats(self) -> Stats:
        return self._stats

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats = Stats()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Sorted rows per table (users, items, user_values and the six interaction tables).
        Columns are listed by ``emu.store.columns()``; the insertion counter ``seq`` is left out."""
        return self.store.snapshot()

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return self._server.server_address[1]

    @property
    def host_port(self) -> str:
        """``127.0.0.1:PORT``: what the official SDK wants as ``options={"base_uri": ...}``."""
        return f"{self.host}:{self.port}"

    @property
    def base_uri(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host_port}"

    def describe(self) -> dict[str, Any]:
        """What the sandbox command prints."""
        return {"base_uri": self.base_uri, "database_id": self.database_id,
                "store": self.store_path or ":memory: (lost on exit)", "fast": self.fast,
                "tls_cert": self.cert_path}

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        server = _Server((self.host, self._port), _Handler)
        try:
            server.emulator = self
            if self.tls:
                cert, key = self_signed_cert(self.host)
                self.cert_path = cert
                server.socket = server_context(cert, key).wrap_socket(server.socket, server_side=True)
            self._stopped.clear()
            self._stopping.clear()
            self._thread = threading.Thread(target=server.serve_forever, name="recombee-emulator",
                                            kwargs={"poll_interval": 0.02}, daemon=True)
            self._thread.start()
        except BaseException:   # not serving: nothing for stop() to wait for, only to remove
            server.server_close()
            raise
        self._server = server   # (set once it serves: stop() waits for its loop to end)
        return self

    def stop(self) -> None:
        """Stop serving and close open client connections. The store stays readable (snapshot)."""
        server, self._server = self._server, None
        if server is None:
            self._remove_certificate()
            return
        self._stopping.set()
        server.shutdown()
        server.close_clients()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._remove_certificate()
        self._stopped.set()

    def _remove_certificate(self) -> None:
        """The throwaway certificate and its private key go with the server."""
        if self.cert_path:
            shutil.rmtree(Path(self.cert_path).parent, ignore_errors=True)

    def serve_forever(self, on_ready: Callable[[Emulator], None] | None = None) -> None:
        """Serve until Ctrl-C (or stop() from another thread); for ``recombee-cli sandbox``."""
        try:   # (a signal that lands while it starts, or while on_ready writes, still stops it)
            self.start()
            if on_ready:
                on_ready(self)
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch --------------------------------------------------------------------------------

    def _count(self, **kw: Any) -> None:
        with self._stats_lock:
            for name, value in kw.items():
                if name in ("codes", "sub_codes", "faults"):
                    getattr(self._stats, name).update(value)
                else:
                    setattr(self._stats, name, getattr(self._stats, name) + value)

    def handle(self, method: str, target: str, content_type: str | None, body: bytes) -> Reply:
        """Answer one HTTP call. ``target`` is the raw request target (path + query)."""
        self._count(http_calls=1)
        try:
            reply = self._authenticate(target)
            if reply is None:
                reply = self._handle_authenticated(method, target, content_type, body)
        except Exception as e:  # an emulator bug: say so instead of dropping the connection
            reply = _error_reply(500, f"Emulator error: {type(e).__name__}: {e}")
        if not (reply.drop or reply.drop_silently):
            self._count(codes=[reply.status])
        return reply

    def _authenticate(self, target: str) -> Reply | None:
        path = target.partition("?")[0]
        database = path.split("/", 2)[1] if path.startswith("/") else ""
        if not database:
            return _error_reply(404, f"Unknown URL: {path}")
        if database != self.database_id:
            return _error_reply(401, f"Unknown database '{database}'")
        # http.server decoded the request line as latin-1: encoding back gives the bytes received.
        ok, stamp = verify(target.encode("latin-1"), self.token)
        if self.reject_all_auth or not ok or stamp is None:
            return _error_reply(401, "Invalid HMAC signature")
        now = self.now()
        if abs(now - stamp) > self.clock_skew_limit:
            when = datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%d %H:%M:%S")
            return _error_reply(401, f"Token has expired (Current time: {int(now)} or {when} UTC, "
                                     f"you are {abs(int(now) - stamp)}s off)")
        return None

    def _handle_authenticated(self, method: str, target: str, content_type: str | None,
                              body: bytes) -> Reply:
        path, _, query = target.partition("?")
        path = path[len(self.database_id) + 1:]
        batch = BATCH_PATH.fullmatch(path) is not None
        if batch or not self.faults.batch_calls_only:
            fault = self._dice.before()
            if fault is not None:
                self._count(faults=[fault])
                return _fault_reply(fault, self.faults)
        if batch:
            reply = self._batch(method, content_type, body)
        else:
            reply = self._single(method, path, query, body)
            if self.faults.batch_calls_only:
                return reply
        if self._dice.hit(self.faults.p_slow):
            self._count(faults=["slow"])
            reply.delay = self.faults.slow_seconds
        if self._dice.hit(self.faults.p_drop):
            self._count(faults=["drop"])
            reply.drop = True
        if self._dice.hit(self.faults.p_trickle):
            self._count(faults=["trickle"])
            reply.trickle = self.faults.trickle_seconds
        return reply

    def _single(self, method: str, path: str, query: str, body: bytes) -> Reply:
        try:
            op = resolve(method, path)
            params = query_params(query)
            params.update(body_object(body))
        except ApiError as e:
            return _error_reply(e.code, e.message)
        if self.fast:
            return Reply(200, b'"ok"')
        with self.store.transaction():
            code, result = run(op, self.store, params, self.now())
        return Reply(code, orjson.dumps(result))

    def _batch(self, method: str, content_type: str | None, body: bytes) -> Reply:
        self._count(batch_calls=1)
        if method != "POST":
            return _error_reply(405, f"Method {method} not allowed on /batch/")
        try:
            requests = parse_batch(content_type, body)
            if self.fast:
                self._count(sub_requests=len(requests), sub_codes={200: len(requests)})
                return Reply(200, b"[" + b",".join([_OK_ITEM] * len(requests)) + b"]")
            planned = [plan(i, r) for i, r in enumerate(requests)]
        except ApiError as e:
            return _error_reply(e.code, e.message)
        results = self._execute(planned)
        self._count(sub_requests=len(results), sub_codes=[r["code"] for r in results])
        if self._dice.hit(self.faults.p_odd):
            self._count(faults=["odd"])
            return Reply(200, orjson.dumps(odd_answer(results, self.faults.odd)))
        return Reply(200, orjson.dumps(results))

    def _execute(self, planned: list[tuple[Operation, dict[str, Any]]]) -> list[dict[str, Any]]:
        results = []
        with self.store.transaction():
            now = self.now()
            for op, params in planned:
                code = self._dice.sub_code()
                if code is not None:
                    self._count(faults=["sub_400" if code == 400 else "sub_5xx"])
                    results.append({"code": code, "json": fault_body(code)})
                    continue
                code, result = run(op, self.store, params, now)
                results.append({"code": code, "json": result})
        return results


def _fault_reply(kind: str, faults: Faults) -> Reply:
    if kind == "drop_before":
        return Reply(drop_silently=True)
    code = int(kind)
    headers = {"Retry-After": f"{faults.retry_after:g}"} if code == 429 else {}
    return Reply(code, orjson.dumps(fault_body(code)), headers)


# ----------------------------------------------------------------------------------------------
# HTTP layer
# ----------------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    emulator: Emulator

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.clients: set[socket.socket] = set()
        self.clients_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request (a replay stopped by a signal, a dropped
        # connection) is what a server sees every day: not a traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_clients(self) -> None:
        # Keep-alive connections would otherwise keep their handler threads waiting forever.
        with self.clients_lock:
            for sock in list(self.clients):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RecombeeEmulator/1.0"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Head and body go out in one write, but set NODELAY anyway: a Nagle stall costs 40 ms.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        with self.server.clients_lock:
            self.server.clients.add(self.connection)

    def finish(self) -> None:
        with self.server.clients_lock:
            self.server.clients.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence access logs
        pass

    def do_POST(self) -> None:
        self._serve()

    do_PUT = do_DELETE = do_GET = do_PATCH = do_POST

    def _serve(self) -> None:
        emulator = self.server.emulator
        body = self._read_body()
        if emulator._held(self.path):
            emulator._stopping.wait()   # unanswered until the emulator stops (then the client is hung up on)
            return self._hang_up()
        with emulator._stats_lock:
            emulator._in_flight += 1
            emulator.stats.most_in_flight = max(emulator.stats.most_in_flight, emulator._in_flight)
        try:
            with emulator._one_at_a_time or contextlib.nullcontext():
                if emulator.latency:
                    time.sleep(emulator.latency / 1000.0)
                reply = emulator.handle(self.command, self.path, self.headers.get("Content-Type"), body)
                self._send(reply)
        finally:
            with emulator._stats_lock:
                emulator._in_flight -= 1

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, reply: Reply) -> None:
        if reply.drop_silently:
            return self._hang_up()
        if reply.delay:
            time.sleep(reply.delay)
        head = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}",
                # The server's clock (with `clock_offset`), as Recombee's Date says it: `doctor` compares.
                f"Date: {formatdate(self.server.emulator.now(), usegmt=True)}",
                "Content-Type: application/json", f"Content-Length: {len(reply.body)}",
                *(f"{k}: {v}" for k, v in reply.headers.items())]
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        try:
            if reply.drop:
                self.wfile.write(data[: len(data) // 2])
                return self._hang_up()
            if reply.trickle:
                return self._trickle(data + reply.body, reply.trickle)
            self.wfile.write(data + reply.body)
        except OSError:
            self.close_connection = True

    def _trickle(self, data: bytes, seconds: float) -> None:
        """One byte every `seconds` (the client hanging up, or the emulator stopping, ends it)."""
        stopped = self.server.emulator._stopping
        for n in range(len(data)):
            self.wfile.write(data[n:n + 1])
            if stopped.wait(seconds):
                return self._hang_up()

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
