"""Odd Batch answers never crash the sender nor hang it: the call's requests fail with a reason
that names what was wrong. The emulator (127.0.0.1, real sockets and signatures) executes the
Batch, then answers 200 with a spoilt body; every wait is bounded (a hang guard, not a speed test)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import ROOT, bounded

from recombee_cli.errors import ServiceError
from recombee_cli.outcomes import NO_ANSWER
from recombee_cli.recombee.client import RecombeeClient, RetryPolicy, odd_answer
from recombee_cli.recombee.emulator import ODD_ANSWERS, Emulator, Faults
from recombee_cli.recombee.sender import RecombeeSender
from recombee_cli.sinks.protocol import EventTicket as Ticket
from recombee_cli.sources.reader import Line

DB = "e2e-db"
TOKEN = "e2e-secret-token-41aa"

# what the failed requests' reason says, per kind of spoilt answer (3 requests, the 2nd spoilt)
WHAT_WAS_WRONG = {
    "string_code": 'result 2 of 3 has code "200" (a string), not a number',
    "null_result": "result 2 of 3 is null, not an object",
    "not_a_list": "an object, not a list of results",
    "not_an_object": "result 2 of 3 is a list, not an object",
    "wrong_length": "2 results for 3 requests",
}


def view(user: str, item: str) -> dict:
    return {"method": "POST", "path": "/detailviews/",
            "params": {"userId": user, "itemId": item, "timestamp": 1, "cascadeCreate": True}}


def ticket(*requests: dict) -> Ticket:
    return Ticket(Line("t", 1, 0, b""), None, list(requests))


def test_every_kind_of_odd_answer_is_named():
    assert set(WHAT_WAS_WRONG) == set(ODD_ANSWERS)


@pytest.mark.parametrize("kind", sorted(ODD_ANSWERS))
def test_an_odd_answer_fails_its_requests_with_what_was_wrong_and_the_run_goes_on(kind):
    with Emulator(DB, TOKEN, faults=Faults(p_odd=1.0, odd=kind, limit=1)) as emu:   # the first call only
        client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=1, timeout=5)
        sender = RecombeeSender(client, batch_size=3, concurrency=1,
                                retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02))
        spoilt, fine = ticket(view("u1", "a"), view("u2", "b"), view("u3", "c")), ticket(view("u4", "d"))

        def send():
            sender.submit(spoilt)
            sender.submit(fine)
            return sender.close()

        try:
            done = bounded(send, 60)
        finally:
            sender.abort()
        assert emu.stats.faults["odd"] == 1
    assert {id(t) for t in done} == {id(spoilt), id(fine)}
    assert spoilt.codes == [NO_ANSWER] * 3          # failed: no status was given, none is made up
    assert spoilt.messages == [f"Recombee's Batch answer is malformed: {WHAT_WAS_WRONG[kind]}"] * 3
    assert fine.codes == [200] and fine.messages == [None]


def test_odd_answers_in_a_row_stop_the_run_instead_of_failing_everything():
    with Emulator(DB, TOKEN, faults=Faults(p_odd=1.0, odd="null_result")) as emu:
        client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=1, timeout=5)
        sender = RecombeeSender(client, batch_size=2, concurrency=1,
                                retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02))
        tickets: list[Ticket] = []

        def send():
            for n in range(10):
                tickets.append(ticket(view(f"u{n}", "a"), view(f"u{n}", "b")))
                sender.submit(tickets[-1])
            sender.close()

        try:
            with pytest.raises(ServiceError, match=r"result 2 of 2 is null, not an object; 3 Batch calls in a row"):
                bounded(send, 60)
        finally:
            sender.abort()
    assert [t.codes for t in tickets[:2]] == [[NO_ANSWER] * 2] * 2   # the first two calls: failed
    assert not any(code for t in tickets[2:] for code in t.codes)     # the rest: never answered


def test_the_command_line_ends_an_odd_answering_run_with_exit_3_and_no_traceback(tmp_path):
    env = {**os.environ, "RECOMBEE_PRIVATE_TOKEN": TOKEN, "XDG_STATE_HOME": str(tmp_path / "state")}
    with Emulator(DB, TOKEN, faults=Faults(p_odd=1.0, odd="string_code")) as emu:
        result = subprocess.run(
            [sys.executable, "-m", "recombee_cli", "replay", "--base-uri", emu.base_uri, "--allow-http",
             "--database-id", DB, "--no-state", "--quiet", "--batch-size", "5", str(ROOT / "sample_events")],
            env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and TOKEN not in result.stderr
    assert "(a string), not a number; 3 Batch calls in a row failed" in result.stderr


@pytest.mark.parametrize("answer, expected, problem", [
    ([{"code": 200, "json": "ok"}], 1, None),
    ([{"code": True, "json": "ok"}], 1, "result 1 of 1 has code true (a boolean), not a number"),
    ([{"code": 200.0}], 1, "result 1 of 1 has code 200.0 (a float), not a number"),
    ([{"json": "ok"}], 1, "result 1 of 1 has no code"),
    ([{"code": None}], 1, "result 1 of 1 has code null (null), not a number"),
    ([{"code": 0, "json": "ok"}], 1, "result 1 of 1 has code 0, not an HTTP status"),
    ([{"code": 200}, "ok"], 2, "result 2 of 2 is a string, not an object"),
    ([], 1, "0 results for 1 requests"),
    (None, 1, "null, not a list of results"),
    ("ok", 1, "a string, not a list of results"),
])
def test_what_counts_as_an_odd_answer(answer, expected, problem):
    """code 0 would read as 'not answered', and a boolean as status 1: neither is trusted."""
    assert odd_answer(answer, expected) == problem


@pytest.mark.parametrize(("results", "reason"), [
    ([{"code": 200}, {"code": True}], "result 2 of 2 has code true (a boolean), not a number"),
    ([{"code": 200}, {"json": "x"}], "result 2 of 2 has no code"),
    ([{"code": 200}, {"code": 200.0}], "result 2 of 2 has code 200.0 (a float), not a number"),
    ([{"code": 999}, {"code": 200}], "result 1 of 2 has code 999, not an HTTP status"),
    ([{"code": 200}, "200"], 'result 2 of 2 is a string, not an object'),
    ([{"code": 200}, {"code": 409, "json": {}}], None),
])
def test_an_answer_is_trusted_only_when_every_code_is_an_http_status(results, reason):
    """The quick check of a whole answer and the loop that names what is wrong agree: a code that
    is a boolean, a float, out of range or missing makes the answer untrusted."""
    assert odd_answer(results, 2) == reason
