"""The client's own cost per request: recombee-cli's sender against a minimal sequential sender.

Both send the same request objects (an NDJSON file of them, as `replay --dry-run` prints) to the
same Recombee (the local emulator, in another process) in Batches of `--batch-size`, and each
prints the CPU time its process spent sending them — serialising, signing, the HTTP calls,
reading and classifying the answers — without the time to read the file, to import either
side's modules or to enter the sender's garbage-collector tuning (once a run, not per request):

    python bench/client_path.py minimal --base-uri http://127.0.0.1:8910 requests.ndjson
    python bench/client_path.py sender --base-uri http://127.0.0.1:8910 requests.ndjson

`minimal` is the least a correct client does: one request after another, `orjson.dumps` each,
the body joined by hand, signed, posted with httpx, the answer parsed and each code counted. It
keeps no order across lanes, retries nothing and records nothing. `threads` is the same work on
as many threads as the sender has lanes (16), each with its own connection: a reference for what
having that many calls in flight costs by itself, before any ordering (not a target). `sender`
is recombee-cli's `RecombeeSender` with its defaults, fed chunks of 1,000 requests as the
translate stage hands them on (serialised, joined, each request's route noted): it orders
merges, keeps duplicate keys apart, retries, and checks every answer.
Prints one JSON line: mode, requests, calls, cpu_seconds, us_per_request.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _bodies(requests: list[dict], size: int) -> Iterator[bytes]:
    """Each Batch's body, joined by hand: what the least a client does."""
    for start in range(0, len(requests), size):
        yield b'{"requests":[' + b",".join(orjson.dumps(r) for r in requests[start:start + size]) + b"]}"


def _post(http: Any, body: bytes, base_uri: str, database: str, token: str) -> Counter:
    """One Batch signed and posted; its answer's codes, counted."""
    from recombee_cli.recombee.signing import sign

    url = base_uri + sign(database, "/batch/", token, time.time())
    return Counter(result["code"] for result in orjson.loads(http.post(url, content=body).content))


# The TLS context of the minimal sender's connections (plain http here: it is never used). httpx's
# default loads the CA bundle for every Client, 37 ms of CPU: that is start-up, not per request, and
# for the 16 Clients of `threads` it was 0.6 s, most of what that row measured (5.5 us a request
# against 2.0 with one context shared, as RecombeeClient shares its own). Made in main, not measured.
_TLS: Any = None


def _plain_client() -> Any:
    import httpx  # (imported before the CPU is measured: see main)

    return httpx.Client(headers={"Content-Type": "application/json"}, verify=_TLS)


def minimal(requests: list[dict], base_uri: str, database: str, token: str, size: int) -> tuple[int, Counter]:
    codes: Counter = Counter()
    calls = 0
    with _plain_client() as http:
        for body in _bodies(requests, size):
            codes.update(_post(http, body, base_uri, database, token))
            calls += 1
    return calls, codes


def threads(requests: list[dict], base_uri: str, database: str, token: str, size: int) -> tuple[int, Counter]:
    import queue
    import threading

    from recombee_cli.recombee.batching import DEFAULT_CONCURRENCY

    codes: Counter = Counter()
    calls = [0]
    lock = threading.Lock()
    bodies: queue.Queue[bytes | None] = queue.Queue(maxsize=2 * DEFAULT_CONCURRENCY)

    def lane() -> None:
        with _plain_client() as http:
            while (body := bodies.get()) is not None:
                counted = _post(http, body, base_uri, database, token)
                with lock:
                    codes.update(counted)
                    calls[0] += 1

    lanes = [threading.Thread(target=lane) for _ in range(DEFAULT_CONCURRENCY)]
    for one in lanes:
        one.start()
    for body in _bodies(requests, size):
        bodies.put(body)
    for _ in lanes:
        bodies.put(None)
    for one in lanes:
        one.join()
    return calls[0], codes


def sender(requests: list[dict], base_uri: str, database: str, token: str, size: int) -> tuple[int, Counter]:
    """(Run inside `collector_for_streaming`, as a replay runs: see main.)"""
    from recombee_cli.recombee.client import RecombeeClient
    from recombee_cli.recombee.sender import RecombeeSender

    client = RecombeeClient(database, token, base_uri)
    sink = RecombeeSender(client, batch_size=size)
    codes: Counter = Counter()
    return _send(requests, sink, size, codes)


def _send(requests: list[dict], sink, size: int, codes: Counter) -> tuple[int, Counter]:
    from array import array

    from recombee_cli.request_kinds import route, sid
    from recombee_cli.sinks.protocol import ChunkTicket
    from recombee_cli.sources.reader import Block

    # Each chunk's spans (which event's requests are which: the recorder's, never read by a
    # sender), made once per chunk length: until the fourteenth round this loop made them for every
    # chunk, in Python, 0.16 us a request of the sender's row that no sender spends.
    spans_of: dict[int, array] = {}
    try:
        for start in range(0, len(requests), 1000):   # a chunk: one event a line, one request an event
            chunk = requests[start:start + 1000]
            blob = b"\n".join([orjson.dumps(r) for r in chunk])
            routes = [route(r, sid(k, 0, 0)) for k, r in enumerate(chunk)]
            spans = spans_of.get(len(chunk))
            if spans is None:
                spans = spans_of[len(chunk)] = array("l", [n for k in range(len(chunk)) for n in (k, 0, k, k + 1)])
            block = Block("requests", start + 1, 0, data=blob)
            sink.submit(ChunkTicket(block, blob, spans, None, routes))
            for ticket in sink.poll():
                codes.update(ticket.codes)
        for ticket in sink.close():
            codes.update(ticket.codes)
    finally:
        sink.abort()
    return sink.counters()["batches"], codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["minimal", "threads", "sender"])
    parser.add_argument("requests", help="NDJSON of request objects (replay --dry-run's output)")
    parser.add_argument("--base-uri", required=True)
    parser.add_argument("--database-id", default="bench")
    parser.add_argument("--token", default="bench-token")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    with open(args.requests, "rb") as fh:
        requests = [orjson.loads(line) for line in fh if line.strip()]
    # The requests read are the benchmark's, not either sender's: out of the collector's walks (a
    # replay's own collection at its start would otherwise walk all of them, a quarter of its CPU).
    # Start-up is not per request (it has its own target, bench/run.py's start-up row): each side's
    # modules are imported before its CPU is measured.
    if args.mode in ("minimal", "threads"):
        import ssl

        import httpx  # noqa: F401

        global _TLS
        _TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

        import recombee_cli.recombee.batching  # noqa: F401
        import recombee_cli.recombee.signing  # noqa: F401
    else:
        import recombee_cli.pipeline.replay
        import recombee_cli.recombee.client
        import recombee_cli.recombee.sender
        import recombee_cli.request_kinds
        import recombee_cli.sinks.protocol
        import recombee_cli.sources.reader  # noqa: F401
    gc.collect()
    gc.freeze()
    with contextlib.ExitStack() as stack:
        if args.mode == "sender":
            # As a replay runs: the collector tuned for a long stream. Entered before the CPU is
            # measured, as it is once a run: entering it counts the frozen objects
            # (gc.get_freeze_count walks them all), which here are the benchmark's 800k requests
            # read above (0.24 s), not anything a replay holds.
            stack.enter_context(recombee_cli.pipeline.replay.collector_for_streaming())
        before = cpu()
        send = {"minimal": minimal, "threads": threads, "sender": sender}[args.mode]
        calls, codes = send(requests, args.base_uri, args.database_id, args.token, args.batch_size)
        spent = cpu() - before
    if sum(codes.values()) != len(requests) or any(code >= 400 and code != 409 for code in codes):
        sys.exit(f"not every request was accepted: {dict(codes)}")
    print(json.dumps({"mode": args.mode, "requests": len(requests), "calls": calls,
                      "cpu_seconds": round(spent, 3), "us_per_request": round(spent / len(requests) * 1e6, 2)}))


if __name__ == "__main__":
    main()
