"""Triggers as programs: the candidate triggers of an event decided in one call, `select`.

`segment.triggers` compiles a trigger into closures, the reference. This module writes the same
conditions out as a *program* of plain tuples and runs it, for every candidate trigger of an event
at once: each path is read once for every trigger that reads it, and a value's type is looked at
once for all the tests of it. It is in build.COMPILED_MODULES: where the install compiled it the
program runs in C (the comparisons of a float or a small int with the number, of a str with the
str, are C comparisons); in pure Python it still beats asking each closure (50 property triggers:
+44 % instructions per event instead of +237 %). Not Segment's code: the semantics are the
closures' (`triggers.test_for`, `triggers.js_member`), bit for bit, and
tests/segment/test_trigger_programs.py holds both against each other on generated triggers and
events.

A selector (built by `compile_selector`) is the program of every trigger a mapping plan asks about:
    (reads, groups, trees, decided, results, decided results)
    reads:   a tuple of (parent, key): what `get` reads, as a tree: the event's member `key` where
             parent is -1, else member `key` of the value read at `parent` (JavaScript's member
             access where that is not an object); each read at most once per event
    groups:  for each value that triggers made of one comparison test, its tests, (*comparison,
             entry), by what they need of the value (its type is looked at once): (read, every
             test, the numeric ones, {expected str: entries} of `=` and IN, the other string ones,
             exists/not_exists/is_true/is_false, the entries of `!=`, the CALL ones)
    trees:   (test, entry) for the other triggers: (AND, tests) | (OR, tests) | a comparison
    decided: the entries that match whatever the event (the plan's key decided them)
    results: what `select` gives for each entry that matches, in the entries' order
    comparison: (kind, read, operand, closure): of the value read, its operand the expected str
             (the string kinds), float (the numeric kinds) or frozenset of str (IN, `event = "A"
             or event = "B"`); `closure` is the reference's test of that value, which a value of no
             JSON type is handed to (so `=` compares as Python does), an int a double would round,
             and a comparison in UTF-16 units (CALL: the expected str holds a surrogate)

Where the (event, type) of the events a plan serves is known (translate's plans are cached per
key), the conditions on `event` and `type` are decided when the selector is built, as the
translator already does for triggers that read nothing else.
"""

from __future__ import annotations

import types
from typing import Any

from recombee_cli.segment.jsvalues import js_has_surrogate, js_string, js_to_number
from recombee_cli.segment.triggers import CONTAINERS, PATH_SEGMENTS, TOP_LEVEL, js_member, plain_equality, test_for

__all__ = ["COMPILED", "compile_selector", "compile_program", "decided_results", "select", "program_matches"]

# test kinds (written as numbers in the runner, so that the compiled build compares C integers)
AND, OR, IN, CALL = 0, 1, 2, 3
EQ, NE, CONTAINS, NOT_CONTAINS, STARTS, NOT_STARTS, ENDS, NOT_ENDS = 4, 5, 6, 7, 8, 9, 10, 11
EXISTS, NOT_EXISTS, IS_TRUE, IS_FALSE = 12, 13, 14, 15
LT, LE, GT, GE, NUM_EQ, NUM_NE = 16, 17, 18, 19, 20, 21

_STRING_KINDS = {"=": EQ, "!=": NE, "contains": CONTAINS, "not_contains": NOT_CONTAINS,
                 "starts_with": STARTS, "not_starts_with": NOT_STARTS, "ends_with": ENDS,
                 "not_ends_with": NOT_ENDS}
_NUMBER_KINDS = {"<": LT, "<=": LE, ">": GT, ">=": GE, "number_equals": NUM_EQ, "number_not_equals": NUM_NE}
_OTHER_KINDS = {"exists": EXISTS, "not_exists": NOT_EXISTS, "is_true": IS_TRUE, "is_false": IS_FALSE}
_SAFE = 9007199254740992.0   # 2**53: every int below it in size is exactly a double

Program = tuple[Any, ...]
Test = tuple[Any, ...]


# ============================================================================================
# Building
# ============================================================================================


# A selector is built in two steps: each trigger's test with the paths it reads written out
# (`_test`, kept per trigger and per the values of the known fields it reads: the same triggers
# recur in every plan, one plan per (event, type) of an archive), then those paths numbered as
# the selector's reads (`_renumber`). `known`: the top-level fields every event served has (None
# for a missing one); None: none known.


def _test(node: dict, known: dict | None) -> Test | bool:
    """The node's test, each comparison's read a path from the top of the event, or True/False
    where it is decided without the event."""
    if node["type"] == "group":
        return _group_test(node, known)
    spec = leaf_spec(node)
    if len(spec) == 1:
        return bool(spec[0])
    path: tuple = spec[1]
    if len(path) == 1 and known is not None and path[0] in known:
        return bool(spec[3](known[path[0]]))
    return spec


def _group_test(node: dict, known: dict | None) -> Test | bool:
    operator, children = node["operator"], node["children"]
    if operator != "and" and operator != "or":
        return False
    if operator == "or":
        pairs = [plain_equality(c) for c in children]
        keys = {pair[0] for pair in pairs if pair is not None}
        if None not in pairs and len(keys) == 1 and not (known is not None and next(iter(keys)) in known):
            # `event = "A" or event = "B"`: one test of the top-level field against a set, as
            # the closure does it (a str in the set); where the field is known, each is decided
            return (IN, (keys.pop(),), frozenset(pair[1] for pair in pairs if pair is not None), None)
    tests: list[Test] = []
    for child in children:
        test = _test(child, known)
        if test is True or test is False:
            if test is (operator == "or"):
                return test              # decided: one child holds (or), one fails (and)
            continue
        tests.append(test)
    if not tests:
        return operator == "and"
    if len(tests) == 1:
        return tests[0]
    return (AND if operator == "and" else OR, tuple(tests))


def _fields(node: dict) -> tuple:
    """The top-level fields a tree reads (those `known` can decide)."""
    if node["type"] == "group":
        found: list[str] = []
        for child in node["children"]:
            found += [key for key in _fields(child) if key not in found]
        return tuple(found)
    return (TOP_LEVEL[node["type"]],) if node["type"] in TOP_LEVEL else ()


# Each tree's tests: id -> (the tree, kept alive so that its id stays its own, the top-level fields
# it reads, {those fields' known values (None: nothing known): its test}).
_TREES: dict[int, tuple[Any, ...]] = {}
_TREES_LIMIT = 1 << 12
_TESTS_LIMIT = 64
_ABSENT: Any = object()


def _tree_test(tree: dict, known: dict | None) -> Test | bool:
    entry = _TREES.get(id(tree))
    if entry is None or entry[0] is not tree:
        entry = (tree, _fields(tree), {})
        if len(_TREES) < _TREES_LIMIT:
            _TREES[id(tree)] = entry
    tests: dict = entry[2]
    key = None if known is None else tuple([known.get(field, _ABSENT) for field in entry[1]])
    try:
        test = tests.get(key, _ABSENT)
    except TypeError:   # a known value that cannot be a key (the Python API's own)
        return _test(tree, known)
    if test is _ABSENT:
        test = _test(tree, known)
        if len(tests) < _TESTS_LIMIT:
            tests[key] = test
    return test


def _read(reads: list, index: dict, parent, key: str):   # (.pxd: C ints)
    at = index.get((parent, key))
    if at is None:
        at = index[(parent, key)] = len(reads)
        reads.append((parent, key))
    return at


def _renumber(test: tuple, reads: list, index: dict) -> tuple:
    """The test with each path replaced by its place in the selector's reads."""
    if test[0] <= OR:
        return (test[0], tuple([_renumber(child, reads, index) for child in test[1]]))
    at = -1
    for key in test[1]:
        at = _read(reads, index, at, key)
    return (test[0], at, test[2], test[3])


# A leaf's analysis by (field, name, operator, value): the same conditions recur in every plan's
# selector (one per (event, type) of an archive), and analysing one costs about 20k instructions.
_LEAVES: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_LEAVES_LIMIT = 1 << 14


def leaf_spec(node: dict[str, Any]) -> tuple[Any, ...]:
    """A condition as (kind, path from the top of the event, operand, the closure's test), or
    (decided,) where the event cannot change its result."""
    expected = node.get("value")
    key = (node["type"], node.get("name"), node["operator"], type(expected), expected)
    try:
        spec = _LEAVES.get(key)
    except TypeError:   # an unhashable value (a list): not kept
        return _leaf_spec(node)
    if spec is None:
        spec = _leaf_spec(node)
        if len(_LEAVES) < _LEAVES_LIMIT:
            _LEAVES[key] = spec
    return spec


def _leaf_spec(node: dict[str, Any]) -> tuple[Any, ...]:
    operator, expected = node["operator"], node.get("value")
    check = test_for(operator, expected)
    if check is None:
        return (False,)                      # the closure: never
    if node["type"] in TOP_LEVEL:
        path: tuple[str, ...] = (TOP_LEVEL[node["type"]],)
    else:
        segments = PATH_SEGMENTS.findall(node["name"]) if node["name"] != "" else []
        if not segments:
            return (bool(check(None)),)      # `get` of an empty path: undefined
        path = (CONTAINERS[node["type"]], *segments)
    if operator in _STRING_KINDS:
        s = js_string(expected)
        if js_has_surrogate(s):
            return (CALL, path, s, check)    # compared in UTF-16 code units: the closure decides
        return (_STRING_KINDS[operator], path, s, check)
    if operator in _NUMBER_KINDS:
        return (_NUMBER_KINDS[operator], path, js_to_number(expected), check)
    return (_OTHER_KINDS[operator], path, None, check)


def compile_selector(entries: list[tuple[dict[str, Any] | None, Any]],
                     known: dict[str, Any] | None = None) -> Program:
    """A selector of `entries`, each (a trigger's tree, or None where it is already decided to
    match; the result `select` gives when it matches). `known`: the top-level fields every event
    the selector is run on has (None for a missing one), decided here."""
    reads: list[tuple[int, str]] = []
    index: dict[tuple[int, str], int] = {}
    results: list[Any] = []
    decided: list[int] = []
    by_read: dict[int, list[Test]] = {}
    trees: list[tuple[Test, int]] = []
    for tree, result in entries:
        test = True if tree is None else _tree_test(tree, known)
        if test is False:
            continue
        if test is not True:
            test = _renumber(test, reads, index)
        at = len(results)
        results.append(result)
        if test is True:
            decided.append(at)
        elif test[0] >= IN:   # one comparison: with the others of the value it reads
            by_read.setdefault(test[1], []).append((*test, at))
        else:
            trees.append((test, at))
    groups = tuple(_group(read, tests) for read, tests in by_read.items())
    return (tuple(reads), groups, tuple(trees), tuple(decided), tuple(results),
            tuple(results[at] for at in decided))


def _group(read: int, tests: list[Test]) -> tuple[Any, ...]:
    """The comparisons of one value, by what they need of it (see `select`)."""
    numeric = tuple(t for t in tests if t[0] >= LT)
    equal: dict[str, tuple[int, ...]] = {}
    for t in tests:
        for s in ((t[2],) if t[0] == EQ else sorted(t[2]) if t[0] == IN else ()):
            equal[s] = (*equal.get(s, ()), t[4])
    strings = tuple(t for t in tests if NE <= t[0] <= NOT_ENDS)
    others = tuple(t for t in tests if EXISTS <= t[0] <= IS_FALSE)
    unequal = tuple(t[4] for t in tests if t[0] == NE)
    calls = tuple(t for t in tests if t[0] == CALL)
    return (read, tuple(tests), numeric, equal or None, strings, others, unequal, calls)


def decided_results(program: Program) -> tuple[Any, ...] | None:
    """What `select` gives whatever the event, where the selector has nothing left to test."""
    return None if program[1] or program[2] else program[5]


def compile_program(tree: dict[str, Any]) -> Program:
    """One trigger as a selector of one entry (for `program_matches`)."""
    return compile_selector([(tree, True)])


def program_matches(program: Program, event: Any) -> bool:
    """Whether the trigger of `compile_program` matches the event (never when it is not a dict),
    as the trigger's closure answers."""
    if not isinstance(event, dict):
        return False
    return len(select(program, event if type(event) is dict else dict(event))) > 0


# ============================================================================================
# Running
# ============================================================================================


class _Unread:
    __slots__ = ()


_UNREAD: Any = _Unread()


def select(program: tuple, event: dict) -> tuple:   # (Cython types these: trigger_programs.pxd)
    """The results of the entries whose test the event passes, in order.

    The comparisons of one value are made together: its type looked at once, then only those
    that can hold of a value of that type (a number: the numeric ones; a str: the string ones,
    `=` as one look-up in a dict of the expected strings; anything else: `!=`), and `exists`,
    `is_true`... of any value."""
    reads: tuple = program[0]
    values: list = [_UNREAD] * len(reads)
    passed: list = []
    for group in program[1]:
        # group: (read, every test, numeric, {expected str: entries} or None, the other string
        # tests, exists/not_exists/is_true/is_false, the entries of `!=`, the UTF-16 ones (CALL))
        value = _value(group[0], reads, values, event)
        t = type(value)
        if t is str:
            text: str = value
            equal = group[3]
            if equal is not None:
                hits = equal.get(text)
                if hits is not None:
                    passed.extend(hits)
            for test in group[4]:
                if _leaf(test, 3, 0.0, text):
                    passed.append(test[4])
        elif t is float or t is int or value is None or t is bool or t is dict or t is list:
            passed.extend(group[6])   # `!=` of anything but a str
            if t is float or t is int:
                sort = 1
                if t is float:
                    x = value
                else:
                    sort = 2   # compared as Python compares it where a double would round it
                    try:
                        x = float(value)
                        if -_SAFE < x < _SAFE:
                            sort = 1
                    except OverflowError:
                        x = 0.0
                for test in group[2]:
                    if _leaf(test, sort, x, value):
                        passed.append(test[4])
        else:   # a value of the Python API's own: every test as the closure makes it
            for test in group[1]:
                if _leaf(test, 4, 0.0, value):
                    passed.append(test[4])
            continue
        for test in group[5]:
            if _leaf(test, 0, 0.0, value):
                passed.append(test[4])
        for test in group[7]:
            if _leaf(test, 0, 0.0, value):
                passed.append(test[4])
    for tree in program[2]:
        if _passes(tree[0], reads, values, event):
            passed.append(tree[1])
    if not passed:
        return program[5]   # (the entries decided without the event, if any)
    passed.extend(program[3])
    passed.sort()
    results: tuple = program[4]
    return tuple([results[at] for at in passed])


# Whether this module runs compiled: then select is a C function, not a Python one, whatever the
# module's file is called.
COMPILED = not isinstance(select, types.FunctionType)


def _value(at, reads: tuple, values: list, event: dict) -> Any:
    value = values[at]
    if value is _UNREAD:
        read: tuple = reads[at]
        parent = read[0]
        if parent < 0:
            value = event.get(read[1])
        else:
            value = _value(parent, reads, values, event)
            if type(value) is dict:
                inner: dict = value
                value = inner.get(read[1])
            elif value is not None and value is not False:   # (null, false: `&&` stops there)
                value = js_member(value, read[1])
        values[at] = value
    return value


def _passes(test: tuple, reads: tuple, values: list, event: dict) -> bool:
    kind = test[0]
    if kind == 0:   # AND
        for child in test[1]:
            if not _passes(child, reads, values, event):
                return False
        return True
    if kind == 1:   # OR
        for child in test[1]:
            if _passes(child, reads, values, event):
                return True
        return False
    value = _value(test[1], reads, values, event)
    t = type(value)
    x = 0.0
    if t is float:
        x = value
        sort = 1
    elif t is int:
        sort = 2
        try:
            x = float(value)
            if -_SAFE < x < _SAFE:
                sort = 1
        except OverflowError:
            pass
    elif t is str:
        sort = 3
    elif value is None or t is bool or t is dict or t is list:
        sort = 0
    else:
        sort = 4
    return _leaf(test, sort, x, value)


def _leaf(test: tuple, sort, x, value: Any) -> bool:
    """A comparison of a value whose sort `select` found: 1 a number that is exactly the double x,
    2 another int, 3 a str, 0 null, a bool, an object or an array, 4 none of JSON's types."""
    kind = test[0]
    if kind >= 16:   # the numeric kinds: a JSON number (not a bool)
        if sort == 1:
            n = test[2]
            if kind == 16:
                return x < n
            if kind == 17:
                return x <= n
            if kind == 18:
                return x > n
            if kind == 19:
                return x >= n
            if kind == 20:
                return x == n
            return x != n
        if sort == 2:
            return bool(test[3](value))
        return False
    if kind >= 12:
        if kind == 12:
            return value is not None
        if kind == 13:
            return value is None
        if kind == 14:
            return value is True
        return value is False
    if sort != 3:
        if kind == 3 or (sort == 4 and kind >= 4 and kind <= 5):
            return bool(test[3](value))   # UTF-16 units; `=`, `!=` on a value of the Python API's own
        return kind == 5   # `!=` is true of anything but the string; the rest need a string
    text: str = value
    if kind == 2:
        members: frozenset = test[2]
        return text in members
    if kind == 3:   # CALL
        return bool(test[3](text))
    s: str = test[2]
    if kind == 4:
        return text == s
    if kind == 5:
        return text != s
    if kind == 6:
        return s in text
    if kind == 7:
        return s not in text
    if kind == 8:
        return text.startswith(s)
    if kind == 9:
        return not text.startswith(s)
    if kind == 10:
        return text.endswith(s)
    return not text.endswith(s)
