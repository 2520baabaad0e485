"""How many Batch calls a sender keeps in flight: its lanes (lanes.py; docs/behaviour.md, "Order").

By default a sender starts 16 lanes and doubles them, up to 32, while every lane has a call in
flight and a full Batch waits for one; a step whose calls then took longer in proportion
(they waited in a queue at Recombee's end) is taken back. A number given (`--concurrency`, the
config's `concurrency`, `RecombeeSender(concurrency=N)`) is kept. Real emulator, real sockets."""

from __future__ import annotations

import gzip
import json
import sys

import pytest
from helpers import RETRY, ROOT, invoke

from recombee_cli.recombee.client import RecombeeClient
from recombee_cli.recombee.emulator import Emulator
from recombee_cli.recombee.lanes import GROW_STEP, GROW_WINDOW, SWITCH_SECONDS, Lanes, queued_at_recombee
from recombee_cli.recombee.sender import RecombeeSender
from recombee_cli.sinks.protocol import EventTicket
from recombee_cli.sources.reader import Line

sys.path.insert(0, str(ROOT))
from bench.generate import write as write_archive  # noqa: E402

DB = "lanes-db"
TOKEN = "lanes-secret-token-3c9d"


def _view_tickets(per_ticket: int):
    """Tickets of detail views, each by a user of its own (nothing to order: every one may go)."""
    t = 0
    while True:
        t += 1
        yield EventTicket(Line("t", t, 0, b""), None, [
            {"method": "POST", "path": "/detailviews/",
             "params": {"userId": f"u{t}-{k}", "itemId": "p", "timestamp": 1, "cascadeCreate": True}}
            for k in range(per_ticket)])


def _send_until(emu: Emulator, done, most_tickets: int, **options) -> tuple[RecombeeSender, int, list[int]]:
    """Submit tickets of 5 views until `done(lanes seen)` (the lanes allowed after each ticket) or
    `most_tickets`; then close. When a step is taken depends on the machine (a full Batch must be
    waiting as the 16th call comes back), so the test waits for what it checks, not for a count."""
    client = RecombeeClient(DB, TOKEN, emu.base_uri, timeout=20)
    sender = RecombeeSender(client, retry=RETRY, batch_size=5, **options)
    seen: list[int] = []
    sent = 0
    try:
        for ticket in _view_tickets(5):   # (submit waits for room while the queue is full)
            sender.submit(ticket)
            sent += 5
            seen.append(sender.lanes.allowed)
            if done(seen) or len(seen) >= most_tickets:
                break
        sender.close()
    finally:
        sender.abort()
    return sender, sent, seen


def test_far_from_recombee_with_every_lane_busy_the_sender_starts_more_lanes():
    with Emulator(DB, TOKEN, latency=200) as emu:   # every call 200 ms on the way
        sender, sent, seen = _send_until(emu, lambda seen: seen[-1] == 8, 300, concurrency=2, grow_to=8)
        stored = len(emu.snapshot()["detailviews"])
        most = emu.stats.most_in_flight
    assert stored == sent
    assert 4 in seen and sender.counters()["lanes"] == 8   # 2, 4, 8: every lane busy, calls as long
    assert most > 4                                        # ...and more calls went at once


def test_lanes_added_for_a_recombee_that_answers_one_call_at_a_time_are_taken_back():
    """Its calls wait in a queue at its end: 40 ms each with 2 lanes, about 80 ms with 4. More
    lanes lengthened the queue, not the sending (and cost this side CPU for requests that wait)."""
    with Emulator(DB, TOKEN, latency=20, one_at_a_time=True) as emu:
        sender, sent, seen = _send_until(emu, lambda seen: max(seen) > 2 and seen[-1] == 2, 400,
                                         concurrency=2, grow_to=10)
        stored = len(emu.snapshot()["detailviews"])
    assert stored == sent
    assert max(seen) == 4                    # the step was taken...
    assert sender.counters()["lanes"] == 2   # ...and taken back


def test_calls_slower_in_proportion_to_the_lanes_added_waited_at_recombee():
    assert not queued_at_recombee(0.161, 0.166, 16, 24)   # 150 ms away: as long with more in flight
    assert queued_at_recombee(0.040, 0.060, 16, 24)       # 1.5x the lanes, 1.5x the time
    assert queued_at_recombee(0.100, 0.120, 32, 40)       # 1.25x, 1.2x: still more than half
    assert not queued_at_recombee(0.100, 0.110, 32, 40)


def test_a_call_refused_or_unanswered_takes_a_step_back_and_ends_the_steps():
    lanes = Lanes(16, 64)
    for _ in range(2 * GROW_WINDOW):   # every lane busy, calls 150 ms whatever their number: two steps
        lanes.answered(0.150, lanes.allowed, waited_for=True)
    assert lanes.allowed == 16 * GROW_STEP * GROW_STEP == 64
    lanes.refused()                    # e.g. a 429: Recombee throttles
    assert lanes.allowed == 32
    for _ in range(4 * GROW_WINDOW):
        lanes.answered(0.150, lanes.allowed, waited_for=True)
    assert lanes.allowed == 32         # no more steps this run
    lanes.refused()
    lanes.refused()
    assert lanes.allowed == 16         # never below the lanes it started with


def test_lanes_are_taken_only_while_every_lane_is_busy_and_a_full_batch_waits():
    lanes = Lanes(16, 64)
    for _ in range(4 * GROW_WINDOW):
        lanes.answered(0.150, lanes.allowed, waited_for=False)   # a lane free, or nothing waiting
    assert lanes.allowed == 16


@pytest.mark.parametrize("ending", ["close", "drain"])
def test_a_sender_hands_pythons_lock_on_sooner_while_it_sends_and_gives_the_interval_back(ending):
    """Each lane waits for Python's lock after every socket operation of its call, while the
    thread that feeds the queue holds it: a sender has the lock handed on after 1 ms instead of
    5 (process-wide), and puts the interval back when it closes, or drains after an error, for
    the program that uses it."""
    given = sys.getswitchinterval()
    sys.setswitchinterval(before := 0.005)   # Python's default, whatever ran before in this process
    try:
        with Emulator(DB, TOKEN) as emu:
            sender = RecombeeSender(RecombeeClient(DB, TOKEN, emu.base_uri, timeout=20), retry=RETRY, batch_size=5)
            try:
                during = sys.getswitchinterval()
                tickets = _view_tickets(5)
                for _ in range(4):
                    sender.submit(next(tickets))
                answered = sender.close() if ending == "close" else sender.drain()
                after = sys.getswitchinterval()
            finally:
                sender.abort()
            stored = len(emu.snapshot()["detailviews"])
    finally:
        sys.setswitchinterval(given)
    assert during == SWITCH_SECONDS < before
    assert after == before
    if ending == "close":
        assert stored == 20 and len(answered) == 4


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("lanes") / "events.ndjson.gz"
    with gzip.open(path, "wb") as fh:
        write_archive(1_000, fh, seed=5)   # about 800 requests: 160 Batches of 5
    return str(path)


@pytest.mark.parametrize("given, expect", [([], "more"), (["--concurrency", "16"], 16)],
                         ids=["default: grows", "--concurrency 16: kept"])
def test_replay_starts_more_lanes_far_from_recombee_unless_told_how_many(archive, tmp_path, given, expect):
    report_file = tmp_path / "report.json"
    with Emulator(DB, TOKEN, latency=200) as emu:
        result = invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, "--no-state",
                         "--batch-size", "5", "--report", str(report_file), *given, archive],
                        env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        most = emu.stats.most_in_flight
    assert result.exit_code in (0, 1), result.stderr   # (the generator's "Home Page" views are invalid)
    report = json.loads(report_file.read_text())
    assert report["requests"]["failed"] == 0 and report["requests"]["sent"] > 600
    if expect == "more":
        assert report["lanes"] > 16 and most > 16
    else:
        assert report["lanes"] == 16 and most <= 16


def test_lanes_that_grow_store_what_one_lane_stores(archive, tmp_path):
    """The order (docs/behaviour.md, "Order") holds whatever the lanes: the archive's merges,
    deletions and repeated items, replayed far away while the lanes grow, leave the store that one
    lane near by leaves."""
    stores, lanes = [], []
    for latency, given in ((200, []), (0, ["--concurrency", "1"])):
        report_file = tmp_path / f"report-{latency}.json"
        with Emulator(DB, TOKEN, latency=latency) as emu:
            result = invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB,
                             "--no-state", "--batch-size", "5", "--report", str(report_file), *given, archive],
                            env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
            stores.append(emu.snapshot())
        assert result.exit_code in (0, 1), result.stderr
        lanes.append(json.loads(report_file.read_text())["lanes"])
    assert lanes == [32, 1]
    assert sum(len(rows) for rows in stores[1].values()) > 500
    assert stores[0] == stores[1]
