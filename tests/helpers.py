"""Shared test helpers: running the CLI with CliRunner and reading its output."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import random
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from click.testing import CliRunner

from recombee_cli.cli.main import Environment, main
from recombee_cli.recombee.client import RetryPolicy

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT / "tests" / "conformance"
DATA = ROOT / "tests" / "data"
SAMPLES = ROOT / "sample_events"                      # good events only: the first README command exits 0
MISTAKES = ROOT / "sample_events_with_mistakes"       # the same exports with bad lines left in, on purpose

sys.path.insert(0, str(ROOT))
from bench.generate import events as generate  # noqa: E402


def load_json(name: str):
    return json.loads((CONFORMANCE / name).read_text())


def invoke(args: list[str], *, input: bytes | str | None = None, env: dict | None = None, **extra):
    """Run the CLI in-process; returns click's Result (stdout and stderr kept apart). `extra` goes
    to click's main() (e.g. prog_name="recombee-cli", as the installed script is called)."""
    runner = CliRunner()
    environ = dict(env or {})
    return runner.invoke(main, args, input=input, env=environ, obj=Environment(environ=environ),
                         catch_exceptions=False, **extra)


def ndjson(text: str) -> list:
    # JSON lines end at "\n" only: str.splitlines also cuts at U+0085 and U+2028, which a JSON
    # string holds as it is (a rejected value, a reason quoting it)
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def bounded(fn, seconds: float):
    """fn() in a thread: its result or its exception, or a failure if it still runs after
    `seconds` (the old code retried, or read a trickle, for minutes)."""
    box: dict = {}

    def work():
        try:
            box["result"] = fn()
        except BaseException as exc:   # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["result"]


# Shared by the tests of several folders: archives of generated events, the state as another
# process reads it, bounded waits, and a visitor history with merges (the sender's order tests).

def write_gz(path, events) -> str:
    with gzip.open(path, "wb") as fh:
        fh.write(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return str(path)


def write_archive(folder, files: int, per_file: int, seed: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    stream = generate(files * per_file, seed=seed)
    return [write_gz(folder / f"part-{n:04d}.gz", [next(stream) for _ in range(per_file)])
            for n in range(files)]


def saved_progress(state) -> tuple:
    """What the state file says is acknowledged, read as another process would (WAL allows it)."""
    import sqlite3

    if not state.exists():
        return ()
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
    try:
        return tuple(db.execute("SELECT path, offset, done FROM files WHERE offset > 0 OR done ORDER BY path"))
    except sqlite3.OperationalError:   # not created yet
        return ()
    finally:
        db.close()


def wait_for(predicate, seconds: float = 60.0) -> bool:
    """Poll a condition, bounded in time: tests wait for what they need, never for a fixed time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def open_fifo_when_read(fifo: Path, proc, seconds: float = 120.0) -> int | None:
    """The write end of `fifo` (a producer that stays open until the test closes it) once `proc`
    has opened it to read, bounded in time; None when the process ended first or never read it."""
    fds: list[int] = []

    def reading() -> bool:
        try:
            fds.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:   # nobody reads it yet
            return proc.poll() is not None
        return True

    wait_for(reading, seconds)
    return fds[0] if fds else None


def export_events(path: Path) -> list[dict]:
    """The event objects of a gzip NDJSON export, its undecodable lines and non-objects left out."""
    out = []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
    return out


RETRY = RetryPolicy(max_attempts=40, base_delay=0.005, max_delay=0.05, max_total=120)


def history(count: int, seed: int, people: int = 60, products: int = 40) -> list[dict]:
    """Segment events of `people` visitors: each browses as `anon-N` until an alias merges it
    into `user-N`; afterwards most events carry the user id, some only the old anonymous id
    (which Recombee then knows as a new, separate user), and aliases repeat."""
    rng = random.Random(seed)
    clock = datetime(2024, 3, 1, tzinfo=UTC)
    merged: set[int] = set()
    events = []
    for _ in range(count):
        clock += timedelta(milliseconds=rng.randint(1, 2000))
        stamp = clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{clock.microsecond // 1000:03d}Z"
        person = rng.randrange(people)
        anon, known = f"anon-{person}", f"user-{person}"
        roll = rng.random()
        if roll < 0.03:
            events.append({"type": "alias", "previousId": anon, "userId": known, "timestamp": stamp})
            merged.add(person)
            continue
        who = {"anonymousId": anon}
        if person in merged and rng.random() < 0.6:
            who["userId"] = known
        product = f"p{rng.randrange(products)}"
        if roll < 0.45:
            event = {"event": "Product Viewed", "properties": {"product_id": product}}
        elif roll < 0.65:
            event = {"event": "Product Added to Wishlist", "properties": {"product_id": product}}
        elif roll < 0.8:   # a delete of that exact bookmark (Segment deletes use properties.timestamp)
            event = {"event": "Product Removed from Wishlist", "properties": {"product_id": product}}
        elif roll < 0.9:
            event = {"event": "Product Added", "properties": {"product_id": product, "price": 3}}
        else:              # no timestamp in properties: every cart addition of the pair goes
            event = {"event": "Product Removed", "properties": {"product_id": product}}
        events.append({"type": "track", **event, **who, "timestamp": stamp})
    return events


def pure_module(module):
    """`module`'s .py loaded as it is, beside the module the build runs (compiled, or the same .py
    in the pure build): the reference a compiled module is checked against."""
    path = Path(module.__file__).with_name(module.__name__.rsplit(".", 1)[-1] + ".py")
    spec = importlib.util.spec_from_file_location(module.__name__.rsplit(".", 1)[-1] + "_pure", path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded
