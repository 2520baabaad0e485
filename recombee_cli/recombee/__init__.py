"""Recombee out: request signing, the HTTP client, user routing, the concurrent sender (a `Sink`)
and the local emulator the tests and the README's first command run against."""

import sys

# httpx imports its own command line (click, rich, pygments: 30-40 ms of every sending run's
# start) whenever those are installed, as they are with this tool, which never runs it. A None in
# sys.modules makes that one import fail, which httpx allows for (its `main` then says what to
# install). Here, before client.py imports httpx; a process that loaded httpx already keeps it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
