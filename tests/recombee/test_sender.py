"""Sending, end to end over 127.0.0.1 into the local Recombee emulator: real sockets, real signatures."""

from __future__ import annotations

import gzip
import signal
import sys
import threading
import time

import orjson
import pytest
from helpers import RETRY, ROOT, invoke

from recombee_cli.errors import AuthenticationError
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config
from recombee_cli.mapping.translate import Translator
from recombee_cli.pipeline.replay import run
from recombee_cli.recombee.client import RecombeeClient, RetryPolicy
from recombee_cli.recombee.emulator import Emulator, Faults
from recombee_cli.recombee.sender import RecombeeSender
from recombee_cli.record.recorder import Recorder
from recombee_cli.record.report import RunReport
from recombee_cli.sources.reader import expand_inputs

sys.path.insert(0, str(ROOT))
from bench.generate import write as write_archive  # noqa: E402

DB = "e2e-db"
TOKEN = "e2e-secret-token-7f3a"
FAST_RETRY = RetryPolicy(max_attempts=30, base_delay=0.01, max_delay=0.1, max_total=60)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("archive") / "events.ndjson.gz"
    with gzip.open(path, "wb") as fh:
        write_archive(20_000, fh, seed=11)
    return str(path)


def replay_into(emu: Emulator, path: str, *, batch_size=500, concurrency=4, report=None):
    translator = Translator(compile_config(Config()))
    client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=concurrency, timeout=5)
    sender = RecombeeSender(client, batch_size=batch_size, concurrency=concurrency, retry=FAST_RETRY, seed=5)
    report = report or RunReport()
    try:
        run(expand_inputs([path]), translator, sender, recorder=Recorder(report, None))
    except BaseException:
        sender.abort()
        raise
    return report, sender


def _requests_answered(report: RunReport) -> int:
    return report.requests["sent"] + report.requests["duplicate"] + report.requests["failed"]


@pytest.fixture(scope="module")
def clean_run(archive):
    with Emulator(DB, TOKEN) as emu:
        report, _ = replay_into(emu, archive)
        return report, emu.snapshot()


def test_clean_run_accounts_for_every_event(clean_run):
    report, snapshot = clean_run
    assert report.events == 20_000
    assert sum(report.outcomes.values()) == report.events
    assert report.outcomes["failed"] == 0
    assert report.outcomes["sent"] > 10_000
    assert sum(len(rows) for name, rows in snapshot.items() if name not in ("users", "items")) > 5_000


def test_faults_change_nothing_in_the_store(archive, clean_run):
    clean_report, clean_snapshot = clean_run
    faults = Faults(p_500=0.04, p_503=0.04, p_429=0.04, retry_after=0.02, p_slow=0.02, slow_seconds=0.2,
                    p_drop=0.04, p_drop_before=0.02, p_sub_5xx=0.01, seed=3)
    with Emulator(DB, TOKEN, faults=faults) as emu:
        report, sender = replay_into(emu, archive, batch_size=100)   # many calls: every fault kind happens
        stats = emu.stats
        snapshot = emu.snapshot()
    assert sum(stats.faults.values()) > 20, stats.faults      # the faults really happened
    assert set(stats.faults) >= {"500", "503", "429", "drop", "drop_before", "sub_5xx"}, stats.faults
    assert sender.stats["retries"] > 0
    assert snapshot == clean_snapshot                            # nothing missing, nothing doubled
    assert sum(report.outcomes.values()) == report.events == 20_000
    assert report.outcomes["failed"] == 0
    assert _requests_answered(report) == _requests_answered(clean_report)
    # A re-sent request already applied comes back 409: sent + duplicate covers every request.
    assert report.requests["sent"] + report.requests["duplicate"] == \
        clean_report.requests["sent"] + clean_report.requests["duplicate"]


def test_second_replay_is_all_duplicate_and_changes_nothing(tmp_path):
    """Without deletes or merges in the history, a replay is answered 409 request for request."""
    from bench.generate import events as generate

    kept = [e for e in generate(5_000, seed=12) if e.get("type") != "alias"
            and e.get("event") not in ("Product Removed", "Product Removed from Wishlist")]
    path = _write_events(tmp_path / "adds-only.ndjson", kept)
    with Emulator(DB, TOKEN) as emu:
        first, _ = replay_into(emu, path)
        before = emu.snapshot()
        second, _ = replay_into(emu, path)
        assert emu.snapshot() == before
    assert first.requests["sent"] > 2_000
    assert second.requests["sent"] == 0
    assert second.requests["duplicate"] == _requests_answered(first)
    assert second.outcomes["duplicate"] == first.outcomes["sent"] + first.outcomes["duplicate"]


def test_second_replay_with_deletes_and_merges_leaves_the_store_unchanged(archive, clean_run):
    """A history with deletes and merges is re-executed in order (an add re-added, then deleted
    again), so some requests are `sent` again; the final state is the same."""
    _, clean_snapshot = clean_run
    with Emulator(DB, TOKEN) as emu:
        replay_into(emu, archive)
        second, _ = replay_into(emu, archive)
        assert emu.snapshot() == clean_snapshot
    assert second.requests["duplicate"] > 5 * second.requests["sent"]
    assert second.outcomes["failed"] == 0


def _write_events(path, events):
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return str(path)


def test_add_then_delete_across_batches_ends_deleted(tmp_path):
    events = []
    for n in range(40):
        stamp = f"2024-03-01T00:00:{n:02d}.000Z"
        events.append({"type": "track", "event": "Product Added to Wishlist", "userId": f"u{n % 3}",
                       "properties": {"product_id": f"p{n}"}, "timestamp": stamp})
        events.append({"type": "track", "event": "Product Removed from Wishlist", "userId": f"u{n % 3}",
                       "properties": {"product_id": f"p{n}", "timestamp": stamp}, "timestamp": stamp})
    path = _write_events(tmp_path / "pairs.ndjson", events)
    with Emulator(DB, TOKEN) as emu:
        report, _ = replay_into(emu, path, batch_size=3, concurrency=4)
        assert emu.snapshot()["bookmarks"] == []
    assert report.outcomes["sent"] == 80


def test_merge_lands_after_the_source_users_earlier_interactions(tmp_path):
    events = []
    for n in range(30):   # many anonymous views, in batches of 4 across 4 lanes
        events.append({"type": "track", "event": "Product Viewed", "anonymousId": f"anon-{n % 5}",
                       "properties": {"product_id": f"p{n}"}, "timestamp": f"2024-03-01T00:00:{n:02d}Z"})
    for n in range(5):
        events.append({"type": "alias", "previousId": f"anon-{n}", "userId": f"known-{n}",
                       "timestamp": "2024-03-01T00:01:00Z"})
    path = _write_events(tmp_path / "merge.ndjson", events)
    with Emulator(DB, TOKEN) as emu:
        report, _ = replay_into(emu, path, batch_size=4, concurrency=4)
        snapshot = emu.snapshot()
    users_with_views = {row[0] for row in snapshot["detailviews"]}
    assert users_with_views == {f"known-{n}" for n in range(5)}
    assert len(snapshot["detailviews"]) == 30
    assert report.outcomes["sent"] == 35


def test_401_mid_run_stops_at_once_and_reports_only_what_was_sent(archive):
    with Emulator(DB, TOKEN) as emu:
        original = RecombeeClient.batch
        calls = {"n": 0}

        def batch(self, requests):
            calls["n"] += 1
            if calls["n"] == 4:
                emu.reject_all_auth = True
            return original(self, requests)

        report = RunReport()
        RecombeeClient.batch = batch
        try:
            with pytest.raises(AuthenticationError, match="token"):
                replay_into(emu, archive, batch_size=200, concurrency=2, report=report)
        finally:
            RecombeeClient.batch = original
        stored = sum(len(rows) for name, rows in emu.snapshot().items() if name not in ("users", "items"))
        accepted = emu.stats.sub_codes[200] + emu.stats.sub_codes[201]
    assert 0 < report.requests["sent"] <= accepted
    assert report.requests["sent"] <= 3 * 200
    assert stored <= accepted


def test_cli_sends_and_never_shows_the_token(tmp_path):
    rejects = tmp_path / "rejects.ndjson"
    report_file = tmp_path / "report.json"
    with Emulator(DB, TOKEN) as emu:
        result = invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB,
                         "--rejects", str(rejects), "--report", str(report_file), str(ROOT / "sample_events_with_mistakes")],
                        env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        stored = emu.snapshot()
    assert result.exit_code == 1, result.stderr     # these samples hold a few bad lines on purpose
    assert result.stdout == ""                       # sending prints no data
    assert stored["purchases"] and stored["detailviews"] and stored["bookmarks"]
    outputs = [result.stdout, result.stderr, rejects.read_text(), report_file.read_text()]
    for text in outputs:
        assert TOKEN not in text
        assert "hmac_sign" not in text
    report = __import__("json").loads(report_file.read_text())
    assert report["requests"]["sent"] > 0 and report["batches"] >= 1


def test_cli_401_exits_3_with_a_clear_message(tmp_path):
    with Emulator(DB, TOKEN) as emu:
        result = invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB,
                         str(ROOT / "sample_events")], env={"RECOMBEE_PRIVATE_TOKEN": "wrong-token"})
    assert result.exit_code == 3
    assert "private token" in result.stderr and "database id" in result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong-token" not in result.stderr


def test_plain_http_needs_to_be_asked_for():
    result = invoke(["replay", "--base-uri", "http://127.0.0.1:9", "--database-id", DB,
                     str(ROOT / "sample_events")], env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert result.exit_code == 2 and "--allow-http" in result.stderr


def test_missing_token_is_a_usage_error():
    result = invoke(["replay", "--database-id", DB, str(ROOT / "sample_events")])
    assert result.exit_code == 2 and "RECOMBEE_PRIVATE_TOKEN" in result.stderr


@pytest.mark.parametrize("plain", [False, True], ids=["gzip, read by the main process", "plain, read by the workers"])
def test_workers_store_the_same_as_one_process(archive, clean_run, tmp_path, plain):
    """With --workers 2 Recombee ends with the same data. An uncompressed file is read by the
    workers by byte ranges; each request still goes to its user's lane (the workers note the
    routes)."""
    _, clean_snapshot = clean_run
    source = archive
    if plain:
        source = tmp_path / "events.ndjson"
        source.write_bytes(gzip.decompress(open(archive, "rb").read()))
    report = tmp_path / "r.json"
    with Emulator(DB, TOKEN) as emu:
        result = invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, "--no-state",
                         "--workers", "2", "--batch-size", "500", "--report", str(report), str(source)],
                        env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        snapshot = emu.snapshot()
    assert result.exit_code in (0, 1), result.stderr
    assert snapshot == clean_snapshot
    figures = __import__("json").loads(report.read_text())
    assert sum(figures["outcomes"].values()) == figures["events"] == 20_000


def test_token_file_is_used_and_a_readable_one_is_warned_about(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    with Emulator(DB, TOKEN) as emu:
        result = invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, "--no-state",
                         "--token-file", str(token_file), "--quiet", str(ROOT / "sample_events" / "hand-written.ndjson")])
        assert emu.snapshot()["purchases"]
    assert "readable by other users" in result.stderr and TOKEN not in result.stderr


def test_sandbox_command_serves_a_replay(tmp_path):
    import re
    import subprocess

    store = tmp_path / "sandbox.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "recombee_cli", "sandbox", "--port", "0", "--database-id", "demo",
                             "--token", "sandbox-token", "--store", str(store)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        line = proc.stderr.readline()          # "Recombee emulator on http://127.0.0.1:PORT ..."
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match, line
        report = tmp_path / "report.json"
        result = invoke(["replay", "--base-uri", match.group(1), "--allow-http", "--database-id", "demo",
                         "--no-state", "--quiet", "--report", str(report), str(ROOT / "sample_events_with_mistakes")],
                        env={"RECOMBEE_PRIVATE_TOKEN": "sandbox-token"})
        assert result.exit_code == 1, result.stderr        # the samples' bad lines, nothing else
        figures = __import__("json").loads(report.read_text())
        assert figures["outcomes"]["failed"] == 0 and figures["outcomes"]["sent"] > 50
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    import sqlite3
    rows = sqlite3.connect(store).execute("SELECT count(*) FROM detailviews").fetchone()[0]
    assert rows > 0


def test_a_concurrent_replay_stores_what_the_same_requests_sent_one_after_another_store(archive, clean_run):
    """The reference for every ordering rule (lanes, merges held in groups, retries): the dry
    run's requests applied in input order, one Batch at a time, into a fresh emulator."""
    import io

    from recombee_cli.sinks.printer import DryRunPrinter

    _, clean_snapshot = clean_run
    printed = io.BytesIO()
    run(expand_inputs([archive]), Translator(compile_config(Config())), DryRunPrinter(printed))
    bodies = printed.getvalue().splitlines()
    assert sum(b'/merge/' in body for body in bodies) > 100     # the history has merges to order
    with Emulator(DB, TOKEN) as emu:
        client = RecombeeClient(DB, TOKEN, emu.base_uri, timeout=5)
        for start in range(0, len(bodies), 1000):
            client.batch(bodies[start:start + 1000])
        client.close()
        assert emu.snapshot() == clean_snapshot


def test_a_merge_waiting_for_earlier_batches_does_not_hold_up_reading():
    """A merge waits until everything sent before it is answered; meanwhile `submit` returns at
    once and other users' requests go on (it used to wait for every lane to finish)."""
    from recombee_cli.sinks.protocol import EventTicket as Ticket
    from recombee_cli.sources.reader import Line

    def ticket(*requests):
        return Ticket(Line("t", 1, 0, b""), None, list(requests))

    def view(user, item):
        return {"method": "POST", "path": "/detailviews/",
                "params": {"userId": user, "itemId": item, "timestamp": 1, "cascadeCreate": True}}

    with Emulator(DB, TOKEN, latency=1500) as emu:   # every call takes 1.5 s
        client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=2, timeout=10)
        sender = RecombeeSender(client, batch_size=2, concurrency=2, retry=FAST_RETRY)
        try:
            anonymous = ticket(view("anon", "p1"), view("anon", "p2"))     # a full Batch: sent now
            sender.submit(anonymous)
            merge = ticket({"method": "PUT", "path": "/users/known/merge/anon", "params": {"cascadeCreate": True}})
            sender.submit(merge)
            later = ticket(view("known", "p3"))     # held behind the merge: the group is full, closes
            sender.submit(later)
            other = ticket(view("someone", "p4"), view("someone", "p5"))
            sender.submit(other)
            assert merge.codes == [0] and anonymous.codes == [0, 0]   # submit did not wait for them
            done = sender.close()
        finally:
            sender.abort()
        views = sorted(row[:2] for row in emu.snapshot()["detailviews"])
    assert {id(t) for t in done} == {id(anonymous), id(merge), id(later), id(other)}
    assert views == [("known", "p1"), ("known", "p2"), ("known", "p3"), ("someone", "p4"), ("someone", "p5")]


def test_requests_waiting_to_be_sent_cost_about_their_size_in_memory(archive):
    """A sender keeps thousands of requests waiting in its lanes. orjson (3.12 and later) returns
    each in a buffer of at least 4 KB; they are handed to sinks cut from one joined blob, each
    its own size (it was 170 MB of a 250 MB peak)."""
    import tracemalloc

    from recombee_cli.sinks.printer import DryRunPrinter

    class KeepingSink(DryRunPrinter):   # answers like the printer, keeps requests like lanes do
        def __init__(self):
            super().__init__(None)
            self.kept = []

        def submit(self, ticket):
            self.kept.append(ticket.requests)
            self._done.append(self._answered(ticket, len(ticket.requests)))

        def close(self):
            return self.poll()

    sink, translator = KeepingSink(), Translator(compile_config(Config()))
    tracemalloc.start()
    try:
        run(expand_inputs([archive]), translator, sink)
        traced = tracemalloc.get_traced_memory()[0]   # what the run left alive: mostly those requests
    finally:
        tracemalloc.stop()
    serialised = sum(len(body) for requests in sink.kept for body in requests)
    assert serialised > 2_000_000
    assert traced < 2 * serialised, (traced, serialised)


def test_a_batch_call_leaves_no_garbage_cycle_holding_its_body():
    """httpx's response and its stream refer to each other; the replay runs the collector
    rarely, so each Batch's body (~200 KB) stayed in memory until it did."""
    import gc

    body = [orjson.dumps({"method": "POST", "path": "/detailviews/",
                          "params": {"userId": "u", "itemId": f"i{n}", "timestamp": 1}}) for n in range(1000)]
    with Emulator(DB, TOKEN, fast=True) as emu:
        client = RecombeeClient(DB, TOKEN, emu.base_uri, timeout=5)
        client.batch(body)
        gc.collect()
        gc.disable()
        try:
            for _ in range(5):
                assert len(client.batch(body)) == 1000
            left_for_the_collector = gc.collect()
        finally:
            gc.enable()
            client.close()
    assert left_for_the_collector == 0


def test_an_answered_ticket_is_not_kept_while_the_sender_waits_for_more():
    """Each request waiting in a sender holds its ticket, and a chunk's ticket its bytes. A lane
    kept its last Batch, and the barrier thread its last group of merges, while waiting for the
    next: about 60 chunks stayed alive where 20 were waiting (peak RSS 165 MB sending browser
    events). Once answered and handed back, a ticket belongs to the caller alone."""
    import gc
    import time
    import weakref

    from recombee_cli.sinks.protocol import EventTicket
    from recombee_cli.sources.reader import Line

    class Tracked(EventTicket):
        __slots__ = ("__weakref__",)

    def view(user, item):
        return {"method": "POST", "path": "/detailviews/",
                "params": {"userId": user, "itemId": item, "timestamp": 1, "cascadeCreate": True}}

    tickets = [Tracked(Line("t", n, n, b""), None, [view(f"u{n}", "p1"), view(f"u{n}", "p2")]) for n in range(6)]
    tickets.append(Tracked(Line("t", 7, 7, b""), None, [   # a merge and its user's next request: the barrier's
        {"method": "PUT", "path": "/users/u0/merge/u1", "params": {"cascadeCreate": True}}, view("u0", "p3")]))
    with Emulator(DB, TOKEN, fast=True) as emu:
        client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=2, timeout=5)
        sender = RecombeeSender(client, batch_size=2, concurrency=2, retry=FAST_RETRY)
        try:
            for ticket in tickets:
                sender.submit(ticket)
            answered = []
            for _ in range(400):   # at most 20 s
                answered += sender.poll()
                if len(answered) == len(tickets):
                    break
                time.sleep(0.05)
            assert len(answered) == len(tickets)
            assert all(code == 200 for ticket in answered for code in ticket.codes)
            refs = [weakref.ref(ticket) for ticket in tickets]
            del tickets, answered, ticket
            gc.collect()
            assert [ref() for ref in refs if ref() is not None] == []   # the sender, still open, keeps none
        finally:
            sender.close()


class _Stop(Exception):
    """What a signal's handler raises in the main thread (as Ctrl-C and SIGTERM do)."""


def _view(user: str, timestamp: int):
    """A ticket of one detail view of item `p`, as the translate stage hands one event's on."""
    from recombee_cli.sinks.protocol import EventTicket
    from recombee_cli.sources.reader import Line

    request = {"method": "POST", "path": "/detailviews/",
               "params": {"userId": user, "itemId": "p", "timestamp": timestamp, "cascadeCreate": True}}
    return EventTicket(Line("t", timestamp, 0, b""), None, [request])


def test_a_signal_while_submit_waits_for_room_leaves_the_queue_lock_sound():
    """`submit` waited for room in Condition.wait, which takes the queue's lock back on its way
    out. A signal that landed while it waited for that lock raised there, without the lock, and
    leaving `submit` released the lock of the sender holding it: a replay stopped by SIGTERM or
    Ctrl-C then hung for ever (all its threads waiting for the lock), found by killing runs."""
    problems: list[BaseException] = []

    def hold_the_lock_and_signal(sender: RecombeeSender) -> None:
        try:
            deadline = time.monotonic() + 20
            while sender.queue.waiting() <= sender.capacity and time.monotonic() < deadline:
                time.sleep(0.01)   # until submit waits for room
            with sender.queue.cond:   # as a sender building a Batch holds it
                time.sleep(0.3)       # (submit's wait times out meanwhile, and waits for the lock)
                signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
                time.sleep(0.2)
        except BaseException as exc:   # noqa: BLE001 - a lock released under it: RuntimeError
            problems.append(exc)

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGUSR1, stop)
    try:
        with Emulator(DB, TOKEN, latency=2000) as emu:   # no call is answered meanwhile: the queue stays full
            client = RecombeeClient(DB, TOKEN, emu.base_uri, timeout=10)
            sender = RecombeeSender(client, batch_size=2, concurrency=1, retry=RETRY)
            holder = threading.Thread(target=hold_the_lock_and_signal, args=(sender,))
            holder.start()
            with pytest.raises(_Stop):
                for n in range(1000):
                    sender.submit(_view(f"u{n}", n + 1))
            holder.join(10)
            ended = threading.Thread(target=sender.drain, daemon=True)   # what a stopped run does next
            ended.start()
            ended.join(20)
            assert not ended.is_alive()
            emu.latency = 0
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert problems == []


def _stopped_by_a_signal_from_another_thread(sender: RecombeeSender, ready, work) -> bool:
    """Run `work` in the main thread; once `ready()` (at most 20 s), another thread sends itself
    SIGUSR1, whose handler raises _Stop in the main thread. Whether `work` stopped on it while that
    thread waited (30 s), not only once it gave up and aborted the sender (which ends the wait)."""
    heeded = threading.Event()
    unheeded: list[bool] = []

    def signal_from_this_thread() -> None:
        deadline = time.monotonic() + 20
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)   # this thread, not the main one
        if not heeded.wait(30):
            unheeded.append(True)
            sender.abort()     # (lets the wait end, so that the test does)

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGUSR1, stop)
    try:
        other = threading.Thread(target=signal_from_this_thread)
        other.start()
        try:
            work()
        except _Stop:
            heeded.set()
        other.join(60)
        sender.abort()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    return heeded.is_set() and unheeded == []


def test_a_signal_given_to_another_thread_stops_a_submit_that_waits_for_room():
    """The kernel gives a process's signal (Ctrl-C, SIGTERM) to any of its threads, and Python runs
    the handler in the main thread at that thread's next Python instruction. The wait for room in a
    full queue, compiled, called only C: with the signal given to another thread, a replay whose
    calls Recombee held went on waiting (CI killed one after 60 s)."""
    with Emulator(DB, TOKEN) as emu:
        emu.hold_after = 0   # no call is answered: the queue stays full
        client = RecombeeClient(DB, TOKEN, emu.base_uri, timeout=60)
        sender = RecombeeSender(client, batch_size=2, concurrency=1, retry=RETRY)

        def submit_until_stopped() -> None:
            for n in range(100_000):
                sender.submit(_view(f"u{n}", n + 1))

        assert _stopped_by_a_signal_from_another_thread(
            sender, lambda: sender.queue.waiting() > sender.capacity, submit_until_stopped)   # submit waits for room


def test_a_signal_given_to_another_thread_stops_a_definition_waiting_out_a_retry_after():
    """Property definitions are sent from the main thread, and a 429's Retry-After (up to 120 s)
    is waited out there: that wait, too, must let a signal given to another thread stop it."""
    with Emulator(DB, TOKEN, faults=Faults(p_429=1.0, retry_after=100)) as emu:
        client = RecombeeClient(DB, TOKEN, emu.base_uri, timeout=10)
        sender = RecombeeSender(client, batch_size=2, concurrency=1, retry=RetryPolicy())
        definition = {"method": "PUT", "path": "/users/properties/age", "params": {"type": "int"}}
        assert _stopped_by_a_signal_from_another_thread(
            sender, lambda: sum(emu.stats.faults.values()) > 0,   # the first call was refused
            lambda: sender.define([definition]))


def test_submit_does_not_wait_for_a_sender_that_holds_the_queue():
    """While less than a Batch's worth may go, the thread that reads and translates hands its
    requests on without waiting for the queue's lock, which a sender holds while it builds a
    Batch: at 150 ms a call that wait was 1.25 s of a 6.3 s replay, and the translating workers
    waited with it. What it handed on is all sent."""
    with Emulator(DB, TOKEN, fast=True) as emu:
        client = RecombeeClient(DB, TOKEN, emu.base_uri, timeout=5)
        sender = RecombeeSender(client, batch_size=2, concurrency=2, retry=RETRY)
        tickets = [_view(f"u{n}", n + 1) for n in range(5)]
        try:
            with sender.queue.cond:   # as a sender building a Batch holds it
                feeding = threading.Thread(target=lambda: [sender.submit(t) for t in tickets], daemon=True)
                feeding.start()
                feeding.join(10)
                assert not feeding.is_alive(), "submit waited for the queue's lock"
            finished = sender.close()
        finally:
            sender.abort()
        assert emu.stats.sub_requests == 5
    assert sorted(id(t) for t in finished) == sorted(id(t) for t in tickets)
    assert all(set(t.codes) <= {200, 201} for t in tickets)


def test_a_closing_sender_ends_when_the_last_answer_is_in_not_when_its_idle_senders_look_again(monkeypatch):
    """A sender with nothing to look at waits IDLE_WAIT_SECONDS before it looks again, and each answer
    wakes one of them. Closing, the senders that waited for a parked request to come back were not
    all woken when the last answer came in: `close` waited for their wait to end, and every sending
    run ended 0.1 s after its last answer. With that wait made a minute, `close` still returns once
    the answers are in."""
    from recombee_cli.recombee import sender as sender_module

    monkeypatch.setattr(sender_module, "IDLE_WAIT_SECONDS", 60.0)
    with Emulator(DB, TOKEN, latency=1000) as emu:   # (each call in flight a second: what waits, parks)
        client = RecombeeClient(DB, TOKEN, emu.base_uri, timeout=20)
        sender = RecombeeSender(client, batch_size=2, concurrency=8, retry=RETRY)
        sender.submit(_view("u1", 1))
        sender.submit(_view("u2", 2))   # a full Batch: it goes
        sender.submit(_view("u1", 3))   # waits for u1's Batch in flight: parked by the next Batch's build
        sender.submit(_view("u3", 4))
        sender.submit(_view("u4", 5))   # the second Batch
        finished: list = []
        closing = threading.Thread(target=lambda: finished.extend(sender.close()), daemon=True)
        closing.start()
        closing.join(30)
        assert not closing.is_alive(), "close waited for its idle senders' wait to end"
    codes = [code for ticket in finished for code in ticket.codes]
    assert len(codes) == 5 and set(codes) <= {200, 201}   # every request answered, and stored
    assert emu.stats.sub_requests == 5
