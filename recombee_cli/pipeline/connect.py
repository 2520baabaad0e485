"""Where a run sends, and with what: the database id, the address (a region or a base URI) and the
private token, by one rule for the command line, the Python API, `doctor` and `show`; and the
public factory of the sender (`recombee_cli.make_sender`).

The rule: what the caller passes wins; then the config's `[recombee]` table. The token comes from
`RECOMBEE_PRIVATE_TOKEN`, else a token file (the caller's, else the config's `token_file`), else
the config's `token` (warned about when the file is readable by others). A missing or unusable
setting is a `ConfigError` (exit 2 on the command line) saying where to set it. The token is
never part of a message, a repr or a report.

    >>> sender = make_sender("shop-prod", region="us-west")    # token from RECOMBEE_PRIVATE_TOKEN
    >>> ReplaySession(translator, sender, dry_run=False, state_path="shop-prod.sqlite").run(sources)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recombee_cli.errors import ConfigError, ServiceError
from recombee_cli.mapping.config import Config, load_config
from recombee_cli.recombee.service import database_id_problem

if TYPE_CHECKING:   # httpx and the sender load only when something is sent
    from recombee_cli.recombee.client import RecombeeClient
    from recombee_cli.recombee.sender import BatchReport, RecombeeSender

Warn = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


@dataclass(frozen=True)
class Target:
    """A database at an address, and the token that signs for it (never shown)."""

    database_id: str
    base_url: str
    token: str = field(repr=False)
    token_source: str = ""   # where the token came from, for messages ("RECOMBEE_PRIVATE_TOKEN", a file)


def config_of(config: str | Config | None) -> Config:
    """A Config from a path (None: no file, the presets' defaults) or as given."""
    return config if isinstance(config, Config) else load_config(config)


def find_database_id(database_id: str | None, config: Config) -> str:
    found = database_id or config.recombee.database_id
    if not found:
        raise ConfigError("no database id: pass --database-id (database_id= from Python) or set "
                          "[recombee] database_id in the config")
    problem = database_id_problem(found)
    if problem:
        raise ConfigError(problem)
    return found


def find_base_url(config: Config, *, region: str | None = None, base_uri: str | None = None,
                  allow_http: bool = False) -> str:
    """`https://rapi-<region>.recombee.com` or the base URI; the config's when neither is passed."""
    from recombee_cli.recombee.client import base_url_for

    if base_uri and region:
        raise ConfigError("--base-uri and --region cannot be used together")
    if not base_uri and not region:
        base_uri, region = config.recombee.base_uri, config.recombee.region
    try:
        return base_url_for(region, base_uri, allow_http=allow_http)
    except ServiceError as exc:
        raise ConfigError(str(exc)) from None


def read_token(config: Config, *, token: str | None = None, token_file: str | None = None,
               environ: Mapping[str, str] | None = None, warn: Warn = _quiet) -> tuple[str, str]:
    """The private token and where it came from (see the module's rule)."""
    if token:
        return token, "the caller"
    environ = os.environ if environ is None else environ
    if environ.get("RECOMBEE_PRIVATE_TOKEN"):
        return environ["RECOMBEE_PRIVATE_TOKEN"], "RECOMBEE_PRIVATE_TOKEN"
    path = token_file or config.recombee.token_file
    if path:
        path = os.path.expanduser(path)
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read().strip()
            if os.name == "posix" and os.stat(path).st_mode & 0o044:
                warn(f"the token file {path} is readable by other users (chmod 600 it)")
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
        if text:
            return text, f"the token file {path}"
    if config.recombee.token:
        return config.recombee.token, f"the config {config.file}" if config.file else "the config"
    raise ConfigError("no private token: set RECOMBEE_PRIVATE_TOKEN, or use --token-file "
                      "(token_file= from Python, or token_file in [recombee])")


def find_target(database_id: str | None = None, *, token: str | None = None, token_file: str | None = None,
                region: str | None = None, base_uri: str | None = None, allow_http: bool = False,
                config: str | Config | None = None, environ: Mapping[str, str] | None = None,
                warn: Warn = _quiet) -> Target:
    """The database, address and token a run would use (ConfigError for the first that is missing)."""
    settings = config_of(config)
    found_id = find_database_id(database_id, settings)
    base_url = find_base_url(settings, region=region, base_uri=base_uri, allow_http=allow_http)
    secret, source = read_token(settings, token=token, token_file=token_file, environ=environ, warn=warn)
    return Target(found_id, base_url, secret, source)


def make_client(target: Target, *, concurrency: int = 8, timeout: float = 10.0) -> RecombeeClient:
    from recombee_cli.recombee.client import RecombeeClient

    return RecombeeClient(target.database_id, target.token, target.base_url, concurrency=concurrency,
                          timeout=timeout)


def make_sender(database_id: str | None = None, *, token: str | None = None, token_file: str | None = None,
                region: str | None = None, base_uri: str | None = None, allow_http: bool = False,
                batch_size: int | None = None, concurrency: int | None = None,
                config: str | Config | None = None, environ: Mapping[str, str] | None = None,
                on_batch: Callable[[BatchReport], None] | None = None, warn: Warn = _quiet,
                **options: Any) -> RecombeeSender:
    """A sender for `ReplaySession` (or `DaskSession.run`): signed, concurrent, retried Batch calls
    to one Recombee database, as `replay` sends.

    `database_id`, `region` (eu-west, us-west, ap-se, ca-east) or `base_uri`, `batch_size` and
    `concurrency` default to the config's `[recombee]` and `[replay]` settings (`config`: a path
    or a loaded Config), then to the command line's defaults (eu-west, 1000, 8). The token: `token`,
    else `RECOMBEE_PRIVATE_TOKEN`, else `token_file` (or the config's). Plain `http://` needs
    `allow_http=True` (the local sandbox). `on_batch` is called from the sending threads after each
    Batch. Raises ConfigError naming what is missing; other keyword arguments go to
    `RecombeeSender` (`retry=`, `seed=`)."""
    from recombee_cli.recombee.batching import DEFAULT_CONCURRENCY
    from recombee_cli.recombee.sender import DEFAULT_BATCH_SIZE, RecombeeSender
    from recombee_cli.recombee.service import MAX_BATCH

    settings = config_of(config)
    target = find_target(database_id, token=token, token_file=token_file, region=region, base_uri=base_uri,
                         allow_http=allow_http, config=settings, environ=environ, warn=warn)
    batch_size = batch_size or settings.replay.batch_size or DEFAULT_BATCH_SIZE
    if not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"--batch-size must be between 1 and {MAX_BATCH} (Recombee's limit)")
    concurrency = concurrency or settings.replay.concurrency   # None: the sender's default, which grows
    client = make_client(target, concurrency=concurrency or DEFAULT_CONCURRENCY)
    return RecombeeSender(client, batch_size=batch_size, concurrency=concurrency, on_batch=on_batch, **options)
