"""One JSON document spanning lines (a pretty-printed event, or an array of events), as people
paste them from Segment's debugger or write them by hand.

NDJSON is the rule; an input is this format's only when its first non-blank line starts with `{`
or `[` and is not a complete JSON value by itself (`sniff`), and the whole input then parses as
one JSON value (else it is read as NDJSON lines, each with its reason: `blocks`). The document is
held in memory, so it may be at most `max_line_bytes` (--max-line-bytes, 16 MiB by default)
decoded bytes: a larger input is read as lines, with a warning when its first line is a lone `{`
or `[` (a pretty-printer's). Each event is one block: its line is the line where the event starts.
Not splittable: --workers leaves it to the main process, which reads it whole.
"""

from __future__ import annotations

from collections.abc import Iterator

from recombee_cli.sources.base import display_name
from recombee_cli.sources.blocks import Block
from recombee_cli.sources.formats.base import BOM, SPACE, ReadOptions, replayed
from recombee_cli.sources.formats.ndjson import NDJSON

__all__ = ["DOCUMENT", "Document"]


def _first_line(head: bytes) -> bytes:
    """The first non-blank line, from its first non-blank byte (a byte-order mark left out)."""
    body = head.lstrip(SPACE)
    if body.startswith(BOM):
        body = body[3:].lstrip(SPACE)
    end = body.find(b"\n")
    return body if end < 0 else body[:end]


class Document:
    """A JSON value spanning lines: an object (one event) or an array (of events)."""

    name = "document"
    splittable = False

    def sniff(self, head: bytes, name: str) -> bool:
        import orjson

        first = _first_line(head)
        if first[:1] not in (b"{", b"["):
            return False
        try:
            orjson.loads(first)
            return False   # a complete value: NDJSON
        except orjson.JSONDecodeError:
            return True

    def blocks(self, chunks: Iterator[bytes], options: ReadOptions) -> Iterator[Block]:
        """One block per event, or NDJSON's blocks of the same chunks where the input is not one
        document within the cap: its lines are never changed unless it is one."""
        import orjson

        cap = options.max_line_bytes
        taken: list[bytes] = []
        size = 0
        try:
            while size <= cap:
                chunk = next(chunks, b"")
                if not chunk:
                    break
                taken.append(chunk)
                size += len(chunk)
        except Exception as exc:  # noqa: BLE001 - damage or an I/O error: read as lines, it says so there
            yield from NDJSON.blocks(replayed(taken, None, exc), options)
            return
        if size > cap:
            if _first_line(b"".join(taken)).strip() in (b"{", b"["):   # a pretty-printer's first line
                options.warn(f"{display_name(options.source.name)}: looks like one JSON document spanning "
                             f"lines, larger than {cap} bytes (--max-line-bytes): read line by line instead; "
                             f"write it as one event per line (e.g. jq -c '.[]') or raise --max-line-bytes")
            yield from NDJSON.blocks(replayed(taken, chunks), options)
            return
        document = b"".join(taken)
        whole = document.lstrip(SPACE)
        try:
            orjson.loads(whole[3:] if whole.startswith(BOM) else whole)
        except orjson.JSONDecodeError:   # not one document: its lines, each with its reason
            yield from NDJSON.blocks(replayed(taken, None), options)
            return
        yield from _events(options.source.name, document, options.start_offset)


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n\ufeff":
        at += 1
    return at


def _events(name: str, document: bytes, start_offset: int) -> Iterator[Block]:
    """One block per event of a JSON document (an object, or each element of an array): its line
    is the line where the event starts, its offset the byte where it starts, and its data the
    event as one line of compact JSON."""
    import json

    import orjson

    text = document.decode("utf-8")
    at = _skip_space(text, 0)
    if text[at] == "[":
        decoder = json.JSONDecoder()
        spans = []
        at = _skip_space(text, at + 1)
        while at < len(text) and text[at] != "]":
            _, end = decoder.raw_decode(text, at)
            spans.append((at, end))
            at = _skip_space(text, end)
            if at < len(text) and text[at] == ",":
                at = _skip_space(text, at + 1)
    else:
        spans = [(at, len(text.rstrip()))]
    line, offset, where = 1, 0, 0
    for begin, end in spans:
        line += text.count("\n", where, begin)
        offset += len(text[where:begin].encode("utf-8"))
        where = begin
        if offset < start_offset:
            continue
        piece = text[begin:end]
        data = orjson.dumps(orjson.loads(piece))
        yield Block(name, line, offset, lines=[data], lengths={0: len(piece.encode("utf-8"))})


DOCUMENT = Document()
