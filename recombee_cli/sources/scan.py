# cython: annotation_typing=False, boundscheck=False, wraparound=False
"""Decoding only what is read: a line's JSON checked whole, its unread members left out.

A browser event is about 2 KB, most of it `context`, `_metadata` and `integrations`, which no
preset reads; decoding them into objects and freeing them was nearly half a replay's cost. `restrict`
reads a line once, byte by byte, checking it as JSON the way orjson does, and gives back the JSON
text of the same object with only the members a run reads (`Reads`, built from the mappings and
triggers by mapping/reads.py), which orjson then decodes: the values are orjson's own, taken from
the line's very bytes.

Soundness is the one rule: `restrict` gives text only for a line orjson would decode, and for any
doubt it gives None, and the caller decodes the whole line as before (same outcome, same reason).
A doubt is: invalid JSON of any kind, a line that is not one object, a member of the top-level
object listed as a stop (an HTTP-API envelope's `batch`, a rejects record's marker), a top-level
key written with escapes, nesting deeper than MAX_DEPTH, a number that could overflow a double
(orjson refuses it: "number is infinity"), a `\\u` escape of a UTF-16 surrogate that is not a
proper pair.

What orjson does that this follows (orjson 3.x, checked by tests/sources/test_scan.py on every
corpus and by a fuzzer): RFC 8259 JSON, whitespace being space, tab, LF and CR only; no byte below 0x20 in a
string; UTF-8 as the Unicode standard's table of well-formed sequences (no overlong forms, no
encoded surrogates, nothing past U+10FFFF); nesting at most 1024 deep; a repeated key: the last
value wins, in the place of the first. The restricted text keeps every occurrence of a read key,
in order, so orjson's rule gives the same value; an unread key is left out whatever its value.
An object read only in part keeps the members the reads name; everything else (an array, a
string, an object read whole) is kept as written.

This module is in build.COMPILED_MODULES: compiled, its loops are C loops over the line's bytes
(scan.pxd types them, and skips a string's plain bytes sixteen at a time with SSE2 where the
machine has it: a browser event's strings are long); the .py is the reference and runs as it is
in the pure build, where a replay decodes whole lines instead (orjson is faster than a Python
loop over bytes).
"""

from __future__ import annotations

import types
from typing import Any

MAX_DEPTH = 128          # deeper than this: left to orjson (its limit is 1024; the pure build's
                         # recursion, two frames a level, stays well within Python's limit)
MAX_NUMBER = 100         # a number longer than this: left to orjson

# A node of reads: (slots, long, mask). A key's child: None, the value is read whole; a node, an
# object read in part (anything else there is kept whole); False, a stop (restrict gives None).
# slots[k] holds the keys of k bytes (k < 64) and their children, flat: (key, child, key, child,
# ...), or None where there is none; `long` maps longer keys to their children; mask[k * 256 + b]
# is 1 where a key of k bytes (k < 64) starts with the byte b (the quote after an empty key), so
# that most of an event's keys, read by nothing, are told so by one look.
Reads = tuple[tuple[Any, ...], dict[bytes, Any], bytes]
_SKIP = object()

# Bytes a string's loop stops at: the quote, the backslash, control characters and non-ASCII.
_STRING_STOPS = bytes(1 if c < 32 or c == 34 or c == 92 or c >= 128 else 0 for c in range(256))


def reads_node(table: dict[bytes, Any]) -> Reads:
    """A node of reads from a table of keys (raw bytes, as written in JSON without escapes) and
    their children (see Reads)."""
    slots: list[tuple[Any, ...] | None] = [None] * 64
    long: dict[bytes, Any] = {}
    mask = bytearray(64 * 256)
    for key, child in table.items():
        if len(key) < 64:
            slots[len(key)] = (*(slots[len(key)] or ()), key, child)
            mask[len(key) * 256 + (key[0] if key else 34)] = 1
        else:
            long[key] = child
    return tuple(slots), long, bytes(mask)


def _child(p: bytes, start: int, size: int, node: Reads) -> Any:
    """The child of the key of `size` bytes at `start` (raw, without escapes), or _SKIP."""
    if size >= 64:
        return node[1].get(p[start:start + size], _SKIP)
    slots = node[0]
    keys = slots[size]
    if keys is None:
        return _SKIP
    for j in range(0, len(keys), 2):
        key = keys[j]
        k = 0
        while k < size and p[start + k] == key[k]:
            k += 1
        if k == size:
            return keys[j + 1]
    return _SKIP


def restrict(data: bytes, reads: Reads) -> bytearray | None:
    """The JSON text of the object `data` holds with only the members `reads` names (see the
    module's docstring), or None where orjson might not decode `data` as this says, or where a
    top-level key is a stop: the caller then decodes the line whole."""
    stops = _STRING_STOPS   # (a local: the compiled build reads its bytes through a pointer)
    n = len(data)
    i = _space(data, n, 0)
    if i >= n or data[i] != 123:   # {
        return None
    # The text given is made of the line's own bytes, each used at most once (every `{`, `,` and
    # `}` it keeps is one of the line's), so it is never longer than the line: compiled, `out` is
    # made with that room and each piece is one copy into it.
    out = _room(n)
    _put(out, data, i, i + 1)
    i = _object(data, n, i, stops, reads, 0, out, True)
    if i < 0 or _space(data, n, i) != n:
        return None
    return out


# Whether this module runs compiled: then restrict is a C function, not a Python one, whatever the
# module's file is called (a pure install may ship .pyc files only). Compiled, a replay decodes
# restricted lines, and a string's plain bytes are skipped sixteen at a time (scan.pxd's C
# function; the pure build never reaches that call).
COMPILED = not isinstance(restrict, types.FunctionType)
_FAST = COMPILED


def decoded_key(key: str) -> str:
    """The very str object orjson gives for `key` as a JSON object's key, where it is one of those
    orjson keeps (its cache of keys: up to 64 bytes, the same object from one line to the next),
    else `key` itself. A lookup of an event's member with the key orjson made is found by
    identity; with another object of the same text it compares the characters too (the mapping
    programs' paths and the per-event reads of translate_block so keyed: 1.3 % fewer
    instructions per server-mix event). Only ever a speed-up: equal keys find the same member,
    whichever object looks."""
    import orjson

    try:
        found = orjson.loads(b"{" + orjson.dumps(key) + b":0}")
    except (TypeError, ValueError):   # (a lone surrogate orjson cannot write)
        return key
    return next(iter(found)) if type(found) is dict and len(found) == 1 else key


def _room(n: int) -> bytearray:
    """An empty bytearray for a part of a line of `n` bytes (compiled: with room for them)."""
    if _FAST:
        return _empty_room(n)  # type: ignore[name-defined]  # noqa: F821
    return bytearray()


def _put(out: bytearray, p: bytes, start: int, end: int) -> None:
    """`p[start:end]` added to `out` (compiled: copied into its room, scan.pxd's C function)."""
    if _FAST:
        _append(out, p, start, end)  # type: ignore[name-defined]  # noqa: F821
    else:
        out += p[start:end]


def _space(p: bytes, n: int, i: int) -> int:
    while i < n:
        c = p[i]
        if c != 32 and c != 10 and c != 13 and c != 9:
            return i
        i += 1
    return i


def _object(p: bytes, n: int, i: int, stops: bytes, node: Reads, depth: int, out: bytearray,
            top: bool) -> int:
    """The object at `i` (its `{`) read in part: its kept members appended to `out` (whose
    caller appended the `{`), then `}`. The index after the object, or -1."""
    kept = 0
    run = -1            # where the members kept whole since the last one left out start
    run_end = 0
    comma = 0           # where the `,` before the member being read is
    mask = node[2]
    i = _space(p, n, i + 1)
    if i < n and p[i] == 125:   # }
        _put(out, p, i, i + 1)
        return i + 1
    while True:
        if i >= n or p[i] != 34:   # "
            return -1
        start = i
        end = _string(p, n, i + 1, stops)
        escaped = end < -1
        if escaped:
            end = -end - 2
        elif end < 0:
            return -1
        i = _space(p, n, end)
        if i >= n or p[i] != 58:   # :
            return -1
        at = _space(p, n, i + 1)
        child: Any = None
        if escaped:
            if top:
                return -1      # a key such as "\u0062atch" at the top: decoded whole
        else:                  # (below, an escaped key is kept whole: its decoded name may be read)
            size = end - start - 2
            if size < 64 and mask[size * 256 + p[start + 1]] == 0:
                child = _SKIP
            else:
                child = _child(p, start + 1, size, node)
        if child is False:
            return -1
        if child is _SKIP or child is None or at >= n or p[at] != 123:
            i = _value(p, n, at, stops, depth + 1)
            if i < 0:
                return -1
            if child is _SKIP:
                if run >= 0:
                    _put(out, p, run, run_end)
                    run = -1
            else:
                if run < 0:
                    if kept:   # (not the first member: a `,` came before it)
                        _put(out, p, comma, comma + 1)
                    kept += 1
                    run = start
                run_end = i
        else:          # an object read in part
            if depth + 1 > MAX_DEPTH:
                return -1
            if run >= 0:
                _put(out, p, run, run_end)
                run = -1
            if kept:
                _put(out, p, comma, comma + 1)
            kept += 1
            _put(out, p, start, at + 1)
            i = _object(p, n, at, stops, child, depth + 1, out, False)
            if i < 0:
                return -1
        i = _space(p, n, i)
        if i >= n:
            return -1
        c = p[i]
        if c == 44:   # ,
            comma = i
            i = _space(p, n, i + 1)
            continue
        if c != 125:  # }
            return -1
        if run >= 0:
            _put(out, p, run, run_end)
        _put(out, p, i, i + 1)
        return i + 1


def _value(p: bytes, n: int, i: int, stops: bytes, depth: int) -> int:
    """The index after the JSON value at `i`, checked, or -1."""
    if i >= n:
        return -1
    c = p[i]
    if c == 34:   # "
        i = _string(p, n, i + 1, stops)
        return -i - 2 if i < -1 else i     # (an escape in a value is no matter here)
    if c == 123 or c == 91:   # { [
        if depth > MAX_DEPTH:
            return -1
        return _container(p, n, i, stops, depth)
    if c == 45 or 48 <= c <= 57:   # - 0-9
        return _number(p, n, i)
    if c == 116:   # true
        if i + 4 <= n and p[i + 1] == 114 and p[i + 2] == 117 and p[i + 3] == 101:
            return i + 4
        return -1
    if c == 102:   # false
        if i + 5 <= n and p[i + 1] == 97 and p[i + 2] == 108 and p[i + 3] == 115 and p[i + 4] == 101:
            return i + 5
        return -1
    if c == 110:   # null
        if i + 4 <= n and p[i + 1] == 117 and p[i + 2] == 108 and p[i + 3] == 108:
            return i + 4
        return -1
    return -1


def _container(p: bytes, n: int, i: int, stops: bytes, depth: int) -> int:
    """An object or an array at `i`, checked whole: the index after it, or -1."""
    if p[i] == 91:   # [
        i = _space(p, n, i + 1)
        if i < n and p[i] == 93:   # ]
            return i + 1
        while True:
            i = _value(p, n, i, stops, depth + 1)
            if i < 0:
                return -1
            i = _space(p, n, i)
            if i >= n:
                return -1
            c = p[i]
            if c == 44:   # ,
                i = _space(p, n, i + 1)
                continue
            if c == 93:   # ]
                return i + 1
            return -1
    i = _space(p, n, i + 1)
    if i < n and p[i] == 125:   # }
        return i + 1
    while True:
        if i >= n or p[i] != 34:
            return -1
        i = _string(p, n, i + 1, stops)
        if i < -1:
            i = -i - 2                     # a key with an escape: of an object checked whole
        elif i < 0:
            return -1
        i = _space(p, n, i)
        if i >= n or p[i] != 58:   # :
            return -1
        i = _value(p, n, _space(p, n, i + 1), stops, depth + 1)
        if i < 0:
            return -1
        i = _space(p, n, i)
        if i >= n:
            return -1
        c = p[i]
        if c == 44:
            i = _space(p, n, i + 1)
            continue
        if c == 125:
            return i + 1
        return -1


def _string(p: bytes, n: int, i: int, stops: bytes) -> int:
    """The string whose opening quote is before `i`: the index after its closing quote, or -1
    where it is not a valid string; -2 - that index where it holds an escape."""
    escaped = False
    while True:
        if _FAST:   # compiled: the C function of scan.pxd (the next stop, or under 16 bytes left)
            i = _plain16(p, n, i)  # type: ignore[name-defined]  # noqa: F821
        else:       # four bytes at a time while none of them needs a look (most of an event's bytes)
            while i + 4 <= n and (stops[p[i]] | stops[p[i + 1]] | stops[p[i + 2]] | stops[p[i + 3]]) == 0:
                i += 4
        while i < n and stops[p[i]] == 0:
            i += 1
        if i >= n:
            return -1
        c = p[i]
        if c == 34:   # "
            return -3 - i if escaped else i + 1
        if c == 92:   # \
            escaped = True
            i = _escape(p, n, i + 1)
            if i < 0:
                return -1
        elif c < 32:
            return -1
        else:
            i = _utf8(p, n, i, c)
            if i < 0:
                return -1


def _hex4(p: bytes, n: int, i: int) -> int:
    """The four hex digits at `i` as a number, or -1."""
    if i + 4 > n:
        return -1
    value = 0
    for k in range(i, i + 4):
        c = p[k]
        if 48 <= c <= 57:
            value = value * 16 + (c - 48)
        elif 97 <= c <= 102:
            value = value * 16 + (c - 87)
        elif 65 <= c <= 70:
            value = value * 16 + (c - 55)
        else:
            return -1
    return value


def _escape(p: bytes, n: int, i: int) -> int:
    """The escape after a backslash at `i`: the index after it, or -1 (a surrogate must be a
    high one followed at once by an escaped low one, as orjson requires)."""
    if i >= n:
        return -1
    c = p[i]
    if c == 117:   # u
        unit = _hex4(p, n, i + 1)
        if unit < 0:
            return -1
        if unit < 0xD800 or unit > 0xDFFF:
            return i + 5
        if unit > 0xDBFF or i + 7 > n or p[i + 5] != 92 or p[i + 6] != 117:
            return -1
        low = _hex4(p, n, i + 7)
        if low < 0xDC00 or low > 0xDFFF:
            return -1
        return i + 11
    if c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110 or c == 114 or c == 116:
        return i + 1
    return -1


def _utf8(p: bytes, n: int, i: int, c: int) -> int:
    """A well-formed UTF-8 sequence at `i`, whose first byte is `c` (0x80 or more): the index
    after it, or -1 (the Unicode standard's table 3-7)."""
    if 0xC2 <= c <= 0xDF:
        if i + 2 <= n and 0x80 <= p[i + 1] <= 0xBF:
            return i + 2
        return -1
    if 0xE0 <= c <= 0xEF:
        if i + 3 > n:
            return -1
        low = 0xA0 if c == 0xE0 else 0x80
        high = 0x9F if c == 0xED else 0xBF
        if low <= p[i + 1] <= high and 0x80 <= p[i + 2] <= 0xBF:
            return i + 3
        return -1
    if 0xF0 <= c <= 0xF4:
        if i + 4 > n:
            return -1
        low = 0x90 if c == 0xF0 else 0x80
        high = 0x8F if c == 0xF4 else 0xBF
        if low <= p[i + 1] <= high and 0x80 <= p[i + 2] <= 0xBF and 0x80 <= p[i + 3] <= 0xBF:
            return i + 4
        return -1
    return -1


def _number(p: bytes, n: int, i: int) -> int:
    """A JSON number at `i`: the index after it, or -1 where it is not one, or might be too large
    for a double (orjson refuses those), or is longer than MAX_NUMBER."""
    start = i
    if p[i] == 45:   # -
        i += 1
    if i >= n:
        return -1
    c = p[i]
    if c == 48:   # 0
        i += 1
        digits = 1
    elif 49 <= c <= 57:
        first = i
        while i < n and 48 <= p[i] <= 57:
            i += 1
        digits = i - first
    else:
        return -1
    if i < n and p[i] == 46:   # .
        i += 1
        first = i
        while i < n and 48 <= p[i] <= 57:
            i += 1
        if i == first:
            return -1
    if i < n and (p[i] == 101 or p[i] == 69):   # e E
        i += 1
        negative = False
        if i < n and (p[i] == 43 or p[i] == 45):
            negative = p[i] == 45
            i += 1
        first = i
        exponent = 0
        while i < n and 48 <= p[i] <= 57:
            if i - first >= 6:
                return -1
            exponent = exponent * 10 + (p[i] - 48)
            i += 1
        if i == first:
            return -1
        if not negative and digits + exponent > 308:
            return -1      # might be infinite as a double
    elif digits > 308:
        return -1
    if i - start > MAX_NUMBER:
        return -1
    return i
