"""`doctor`'s checks: what a run needs, found in seconds before it runs rather than 10 s into it.

Each check is a `Check`: passed (True), failed (False) or not applicable (None, with why), one
line saying what was found and, when it failed, the fix. The command line prints them; nothing
here prints. The checks, in order:

  config       what `validate` checks without inputs (the file found by the usual rule)
  address      the region's host or the base URI: DNS, connection, TLS, time to answer (unsigned)
  clock        this machine's clock against the server's `Date` (a signature lives about 10 s)
  credentials  the token and database id, with one signed read-only call (ListUserProperties)
  state        the state file: its folder takes writes, which database it belongs to, files pending
  inputs       each input named: readable, and for object stores credentials, bucket and a listing
  extras       which optional extras are installed (information: never fails)
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from recombee_cli.errors import ConfigError, InputError, RecombeeCliError
from recombee_cli.mapping.config import Config, load_config
from recombee_cli.pipeline.connect import Target, find_base_url, find_database_id, make_client, read_token
from recombee_cli.record.peek import peek, writable_folder
from recombee_cli.record.rejects import count_rejects
from recombee_cli.record.state import default_rejects_path, default_state_path

CLOCK_TOLERANCE = 5.0   # seconds off the server's clock before signatures are at risk (they live ~10 s)
TIMEOUT = 5.0           # seconds for each call, and for a name to resolve

# extra -> (the modules it brings, what it is for)
EXTRAS = {
    "remote": (("fsspec", "s3fs"), "s3:// and gs:// inputs"),
    "liquid": (("liquid",), "the @liquid directive"),
    "dask": (("distributed",), "--dask"),
    "sandbox": (("cryptography",), "sandbox --tls without openssl"),
}


@dataclass
class Check:
    name: str
    ok: bool | None
    said: str
    fix: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "said": self.said, "fix": self.fix, **self.facts}


@dataclass
class Settings:
    """What doctor was asked to check (the options of `replay` it shares)."""

    config_path: str | None = None
    enable: Sequence[str] = ()
    database_id: str | None = None
    region: str | None = None
    base_uri: str | None = None
    token_file: str | None = None
    allow_http: bool = False
    state_path: str | None = None
    inputs: Sequence[str] = ()
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


def run_checks(settings: Settings, on_check: Callable[[Check], None] = lambda check: None) -> list[Check]:
    """Every check, in order; `on_check` sees each as soon as it is done."""
    checks: list[Check] = []

    def said(check: Check) -> None:
        checks.append(check)
        on_check(check)

    config_check, config = check_config(settings)
    said(config_check)
    try:
        base_url: str | None = find_base_url(config, region=settings.region, base_uri=settings.base_uri,
                                             allow_http=settings.allow_http)
    except ConfigError as exc:
        base_url = None
        said(Check("address", False, str(exc), "--region eu-west|us-west|ap-se|ca-east, or --base-uri "
                                               "https://HOST (--allow-http for a local sandbox)"))
    database_id = settings.database_id or config.recombee.database_id
    target, missing = _target(settings, config, base_url)
    if base_url is not None:
        address, answer = check_address(base_url, target)
        said(address)
        said(check_clock(answer))
    else:
        answer = None
        said(Check("clock", None, "not checked: no address to ask"))
    said(check_credentials(target, missing, answer))
    said(check_state(settings.state_path, database_id, base_url))
    for check in check_inputs(settings.inputs):
        said(check)
    said(check_extras())
    return checks


# -- config -------------------------------------------------------------------------------------

def check_config(settings: Settings) -> tuple[Check, Config]:
    """What `validate` checks without inputs. A config that cannot be used still lets the other
    checks run, from the options alone."""
    from recombee_cli.mapping.compile import compile_config, static_problems

    try:
        config = load_config(settings.config_path)
        config.enable(list(settings.enable))
        mappings = compile_config(config, check=False)
        problems = [str(p) for m in mappings for p in static_problems(m)]
    except RecombeeCliError as exc:
        fix = "fix it; `recombee-cli validate` names file, line, mapping and field"
        if "python-liquid" in str(exc):
            fix = "pip install 'recombee-cli[liquid]'"
        return Check("config", False, str(exc), fix), load_config(None)
    if not mappings:
        problems.append("no mappings: every event would be unmatched")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return (Check("config", False, f"{problems[0]}{more}",
                      "`recombee-cli validate` lists every problem", {"problems": problems}), config)
    facts = {"config": settings.config_path, "mappings": len(mappings)}
    if settings.config_path is None:
        return Check("config", True, "no config found (--config, RECOMBEE_CLI_CONFIG, ./recombee-cli.toml): "
                                     "Segment's 14 built-in presets", facts=facts), config
    presets = config.presets_summary()["said"]
    return Check("config", True, f"{settings.config_path}: {len(mappings)} mappings, no problem found; {presets}",
                 facts=facts), config


# -- Recombee ----------------------------------------------------------------------------------

def _target(settings: Settings, config: Config, base_url: str | None) -> tuple[Target | None, list[str]]:
    """The database and token when both are known, else what is missing (each with where to set it)."""
    missing = []
    database_id = token = None
    source = ""
    try:
        database_id = find_database_id(settings.database_id, config)
    except ConfigError:
        missing.append("no database id (--database-id, RECOMBEE_DATABASE_ID, or [recombee] database_id)")
    try:
        token, source = read_token(config, token_file=settings.token_file, environ=settings.environ)
    except ConfigError as exc:
        missing.append("no private token (RECOMBEE_PRIVATE_TOKEN, or --token-file)"
                       if str(exc).startswith("no private token") else str(exc))
    if database_id is None or token is None or base_url is None:
        return None, missing
    return Target(database_id, base_url, token, source), missing


def _resolve(host: str) -> tuple[float | None, str | None]:
    """Seconds to resolve `host`, or why it does not resolve (bounded: a stuck resolver is said)."""
    box: dict[str, Any] = {}

    def work() -> None:
        started = time.monotonic()
        try:
            socket.getaddrinfo(host, None)
            box["seconds"] = time.monotonic() - started
        except OSError as exc:
            box["error"] = exc.strerror or str(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():
        return None, f"no answer from the resolver within {TIMEOUT:g} s"
    return box.get("seconds"), box.get("error")


def check_address(base_url: str, target: Target | None) -> tuple[Check, Any]:
    """DNS, then one unsigned GET of the base URL: any HTTP answer proves the address works."""
    from recombee_cli.recombee.client import RecombeeClient, TransportFailure

    fix = ("check --region / --base-uri, and that this machine reaches it (DNS, proxy, firewall); "
           "`curl -sI URL` shows the same")
    host = urlsplit(base_url).hostname or base_url
    seconds, problem = _resolve(host)
    if problem is not None:
        return Check("address", False, f"cannot resolve host {host}: {problem}", fix, {"url": base_url}), None
    client = RecombeeClient(target.database_id if target else "-", target.token if target else "-", base_url,
                            concurrency=1, timeout=TIMEOUT)
    try:
        answer = client.read("/", signed=False)
    except TransportFailure as exc:
        return Check("address", False, exc.reason, fix, {"url": base_url}), None
    finally:
        client.close()
    tls = ", TLS verified" if base_url.startswith("https://") else ", plain http (local testing only)"
    return Check("address", True, f"{base_url} answers: name resolved in {_ms(seconds or 0)}, HTTP "
                                  f"{answer.status} in {_ms(answer.seconds)}{tls}",
                 facts={"url": base_url, "dns_seconds": round(seconds or 0, 4),
                        "seconds": round(answer.seconds, 4)}), answer


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def clock_skew(answer: Any) -> float | None:
    """Seconds the server's clock is ahead of ours (negative: behind), from its Date header."""
    if answer is None or not answer.date:
        return None
    try:
        server = parsedate_to_datetime(answer.date).timestamp() + 0.5   # Date is cut to the second
    except (TypeError, ValueError):
        return None
    return float(server - answer.local_time)


def check_clock(answer: Any) -> Check:
    skew = clock_skew(answer)
    if skew is None:
        return Check("clock", None, "not checked: " + ("no answer from the server" if answer is None
                                                       else "the server's answer has no Date header"))
    facts = {"skew_seconds": round(skew, 1)}
    if abs(skew) <= CLOCK_TOLERANCE:
        return Check("clock", True, f"within {max(1, round(abs(skew)))} s of the server's (a signature "
                                    f"lives about 10 s)", facts=facts)
    way = "behind" if skew > 0 else "ahead of"
    return Check("clock", False, f"this machine's clock is {abs(skew):,.0f} s {way} the server's; Recombee "
                                 f"refuses a signature more than about 10 s off",
                 "set the clock right and keep it synchronised (e.g. `timedatectl set-ntp true`, chrony "
                 "or ntpd)", facts)


def check_credentials(target: Target | None, missing: list[str], answer: Any) -> Check:
    """One signed read-only call: ListUserProperties."""
    from recombee_cli.recombee.client import TransportFailure

    if missing:
        return Check("credentials", False, "; ".join(missing),
                     "a token is set with `export RECOMBEE_PRIVATE_TOKEN=...` (never on the command "
                     "line); the database id with --database-id ID")
    if target is None:
        return Check("credentials", None, "not checked: no address to ask")
    if answer is None:
        return Check("credentials", None, "not checked: the address does not answer")
    client = make_client(target, concurrency=1, timeout=TIMEOUT)
    try:
        signed = client.read("/users/properties/list/")
    except TransportFailure as exc:
        return Check("credentials", False, exc.reason, "see the address check")
    finally:
        client.close()
    facts = {"database_id": target.database_id, "status": signed.status, "token_from": target.token_source}
    if signed.status == 200 and isinstance(signed.body, list):
        return Check("credentials", True, f"database {target.database_id!r} accepts the token (from "
                                          f"{target.token_source}): a signed ListUserProperties answered "
                                          f"200 in {_ms(signed.seconds)}", facts=facts)
    text = signed.text
    if signed.status in (401, 403):
        lowered = text.lower()
        if "database" in lowered:
            fix = ("check the database id (--database-id, RECOMBEE_DATABASE_ID or [recombee] database_id) "
                   "and the region: each database lives in one region and has its own token")
        elif "expired" in lowered or "time" in lowered:
            fix = "set this machine's clock right (see the clock check)"
        else:
            fix = (f"check the private token (from {target.token_source}): it must be the private token of "
                   f"database {target.database_id!r} (Recombee's admin: Settings, API identifier & tokens)")
        return Check("credentials", False, f"Recombee refused the signed call ({signed.status}: {text})", fix,
                     facts)
    return Check("credentials", False, f"Recombee answered {signed.status} to a signed ListUserProperties: "
                                       f"{text}", "is the base URI Recombee's API (or the sandbox)?", facts)


# -- state -------------------------------------------------------------------------------------

def check_state(state_path: str | None, database_id: str | None, base_url: str | None) -> Check:
    path = state_path or (default_state_path(database_id) if database_id else None)
    if path is None:
        folder = os.path.dirname(default_state_path(None))
        problem = writable_folder(folder)
        if problem:
            return Check("state", False, f"the state folder {folder}: {problem}",
                         "make it writable, or name a state file elsewhere with --state FILE")
        return Check("state", None, f"no database id to name a state file; the folder {folder} takes writes")
    found = peek(path)
    problem = writable_folder(os.path.dirname(os.path.abspath(path)) or ".")
    facts: dict[str, Any] = {"path": path, "exists": found.exists, "database_id": found.database_id,
                             "files_done": found.files_done, "files_pending": found.files_pending}
    if problem:
        return Check("state", False, f"{path}: {problem}; a sending run could not record what was answered",
                     "make the folder writable, or name a state file elsewhere with --state FILE", facts)
    if not found.exists:
        return Check("state", True, f"none yet at {path} (the first sending run makes it); its folder takes "
                                    f"writes", facts=facts)
    if found.problem:
        return Check("state", False, f"{path}: {found.problem}",
                     "move it aside (a new state reads every file again; what was sent comes back 409)", facts)
    if found.database_id is not None and database_id is not None and found.database_id != database_id:
        return Check("state", False, f"{path} belongs to database {found.database_id!r}, not {database_id!r}",
                     "use that database's state (by default one file per database id), or --state FILE", facts)
    if found.endpoint and base_url and _address(found.endpoint) != _address(base_url):
        return Check("state", False, f"{path} belongs to database {found.database_id!r} at {found.endpoint}, "
                                     f"not at {base_url}",
                     "use the address it was made for (--region / --base-uri), or another --state FILE", facts)
    owner = (f"belongs to database {found.database_id!r}" + (f" at {found.endpoint}" if found.endpoint else "")
             if found.database_id else "records no database (written before a state was bound to one)")
    kept = count_rejects(default_rejects_path(path)) or {}
    facts["rejects_kept"] = sum(kept.values())
    pending = (f"{found.files_pending:,} pending (the next run takes {'it' if found.files_pending == 1 else 'them'}"
               f" up; `recombee-cli status` says why)" if found.files_pending else "none pending")
    said = (f"{path}: writable, {owner}; {_count(found.files_done, 'file')} done, {pending}"
            + (f"; {_count(facts['rejects_kept'], 'rejected event')} kept" if facts["rejects_kept"] else "")
            + (f"; in use now by {found.holder}" if found.holder else ""))
    return Check("state", True, said, facts=facts)


def _address(url: str) -> str:
    """One text per address: the host in lower case, no default port, no trailing slash."""
    parts = urlsplit(url)
    port = parts.port if parts.port not in (None, {"http": 80, "https": 443}.get(parts.scheme)) else None
    return f"{parts.scheme}://{parts.hostname or ''}{f':{port}' if port else ''}{parts.path.rstrip('/')}"


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


# -- inputs and extras -------------------------------------------------------------------------

def check_inputs(inputs: Sequence[str]) -> list[Check]:
    from recombee_cli.sources.reader import expand_inputs, is_remote

    if not inputs:
        return [Check("inputs", None, "none named (`recombee-cli doctor EXPORTS…` checks that they can be "
                                      "listed and read)")]
    checks = []
    for arg in inputs:
        started = time.monotonic()
        empty: list[str] = []
        try:
            sources = expand_inputs([arg], warn=lambda message: None, empty=empty)
        except (InputError, OSError) as exc:
            fix = ("credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID...), the bucket's name, AWS_ENDPOINT_URL for an "
                   "S3-compatible store; pip install 'recombee-cli[remote]'" if is_remote(arg)
                   else "check the path (quote a glob so the shell leaves it alone)")
            checks.append(Check("inputs", False, str(exc), fix, {"input": arg}))
            continue
        seconds = time.monotonic() - started
        if not sources:
            checks.append(Check("inputs", False, f"{arg}: holds no file to read",
                                "a wrong path? (Segment writes segment-logs/<source-id>/<day>/…)", {"input": arg}))
            continue
        sizes = [s.size for s in sources if s.size is not None]
        size = f", {_size(sum(sizes))}" if sizes else ""
        listed = f"listed in {_ms(seconds)}" if is_remote(arg) else "readable"
        checks.append(Check("inputs", True, f"{arg}: {_count(len(sources), 'file')}{size}, {listed}",
                            facts={"input": arg, "files": len(sources), "bytes": sum(sizes)}))
    return checks


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def installed_extras() -> dict[str, bool]:
    return {name: all(importlib.util.find_spec(module) is not None for module in modules)
            for name, (modules, _) in EXTRAS.items()}


def check_extras() -> Check:
    from recombee_cli import build

    found = installed_extras()
    have = [name for name, ok in found.items() if ok]
    lack = [f"{name} ({EXTRAS[name][1]})" for name, ok in found.items() if not ok]
    said = ("installed: " + (", ".join(have) if have else "none")
            + ("; not installed: " + ", ".join(lack) if lack else "") + f"; build: {build.describe()}")
    return Check("extras", True, said, "pip install 'recombee-cli[NAME]' adds one" if lack else None,
                 {"extras": found})
