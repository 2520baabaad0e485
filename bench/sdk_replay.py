"""The baseline: the replay script a user would write with the official Recombee SDK.

Read NDJSON (plain or gzip), ``json.loads`` each line, build the SDK request objects that the
built-in presets (Segment's Recombee (Actions) destination) would produce, and send them in
``Batch``es of 1000, one after the other, with the SDK's own client (package
``recombee-api-client``, module ``recombee_api_client``). No validation, no retries, no concurrency:
straightforward on purpose.

    RECOMBEE_PRIVATE_TOKEN=... python bench/sdk_replay.py --base-uri 127.0.0.1:8910 --database-id db events.ndjson
    python bench/sdk_replay.py --emulator events.ndjson        # starts a local emulator (fast mode) itself
    python bench/sdk_replay.py --build-only events.ndjson      # build the objects, send nothing

Prints one JSON line: events, requests built, batches sent, per-request codes, seconds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from collections import Counter

from recombee_api_client.api_client import RecombeeClient
from recombee_api_client.api_requests import (
    AddBookmark,
    AddCartAddition,
    AddDetailView,
    AddPurchase,
    Batch,
    DeleteBookmark,
    DeleteCartAddition,
    MergeUsers,
    SetViewPortion,
)

BOOKMARK_EVENTS = ("Product Added to Wishlist", "Product Shared")
VIEW_PORTION_EVENTS = ("Video Playback Started", "Video Content Playing", "Video Playback Paused",
                       "Video Playback Completed")


def open_input(path: str):
    if path == "-":
        return sys.stdin.buffer
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def requests_for(event: dict) -> list:
    """The SDK requests the presets would make for one event (empty list: no preset matches)."""
    kind = event.get("type")
    user = event.get("userId") or event.get("anonymousId")
    props = event.get("properties") or {}
    name = event.get("event") if kind == "track" else event.get("name")
    timestamp = props.get("timestamp") or event.get("timestamp")
    common = {"timestamp": timestamp, "cascade_create": True,
              "additional_data": {"segmentEventType": kind, "segmentEventName": name}}
    if props.get("recomm_id"):
        common["recomm_id"] = props["recomm_id"]

    if kind in ("page", "screen"):
        return [AddDetailView(user, event.get("name"), **common)]
    if kind == "alias":
        return [MergeUsers(event.get("userId"), event.get("previousId"), cascade_create=True)]
    if kind != "track":
        return []
    product = props.get("product_id") or props.get("sku")
    if name == "Product Viewed":
        return [AddDetailView(user, product, **common)]
    if name == "Product Added":
        amount = props.get("quantity") or 1
        return [AddCartAddition(user, product, amount=amount, price=(props.get("price") or 0) * amount, **common)]
    if name == "Product Removed":
        return [DeleteCartAddition(user, product, **_delete_timestamp(props))]
    if name == "Order Completed":
        purchases = []
        for line in props.get("products") or []:
            amount = line.get("quantity") or 1
            purchases.append(AddPurchase(user, line.get("product_id") or line.get("sku"), amount=amount,
                                         price=(line.get("price") or 0) * amount, **common))
        return purchases
    if name in BOOKMARK_EVENTS:
        return [AddBookmark(user, product, **common)]
    if name == "Product Removed from Wishlist":
        return [DeleteBookmark(user, product, **_delete_timestamp(props))]
    if name in VIEW_PORTION_EVENTS:
        video = props.get("content_asset_id") or (props.get("content_asset_ids") or [None])[0]
        if name == "Video Playback Started":
            portion = 0
        elif name == "Video Playback Completed":
            portion = 1
        else:
            portion = min(1.0, props.get("position", 0) / props["total_length"]) if props.get("total_length") else 0
        return [SetViewPortion(user, video, portion, session_id=props.get("session"), **common)]
    return []


def _delete_timestamp(props: dict) -> dict:
    return {"timestamp": props["timestamp"]} if props.get("timestamp") else {}


def replay(paths: list[str], client: RecombeeClient | None, batch_size: int) -> dict:
    events = built = batches = 0
    codes: Counter = Counter()
    pending: list = []

    def flush() -> None:
        nonlocal batches
        batch = Batch(pending)
        # Batch() sets ensure_https=True, so the SDK would use https whatever `protocol` says;
        # the local emulator speaks plain http, hence:
        batch.ensure_https = False
        if client is not None:
            for answer in client.send(batch):
                codes[answer["code"]] += 1
        batches += 1
        pending.clear()

    for path in paths:
        with open_input(path) as lines:
            for line in lines:
                if not line.strip():
                    continue
                events += 1
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(event, dict):
                    continue
                for request in requests_for(event):
                    pending.append(request)
                    built += 1
                    if len(pending) >= batch_size:
                        flush()
    if pending:
        flush()
    return {"events": events, "requests": built, "batches": batches,
            "codes": {str(code): n for code, n in sorted(codes.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="NDJSON files (plain or gzip), or - for stdin")
    parser.add_argument("--base-uri", help="host:port of the API (the SDK's options['base_uri'])")
    parser.add_argument("--database-id", default="bench")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--emulator", action="store_true", help="start a local emulator (fast mode) and send to it")
    parser.add_argument("--latency", type=float, default=0.0, help="with --emulator: ms of latency per call")
    parser.add_argument("--build-only", action="store_true", help="build the request objects, send nothing")
    args = parser.parse_args()

    start = time.perf_counter()
    if args.build_only:
        result = replay(args.inputs, None, args.batch_size)
    elif args.emulator:
        from recombee_cli.recombee.emulator import Emulator
        with Emulator(args.database_id, "bench-token", fast=True, latency=args.latency) as emu:
            client = RecombeeClient(args.database_id, "bench-token", protocol="http",
                                    options={"base_uri": emu.host_port})
            result = replay(args.inputs, client, args.batch_size)
            result["emulator_sub_requests"] = emu.stats.sub_requests
    else:
        if not args.base_uri:
            parser.error("--base-uri (or --emulator, or --build-only) is required")
        token = os.environ.get("RECOMBEE_PRIVATE_TOKEN")
        if not token:
            parser.error("RECOMBEE_PRIVATE_TOKEN is not set")
        client = RecombeeClient(args.database_id, token, protocol="http", options={"base_uri": args.base_uri})
        result = replay(args.inputs, client, args.batch_size)
    result["seconds"] = time.perf_counter() - start
    print(json.dumps(result))


if __name__ == "__main__":
    main()
