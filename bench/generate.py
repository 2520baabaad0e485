"""Deterministic generator of realistic Segment exports (the archive shape Segment's S3 destination writes).

Envelope as Segment's pipeline archives it (messageId, context with library, originalTimestamp,
sentAt, receivedAt and the computed timestamp, projectId, channel, version); the Ecommerce v2 and
Video specs, page/screen, identify, group, alias and custom events; about 0.7 Recombee requests per
event under the built-in presets. Same seed, same bytes.

    python bench/generate.py 1000000 > events.ndjson
    python bench/generate.py 1000000 --gzip > events.ndjson.gz
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import uuid
from datetime import datetime, timedelta, timezone
from typing import Iterator

import orjson

START = datetime(2024, 3, 1, tzinfo=timezone.utc)
PAGES = ["home", "pricing", "catalog", "account", "cart", "checkout", "blog", "Home Page", "about", "help"]
SCREENS = ["Home", "ProductList", "ProductDetail", "Cart", "Profile", "Search"]
CUSTOM = ["Button Clicked", "Signed In", "Signed Up", "Products Searched", "Cart Viewed", "Checkout Started",
          "Coupon Applied", "Newsletter Subscribed", "Experiment Viewed", "Application Opened"]
CATEGORIES = ["Shoes", "Toys", "Sports", "Beauty", "Books", "Garden"]
AGENTS = ["Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"]

# (weight, kind) — tuned so the presets produce about 0.7 requests per event.
MIX = [(22, "Product Viewed"), (18, "page"), (9, "Video Content Playing"), (7, "Product Added"),
       (6, "screen"), (6, "identify"), (3.5, "Order Completed"), (2.5, "Product Added to Wishlist"),
       (2, "Product Removed"), (2, "Video Playback Started"), (1.7, "Video Playback Completed"),
       (1.7, "Video Playback Paused"), (1.2, "alias"), (1.2, "Product Shared"),
       (1.0, "Product Removed from Wishlist"), (1.0, "group"), (14, "custom")]
_KINDS = [k for _, k in MIX]
_WEIGHTS = [w for w, _ in MIX]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _User:
    __slots__ = ("anonymous_id", "user_id", "aliased", "wishlist", "cart")

    def __init__(self, rng: random.Random, n: int):
        self.anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.user_id = f"user-{n}" if rng.random() < 0.6 else None
        self.aliased = False
        self.wishlist: list[tuple[str, str]] = []
        self.cart: list[str] = []


def events(count: int, seed: int = 7, users: int = 5000, products: int = 3000) -> Iterator[dict]:
    rng = random.Random(seed)
    people = [_User(rng, n) for n in range(users)]
    product_ids = [f"p-{rng.randrange(10**6):06d}" for _ in range(products)]
    videos = [f"vid_{rng.randrange(10**9):09d}" for _ in range(products // 3)]
    clock = START
    for n in range(count):
        clock += timedelta(milliseconds=rng.randint(5, 4000))
        user = rng.choice(people)
        kind = rng.choices(_KINDS, _WEIGHTS)[0]
        sent = clock + timedelta(milliseconds=rng.randint(20, 3000))
        received = sent + timedelta(milliseconds=rng.randint(5, 900))
        event: dict = {
            "integrations": {},
            "anonymousId": user.anonymous_id,
            "userId": user.user_id,
            "context": {"ip": f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                        "locale": rng.choice(["en-US", "cs-CZ", "de-DE", "fr-FR"]),
                        "userAgent": rng.choice(AGENTS),
                        "library": {"name": "analytics-python", "version": "2.4.0"}},
            "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "timestamp": _iso(clock),
            "originalTimestamp": _iso(clock - timedelta(milliseconds=rng.randint(0, 500))),
            "sentAt": _iso(sent), "receivedAt": _iso(received),
            "projectId": "Vh8K2mQp4e", "channel": "server", "version": 2,
        }
        product = rng.choice(product_ids)
        if kind == "page":
            name = rng.choice(PAGES)
            event.update(type="page", name=name,
                         properties={"name": name, "path": f"/{name.lower().replace(' ', '-')}",
                                     "title": f"Acme - {name}", "url": f"https://acme.example/{name}"})
        elif kind == "screen":
            event.update(type="screen", name=rng.choice(SCREENS), properties={})
        elif kind == "identify":
            event.update(type="identify", traits={"email": f"{user.user_id or 'anon'}@example.com",
                                                  "plan": rng.choice(["free", "pro"])})
        elif kind == "group":
            event.update(type="group", groupId=f"g-{rng.randrange(100)}", traits={"name": "Acme Corp"})
        elif kind == "alias":
            if user.user_id is None or user.aliased:
                user.user_id = user.user_id or f"user-x{n}"
            event.update(type="alias", previousId=user.anonymous_id, userId=user.user_id)
            user.aliased = True
        elif kind == "custom":
            event.update(type="track", event=rng.choice(CUSTOM), properties={"value": rng.randint(1, 9)})
        elif kind.startswith("Video"):
            video = rng.choice(videos)
            total = rng.randint(60, 3600)
            props = {"session": f"s{rng.randrange(10**8)}", "content_asset_id": video, "total_length": total,
                     "position": rng.randint(0, total), "video_player": "jwplayer", "sound": rng.randint(0, 100),
                     "full_screen": rng.random() < 0.3, "bitrate": 3000, "livestream": False}
            if kind == "Video Playback Started" and rng.random() < 0.3:
                del props["content_asset_id"]
                props["content_asset_ids"] = [video]
            event.update(type="track", event=kind, properties=props)
        elif kind == "Order Completed":
            lines = [{"product_id": rng.choice(product_ids), "sku": f"SKU-{rng.randrange(10**5)}",
                      "category": rng.choice(CATEGORIES), "price": round(rng.uniform(3, 400), 2),
                      "quantity": rng.randint(1, 3)} for _ in range(rng.randint(1, 4))]
            event.update(type="track", event=kind,
                         properties={"order_id": f"ORD-{n}", "revenue": round(sum(l["price"] for l in lines), 2),
                                     "currency": "USD", "products": lines})
        else:
            props = {"product_id": product, "sku": f"SKU-{rng.randrange(10**5)}", "category": rng.choice(CATEGORIES),
                     "name": "Widget", "price": round(rng.uniform(3, 400), 2), "quantity": rng.randint(1, 3)}
            if kind == "Product Added to Wishlist":
                user.wishlist.append((product, _iso(clock)))
            elif kind == "Product Removed from Wishlist" and user.wishlist:
                product, added = user.wishlist.pop(rng.randrange(len(user.wishlist)))
                props["product_id"] = product
                props["timestamp"] = added   # deletes exactly the bookmark added then
            elif kind == "Product Added":
                user.cart.append(product)
            elif kind == "Product Removed" and user.cart:
                props["product_id"] = user.cart.pop()
            event.update(type="track", event=kind, properties=props)
        yield event


def write(count: int, out, seed: int = 7) -> None:
    buffer = []
    for event in events(count, seed):
        buffer.append(orjson.dumps(event))
        if len(buffer) >= 4096:
            out.write(b"\n".join(buffer) + b"\n")
            buffer = []
    if buffer:
        out.write(b"\n".join(buffer) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    out = sys.stdout.buffer
    if args.gzip:
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6) as gz:
            write(args.count, gz, args.seed)
    else:
        write(args.count, out, args.seed)


if __name__ == "__main__":
    main()
