"""Exactly once, and in order per user, whatever happens on the way (SPEC §7, §8).

Hypothesis writes archives with merge chains (anon -> user -> account), anonymous ids used again
after their merge, requests with one duplicate key (an order listing a product twice at the same
time), deletes of interactions and user deletions. Each is replayed into the local emulator
(127.0.0.1, real sockets and signatures) through faults — 5xx inside Batches, 429, connections
dropped after the work was done, malformed answers — with the process "killed" at a random point:
from then on nothing more reaches the state file, as after `kill -9`, while what was already sent
stays sent. Then the same replay is run again until the state says every file is done. The store
must equal the dry run's requests executed one after another, in input order, in a fresh emulator.
At 1 and 16 lanes.
"""

from __future__ import annotations

import io
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recombee_cli.pipeline.session as session_module
from recombee_cli.errors import ServiceError
from recombee_cli.pipeline.compile import compile_config
from recombee_cli.pipeline.config import load_config
from recombee_cli.pipeline.session import ReplaySession
from recombee_cli.pipeline.translate import Translator
from recombee_cli.recombee.client import RecombeeClient, RetryPolicy
from recombee_cli.recombee.emulator import Emulator, Faults
from recombee_cli.recombee.sender import RecombeeSender
from recombee_cli.record.state import StateStore
from recombee_cli.sinks.printer import DryRunPrinter
from recombee_cli.sources.reader import expand_inputs

DB = "once-db"
TOKEN = "once-secret-token-93c1"
RETRY = RetryPolicy(max_attempts=6, base_delay=0.002, max_delay=0.01, max_total=30)
CONFIG = """
[replay]
presets = true

[[mappings]]
name = "Account Deleted"
trigger = 'type = "track" and event = "Account Deleted"'
action = "deleteUser"
"""
START = datetime(2024, 3, 1, tzinfo=UTC)


class Killed(BaseException):
    """The simulated kill -9: nothing after it reaches the state file."""


class DyingStore(StateStore):
    """A state file whose process dies at its `writes_left`-th write (a journal record or a
    checkpoint): that write and every later one never happen."""

    writes_left: int | None = None

    def _maybe_die(self) -> None:
        cls = DyingStore
        if cls.writes_left is None:
            return
        cls.writes_left -= 1
        if cls.writes_left <= 0:
            cls.writes_left = 0
            raise Killed

    def record_answered(self, rows, solos):
        self._maybe_die()
        super().record_answered(rows, solos)

    def save_files(self, rows, prune):
        self._maybe_die()
        super().save_files(rows, prune)

    def finish_run(self, run_id, status, report):
        self._maybe_die()
        super().finish_run(run_id, status, report)


# -- archives ------------------------------------------------------------------------------------

PEOPLE = 4
PRODUCTS = ["p0", "p1", "p2"]

step = st.one_of(
    st.tuples(st.just("view"), st.integers(0, PEOPLE - 1), st.sampled_from(["anon", "user", "account"]),
              st.sampled_from(PRODUCTS)),
    st.tuples(st.just("wish"), st.integers(0, PEOPLE - 1), st.sampled_from(["anon", "user"]),
              st.sampled_from(PRODUCTS)),
    st.tuples(st.just("unwish"), st.integers(0, PEOPLE - 1), st.sampled_from(["anon", "user"]),
              st.sampled_from(PRODUCTS)),
    st.tuples(st.just("cart"), st.integers(0, PEOPLE - 1), st.sampled_from(["anon", "user"]),
              st.sampled_from(PRODUCTS)),
    st.tuples(st.just("uncart"), st.integers(0, PEOPLE - 1), st.sampled_from(["anon", "user"]),
              st.sampled_from(PRODUCTS)),
    st.tuples(st.just("order"), st.integers(0, PEOPLE - 1), st.sampled_from(["anon", "user"]),
              st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=4)),   # a product twice: one key
    st.tuples(st.just("alias"), st.integers(0, PEOPLE - 1), st.sampled_from(["anon", "user"]), st.none()),
    st.tuples(st.just("delete"), st.integers(0, PEOPLE - 1), st.sampled_from(["anon", "user", "account"]),
              st.none()),
    st.tuples(st.just("again"), st.integers(0, PEOPLE - 1), st.none(), st.none()),   # the same time again
)


def events_of(steps: list[tuple]) -> list[dict]:
    """Segment events of the steps. `alias` of an anon merges it into the user, of a user into its
    account (a chain); steps go on using every id afterwards, as real visitors do."""
    clock = START
    events = []
    for kind, person, who, what in steps:
        if kind != "again":
            clock += timedelta(seconds=1)
        stamp = clock.isoformat().replace("+00:00", "Z")
        ids = {"anon": f"anon-{person}", "user": f"user-{person}", "account": f"account-{person}"}
        if kind == "again":
            continue
        if kind == "alias":
            target = "user" if who == "anon" else "account"
            events.append({"type": "alias", "previousId": ids[who], "userId": ids[target], "timestamp": stamp})
            continue
        user = {"anonymousId": ids[who]} if who == "anon" else {"userId": ids[who]}
        if kind == "delete":
            events.append({"type": "track", "event": "Account Deleted", "userId": ids[who], "timestamp": stamp})
            continue
        name, props = {
            "view": ("Product Viewed", {"product_id": what}),
            "wish": ("Product Added to Wishlist", {"product_id": what}),
            "unwish": ("Product Removed from Wishlist", {"product_id": what}),
            "cart": ("Product Added", {"product_id": what, "price": 2, "quantity": 1}),
            "uncart": ("Product Removed", {"product_id": what}),
            "order": ("Order Completed", {"order_id": f"o{len(events)}", "products": [
                {"product_id": p, "price": 3, "quantity": n + 1} for n, p in enumerate(what or [])]}),
        }[kind]
        events.append({"type": "track", "event": name, **user, "properties": props, "timestamp": stamp})
    return events


# -- runs ------------------------------------------------------------------------------------------

def translator(tmp_path) -> Translator:
    path = tmp_path / "once.toml"
    path.write_text(CONFIG)
    return Translator(compile_config(load_config(str(path))))


def dry_run(archive: str, tmp_path) -> list[bytes]:
    printed = io.BytesIO()
    ReplaySession(translator(tmp_path), DryRunPrinter(printed)).run(expand_inputs([archive]))
    return printed.getvalue().splitlines()


def replay(emu: Emulator, archive: str, state: str, tmp_path, lanes: int) -> None:
    client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=lanes, timeout=10)
    sender = RecombeeSender(client, batch_size=3, concurrency=lanes, retry=RETRY, seed=1)
    session = ReplaySession(translator(tmp_path), sender, dry_run=False, state_path=state)
    try:
        session.run(expand_inputs([archive]))
    except Killed:
        sender.abort()
        if session.store is not None:   # the kernel lets go of a dead process's lock and files
            session.store.unlock()
            session.store.db.close()
    except ServiceError:   # malformed answers in a row stop a run (exit 3): the next one goes on
        pass
    finally:
        sender.abort()


def all_done(state: str) -> bool:
    store = StateStore(state)
    try:
        files = store.files()
        return bool(files) and all(f.done for f in files)
    finally:
        store.close()


@pytest.mark.parametrize("lanes", [1, 16])
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(steps=st.lists(step, min_size=5, max_size=40),
       kill_at=st.one_of(st.none(), st.integers(1, 30)),
       faults=st.sampled_from(["none", "sub_5xx", "429", "drop", "odd", "all"]),
       seed=st.integers(0, 1000))
def test_a_killed_and_resumed_replay_stores_what_one_in_order_stores(tmp_path, monkeypatch, lanes, steps, kill_at,
                                                                     faults, seed):
    events = events_of(steps)
    if not events:
        return
    work = Path(tempfile.mkdtemp(dir=tmp_path))   # (tmp_path is shared by hypothesis' examples)
    archive = work / "history.ndjson"
    archive.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    state = str(work / "state.sqlite")
    bodies = dry_run(str(archive), work)

    with Emulator(DB, TOKEN) as reference:
        client = RecombeeClient(DB, TOKEN, reference.base_uri, timeout=10)
        for body in bodies:   # one at a time, in input order
            assert client.batch([body])[0]["code"] < 500
        client.close()
        expected = reference.snapshot()

    chosen = {"none": Faults(), "sub_5xx": Faults(p_sub_5xx=0.2, seed=seed),
              "429": Faults(p_429=0.3, retry_after=0.01, seed=seed),
              "drop": Faults(p_drop=0.3, seed=seed), "odd": Faults(p_odd=0.2, seed=seed),
              "all": Faults(p_sub_5xx=0.1, p_429=0.1, retry_after=0.01, p_drop=0.1, p_odd=0.05, seed=seed)}[faults]
    with Emulator(DB, TOKEN, faults=chosen) as emu:
        monkeypatch.setattr(session_module, "StateStore", DyingStore)
        DyingStore.writes_left = kill_at
        try:
            replay(emu, str(archive), state, work, lanes)
        finally:
            DyingStore.writes_left = None
        monkeypatch.setattr(session_module, "StateStore", StateStore)
        emu.faults = Faults()
        for _ in range(6):   # resume until every file is done (each run delivers what is left)
            replay(emu, str(archive), state, work, lanes)
            if all_done(state):
                break
        assert all_done(state)
        got = emu.snapshot()
    assert got == expected
