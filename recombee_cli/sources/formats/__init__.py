"""Input formats: one module per format, and the registry the reader chooses from.

`FORMATS` lists them in sniffing order: the reader gives each source's head to each format's
`sniff` in turn, and the first that claims it reads the source (`choose`). NDJSON claims anything,
so it comes last; a format that must see a source before it does (because NDJSON would read its
bytes as lines) goes before it. The interface is `base.InputFormat`; docs/architecture.md walks
through adding one.
"""

from __future__ import annotations

from recombee_cli.sources.formats.base import InputFormat, ReadOptions, take_head
from recombee_cli.sources.formats.document import DOCUMENT
from recombee_cli.sources.formats.ndjson import NDJSON

__all__ = ["FORMATS", "InputFormat", "ReadOptions", "choose", "take_head"]

FORMATS: tuple[InputFormat, ...] = (
    DOCUMENT,   # one JSON value spanning lines (a pretty-printed event, an array of events)
    NDJSON,     # one event per line: the rule, and whatever no format above claims
)


def choose(head: bytes, name: str) -> InputFormat:
    """The format of a source: the first in FORMATS whose `sniff` claims its head (see
    base.take_head) and name. Once per source, never per line."""
    for candidate in FORMATS:
        if candidate.sniff(head, name):
            return candidate
    return NDJSON
