"""Order across retries, merges and lanes: with requests failing 5xx inside Batches (and replies
lost after the work was done), the emulator's final store is the one of a clean run, at
concurrency 1 and 4. The history has per-user adds and deletes, merges (Segment `alias`: anonymous
id -> user id), an anonymous id used again after its merge, and a merge repeated.

Everything on 127.0.0.1 with real sockets and signatures; the emulator's fault dice are seeded."""

from __future__ import annotations

import random
from types import SimpleNamespace

import orjson
import pytest
from helpers import RETRY, history

import recombee_cli.recombee.items as item_module
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config
from recombee_cli.mapping.translate import Translator
from recombee_cli.pipeline.replay import run
from recombee_cli.recombee.batching import SendQueue
from recombee_cli.recombee.client import RecombeeClient
from recombee_cli.recombee.emulator import Emulator, Faults
from recombee_cli.recombee.items import Item, mark_gone_sources
from recombee_cli.recombee.sender import RecombeeSender
from recombee_cli.record.recorder import Recorder
from recombee_cli.record.report import RunReport
from recombee_cli.request_kinds import KEY_OF_PART, LENIENT, REMOVES, SOLO, SOURCE_GONE
from recombee_cli.sinks.protocol import EventTicket as Ticket
from recombee_cli.sources.reader import Line, expand_inputs

DB = "order-db"
TOKEN = "order-secret-token-5b20"
@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    events = history(4_000, seed=9)
    aliases = [e for e in events if e["type"] == "alias"]
    merged_at = {}
    reused = 0
    for n, event in enumerate(events):   # the history has what the test is about
        if event["type"] == "alias":
            merged_at.setdefault(event["previousId"], n)
        elif "userId" not in event and event["anonymousId"] in merged_at:
            reused += 1
    assert len(aliases) > 80 and len(merged_at) < len(aliases) and reused > 100
    path = tmp_path_factory.mktemp("order") / "history.ndjson"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return str(path)


def replay(emu: Emulator, path: str, *, concurrency: int, batch_size: int = 100) -> RunReport:
    client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=concurrency, timeout=10)
    sender = RecombeeSender(client, batch_size=batch_size, concurrency=concurrency, retry=RETRY, seed=1)
    report = RunReport()
    try:
        run(expand_inputs([path]), Translator(compile_config(Config())), sender, recorder=Recorder(report, None))
    finally:
        sender.abort()
    return report


@pytest.fixture(scope="module")
def clean_store(archive):
    with Emulator(DB, TOKEN) as emu:
        report = replay(emu, archive, concurrency=1)
        store = emu.snapshot()
    assert report.outcomes["failed"] == 0
    assert len(store["detailviews"]) > 1000 and store["bookmarks"] and store["cartadditions"]
    assert any(user.startswith("anon-") for user, *_ in store["detailviews"])   # re-used after a merge
    return store


@pytest.mark.parametrize("concurrency", [1, 4])
def test_per_request_5xx_with_merges_store_what_a_clean_run_stores(archive, clean_store, concurrency):
    """The old sender re-sent a merge that had been applied, because an earlier request of its
    users in the same Batch failed: the merge moved again what the old anonymous id had been
    given after it, so views and bookmarks landed on the wrong user."""
    with Emulator(DB, TOKEN, faults=Faults(p_sub_5xx=0.1, seed=17)) as emu:
        report = replay(emu, archive, concurrency=concurrency)
        store = emu.snapshot()
        assert emu.stats.faults["sub_5xx"] > 200
    assert report.outcomes["failed"] == 0
    assert store == clean_store


def _view(user: str, item: str) -> dict:
    return {"method": "POST", "path": "/detailviews/",
            "params": {"userId": user, "itemId": item, "timestamp": 1, "cascadeCreate": True}}


def _merge(target: str, source: str) -> dict:
    return {"method": "PUT", "path": f"/users/{target}/merge/{source}", "params": {"cascadeCreate": True}}


def _send_in_one_ticket(emu: Emulator, before: list[dict], requests: list[dict], faults: Faults) -> Ticket:
    """`before` applied cleanly, then `requests` sent by a sender through `faults`, one ticket."""
    client = RecombeeClient(DB, TOKEN, emu.base_uri, concurrency=1, timeout=10)
    assert [r["code"] for r in client.batch([orjson.dumps(r) for r in before])] == [200] * len(before)
    emu.faults = faults
    sender = RecombeeSender(client, batch_size=10, concurrency=1, retry=RETRY)
    ticket = Ticket(Line("t", 1, 0, b""), None, requests)
    try:
        sender.submit(ticket)
        assert [id(t) for t in sender.close()] == [id(ticket)]
    finally:
        sender.abort()
    return ticket


def _views(emu: Emulator) -> list[tuple[str, str]]:
    return sorted(row[:2] for row in emu.snapshot()["detailviews"])


def test_a_request_failing_before_a_merge_in_the_same_batch_does_not_make_the_merge_run_twice():
    """user-1 absorbs anon-0, views p0, absorbs anon-1; then anon-1 comes back and views p2. The
    view of p0 fails (503) and the old sender re-sent it with everything after it of the same
    users, the merge of anon-1 included, which then took the new anon-1's view of p2 too."""
    with Emulator(DB, TOKEN) as emu:
        ticket = _send_in_one_ticket(
            emu, [_view("anon-0", "pa0"), _view("anon-1", "pa1")],
            [_merge("user-1", "anon-0"), _view("user-1", "p0"), _merge("user-1", "anon-1"), _view("anon-1", "p2")],
            Faults(p_sub_5xx=0.3, seed=22))   # with one Batch of four, the second request fails
        assert emu.stats.faults["sub_5xx"] >= 1
        views = _views(emu)
    assert views == [("anon-1", "p2"), ("user-1", "p0"), ("user-1", "pa0"), ("user-1", "pa1")]
    assert ticket.codes == [201, 200, 201, 200]


def test_a_lost_reply_does_not_make_a_merge_take_what_its_source_was_given_after_it():
    """The Batch is executed and its reply lost: it is sent again. The old sender sent the merge
    and the old anonymous id's next view in one Batch; sent again, the merge moved that view."""
    with Emulator(DB, TOKEN) as emu:
        ticket = _send_in_one_ticket(emu, [_view("anon-1", "p1")],
                                     [_merge("user-1", "anon-1"), _view("anon-1", "p2")],
                                     Faults(p_drop=1.0, limit=1))     # the first call: done, reply lost
        assert emu.stats.faults["drop"] == 1
        views = _views(emu)
    assert views == [("anon-1", "p2"), ("user-1", "p1")]
    assert ticket.codes == [409, 200]     # the merge again: its source is gone, already done


def _item(n: int, *users: str) -> Item:
    return Item(SimpleNamespace(n=n), n, b"", users, SOLO if len(users) > 1 else 0, None, n, 0.0)


def _gone_merge(n: int, target: str, source: str) -> Item:
    """A merge whose source was merged away before, with nothing of theirs since (SOURCE_GONE)."""
    return Item(SimpleNamespace(n=n), n, b"", (target, source), SOLO | SOURCE_GONE, None, n, 0.0)


def _ordered(a: Item, b: Item, user: str) -> bool:
    """Whether `a` and `b`, both of `user`, must take effect in input order: one takes the user whole
    (a merge whose source is gone takes its target as an interaction does: moving nothing, it
    commutes with the target's interactions), or both touch one part of theirs."""
    return _takes_whole(a, user) or _takes_whole(b, user) or (a.pair is not None and a.pair == b.pair)


def _takes_whole(item: Item, user: str) -> bool:
    return item.whole and user in item.wholes


def lane_batches(items: list[Item], size: int) -> list[list[Item]]:
    """The Batches one sender sends, one after another (each answered before the next is built)."""
    queue = SendQueue()
    queue.queue.extend(items)
    batches = []
    while queue.waiting():
        built = queue.build(size, frozenset())
        assert built.batch and not built.dropped
        queue.take(built)
        with queue.cond:
            queue.release(built)   # answered: its users may go again
        batches.append(built.batch)
    return batches


def test_batches_keep_each_users_order_and_keep_merges_apart():
    rng = random.Random(4)
    people = [f"u{k}" for k in range(12)]
    items = []
    for n in range(600):
        if rng.random() < 0.15:
            items.append(_item(n, *rng.sample(people, 2)))
        else:
            items.append(_item(n, rng.choice(people)))
    items.append(_item(600))                                   # a request of no user
    batches = lane_batches(items, 25)
    assert sorted(i.ticket.n for b in batches for i in b) == list(range(601))
    assert all(0 < len(b) <= 25 for b in batches)
    position = {i.ticket.n: (k, j) for k, b in enumerate(batches) for j, i in enumerate(b)}
    for user in people:   # sent one Batch after another: each user's requests in input order
        mine = [position[i.ticket.n] for i in items if user in i.users]
        assert mine == sorted(mine)
    for batch in batches:  # a merge's users have nothing else in its Batch
        for item in batch:
            if len(item.users) > 1:
                others = [i for i in batch if i is not item and set(i.users) & set(item.users)]
                assert others == [], (item, others)


def test_batches_pack_independent_merges_together():
    """Fifty visitors, each seen, merged, then seen again: three Batches (before, the merges,
    after), not a few per merge."""
    items = []
    for k in range(50):
        items += [_item(3 * k, f"a{k}"), _item(3 * k + 1, f"u{k}", f"a{k}"), _item(3 * k + 2, f"u{k}")]
    batches = lane_batches(items, 1000)
    assert [[i.ticket.n for i in b] for b in batches] == [list(range(r, 150, 3)) for r in range(3)]


def _interaction(n: int, user: str, item: str) -> Item:
    """An interaction of `user` with `item`: it touches that part of the user's history."""
    return Item(SimpleNamespace(n=n), n, b"", (user,), 0, None, n, 0.0, item)


def test_one_users_requests_for_other_items_go_while_a_batch_of_theirs_is_in_flight():
    """Lanes: what commutes is not held back. A user's views of other products go in the next
    Batch while the first is in flight; the same product again, and the user's merge, wait for it."""
    queue = SendQueue()
    queue.queue.extend([_interaction(0, "u", "p1"), _interaction(1, "v", "p1")])
    first = queue.build(2, frozenset())
    queue.take(first)                        # in flight, not answered yet
    queue.queue.extend([_interaction(2, "u", "p2"), _interaction(3, "u", "p1"), _interaction(4, "u", "p3"),
                        _item(5, "w", "u"), _interaction(6, "u", "p4"), _interaction(7, "w", "p9"), _interaction(8, "v", "p2")])
    second = queue.build(10, frozenset())
    # p2 and p3 commute with the view of p1 in flight; p1 again waits for it; the merge of w into u
    # waits for everything of u in flight, and what comes after it for u or w waits for the merge.
    assert [i.ticket.n for i in second.batch] == [2, 4, 8]
    queue.take(second)
    with queue.cond:
        queue.release(first)
    third = queue.build(10, frozenset())
    assert [i.ticket.n for i in third.batch] == [3]   # the merge still waits for u's second Batch
    queue.take(third)
    with queue.cond:
        queue.release(second)
        queue.release(third)
    fourth = queue.build(10, frozenset())
    assert [i.ticket.n for i in fourth.batch] == [5]   # alone: nothing else of its users beside it
    queue.take(fourth)
    with queue.cond:
        queue.release(fourth)
    assert [i.ticket.n for i in queue.build(10, frozenset()).batch] == [6, 7]


def test_batches_keep_each_items_order_per_user_across_lanes():
    """Many lanes in flight at once: per (user, item) the order of the Batches is the input's, and
    no two Batches in flight at the same time hold one user's requests for one item."""
    rng = random.Random(11)
    items = []
    for n in range(2_000):
        user, product = f"u{rng.randrange(30)}", f"p{rng.randrange(5)}"
        items.append(_item(n, user, f"u{rng.randrange(30)}") if rng.random() < 0.03 else _interaction(n, user, product))
    queue = SendQueue()
    queue.queue.extend(items)
    flying: list = []
    sent_at: dict[int, int] = {}
    step = 0
    while queue.waiting() or flying:
        built = queue.build(20, frozenset())
        if built.batch:
            queue.take(built)
            for item in built.batch:
                for other in (i for b in flying for i in b.batch):
                    if item.whole or other.whole:
                        assert set(other.users).isdisjoint(item.users), (item.ticket.n, other.ticket.n)
                    else:
                        assert other.pair != item.pair, (item.ticket.n, other.ticket.n)
                sent_at[item.ticket.n] = step
            flying.append(built)
        if len(flying) >= 6 or not built.batch:   # six lanes: the oldest Batch is answered
            with queue.cond:
                queue.release(flying.pop(0))
        step += 1
        assert step < 10_000
    assert sorted(sent_at) == list(range(2_000))
    for a in items:   # whatever does not commute went in input order
        for b in items[a.ticket.n + 1:a.ticket.n + 60]:
            shared = set(a.users) & set(b.users)
            if shared and (a.whole or b.whole or a.pair == b.pair):
                assert sent_at[a.ticket.n] <= sent_at[b.ticket.n], (a.ticket.n, b.ticket.n)


def test_requests_behind_a_merge_in_flight_are_parked_and_not_looked_at_again():
    """Far from Recombee thousands of requests wait for merges in flight. They wait beside the
    merge's users: the builds in between do not look at them again, and they come back, in input
    order and ahead of anything later of their users, when the merge is answered."""
    queue = SendQueue()
    queue.queue.extend([_item(0, "u", "a")])                 # a merge: takes both users whole
    merge = queue.build(10, frozenset())
    queue.take(merge)                                        # in flight
    later = [_interaction(n, "u" if n % 2 else "a", f"p{n}") for n in range(1, 501)]
    others = [_interaction(n, f"v{n}", "p") for n in range(501, 521)]
    queue.queue.extend(later + others)
    first = queue.build(1000, frozenset())
    assert [i.ticket.n for i in first.batch] == list(range(501, 521))
    queue.take(first)
    assert queue.parked_count == 500 and not queue.queue
    with queue.cond:
        queue.release(first)                                 # another user's answer: they still wait
    queue.queue.extend([_interaction(600, "w", "p"), _interaction(601, "u", "p-late")])
    second = queue.build(1000, frozenset())
    assert [i.ticket.n for i in second.batch] == [600]       # u's late view waits behind the parked ones
    assert second.scanned == 2 and second.ready_scanned == 0  # the 500 were not looked at
    queue.take(second)
    with queue.cond:
        queue.release(merge)
        queue.release(second)
    third = queue.build(1000, frozenset())
    assert [i.ticket.n for i in third.batch] == list(range(1, 501)) + [601]


def test_held_back_counts_each_request_that_waited_for_an_answer_once():
    """--report's `held_back`: the requests that waited for an answer about their user (what the
    distance to Recombee costs the ordering), each counted once, however often it was set aside."""
    queue = SendQueue()
    queue.queue.extend([_interaction(0, "u", "p1")])
    first = queue.build(10, frozenset())
    queue.take(first)                                       # u's view in flight
    queue.queue.extend([_item(1, "u", "a"), _interaction(2, "u", "p2"), _interaction(3, "v", "p")])
    second = queue.build(10, frozenset())
    assert [i.ticket.n for i in second.batch] == [3]
    queue.take(second)
    assert queue.held_back == 2                             # the merge waits for u's view, u's next view for it
    with queue.cond:
        queue.release(first)
        queue.release(second)
    third = queue.build(10, frozenset())
    assert [i.ticket.n for i in third.batch] == [1]         # the merge goes alone
    queue.take(third)
    queue.queue.extend([_interaction(4, "w", "p")])
    fourth = queue.build(10, frozenset())
    assert [i.ticket.n for i in fourth.batch] == [4]
    queue.take(fourth)
    assert queue.parked_count == 1                          # u's view waits again, now for the merge
    with queue.cond:
        queue.release(third)
        queue.release(fourth)
    fifth = queue.build(10, frozenset())
    assert [i.ticket.n for i in fifth.batch] == [2]
    assert queue.held_back == 2


def test_a_request_waiting_for_its_item_comes_back_with_that_items_answer_not_with_every_answer_of_its_user():
    """A view of an item whose earlier view is in flight waits for that Batch alone. It waited
    beside its user, and came back to be looked at (and set aside again) whenever any Batch of
    that user was answered: far from Recombee, an active user has many in flight."""
    queue = SendQueue()
    queue.queue.extend([_interaction(0, "u", "p1")])
    first = queue.build(1, frozenset())
    queue.take(first)                                       # u's view of p1 in flight
    queue.queue.extend([_interaction(1, "u", "p2")])
    second = queue.build(1, frozenset())
    queue.take(second)                                      # u's view of p2 in flight beside it
    queue.queue.extend([_interaction(2, "u", "p1"), _interaction(3, "v", "p")])
    third = queue.build(10, frozenset())
    assert [i.ticket.n for i in third.batch] == [3]
    queue.take(third)
    with queue.cond:
        queue.release(second)                               # u's other view answered
    assert queue.parked_count == 1 and not queue.ready      # p1 again still waits, unseen
    with queue.cond:
        queue.release(first)
    assert [i.ticket.n for i in queue.ready] == [2]
    assert [i.ticket.n for i in queue.build(10, frozenset()).batch] == [2]


def test_a_merge_waits_unseen_until_no_batch_of_its_user_is_in_flight():
    """A merge waits for every Batch in flight that holds its users, and what comes later for
    them waits behind it: they come back when the last of those Batches is answered, not at each
    one (to be set aside again, all of them, each time)."""
    queue = SendQueue()
    in_flight = []
    for n, product in enumerate(("p1", "p2", "p3")):        # three Batches of u's views, in flight
        queue.queue.extend([_interaction(n, "u", product)])
        built = queue.build(1, frozenset())
        queue.take(built)
        in_flight.append(built)
    queue.queue.extend([_item(3, "w", "u"), _interaction(4, "u", "p9"), _interaction(5, "w", "p9"),
                        _interaction(6, "v", "p")])
    other = queue.build(10, frozenset())
    assert [i.ticket.n for i in other.batch] == [6]          # the merge and what follows it wait
    queue.take(other)
    assert queue.parked_count == 3
    with queue.cond:
        queue.release(in_flight[2])
        queue.release(in_flight[0])
    assert queue.parked_count == 3 and not queue.ready       # u still has a Batch in flight
    with queue.cond:
        queue.release(in_flight[1])
    assert [i.ticket.n for i in queue.ready] == [3, 4, 5]
    assert [i.ticket.n for i in queue.build(10, frozenset()).batch] == [3]   # the merge, alone


def test_what_follows_a_merge_in_its_own_batch_waits_for_that_batch_unseen():
    """A merge goes alone among its users' requests: what follows it for them waits for its
    answer. It is set aside beside the merge's Batch when that Batch goes, not kept in the queue
    to be looked at by every build until the answer comes."""
    queue = SendQueue()
    queue.queue.extend([_item(0, "u", "w"), _interaction(1, "u", "p1"), _interaction(2, "w", "p2"),
                        _item(3, "w"), _interaction(4, "v", "p")])
    first = queue.build(10, frozenset())
    assert [i.ticket.n for i in first.batch] == [0, 4]
    queue.take(first)
    assert queue.parked_count == 3 and not queue.queue and not queue.ready
    queue.queue.extend([_interaction(5, "x", "p")])
    built = queue.build(10, frozenset())
    assert [i.ticket.n for i in built.batch] == [5] and built.ready_scanned == 0 and built.scanned == 1
    with queue.cond:
        queue.release(first)
    assert [i.ticket.n for i in queue.ready] == [1, 2, 3]
    assert [i.ticket.n for i in queue.build(10, frozenset()).batch] == [1, 2, 3, 5]


def test_requests_of_one_pair_share_a_batch_unless_they_share_a_duplicate_key():
    """Recombee keeps the first interaction of a (user, item, timestamp) and answers 409 to the
    next: two requests with one key never share a Batch. Views of one item at other times do."""
    def view(n: int, user: str, item: str, when: int) -> Item:
        return Item(SimpleNamespace(n=n), n, b"", (user,), KEY_OF_PART, ("/detailviews/", user, item, when), n,
                    0.0, item)

    queue = SendQueue()
    queue.queue.extend([view(0, "u", "p", 1), view(1, "u", "p", 2), view(2, "u", "p", 3), view(3, "u", "p", 2),
                        view(4, "v", "p", 1), view(5, "u", "q", 1)])
    first = queue.build(10, frozenset())
    assert [i.ticket.n for i in first.batch] == [0, 1, 2, 4, 5]   # the second view at time 2 waits
    queue.take(first)
    with queue.cond:
        queue.release(first)
    assert [i.ticket.n for i in queue.build(10, frozenset()).batch] == [3]


def test_what_is_put_while_a_sender_holds_the_queue_waits_in_order_for_the_next_holder():
    """While less than a Batch's worth may go, the thread that feeds the queue does not wait for
    its lock (a sender holds it for milliseconds while it builds a Batch far from Recombee, with
    thousands parked): what it puts meanwhile waits in input order, counted as waiting, and the
    next holder takes it in first."""
    queue = SendQueue()
    queue.put([_interaction(0, "u", "p")], 1.0, 10)
    assert [i.ticket.n for i in queue.queue] == [0]
    with queue.cond:                                          # a sender holds the lock
        queue.put([_interaction(1, "v", "p"), _interaction(2, "u", "p2")], 2.0, 10)   # no wait
        assert [i.ticket.n for i in queue.queue] == [0] and queue.waiting() == 3 and queue.last_put == 2.0
        queue.take_in()
    assert [i.ticket.n for i in queue.queue] == [0, 1, 2] and not queue.inbox
    queue.put([_interaction(3, "w", "p")], 3.0, 10)           # the lock free again: straight in
    assert [i.ticket.n for i in queue.queue] == [0, 1, 2, 3]


def test_parked_requests_keep_input_order_whatever_order_the_answers_come_in():
    """Many lanes, answers in any order (the slowest call is not always the oldest): per user,
    what does not commute goes in input order, never beside or while another Batch in flight
    holds it, and everything is sent once."""
    for seed in range(20):
        rng = random.Random(seed)
        people = [f"u{k}" for k in range(12)]
        items = []
        for n in range(800):
            roll = rng.random()
            if roll < 0.04:
                items.append(_item(n, *rng.sample(people, 2)))            # a merge
            elif roll < 0.06:
                items.append(_gone_merge(n, *rng.sample(people, 2)))      # ...of a source merged away before
            elif roll < 0.09:
                items.append(_item(n, rng.choice(people)))                 # a user's deletion, values
            else:
                items.append(_interaction(n, rng.choice(people), f"p{rng.randrange(4)}"))
        queue = SendQueue()
        flying: list = []
        sent_at: dict[int, int] = {}
        step = 0
        fed = 0
        while fed < len(items) or queue.waiting() or flying:
            if fed < len(items):   # the input comes in pieces, between the builds
                more = rng.randrange(1, 60)
                queue.queue.extend(items[fed:fed + more])
                fed += more
            built = queue.build(rng.randrange(1, 40), frozenset())
            if built.batch:
                queue.take(built)
                for item in built.batch:
                    for other in (i for b in flying for i in b.batch):
                        for user in set(other.users).intersection(item.users):
                            assert not _ordered(item, other, user), (seed, item.ticket.n, other.ticket.n)
                    sent_at[item.ticket.n] = step
                flying.append(built)
            if flying and (len(flying) >= 8 or not built.batch or rng.random() < 0.4):
                with queue.cond:
                    queue.release(flying.pop(rng.randrange(len(flying))))   # any of them answers
            step += 1
            assert step < 20_000, seed
        assert sorted(sent_at) == list(range(len(items))), seed
        assert queue.parked_count == 0 and not queue.ready and not queue.parked_some
        assert not queue.parked and not queue.parked_at and not queue.parked_parts   # nothing left behind
        for user in people:   # per user, in input order: what does not commute went in order
            mine = [i for i in items if user in i.users]
            for k, a in enumerate(mine):
                for b in mine[k + 1:]:
                    if _ordered(a, b, user):   # (a solo shares its Batch with nothing it takes whole)
                        assert sent_at[a.ticket.n] < sent_at[b.ticket.n] or (
                            sent_at[a.ticket.n] == sent_at[b.ticket.n]
                            and not (a.flags & SOLO and _takes_whole(a, user) or b.flags & SOLO and _takes_whole(b, user))
                        ), (seed, a.ticket.n, b.ticket.n)


def test_a_merge_whose_source_is_gone_does_not_hold_back_its_targets_interactions():
    """An alias sent again at every login: the second merge of anon-1 into u finds anon-1 gone
    (merged away by the first, nothing of theirs since) and moves nothing. u's views go beside it
    instead of waiting a round trip for it; what takes u whole (a deletion) still waits for it,
    and what comes later for anon-1 too."""
    queue = SendQueue()
    queue.queue.extend([_item(0, "u", "anon-1"), _interaction(1, "u", "p1"), _gone_merge(2, "u", "anon-1"),
                        _interaction(3, "u", "p2"), Item(SimpleNamespace(n=4), 4, b"", ("u",), SOLO, None, 4, 0.0),
                        _interaction(5, "anon-1", "p3")])
    first = queue.build(10, frozenset())
    assert [i.ticket.n for i in first.batch] == [0]            # the first merge: what follows waits for it
    queue.take(first)
    with queue.cond:
        queue.release(first)
    second = queue.build(10, frozenset())
    assert [i.ticket.n for i in second.batch] == [1, 2, 3]     # u's views beside the merge that moves nothing
    queue.take(second)
    with queue.cond:
        queue.release(second)
    assert [i.ticket.n for i in queue.build(10, frozenset()).batch] == [4, 5]


def test_merges_of_a_source_merged_away_and_unused_since_are_marked_in_input_order():
    merge = ((("u", "a"), SOLO | LENIENT | REMOVES, None, 0, None))
    view_of_a = (("a",), KEY_OF_PART, ("/detailviews/", "a", "p", 1), 1, "p")
    routes = [merge, merge, view_of_a, merge, merge, (("a",), SOLO | LENIENT | REMOVES, None, 5, None), merge]
    gone: dict[str, None] = {}
    mark_gone_sources(routes, gone)
    # the first merge moves a's history; the second finds a gone; a's view makes a again, so the
    # third moves it and the fourth finds a gone; a's deletion, and the merge after it moves nothing
    assert [bool(r[1] & SOURCE_GONE) for r in routes] == [False, True, False, False, True, False, True]
    assert list(gone) == ["a"]
    later: list = [((("a", "w"), SOLO | LENIENT | REMOVES, None, 7, None))]   # a merge INTO a makes a again
    mark_gone_sources(later, gone)
    assert list(gone) == ["w"] and not later[0][1] & SOURCE_GONE


def test_beyond_the_limit_the_oldest_half_of_the_gone_users_is_forgotten(monkeypatch):
    """Memory stays bounded: past GONE_LIMIT users, the older half is forgotten, and a later merge
    of one of them is ordered as any merge is (more order, never less)."""
    monkeypatch.setattr(item_module, "GONE_LIMIT", 4)
    gone: dict[str, None] = {}
    mark_gone_sources([((f"u{n}",), SOLO | LENIENT | REMOVES, None, n, None) for n in range(5)], gone)
    assert list(gone) == ["u2", "u3", "u4"]
    merges = [(("t", "u1"), SOLO | LENIENT | REMOVES, None, 5, None), (("t", "u3"), SOLO | LENIENT | REMOVES, None, 6, None)]
    mark_gone_sources(merges, gone)
    assert [bool(r[1] & SOURCE_GONE) for r in merges] == [False, True]
