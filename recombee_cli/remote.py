"""Remote inputs (s3://, gs://, and whatever else fsspec knows), an optional extra.

Objects are listed under a prefix (sorted by key) and streamed, never downloaded whole; their ETag
(or checksum) is their identity in the state file. Credentials and endpoints come from the usual
environment and profile chain of each backend (for S3: AWS_PROFILE, AWS_ACCESS_KEY_ID, ...,
AWS_ENDPOINT_URL for S3-compatible stores).
"""

from __future__ import annotations

from .errors import InputError
from .reader import Source

_BLOCK_SIZE = 8 << 20


def _filesystem(url: str):
    try:
        import fsspec
    except ImportError:
        raise InputError(f"{url}: remote inputs need the 'remote' extra: pip install 'recombee-cli[remote]'") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise InputError(f"{url}: {exc}") from None


def _identity(info: dict) -> str:
    for key in ("ETag", "etag", "md5Hash", "crc32c", "checksum"):
        if info.get(key):
            return f"{info['name']}|{str(info[key]).strip(chr(34))}"
    return f"{info['name']}|{info.get('size')}|{info.get('LastModified') or info.get('mtime') or ''}"


def expand_remote(url: str) -> list[Source]:
    fs, path = _filesystem(url)
    protocol = url.split("://", 1)[0]
    try:
        if any(ch in path for ch in "*?["):
            infos = [fs.info(p) for p in fs.glob(path)]
        elif fs.isdir(path):
            infos = list(fs.find(path, detail=True).values())
        else:
            infos = [fs.info(path)]
    except FileNotFoundError:
        raise InputError(f"{url}: no such object or prefix") from None
    except OSError as exc:
        raise InputError(f"{url}: {exc}") from None
    sources = []
    for info in sorted((i for i in infos if i.get("type") != "directory"), key=lambda i: i["name"]):
        name = info["name"]
        if name.rsplit("/", 1)[-1].startswith("."):
            continue
        sources.append(Source(name=f"{protocol}://{name}",
                              open=lambda name=name: fs.open(name, "rb", block_size=_BLOCK_SIZE),
                              size=info.get("size"), identity=_identity(info)))
    if not sources:
        raise InputError(f"{url}: no objects there")
    return sources
