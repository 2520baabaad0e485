"""Sending when Recombee cannot be reached, or answers too slowly: the circuit breaker, the true
reason, a deadline per Batch call. Everything on 127.0.0.1, real sockets; every wait is bounded
(the bounds are hang guards, generous, not speed tests)."""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import subprocess
import sys

import httpx
import orjson
import pytest
from helpers import ROOT, bounded, invoke

from recombee_cli.errors import UnreachableError
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config
from recombee_cli.mapping.translate import Translator
from recombee_cli.outcomes import NO_ANSWER, failure_reason
from recombee_cli.pipeline.replay import run
from recombee_cli.recombee.client import RecombeeClient, RetryPolicy, TransportFailure, transport_reason
from recombee_cli.recombee.emulator import Emulator, Faults
from recombee_cli.recombee.sender import Breaker, RecombeeSender
from recombee_cli.record.recorder import Recorder
from recombee_cli.record.report import RunReport
from recombee_cli.sinks.protocol import EventTicket as Ticket
from recombee_cli.sources.reader import Line, expand_inputs

sys.path.insert(0, str(ROOT))
from bench.generate import write as write_archive  # noqa: E402

DB = "e2e-db"
TOKEN = "e2e-secret-token-9c1d"
QUICK = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.05, max_total=60)


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("unreachable") / "events.ndjson.gz"
    with gzip.open(path, "wb") as fh:
        write_archive(3_000, fh, seed=31)
    return str(path)


def replay(base_uri: str, path: str, report: RunReport, *, breaker: Breaker, timeout: float = 5,
           batch_size: int = 100, retry: RetryPolicy = QUICK):
    client = RecombeeClient(DB, TOKEN, base_uri, concurrency=4, timeout=timeout)
    sender = RecombeeSender(client, batch_size=batch_size, concurrency=4, retry=retry, seed=3, breaker=breaker)
    try:
        return run(expand_inputs([path]), Translator(compile_config(Config())), sender,
                   recorder=Recorder(report, None))
    finally:
        sender.abort()


def _nothing_recorded(report: RunReport) -> None:
    assert report.events > 0
    assert dict(report.requests) == {"sent": 0, "duplicate": 0, "failed": 0}
    assert report.outcomes["sent"] == report.outcomes["duplicate"] == report.outcomes["failed"] == 0


# -- item 6: the circuit breaker and the true reason ---------------------------------------------

def test_a_refused_port_stops_the_run_with_the_true_reason_and_records_nothing(archive):
    base = f"https://127.0.0.1:{closed_port()}"
    report = RunReport()
    with pytest.raises(UnreachableError) as caught:
        bounded(lambda: replay(base, archive, report, breaker=Breaker(calls=6, seconds=0.5)), 60)
    message = str(caught.value)
    assert message.startswith(f"cannot connect to {base}: connection refused (no answer to ")
    assert "503" not in message and "\n" not in message
    _nothing_recorded(report)     # nothing was answered: nothing counted, nothing acknowledged


def test_a_certificate_that_fails_verification_stops_the_run_with_the_true_reason(archive):
    with Emulator(DB, TOKEN, tls=True) as emu:   # its self-signed certificate is not trusted here
        base = emu.base_uri
        report = RunReport()
        with pytest.raises(UnreachableError) as caught:
            bounded(lambda: replay(base, archive, report, breaker=Breaker(calls=6, seconds=0.5)), 60)
        assert emu.stats.http_calls == 0
    assert str(caught.value).startswith(
        f"TLS certificate verify failed for {base}: self-signed certificate (no answer to ")
    _nothing_recorded(report)


def test_the_command_line_aborts_on_a_refused_port_with_exit_3_and_the_true_reason(tmp_path):
    """The real defaults (8 attempts a Batch, the breaker's 6 calls and 10 s): the old code
    retried every Batch for minutes and then blamed an answer ("503") that never came."""
    base = f"https://127.0.0.1:{closed_port()}"
    env = {**os.environ, "RECOMBEE_PRIVATE_TOKEN": TOKEN, "XDG_STATE_HOME": str(tmp_path / "state")}
    result = subprocess.run(
        [sys.executable, "-m", "recombee_cli", "replay", "--base-uri", base, "--database-id", DB,
         "--no-state", "--quiet", str(ROOT / "sample_events")],
        env=env, capture_output=True, text=True, timeout=150, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("recombee-cli: error:")]
    assert len(lines) == 1, result.stderr
    assert "503" not in result.stderr and "Traceback" not in result.stderr
    assert re.fullmatch(rf"recombee-cli: error: cannot connect to {re.escape(base)}: connection refused "
                        r"\(no answer to \d+ Batch calls in a row over \d+ s; stopped\)", lines[0]), lines
    assert TOKEN not in result.stderr + result.stdout and result.stdout == ""


def _request(user: str, item: str) -> dict:
    return {"method": "POST", "path": "/detailviews/",
            "params": {"userId": user, "itemId": item, "timestamp": 1, "cascadeCreate": True}}


def _send(sender: RecombeeSender, *requests: dict) -> Ticket:
    ticket = Ticket(Line("t", 1, 0, b""), None, list(requests))
    sender.submit(ticket)
    return ticket


def _sender(emu: Emulator, *, breaker: Breaker = Breaker(), timeout: float = 5, attempts: int = 3):
    client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=1, timeout=timeout)
    return RecombeeSender(client, batch_size=10, concurrency=1, breaker=breaker,
                          retry=RetryPolicy(max_attempts=attempts, base_delay=0.01, max_delay=0.02))


def test_retries_exhausted_without_an_answer_record_the_transport_reason_not_a_status():
    """Calls that never get an answer, with answers in between (so the breaker stays shut):
    the requests fail with what happened, and no invented status."""
    with Emulator(DB, TOKEN, faults=Faults(p_drop_before=1.0)) as emu:
        base = emu.base_uri
        sender = _sender(emu, breaker=Breaker(calls=10**6, seconds=0, unreached=False))
        try:
            ticket = _send(sender, _request("u1", "i1"), _request("u2", "i2"))
            bounded(sender.close, 60)
        finally:
            sender.abort()
    assert ticket.codes == [NO_ANSWER, NO_ANSWER]
    assert ticket.messages == [f"gave up after 3 attempts: the connection to {base} broke: "
                               "Server disconnected without sending a response."] * 2


def test_retries_exhausted_on_answers_record_the_status_and_message_recombee_gave():
    with Emulator(DB, TOKEN, faults=Faults(p_sub_5xx=1.0, seed=2)) as emu:
        sender = _sender(emu)
        try:
            ticket = _send(sender, _request("u1", "i1"), _request("u2", "i2"))
            bounded(sender.close, 60)
        finally:
            sender.abort()
    texts = {500: "Internal server error", 503: "Service temporarily unavailable"}
    assert set(ticket.codes) <= {500, 503}
    assert ticket.messages == [f"gave up after 3 attempts: {texts[code]}" for code in ticket.codes]
    with Emulator(DB, TOKEN, faults=Faults(p_503=1.0)) as emu:
        sender = _sender(emu)
        try:
            ticket = _send(sender, _request("u1", "i1"))
            bounded(sender.close, 60)
        finally:
            sender.abort()
    assert ticket.codes == [503]
    # The status stands beside the message: the reason a user reads says it once (it said
    # "Recombee answered 503: gave up after 3 attempts: Recombee answered 503: ...").
    assert ticket.messages == ["gave up after 3 attempts: Service temporarily unavailable"]
    assert failure_reason(ticket.codes[0], ticket.messages[0]) == \
        "Recombee answered 503: gave up after 3 attempts: Service temporarily unavailable"


def test_after_the_breaker_opens_unanswered_requests_stay_unanswered():
    client = RecombeeClient(DB, TOKEN, f"http://127.0.0.1:{closed_port()}", concurrency=2, timeout=5)
    sender = RecombeeSender(client, batch_size=2, concurrency=2, breaker=Breaker(calls=4, seconds=0),
                            retry=RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.02))
    tickets: list[Ticket] = []

    def send_all():
        for n in range(6):
            tickets.append(_send(sender, _request(f"u{n}", "i1"), _request(f"u{n}", "i2")))
        sender.close()

    try:
        with pytest.raises(UnreachableError, match="connection refused"):
            bounded(send_all, 60)
        drained = sender.drain()
    finally:
        sender.abort()
    assert tickets and all(ticket.codes == [0, 0] for ticket in tickets)   # never answered: not recorded
    assert drained == []


# -- item 7: a deadline per Batch call -------------------------------------------------------------

def test_a_trickling_answer_ends_at_the_calls_deadline():
    """One byte every 0.5 s: each read gets a byte, so a timeout per read (1 s here) never fires;
    the whole reply would take a minute. The deadline is the timeout plus 10 ms per request."""
    with Emulator(DB, TOKEN, faults=Faults(p_trickle=1.0, trickle_seconds=0.5)) as emu:
        base = emu.base_uri
        client = RecombeeClient(DB, TOKEN, base, timeout=1)
        try:
            with pytest.raises(TransportFailure) as caught:
                bounded(lambda: client.batch([orjson.dumps(_request("u1", "i1")), orjson.dumps(_request("u2", "i2"))]), 30)
        finally:
            client.close()
        assert emu.stats.faults["trickle"] == 1
    assert str(caught.value) == f"no complete answer from {base} within the call's deadline (1.02 s)"
    assert caught.value.status is None
    assert RecombeeClient(DB, TOKEN, "https://h").deadline_for(1000) == pytest.approx(20.0)


def test_calls_past_their_deadline_are_retried_and_count_toward_the_breaker():
    with Emulator(DB, TOKEN, faults=Faults(p_trickle=1.0, trickle_seconds=0.5)) as emu:
        base = emu.base_uri
        sender = _sender(emu, breaker=Breaker(calls=3, seconds=0), timeout=0.5, attempts=8)
        try:
            ticket = _send(sender, _request("u1", "i1"))
            with pytest.raises(UnreachableError) as caught:
                bounded(sender.close, 60)
        finally:
            sender.abort()
        assert emu.stats.faults["trickle"] >= 3
    assert str(caught.value).startswith(f"no complete answer from {base} within the call's deadline")
    assert ticket.codes == [0]


def test_an_occasional_trickle_is_retried_and_the_store_is_complete(archive, tmp_path):
    small = tmp_path / "small.ndjson.gz"
    with gzip.open(small, "wb") as fh:
        write_archive(1_000, fh, seed=32)
    with Emulator(DB, TOKEN) as emu:
        replay(emu.base_uri, str(small), RunReport(), breaker=Breaker())
        clean = emu.snapshot()
    faults = Faults(p_trickle=0.3, trickle_seconds=0.3, seed=8)   # the 1st and 3rd calls trickle
    with Emulator(DB, TOKEN, faults=faults) as emu:
        report = RunReport()
        bounded(lambda: replay(emu.base_uri, str(small), report, breaker=Breaker(), timeout=0.5), 120)
        assert emu.stats.faults["trickle"] >= 2
        assert emu.snapshot() == clean
    assert report.outcomes["failed"] == 0 and report.requests["sent"] > 0


def test_a_host_that_cannot_be_resolved_is_named():
    """No test may ask a DNS server, so the cause is the one getaddrinfo raises, under httpx's."""
    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as cause:
            raise httpx.ConnectError(str(cause)) from cause
    except httpx.ConnectError as exc:
        reason = transport_reason(exc, "https://rapi-nowhere.example:443")
    assert reason == "cannot resolve host rapi-nowhere.example: Name or service not known"


@pytest.mark.parametrize("base_uri, why", [
    ("https://a..b", "idna"), ("127.0.0.1:99999", "port 99999 is out of range"), ("ftp://h", "http(s)"),
])
def test_a_base_uri_no_call_could_use_is_a_usage_error(base_uri, why):
    """It used to pass, and crash the first Batch call with a UnicodeError or OverflowError."""
    result = invoke(["replay", "--base-uri", base_uri, "--database-id", DB, "--no-state",
                     str(ROOT / "sample_events")], env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert result.exit_code == 2, result.stderr
    assert f"{base_uri} is not a usable base URI" in result.stderr and why in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("fault, words", [(dict(p_503=1.0), "Recombee answered 503"),
                                          (dict(p_429=1.0, retry_after=0.05), "Recombee answered 429")],
                         ids=["503", "429"])
def test_a_recombee_that_refuses_every_call_stops_the_run_with_exit_3_and_leaves_the_files_pending(
        tmp_path, fault, words):
    """The real defaults. The breaker counted only calls with no answer: 2,000 events into a
    Recombee answering 503 to everything took 595 s and ended in `failed` events (exit 1)."""
    state = tmp_path / "state.sqlite"
    env = {**os.environ, "RECOMBEE_PRIVATE_TOKEN": TOKEN}
    with Emulator(DB, TOKEN, faults=Faults(**fault)) as emu:
        result = subprocess.run(
            [sys.executable, "-m", "recombee_cli", "replay", "--base-uri", emu.base_uri, "--allow-http",
             "--database-id", DB, "--state", str(state), "--quiet", str(ROOT / "sample_events")],
            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("recombee-cli: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.fullmatch(rf"recombee-cli: error: Recombee keeps refusing Batch calls: {words}: .+ \(\d+ calls in a "
                        r"row refused over \d+ s; stopped\)", lines[0]), lines
    status = subprocess.run([sys.executable, "-m", "recombee_cli", "status", "--state", str(state), "--json"],
                            env=env, capture_output=True, text=True, timeout=60)
    exports = [f for f in json.loads(status.stdout)["files"] if "/segment-logs/" in f["path"]]
    assert exports and not any(f["done"] for f in exports)   # pending: the next run sends them
