"""Map and build stages as one compiled call per event: a mapping's *program* run by `run_program`.

`mapping.fastpath` writes each mapping out twice, from the same analysis: as generated Python
source (the pure-Python build's fast path) and as a program of plain tuples that this module runs.
This module is in build.COMPILED_MODULES: where the install compiled it, a replay runs every mapping
through `run_program` (one C call per mapping per event, the inlinable forms — `@path`, the coalesce,
literals, objects of those, the add-type builders — done in C), and the generated source stays
the pure build's. Both do the same steps in the same order as the interpreter (mappingkit's
resolvers, `actions.make_preparer`, the action's builder), which stays the reference:
tests/mapping/test_fastpath.py checks all three event by event on every corpus we have.

A program (built by fastpath.compile_program):
    (fields, builder)
    fields:  a tuple of (node, required, missing message, plain types or None, field spec)
    node:    (LITERAL, value) | (PATH, keys, fallback) | (COALESCE, path node, else node)
             | (OBJECT, ((key, node), ...)) | (CALL, resolver)
             | (ARRAY, keys, fallback, shape node, shape resolver)   `@arrayPath` with an inlinable shape
    builder: (GENERIC, names, build)   the payload of the present fields, to the action's builder
           | (ADD, check, first, stamp, extras, path, body, ids, shell)   actions.AddBuilder, inlined

`run_written` runs a program as `run_program` does, but where this module runs compiled it gives
a single add-type request as the bytes `orjson.dumps` makes of its dict, written by mapcore.pxd's
C writer straight from the resolved values without building the dicts (`shell`: the request's
fixed bytes, from `request_shell`). What the writer does not know how to write exactly as orjson
does (text other than printable ASCII, a number orjson writes with an exponent or refuses, a
value nested deeper than additionalData's own members) it leaves to the dicts and orjson. A
replay that only prints the requests (no routes to read, no values to describe) runs it;
tests/mapping/test_fastpath.py checks its bytes against `orjson.dumps` of run_program's dicts.
"""

from __future__ import annotations

import types
from typing import Any

import orjson

from recombee_cli.errors import PayloadInvalid
from recombee_cli.segment.actions import FALLBACK_TIMESTAMPS, NO_TIMESTAMP, check_id, coerce_field, is_valid_id
from recombee_cli.segment.jsvalues import UNDEFINED
from recombee_cli.segment.mappingkit import copy_value
from recombee_cli.segment.timestamps import fast_canonical, first_epoch_seconds, to_epoch_seconds

# node kinds
LITERAL, PATH, COALESCE, OBJECT, CALL, ARRAY = 0, 1, 2, 3, 4, 5
# builder kinds
GENERIC, ADD = 0, 1

# IDs that passed actions.ID_PATTERN, shared by every mapping (and by the generated source). Small
# enough (32k) to fill early in any archive, so that memory stays flat however long the run (at
# 256k it grew 12 MB from 1M to 10M).
VALID_IDS: set[str] = set()
VALID_IDS_LIMIT = 1 << 15
ID_FIELDS = ("userId", "itemId", "sessionId")


_OFF_PATH = object()   # what _walk gives where the path leaves dicts


def _walk(keys: tuple, event: dict) -> Any:   # type: ignore[type-arg]
    """The value at `keys` through dicts (UNDEFINED where a key is missing), or _OFF_PATH where a
    list, string or falsy value is on the way: those have JavaScript semantics (indexes, `length`,
    short-circuit) that the field's resolver knows."""
    value = event.get(keys[0], UNDEFINED)
    for i in range(1, len(keys)):
        if type(value) is not dict:
            return _OFF_PATH
        inner: dict = value   # type: ignore[type-arg]
        value = inner.get(keys[i], UNDEFINED)
    return value


def _resolve(node: tuple, event: dict) -> Any:   # type: ignore[type-arg]  # (Cython types these)
    # The kinds are written as numbers, not their names, so that the compiled build compares C
    # integers instead of looking up module globals.
    kind = node[0]
    if kind == 1:   # PATH
        value = _walk(node[1], event)
        if value is _OFF_PATH:
            return node[2](event)
        if type(value) is dict or type(value) is list:
            return copy_value(value)
        return value
    if kind == 0:   # LITERAL
        return node[1]
    if kind == 2:   # COALESCE
        value = _resolve(node[1], event)
        if value is None or value is UNDEFINED:
            return _resolve(node[2], event)
        return value
    if kind == 3:   # OBJECT
        out = {}
        for key, child in node[1]:
            value = _resolve(child, event)
            if value is not UNDEFINED:
                out[key] = value
        return out
    if kind == 5:   # ARRAY: @arrayPath, its shape resolved on each item of the array
        value = _walk(node[1], event)
        if value is _OFF_PATH:
            return node[2](event)
        if type(value) is list:
            items = []
            for item in value:
                # an item that is not an object has JavaScript's semantics: the shape's resolver
                items.append(_resolve(node[3], item) if type(item) is dict else node[4](item))
            return items
        if type(value) is dict:
            return [_resolve(node[3], value)]
        return value
    return node[1](event)   # CALL: a form not written out, resolved by the field's own resolver


def run_program(program: tuple, event: dict) -> list[dict[str, Any]]:   # type: ignore[type-arg]
    """A mapping's requests for an event, or the first PayloadInvalid/MappingError, as the
    interpreter gives them."""
    return _run(program, event, False)


def run_written(program: tuple, event: dict) -> list[Any]:   # type: ignore[type-arg]
    """run_program's requests, an add-type request as its JSON bytes where it can be written
    directly (see the module's doc), else as the dict."""
    return _run(program, event, True)


def _run(program: tuple, event: dict, written: bool) -> list[Any]:   # type: ignore[type-arg]
    fields: tuple = program[0]   # type: ignore[type-arg]
    builder: tuple = program[1]  # type: ignore[type-arg]
    values: list[Any] = []
    for field in fields:
        value = _resolve(field[0], event)
        # (`== ""` on a JSON value: only the empty string; said without a rich comparison)
        if value is UNDEFINED or value is None or (type(value) is str and len(value) == 0):
            if field[1]:
                raise PayloadInvalid(field[2])
            values.append(None)
            continue
        plain = field[3]
        if plain is None or type(value) not in plain:
            value = coerce_field(field[4], value)
        values.append(value)
    if builder[0] == 0:   # GENERIC
        payload = {}
        names: tuple = builder[1]   # type: ignore[type-arg]
        for i in range(len(names)):
            value = values[i]
            if value is not None or fields[i][1]:
                payload[names[i]] = value
        return builder[2](payload, event)   # type: ignore[no-any-return]
    return _build_add(builder, values, event, written)


def clocks_given(stamps: tuple, event: dict) -> bool:   # type: ignore[type-arg]
    """Whether every mapped timestamp of `stamps` (mapping/reads.lean_reads: each a program node,
    with the keys of its path or of its two paths) resolves, for `event`, to a value the add-type
    builders take as it is: a non-empty string or a number. Where one may not, a builder may read a
    stand-in clock (originalTimestamp, ...), which an event decoded with the lean table lacks: the
    caller decodes it whole. (Anything else that would pass is a value the builder refuses
    without a clock; told apart here, it only costs that line a whole decode.)"""
    for stamp in stamps:
        # The usual forms told by lookups alone: a path, and the presets' `@if exists A then A
        # else B` of two paths, A under an object the event may not have (`properties`).
        first = stamp[1]
        value: Any = _OFF_PATH if first is None else _walk(first, event)
        second = stamp[2]
        if second is not None:
            if value is _OFF_PATH and first[0] not in event:
                value = UNDEFINED   # (under an object the event lacks: undefined, as the path resolves it)
            if value is None or value is UNDEFINED:
                value = _walk(second, event)
        if value is _OFF_PATH:   # another form, or a path through something else: resolved as the mapping does
            try:
                value = _resolve(stamp[0], event)
            except Exception:   # noqa: BLE001 - the mapping will say what; its event is decoded whole
                return False
        kind = type(value)
        if not ((kind is str and len(value) > 0) or kind is int or kind is float):
            return False
    return True


def clock_stamp(node: tuple) -> tuple:   # type: ignore[type-arg]
    """A mapped timestamp's node as `clocks_given` takes it: (node, the keys of its path or of
    the first of two, the keys of the second or None); (node, None, None) for any other form."""
    if node[0] == 1 and node[1]:   # PATH
        return node, tuple(node[1]), None
    if node[0] == 2 and node[1][0] == 1 and node[2][0] == 1 and node[1][1] and node[2][1]:   # COALESCE of two paths
        return node, tuple(node[1][1]), tuple(node[2][1])
    return node, None, None


def _build_add(builder: tuple, values: list, event: dict, written: bool) -> list[Any]:   # type: ignore[type-arg]
    """actions.AddBuilder and actions._add_params, step for step, on the resolved values;
    `written`: each request as its JSON bytes where run_written can (see the module's doc)."""
    _, check, first, stamp_at, extras, path, body, ids, shell = builder
    if check is not None:
        check[0](values[check[1]])
    firsts: list[Any] | None = None
    if first is not None:
        # the first parameters of each request, all of them before the timestamp (as the builder:
        # a purchase with no products sends nothing and needs no timestamp)
        make = first[0]
        value = values[first[1]]
        firsts = [make(v) for v in value] if first[2] else [make(value)]
        if not firsts:
            return []
    stamp = values[stamp_at] if stamp_at >= 0 else None
    ts: Any = None
    if stamp is not None:
        if type(stamp) is str:
            ts = fast_canonical(stamp)
        if ts is None:
            ts = to_epoch_seconds(stamp)
    else:
        ts = first_epoch_seconds(event, FALLBACK_TIMESTAMPS)
        if ts is None:
            raise PayloadInvalid(NO_TIMESTAMP)
    # (The resolved objects are this event's own: mappingkit's resolvers and _resolve never share
    # one with the event or another resolution, so one is used as it is instead of copied.)
    if len(extras) == 2:
        given, internal = values[extras[0]], values[extras[1]]
        extra = {**given, **internal} if given and internal else (given or internal or {})
    elif extras:
        extra = values[extras[0]] or {}
    else:
        extra = {}
    valid: set[str] = VALID_IDS
    if firsts is None:
        for name, at, required in ids:
            value = values[at]
            if (required or value is not None) and (COMPILED or value not in valid):
                _check_id(name, value)
        if written and COMPILED and shell is not None:   # (mapcore.pxd's C writer; pure Python: the dicts)
            text = _write_add(shell, ts, extra, body, values)  # type: ignore[name-defined]  # noqa: F821
            if text is not None:
                return [text]
        params = {"timestamp": ts, "cascadeCreate": True, "additionalData": extra}
        for name, at, required in body:
            value = values[at]
            if required or value is not None:
                params[name] = value
        return [{"method": "POST", "path": path, "params": params}]
    requests = []
    for one in firsts:
        params = {"timestamp": ts, "cascadeCreate": True, "additionalData": extra}
        if one:
            params.update(one)
        for name, at, required in body:
            value = values[at]
            if required or value is not None:
                params[name] = value
        for name in ID_FIELDS:   # the first parameters may bring an itemId
            if name in params:
                value = params[name]
                if COMPILED or value not in valid:
                    _check_id(name, value)
        requests.append({"method": "POST", "path": path, "params": params})
    return requests


def request_shell(path: str, names: Any) -> tuple[bytes, bytes, tuple[bytes, ...], Any]:
    """The fixed bytes of an add-type request to `path` as orjson writes its dict, for the C
    writer: up to the timestamp's value, from there to additionalData's, and each of `names` (the
    builder's body, in its order) as it follows a value; and orjson.dumps, for a float's digits."""
    head = b'{"method":"POST","path":' + orjson.dumps(path) + b',"params":{"timestamp":'
    return (head, b',"cascadeCreate":true,"additionalData":', tuple(b"," + orjson.dumps(n) + b":" for n in names),
            orjson.dumps)


def _check_id(name: str, value: Any) -> None:
    # Pure Python: IDs repeat (users, products), and a set of those seen valid saves the regular
    # expression. Compiled, the callers skip the set: checking an ID's characters costs less than
    # looking it up (the hash of a string orjson just made, then a 32k-entry set out of the CPU's
    # caches: 3.6 % of a browser dry run's CPU).
    if COMPILED and type(value) is str:
        if not id_chars_ok(value):
            check_id(name, value)   # raises, unless Recombee's ID rule is off (a file export)
    elif not is_valid_id(value):
        check_id(name, value)
    elif len(VALID_IDS) < VALID_IDS_LIMIT:
        VALID_IDS.add(value)


def id_chars_ok(value: str) -> bool:
    """actions.ID_PATTERN's rule (letters, digits, _ - : @ .; not `.` or `..` alone), character by character: a C loop
    where this module is compiled, five times cheaper than the regular expression on the IDs
    of an archive, most of which are seen once. (In pure Python the expression is the faster:
    it is used there. tests/mapping/test_fastpath.py checks that both agree.)"""
    if not value or value == "." or value == "..":
        return False
    for ch in value:
        if not ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in "_-:@."):
            return False
    return True


# Whether this module runs compiled (then fastpath gives every mapping a program instead of source):
# compiled, id_chars_ok is a C function, not a Python one, whatever the module's file is called.
COMPILED = not isinstance(id_chars_ok, types.FunctionType)
