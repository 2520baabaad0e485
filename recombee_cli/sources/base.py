"""What every part of the read stage shares: a `Source` (one input and how to open it), a
`Line` (a physical line, or the problem standing in for one), and how to name either in a message.

Kept apart from the reader so that local folders, object stores (remote) and the reader can all
use them without importing one another.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    """One input: a name for messages and an opener for its raw bytes. `name` is the path as
    given: a non-UTF-8 one keeps Python's surrogate escapes, so print it through display_name()."""

    name: str
    open: Callable[[], BinaryIO] = field(repr=False, compare=False)
    size: int | None = None          # bytes on disk (compressed), for progress; None if unknown
    identity: str | None = None      # path+size+mtime or an object's ETag; None for stdin
    key: str | None = None           # what the state file knows it by: the resolved absolute path
                                     # of a local file, the canonical URL of an object (None: name)

    @property
    def state_key(self) -> str:
        return self.key or self.name


@dataclass(slots=True)   # not frozen: a frozen dataclass is 7x slower to create, once per line
class Line:
    """A physical line of a source, or a problem that stands in for one (`error` set)."""

    source: str
    number: int      # 1-based physical line number
    offset: int      # byte offset of the line start in the decompressed stream
    data: bytes      # the line without its newline ("" when error is set and nothing is kept)
    error: str | None = None


def display_name(name: str) -> str:
    r"""A file name as printable one-line text: the bytes of a non-UTF-8 name (surrogate escapes,
    as Python gives them) and control characters as `\xNN`, so no message about it can fail."""
    try:
        text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:   # a lone surrogate that no byte stands for
        text = name.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" if ord(c) < 0x100
                   else c.encode("unicode_escape").decode("ascii") for c in text)


def quiet(message: str) -> None:
    """A `Warn` that says nothing: the default wherever a caller passes no `warn`."""


def one_line(exc: BaseException) -> str:
    """An exception as one line of a reason (a remote store's messages run over several)."""
    text = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or exc.__class__.__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def widen_pipe(fd: int, size: int) -> None:
    """Give a pipe a buffer of `size` bytes where Linux allows it (64 KiB by default, which made
    reads of a producer small and kept a worker waiting to hand over its results); elsewhere, or
    beyond /proc/sys/fs/pipe-max-size, the pipe stays as it is."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
