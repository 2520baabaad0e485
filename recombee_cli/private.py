"""Files and folders the tool writes are its user's alone: created readable and writable by their
owner only (0600; folders 0700), whatever the umask lets others have.

What they hold is personal data or close to it: the rejects file and a dry run's output hold whole
events or their requests (user ids that are often e-mail addresses, IPs, user agents), the state
and the report name input files and the reasons events failed, an export holds every user's
interactions. A file or folder that exists already keeps its mode: that is its owner's choice.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO, cast

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def make_folders(path: str) -> None:
    """`os.makedirs(path, exist_ok=True)`, every folder it creates 0700 (makedirs gives the
    folders above the last one the umask's default mode)."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, FOLDER_MODE)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise


def open_private(path: str, mode: str = "wb") -> BinaryIO:
    """`open(path, mode)` for "wb", "ab" or "rb+"/"ab+"-like binary modes; a file it creates is 0600."""
    flags = os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    if mode.startswith("w"):
        flags |= os.O_TRUNC
    elif mode.startswith("a"):
        flags |= os.O_APPEND
    flags |= os.O_RDWR if "+" in mode else os.O_WRONLY
    fd = os.open(path, flags, FILE_MODE)
    try:
        return cast(BinaryIO, os.fdopen(fd, mode))
    except BaseException:
        os.close(fd)
        raise


def create_private(path: str) -> bool:
    """Create `path` empty and 0600 if it does not exist (for files another library opens, such
    as SQLite's); True when this call created it."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def write_whole(path: str, data: bytes) -> None:
    """Write `data` as the file `path`, whole or not at all: into a temporary file beside it,
    renamed over it, so that a run stopped while writing (a kill, a full disk) leaves the file
    as it was. A file that exists keeps its mode; a new one is 0600. Through a symbolic link,
    the file it names is the one replaced. In a folder where no file may be created but the file
    itself may be written (one made for the tool in a shared folder), it is written in place."""
    final = os.path.realpath(path)
    temporary = f"{final}.tmp{os.getpid()}"
    try:
        mode: int | None = stat.S_IMODE(os.stat(final).st_mode)
    except FileNotFoundError:
        mode = None
    try:
        fh = open_private(temporary, "wb")
    except PermissionError:
        if mode is None:
            raise
        with open_private(final, "wb") as fh:
            fh.write(data)
        return
    try:
        with fh:
            fh.write(data)
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, final)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
