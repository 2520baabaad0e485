"""Deterministic generator of realistic Segment exports (the archive shape Segment's S3 destination writes).

Two mixes, both about 0.8 Recombee requests per event under the built-in presets:

* ``server`` (default; its bytes are those of every earlier benchmark, so old figures compare): events
  from a server library (analytics-python): a small ``context`` (ip, locale, userAgent, library),
  ~745 bytes per event. Envelope as Segment's pipeline archives it (messageId, originalTimestamp,
  sentAt, receivedAt and the computed timestamp, projectId, channel, version); the Ecommerce v2 and
  Video specs, page/screen, identify, group, alias and custom events.
* ``browser``: the same kinds of events as analytics.js (analytics-next) sends them from a browser:
  ``context.page`` (path, referrer, search, title, url), ``userAgent`` and ``userAgentData``
  (brands, mobile, platform), ``campaign`` (UTM), ``library`` (analytics.js), ``locale``,
  ``timezone``, ``screen``, ``traits`` of identified users, ``instance_id``; ``_metadata``,
  ``writeKey`` and ``channel: client`` on the envelope; ``ajs-next-`` message ids; no ``screen``
  events (those come from the mobile libraries); Chromium browsers with the high-entropy client
  hints, a third of visitors from a campaign (UTM and gclid/fbclid in the URL), consent
  preferences. ~1.3 KB of ``context``, ~2.1 KB per event.

Same seed and mix, same bytes (``--gzip`` too: no file name, mtime 0).

    python bench/generate.py 1000000 > events.ndjson
    python bench/generate.py 1000000 --mix browser > browser.ndjson
    python bench/generate.py 1000000 --gzip > events.ndjson.gz
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson

START = datetime(2024, 3, 1, tzinfo=UTC)
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
MIXES = ("server", "browser")

# The browser mix: no screen events (analytics.js sends pages), the rest as in MIX.
BROWSER_MIX = [(w + 6 if k == "page" else w, k) for w, k in MIX if k != "screen"]
_BROWSER_KINDS = [k for _, k in BROWSER_MIX]
_BROWSER_WEIGHTS = [w for w, _ in BROWSER_MIX]
# (userAgent, userAgentData or None: Safari and Firefox do not implement it, so analytics.js sends none)
BROWSERS = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
     {"brands": [{"brand": "Chromium", "version": "124"}, {"brand": "Google Chrome", "version": "124"},
                 {"brand": "Not-A.Brand", "version": "99"}], "mobile": False, "platform": "Windows"}),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
     {"brands": [{"brand": "Chromium", "version": "124"}, {"brand": "Google Chrome", "version": "124"},
                 {"brand": "Not-A.Brand", "version": "99"}], "mobile": False, "platform": "macOS"}),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
     {"brands": [{"brand": "Chromium", "version": "124"}, {"brand": "Microsoft Edge", "version": "124"},
                 {"brand": "Not-A.Brand", "version": "99"}], "mobile": False, "platform": "Windows"}),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
     {"brands": [{"brand": "Chromium", "version": "124"}, {"brand": "Google Chrome", "version": "124"},
                 {"brand": "Not-A.Brand", "version": "99"}], "mobile": True, "platform": "Android"}),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
     None),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
     None),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", None),
]
_HIGH_ENTROPY = {"Windows": {"architecture": "x86", "bitness": "64", "model": "", "platformVersion": "15.0.0",
                             "wow64": False},
                 "macOS": {"architecture": "arm", "bitness": "64", "model": "", "platformVersion": "14.4.1",
                           "wow64": False},
                 "Android": {"architecture": "", "bitness": "", "model": "Pixel 7", "platformVersion": "14.0.0",
                             "wow64": False}}
for _agent, _data in BROWSERS:
    if _data is not None:
        _data.update(_HIGH_ENTROPY[_data["platform"]])
        _data["uaFullVersion"] = "124.0.6367.119"
        _data["fullVersionList"] = [{"brand": b["brand"], "version": "124.0.6367.119" if b["version"] == "124"
                                     else "99.0.0.0"} for b in _data["brands"]]
SCREEN_SIZES = [(1920, 1080, 1), (1440, 900, 2), (2560, 1440, 1), (390, 844, 3), (1536, 864, 1.25), (412, 915, 2.63)]
TIMEZONES = ["Europe/Prague", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Europe/Paris"]
REFERRERS = ["", "https://www.google.com/", "https://www.bing.com/", "https://www.facebook.com/",
             "https://duckduckgo.com/", "https://t.co/"]
CAMPAIGNS = [{"name": "spring_sale_2024", "source": "google", "medium": "cpc", "term": "running shoes",
              "content": "responsive-search-ad-3"},
             {"name": "newsletter_2024_03", "source": "newsletter", "medium": "email", "content": "hero-banner"},
             {"name": "retargeting_eu", "source": "facebook", "medium": "paid_social",
              "content": "carousel-v2"}]
CONSENT = ["Advertising", "Analytics", "Functional", "DataSharing", "Personalization", "SaleOfPersonalInfo"]
_CLICK_ID = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
WRITE_KEY = "p9Jk3LmQ2xZrT8vNc4Bw7Hd1Fs6Yg0Ea"
BUNDLED = ["Segment.io", "Actions Amplitude", "Google Analytics 4 Web", "Facebook Pixel"]
BUNDLED_IDS = ["60fb01aec459242d3b6f20c1", "62d9daff84a6d3ef7e16d2d5", "6441b6ba0e4bb5a7b8b8e1c9",
               "5570f4f9e2b6a2a0c0ecb3cb"]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _User:
    __slots__ = ("anonymous_id", "user_id", "aliased", "wishlist", "cart", "browser")

    def __init__(self, rng: random.Random, n: int):
        self.anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.user_id = f"user-{n}" if rng.random() < 0.6 else None
        self.aliased = False
        self.wishlist: list[tuple[str, str]] = []
        self.cart: list[str] = []
        self.browser: dict | None = None     # browser mix: this visitor's device, made on first use


def _browser_device(rng: random.Random, user: _User) -> dict:
    agent, agent_data = rng.choice(BROWSERS)
    width, height, density = rng.choice(SCREEN_SIZES)
    click = ""
    if rng.random() < 0.35:
        campaign = rng.choice(CAMPAIGNS)
        click = {"google": "&gclid=", "facebook": "&fbclid="}.get(campaign["source"], "")
        if click:
            click += "".join(rng.choice(_CLICK_ID) for _ in range(90))
    else:
        campaign = None
    device = {"userAgent": agent, "userAgentData": agent_data,
              "screen": {"width": width, "height": height, "density": density},
              "locale": rng.choice(["en-US", "cs-CZ", "de-DE", "fr-FR"]), "timezone": rng.choice(TIMEZONES),
              "instance_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
              "campaign": campaign, "click": click, "referrer": rng.choice(REFERRERS),
              "consent": {"categoryPreferences": {c: rng.random() < 0.8 for c in CONSENT}}}
    if user.user_id is not None:
        n = user.user_id.rsplit("-", 1)[-1]
        device["traits"] = {"email": f"{user.user_id}@example.com", "firstName": "Customer", "lastName": n,
                            "name": f"Customer {n}", "phone": f"+420 {rng.randrange(10**9):09d}",
                            "plan": rng.choice(["free", "pro", "enterprise"]),
                            "createdAt": f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00.000Z",
                            "company": {"id": f"g-{rng.randrange(100)}", "name": "Acme Corp"},
                            "address": {"street": f"{rng.randint(1, 200)} Main Street",
                                        "city": rng.choice(["Prague", "Berlin", "Paris", "Boston"]),
                                        "postalCode": f"{rng.randrange(10**5):05d}",
                                        "country": rng.choice(["CZ", "DE", "FR", "US"])}}
    return device


def _browser_envelope(rng: random.Random, user: _User, event: dict, path: str, title: str) -> dict:
    """The envelope analytics.js (analytics-next) gives ``event`` in a browser, keys in its order."""
    device = user.browser or _browser_device(rng, user)
    user.browser = device
    campaign = device["campaign"]
    search = ""
    if campaign:
        search = (f"?utm_source={campaign['source']}&utm_medium={campaign['medium']}"
                  f"&utm_campaign={campaign['name']}" + (f"&utm_content={campaign['content']}"
                                                         if "content" in campaign else "")
                  + device["click"])
    url = f"https://shop.acme.example{path}{search}"
    context: dict = {"library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
                     "page": {"path": path, "referrer": device["referrer"], "search": search, "title": title,
                              "url": url},
                     "userAgent": device["userAgent"]}
    if device["userAgentData"] is not None:
        context["userAgentData"] = device["userAgentData"]
    context.update(locale=device["locale"], screen=device["screen"], timezone=device["timezone"])
    if campaign:
        context["campaign"] = campaign
    if "traits" in device and user.user_id is not None:
        context["traits"] = device["traits"]
    context.update(instance_id=device["instance_id"], consent=device["consent"], ip=event["context"]["ip"])
    fields = {k: v for k, v in event.items() if k not in ("context", "projectId", "channel", "version",
                                                          "integrations")}
    messages = f"ajs-next-{rng.getrandbits(128):032x}"
    out = {"anonymousId": fields.pop("anonymousId"), "context": context, "integrations": {},
           "messageId": messages}
    fields.pop("messageId")
    out.update(fields)
    out.update(writeKey=WRITE_KEY, channel="client", version=2,
               _metadata={"bundled": BUNDLED, "unbundled": [], "bundledIds": BUNDLED_IDS},
               projectId="Vh8K2mQp4e")
    return out


def events(count: int, seed: int = 7, users: int = 5000, products: int = 3000,
           mix: str = "server") -> Iterator[dict]:
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r} (one of {', '.join(MIXES)})")
    browser = mix == "browser"
    kinds, weights = (_BROWSER_KINDS, _BROWSER_WEIGHTS) if browser else (_KINDS, _WEIGHTS)
    rng = random.Random(seed)
    people = [_User(rng, n) for n in range(users)]
    product_ids = [f"p-{rng.randrange(10**6):06d}" for _ in range(products)]
    videos = [f"vid_{rng.randrange(10**9):09d}" for _ in range(products // 3)]
    clock = START
    for n in range(count):
        clock += timedelta(milliseconds=rng.randint(5, 4000))
        user = rng.choice(people)
        kind = rng.choices(kinds, weights)[0]
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
        if browser:
            if kind == "page":
                page = event["properties"]
                page_path, title = page["path"], page["title"]
                page["url"] = f"https://shop.acme.example{page_path}"
            elif kind.startswith("Product"):
                page_path = f"/products/{event['properties']['product_id']}"
                title = "Acme - Widget"
            elif kind.startswith("Video"):
                page_path, title = f"/watch/{event['properties'].get('content_asset_id', 'live')}", "Acme TV"
            elif kind == "Order Completed":
                page_path, title = "/checkout/thank-you", "Acme - Thank you"
            else:
                page_path, title = "/", "Acme"
            event = _browser_envelope(rng, user, event, page_path, title)
        yield event


def write(count: int, out, seed: int = 7, mix: str = "server") -> None:
    buffer = []
    for event in events(count, seed, mix=mix):
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
    parser.add_argument("--mix", choices=MIXES, default="server",
                        help="server: analytics-python events (default); browser: analytics.js events")
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    out = sys.stdout.buffer
    if args.gzip:
        with gzip.GzipFile(filename="", fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
            write(args.count, gz, args.seed, args.mix)
    else:
        write(args.count, out, args.seed, args.mix)


if __name__ == "__main__":
    main()
