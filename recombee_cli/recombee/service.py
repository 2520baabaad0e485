"""Facts of Recombee's service that several modules need, kept once: its regional clusters and
the largest Batch it executes. The client, the emulator, the sender, the configuration and the
command line all take them from here.
"""

from __future__ import annotations

import re

__all__ = ["REGION_HOSTS", "REGIONS", "DEFAULT_REGION", "DEFAULT_HOST", "MAX_BATCH", "database_id_problem"]

# The four regional clusters the SDKs know (Python 6.3.1, Node 5.1.1, Go 6.2.0); nothing else exists.
REGION_HOSTS = {
    "eu-west": "rapi-eu-west.recombee.com",
    "us-west": "rapi-us-west.recombee.com",
    "ap-se": "rapi-ap-se.recombee.com",
    "ca-east": "rapi-ca-east.recombee.com",
}
REGIONS = tuple(REGION_HOSTS)   # their names, in the order the help and the messages list them
# The region the CLI uses when neither a region nor a base URI is given.
DEFAULT_REGION = "eu-west"
# The Python SDK's host when neither a region nor a base URI is given.
DEFAULT_HOST = "rapi.recombee.com"

# Requests per Batch call: Recombee refuses a larger Batch (413).
MAX_BATCH = 10_000

# A database id is the first segment of every signed path (`/{databaseId}/batch/`): Recombee's ID
# characters, and not `.` or `..`, which HTTP resolves to another path (`a/../b` would sign and
# send to database `b`).
_DATABASE_ID = re.compile(r"(?!\.\.?\Z)[a-zA-Z0-9_\-:@.]+")


def database_id_problem(database_id: str) -> str | None:
    """Why a database id cannot be used (one line), or None."""
    if _DATABASE_ID.fullmatch(database_id):
        return None
    return (f"database id {database_id!r} is not a Recombee database id (letters, digits, _ - : @ ., "
            f"and not '.' or '..'): it is a segment of every request's path")
