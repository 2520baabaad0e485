"""Remote inputs (s3://, gs://, and whatever else fsspec knows), an optional extra.

Objects are listed under a prefix (sorted by key) and streamed, never downloaded whole; their ETag
(or checksum) is their identity in the state file. Credentials and endpoints come from the usual
environment and profile chain of each backend (for S3: AWS_PROFILE, AWS_ACCESS_KEY_ID, ...,
AWS_ENDPOINT_URL for S3-compatible stores).

A store that cannot be listed (no credentials, a bad URL, no such bucket, an endpoint that does
not answer) is an `InputError` with a one-line reason. S3 clients are set to give up on an
unreachable endpoint in seconds: botocore's and s3fs's retries with backoff otherwise take minutes
to report a refused port. A read that fails mid-run is not an error here: the reader turns it into
an unreadable block and the object stays pending for the next run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, BinaryIO

from recombee_cli.errors import InputError
from recombee_cli.sources.base import Source
from recombee_cli.sources.dayfolders import Window, folder_outside_window, glob_skip, received_day

_BLOCK_SIZE = 8 << 20
S3_CONNECT_TIMEOUT = 5   # seconds per connection attempt
S3_MAX_ATTEMPTS = 3      # per request, the first included (botocore's "standard" retry mode)
# With a window, day folders are listed one by one (pruning the others unlisted) when at most this
# many are kept; past it, one recursive listing (1000 keys a call) costs fewer calls, and is filtered.
PRUNED_LISTING_LIMIT = 64


def _storage_options(protocol: str) -> dict[str, Any]:
    if protocol not in ("s3", "s3a"):
        return {}
    config: dict[str, Any] = {"connect_timeout": S3_CONNECT_TIMEOUT}
    if not (os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE")):   # the user's choice wins
        config["retries"] = {"total_max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"}
    # A fresh client, not fsspec's cached one: endpoint and credentials are the environment's now.
    return {"config_kwargs": config, "skip_instance_cache": True}


def _filesystem(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise InputError(f"{url}: remote inputs need the 'remote' extra: pip install 'recombee-cli[remote]'") from None
    try:
        found: tuple[Any, str] = fsspec.core.url_to_fs(url, **_storage_options(url.split("://", 1)[0]))
        return found
    except (ImportError, ValueError) as exc:
        raise InputError(f"{url}: {_one_line(exc)}") from None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _describe(exc: BaseException) -> str:
    """Why a listing failed, in one line. Backend exceptions (botocore's...) are told apart by
    name: the extra's packages are not imported here."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}:
        return ("no credentials for the store (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY): {_one_line(exc)}")
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ConnectionError", "ProxyConnectionError",
                "ReadTimeoutError", "TimeoutError"}:
        return f"cannot reach the store: {_one_line(exc)}"
    if "ParamValidationError" in names or isinstance(exc, ValueError):
        return f"not a valid location: {_one_line(exc)}"
    if isinstance(exc, PermissionError):
        return f"access denied: {_one_line(exc)}"
    if isinstance(exc, FileNotFoundError):
        return "no such bucket, object or prefix"
    return f"{type(exc).__name__}: {_one_line(exc)}" if not isinstance(exc, OSError) else _one_line(exc)


def _identity(info: dict[str, Any]) -> str:
    for key in ("ETag", "etag", "md5Hash", "crc32c", "checksum"):
        if info.get(key):
            return f"{info['name']}|{str(info[key]).strip(chr(34))}"
    return f"{info['name']}|{info.get('size')}|{info.get('LastModified') or info.get('mtime') or ''}"


def _basename(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


def _find(fs: Any, path: str, protocol: str, window: Window, skipped: list[str] | None) -> list[dict[str, Any]]:
    """Every object under a prefix; with a window, day folders that cannot hold an event of it are
    left out, unlisted where that saves calls (the prefix's own day folders, when few are kept)."""
    if window is not None:
        children = fs.ls(path, detail=True)
        days = [c for c in children if c.get("type") == "directory" and received_day(_basename(c["name"]))]
        out = [c for c in days if folder_outside_window(_basename(c["name"]), window)]
        if out and len(days) - len(out) <= PRUNED_LISTING_LIMIT:
            if skipped is not None:
                skipped.extend(f"{protocol}://{c['name'].rstrip('/')}" for c in out)
            pruned = {c["name"] for c in out}
            infos = []
            for child in children:
                if child.get("type") != "directory":
                    infos.append(child)
                elif child["name"] not in pruned:
                    infos.extend(_find(fs, child["name"], protocol, None, None))
            return infos
    infos = list(fs.find(path, detail=True).values())
    if window is None:
        return infos
    base = path.rstrip("/") + "/"
    kept, passed = [], set()
    for info in infos:   # day folders deeper down (a URL above the source folders): filtered
        folders = info["name"][len(base):].split("/")[:-1] if info["name"].startswith(base) else []
        for i, folder in enumerate(folders):
            if folder_outside_window(folder, window):
                passed.add(base + "/".join(folders[:i + 1]))
                break
        else:
            kept.append(info)
    if skipped is not None:
        skipped.extend(f"{protocol}://{folder}" for folder in sorted(passed))
    return kept


def _list(fs: Any, path: str, protocol: str, window: Window, skipped: list[str] | None) -> list[dict[str, Any]]:
    if not any(ch in path for ch in "*?["):
        if fs.isdir(path):
            return _find(fs, path, protocol, window, skipped)
        return [fs.info(path)]
    infos, passed = [], set()
    for match in fs.glob(path):
        info = fs.info(match)
        is_dir = info.get("type") == "directory"
        folder = glob_skip(path, match.rstrip("/"), is_dir, window, sep="/")
        if folder is not None:
            passed.add(folder)
        elif is_dir:
            infos.extend(_find(fs, match, protocol, window, skipped))
        else:
            infos.append(info)
    if skipped is not None:
        skipped.extend(f"{protocol}://{folder}" for folder in sorted(passed))
    return infos


def _opener(fs: Any, name: str) -> Callable[[], BinaryIO]:
    """Streams the object in ranged reads of _BLOCK_SIZE (read when it is opened)."""
    return lambda: fs.open(name, "rb", block_size=_BLOCK_SIZE)


def expand_remote(url: str, *, window: tuple[float | None, float | None] | None = None,
                  warn: Callable[[str], None] | None = None, skipped: list[str] | None = None) -> list[Source]:
    """The objects a URL names (an object, a prefix read recursively, a glob), sorted by key.

    `window` and `skipped` as for `reader.expand_inputs`: Segment's day folders outside the window
    are not read, and their URLs are appended to `skipped`. `warn` is accepted for symmetry with
    `expand_inputs` (nothing here warns yet). Raises InputError, with a one-line reason, when the
    store cannot be listed."""
    protocol = url.split("://", 1)[0]
    fs, path = _filesystem(url)
    pruned: list[str] = []
    try:
        infos = _list(fs, path, protocol, window, pruned)
    except FileNotFoundError:
        raise InputError(f"{url}: no such bucket, object or prefix") from None
    except Exception as exc:  # noqa: BLE001 - each backend raises its own types; none may be a traceback
        raise InputError(f"{url}: {_describe(exc)}") from None
    sources = []
    for info in sorted((i for i in infos if i.get("type") != "directory"), key=lambda i: i["name"]):
        name = info["name"]
        if name.rsplit("/", 1)[-1].startswith("."):
            continue
        sources.append(Source(name=f"{protocol}://{name}",
                              open=_opener(fs, name),
                              size=info.get("size"), identity=_identity(info), key=f"{protocol}://{name}"))
    if skipped is not None:
        skipped.extend(pruned)
    if not sources and not pruned:
        raise InputError(f"{url}: no objects there")
    return sources
