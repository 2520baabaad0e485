"""Segment's subscription trigger language (the `subscribe` strings of Actions mappings).

`type = "track" and event = "Order Completed"` is not full FQL: Segment's Actions runtime lexes it
with `@segment/fql-ts` and parses it with `parseFql` from `@segment/destination-subscriptions`, a
flat left-to-right scan with no precedence, then evaluates it with that package's `validate`.
This module is a port of those three steps, quirks included:

* lexer    - fql-ts 1.10.1 `lex()`: same tokens, same failures;
* parser   - `parseFql`: builds the package's own condition tree (`{"type": "group", "operator":
             "and", "children": [...]}`), which `Trigger.ast` exposes;
* compiler - `validate()` semantics turned into nested closures once per trigger, so matching an
             event never re-parses anything.

Where Segment's reading differs from the obvious one we behave like Segment and add a sentence to
`Trigger.warnings` saying how Segment reads the trigger. Where Segment cannot parse a trigger (it
would then never deliver anything), `compile_trigger` raises `TriggerSyntaxError` with a one-line
reason.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from recombee_cli.errors import TriggerSyntaxError
from recombee_cli.segment.jsvalues import (
    js_has_surrogate,
    js_is_array_index,
    js_number_to_string,
    js_string,
    js_to_number,
    js_utf16,
    js_utf16_slice,
)

__all__ = ["Trigger", "compile_trigger"]

Matcher = Callable[[Any], bool]

# ============================================================================================
# The getter's member access (the JavaScript value rules themselves live in jsvalues.py)
# ============================================================================================


def _js_member(value: Any, key: str) -> Any:
    """`value && value[key]` for a value that is not a dict (see `_path_reader`).

    Falsy values (null/undefined, false, 0, NaN, "") are returned as they are: JavaScript's `&&`
    stops there. Arrays and strings answer indexes and `length`; other properties are undefined.
    """
    if value is None or value is False:
        return value
    t = type(value)
    if t is str:
        if value == "":
            return value
        units = js_utf16(value)
        if key == "length":
            return len(units)
        if js_is_array_index(key):
            i = int(key)
            return units[i] if i < len(units) else None
        return None
    if t is list:
        if key == "length":
            return len(value)
        if js_is_array_index(key):
            i = int(key)
            return value[i] if i < len(value) else None
        return None
    if t is int or t is float:
        return value if (value == 0 or value != value) else None
    if isinstance(value, dict):
        return value.get(key)
    return None


# ============================================================================================
# Lexer: a port of @segment/fql-ts 1.10.1 `lex()`
# ============================================================================================

_EOS = None  # what the lexer's reader yields past the end of the text (fql-ts: the string "-1")

_LETTERS = frozenset(string.ascii_letters)  # `/[a-z]/i`: ASCII only, so "é" is invalid outside strings
_DIGITS = frozenset(string.digits)
_TERMINATORS = frozenset(" \t\n,])")        # "\r" is neither whitespace nor a terminator
_IDENT_CHARS = _LETTERS | _DIGITS | {"_", "-", "\\"}
_AFTER_IDENT = _TERMINATORS | {".", "(", "=", "!"}
_PUNCTUATION = {".": "dot", "[": "brackleft", "]": "brackright", ",": "comma",
                "(": "parenleft", ")": "parenright"}


class _Tok(NamedTuple):
    type: str   # fql-ts token types: ident, operator, conditional, string, number, null, dot, ...
    value: str  # the token text; strings keep their quotes
    pos: int    # offset in the trigger text (-1 for the end markers the parser adds)


class _LexError(Exception):
    def __init__(self, kind: str, pos: int, char: str | None = None, ident: str = ""):
        super().__init__(kind)
        self.kind, self.pos, self.char, self.ident = kind, pos, char, ident


def _is_terminator(c: str | None) -> bool:
    return c is _EOS or c in _TERMINATORS


class _Lexer:
    def __init__(self, code: str):
        self.code = code
        self.pos = 0
        self.tokens: list[_Tok] = []
        # Closing quotes the lexer did not consume (see `_string`): each is re-read as an opening one.
        self.glued_quotes: list[int] = []

    def lex(self) -> list[_Tok]:
        toks = self.tokens
        while True:
            start = self.pos
            c = self._next()
            if c is _EOS:
                toks.append(_Tok("eos", "eos", start))
                return toks
            if c in " \t\n":
                continue
            if c == "!" and (self._peek() in _LETTERS or self._peek() == "("):
                toks.append(_Tok("operator", "!", start))  # negation: `!contains(`, `!(`, `!type`
                continue
            if c in _LETTERS or c in "!=<>\\_":
                toks.append(self._operator_or_word(c, start))
                continue
            if c in _DIGITS or c in "-+":
                toks.append(self._number(c, start))
                continue
            if c in "\"'":
                toks.append(self._string(c, start))
                continue
            kind = _PUNCTUATION.get(c)
            if kind is None:
                raise _LexError("invalid-char", start, char=c)
            toks.append(_Tok(kind, c, start))

    # -- reader ----------------------------------------------------------------------------
    def _next(self) -> str | None:
        if self.pos >= len(self.code):
            return _EOS
        self.pos += 1
        return self.code[self.pos - 1]

    def _peek(self) -> str | None:
        return self.code[self.pos] if self.pos < len(self.code) else _EOS

    def _accept(self, word: str) -> bool:
        """Consume `word` if it is followed by a terminator; otherwise roll back."""
        read = ""
        for _ in word:
            c = self._next()
            if c is _EOS:
                return False  # fql-ts returns here without rolling back: what it read is lost
            read += c
            if c in _TERMINATORS:
                break
        if read == word and _is_terminator(self._peek()):
            return True
        self.pos = max(0, self.pos - len(read))
        return False

    # -- token kinds ------------------------------------------------------------------------
    def _operator_or_word(self, c: str, start: int) -> _Tok:
        if c == "=":
            return _Tok("operator", "=", start)
        if c == "!":
            # `!=` must be followed by a terminator (a space): `type !="x"` fails to lex.
            if self._accept("="):
                return _Tok("operator", "!=", start)
            raise _LexError("bang", start, char=self._peek())
        # Keywords exist only in lower case and only before a terminator: `AND`, `and(` are idents.
        if c == "a" and self._accept("nd"):
            return _Tok("conditional", "and", start)
        if c == "o" and self._accept("r"):
            return _Tok("conditional", "or", start)
        if c == "n" and self._accept("ull"):
            return _Tok("null", "null", start)
        if c in "<>":
            # `<=`/`>=` need a terminator too: `x <=5` lexes as `<`, `=`, `5`.
            return _Tok("operator", c + "=", start) if self._accept("=") else _Tok("operator", c, start)
        return self._ident(c, start)

    def _ident(self, c: str, start: int) -> _Tok:
        text = ""
        while True:
            if c == "\\":  # a backslash escapes any next character, kept without the backslash
                if self._peek() is _EOS:
                    raise _LexError("escape-eos", self.pos)
                c = self._next()  # type: ignore[assignment]
            text += c
            nxt = self._peek()
            if nxt is _EOS or nxt not in _IDENT_CHARS:
                break
            c = self._next()  # type: ignore[assignment]
        nxt = self._peek()
        if not (nxt is _EOS or nxt in _AFTER_IDENT):
            raise _LexError("ident-end", self.pos, char=nxt, ident=text)
        return _Tok("ident", text, start)

    def _number(self, first: str, start: int) -> _Tok:
        # No exponent: `1e3` is the number 1 then the identifier `e3`. `-` alone is a "number" (NaN).
        text, seen_dot, nxt = "", False, self._peek()
        while nxt is not _EOS and (nxt in _DIGITS or nxt == "."):
            text += self._next()  # type: ignore[operator]
            if nxt == ".":
                if _is_terminator(self._peek()):
                    raise _LexError("decimal-end", start)
                if seen_dot:
                    raise _LexError("decimals", start)
                seen_dot = True
            nxt = self._peek()
        return _Tok("number", first + text, start)

    def _string(self, quote: str, start: int) -> _Tok:
        # Single or double quotes; no escape sequences (a backslash is an ordinary character).
        text = ""
        while self._peek() != quote:
            c = self._next()
            if c is _EOS:
                raise _LexError("unterminated", start)
            text += c
        closing = self.pos
        # The closing quote is only consumed when a terminator follows it; otherwise fql-ts leaves
        # it in place and the main loop reads it again as the opening quote of another string.
        if not self._accept(quote):
            self.glued_quotes.append(closing)
        return _Tok("string", quote + text + quote, start)


def _merge_paths(toks: list[_Tok]) -> list[_Tok]:
    """parseFql's `normalize`: `ident . ident` becomes one dotted ident (`properties.a.b`).

    A number after a dot (`properties.items.0`) is not merged: that trigger parses into garbage.
    """
    out: list[_Tok] = []
    i = 0
    while i < len(toks):
        cur = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if out and out[-1].type == "ident" and cur.type == "dot" and nxt is not None and nxt.type == "ident":
            prev = out.pop()
            out.append(_Tok("ident", f"{prev.value}.{nxt.value}", prev.pos))
            i += 2
        else:
            out.append(cur)
            i += 1
    return out


# ============================================================================================
# Parser: a port of parseFql (@segment/destination-subscriptions)
# ============================================================================================

# First dotted segment of an identifier -> condition type. Anything else is skipped token by token.
_FAMILIES = {"type": "event-type", "event": "event", "name": "name", "userId": "userId",
             "context": "event-context", "properties": "event-property", "traits": "event-trait"}
_CONTAINERS = {"event-property": "properties", "event-trait": "traits", "event-context": "context"}
_TOP_LEVEL = {"event-type": "type", "event": "event", "name": "name", "userId": "userId"}
# parseFql looks identifiers up in a plain JavaScript object, so these inherited names are "found":
# such a condition consumes its operator and value and then produces nothing.
_JS_PROTOTYPE_NAMES = frozenset({
    "constructor", "__proto__", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable",
    "toLocaleString", "toString", "valueOf", "__defineGetter__", "__defineSetter__",
    "__lookupGetter__", "__lookupSetter__"})
_FUNCTIONS = ("contains", "match")
_FIELD_LIST = "only type, event, name, userId, properties.*, traits.*, context.*"
_FUNCTION_ARGS = "event, name, userId, properties.*, traits.* or context.*"
_CONDITION_SHAPE = 'a condition is <field> <operator> <value>, e.g. type = "track"'

# Operators `validate` knows. The operator of a condition is the *text* of whatever token follows
# the field, so `event contains "x"` really is a contains test; any other text is never true.
_STRING_OPERATORS = frozenset({"contains", "not_contains", "starts_with", "not_starts_with",
                               "ends_with", "not_ends_with"})
_NUMERIC_OPERATORS = frozenset({"<", "<=", ">", ">="})
_KNOWN_OPERATORS = (frozenset({"=", "!=", "exists", "not_exists", "is_true", "is_false",
                               "number_equals", "number_not_equals"})
                    | _STRING_OPERATORS | _NUMERIC_OPERATORS)
_ODD_VALUE_TYPES = frozenset({"operator", "conditional", "parenleft", "parenright", "comma", "dot",
                              "brackleft", "brackright"})


class _ParseError(Exception):
    def __init__(self, kind: str, tok: _Tok | None = None, **info: Any):
        super().__init__(kind)
        self.kind, self.tok, self.info = kind, tok, info


class _Empty:
    """What parseFql pushes for a parenthesised group with no condition (JavaScript `undefined`)."""

    def __init__(self, pos: int):
        self.pos = pos


def _token_value(tok: _Tok) -> Any:
    """parseFql's `getTokenValue`."""
    if tok.type == "string":
        # Only double quotes are stripped: a single-quoted string keeps its quotes in the value.
        v = tok.value
        if v.startswith('"'):
            v = v[1:]
        if v.endswith('"'):
            v = v[:-1]
        return v
    if tok.type == "number":
        return js_to_number(tok.value)
    if tok.type == "ident" and tok.value in ("true", "false"):
        return tok.value == "true"
    return tok.value  # idents, `null`, operators, even the end marker ("eos")


def _is_function(tok: _Tok | None) -> bool:
    return tok is not None and tok.type == "ident" and tok.value in _FUNCTIONS


def _shift(toks: deque[_Tok]) -> _Tok | None:
    return toks.popleft() if toks else None


class _Parser:
    def __init__(self) -> None:
        self.findings: list[tuple[str, dict[str, Any]]] = []  # quirks met, in order; they become warnings
        self.covered: set[int] = set()              # token positions already explained by a finding
        self.unsupported_functions: list[_Tok] = []
        self.in_operator: _Tok | None = None

    def parse(self, toks: list[_Tok]) -> dict[str, Any]:
        for i, tok in enumerate(toks):  # things that make Segment fail, for a better message
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if tok.type == "ident" and tok.value.lower() == "in" and self.in_operator is None:
                self.in_operator = tok
            elif (tok.type == "ident" and nxt is not None and nxt.type == "parenleft"
                  and tok.value not in _FUNCTIONS
                  and tok.value.split(".")[0] not in _FAMILIES.keys() | _JS_PROTOTYPE_NAMES
                  and tok.value.lower() not in ("and", "or", "not")):
                self.unsupported_functions.append(tok)
        root = self._parse(deque(toks), 0)
        if root is None or isinstance(root, _Empty):
            raise _ParseError("no-condition")  # JavaScript: reading `.type` of undefined
        if root["type"] != "group":
            root = {"type": "group", "operator": "and", "children": [root]}
        self._check_groups(root)
        tree: dict[str, Any] = root
        return tree

    def _check_groups(self, node: dict[str, Any]) -> None:
        # parseFql accepts `a and ()` but `validate` then throws on the missing child whenever it
        # gets to it; we refuse such a trigger up front.
        for child in node["children"]:
            if isinstance(child, _Empty):
                raise _ParseError("empty-group", _Tok("parenleft", "(", child.pos))
            if child["type"] == "group":
                self._check_groups(child)

    def _parse(self, toks: deque[_Tok], depth: int) -> Any:
        nodes: list[Any] = []
        operator = "and"
        keywords: set[str] = set()
        tok = _shift(toks)
        while tok is not None and tok.type != "eos":
            kind = tok.type
            if kind == "ident":
                head = tok.value.split(".")[0]
                family = _FAMILIES.get(head) or ("ignored" if head in _JS_PROTOTYPE_NAMES else None)
                if family is not None:
                    op = _shift(toks)
                    if op is None:
                        raise _ParseError("operator-missing", tok)
                    val = _shift(toks)
                    if val is None:
                        raise _ParseError("value-missing", tok)
                    node = self._condition(family, tok, op, val, toks)
                    if node is not None:
                        nodes.append(node)
                elif tok.value in _FUNCTIONS:
                    self._function(tok, nodes, toks, negate=False)
                else:
                    self._unknown_word(tok, toks)
            elif kind == "operator" and tok.value == "!":
                if not toks:
                    raise _ParseError("internal", tok)
                if _is_function(toks[0]):
                    self._function(toks.popleft(), nodes, toks, negate=True)
                else:
                    # Only `!contains(` / `!match(` negate; `!(...)` and `!type = ...` lose the `!`.
                    self.findings.append(("negation", {"word": "!", "tok": tok}))
            elif kind == "parenleft":
                # The group runs to the FIRST `)`: nested parentheses cannot work, and a function
                # call inside the group ends it at the function's own `)`.
                group: list[_Tok] = []
                member = _shift(toks)
                while member is None or member.type != "parenright":
                    if member is None:
                        raise _ParseError("nested-paren" if depth else "unclosed-paren", tok)
                    group.append(member)
                    member = _shift(toks)
                for i, g in enumerate(group[:-1]):
                    if _is_function(g) and group[i + 1].type == "parenleft":
                        self.findings.append(("paren-cut", {"function": g.value, "tok": tok}))
                        break
                group.append(_Tok("eos", "eos", -1))
                child = self._parse(deque(group), depth + 1)
                nodes.append(_Empty(tok.pos) if child is None else child)
            elif kind == "conditional":
                # No precedence: the last `and`/`or` of a group decides for all its children.
                operator = tok.value
                keywords.add(tok.value)
            elif tok.pos not in self.covered:
                self.findings.append(("stray", {"tok": tok}))
            tok = _shift(toks)

        if len(nodes) > 1:
            if len(keywords) > 1:
                self.findings.append(("mixed", {"operator": operator}))
            return {"type": "group", "operator": operator, "children": nodes}
        return nodes[0] if nodes else None

    def _condition(self, family: str, tok: _Tok, op: _Tok, val: _Tok, rest: deque[_Tok]) -> dict[str, Any] | None:
        opv, vv = op.value, val.value
        is_true = opv == "=" and vv == "true"
        is_false = opv == "=" and vv == "false"
        is_exists = opv == "!=" and vv == "null"
        is_not_exists = opv == "=" and vv == "null"
        value = _token_value(val)
        self._check_value(tok, op, val, rest)

        node: dict[str, Any]
        if family == "ignored":
            self.findings.append(("ignored-field", {"tok": tok}))
            return None
        if family in ("event-type", "event"):
            # Operator kept as written, value always a string: `event != null` compares with "null".
            if val.type == "null":
                self.findings.append(("null-string", {"tok": tok, "op": opv}))
            node = {"type": family, "operator": opv, "value": js_string(value)}
        elif family == "name":
            if is_exists:
                node = {"type": "name", "operator": "exists"}
            elif is_not_exists:
                node = {"type": "name", "operator": "not_exists"}
            else:
                node = {"type": "name", "operator": opv, "value": js_string(value)}
        elif family == "userId":
            if is_exists:
                node = {"type": "userId", "operator": "exists"}
            elif is_not_exists:
                node = {"type": "userId", "operator": "not_exists"}
            elif is_true:
                node = {"type": "userId", "operator": "is_true"}
            elif is_false:
                node = {"type": "userId", "operator": "is_false"}
            else:  # numbers are stringified: `userId = 123` means the string "123"
                node = {"type": "userId", "operator": opv, "value": js_string(value)}
        else:
            prefix = _CONTAINERS[family] + "."
            name = tok.value[len(prefix):] if tok.value.startswith(prefix) else tok.value
            base = {"type": family, "name": name}
            if is_exists:
                node = {**base, "operator": "exists"}
            elif is_not_exists:
                node = {**base, "operator": "not_exists"}
            elif is_true:
                node = {**base, "operator": "is_true"}
            elif is_false:
                node = {**base, "operator": "is_false"}
            elif val.type == "number" and opv == "=":
                node = {**base, "operator": "number_equals", "value": value}
            elif val.type == "number" and opv == "!=":
                node = {**base, "operator": "number_not_equals", "value": value}
            else:  # quoted numbers stay strings: `properties.price = "10"` is a string compare
                node = {**base, "operator": opv, "value": value}
        if family in _TOP_LEVEL and "." in tok.value:
            self.findings.append(("extra-path", {"tok": tok, "field": _TOP_LEVEL[family]}))
        operator = node["operator"]
        if op.type == "dot" and val.type == "number" and op.pos == tok.pos + len(tok.value):
            # `properties.items.0.sku`: a number is not merged into the path, so the dot becomes
            # the operator. The identifier after the number is part of the same mistake.
            self.findings.append(("array-index", {"tok": tok, "val": val, "node": node}))
            if rest and rest[0].type == "ident" and rest[0].pos == val.pos + len(val.value):
                self.covered.add(rest[0].pos)
        elif operator not in _KNOWN_OPERATORS:
            self.findings.append(("unknown-op", {"op": op, "node": node}))
        elif ((operator in _NUMERIC_OPERATORS or operator == "number_equals")
              and val.type in ("string", "ident", "null", "number")
              and math.isnan(js_to_number(node["value"]))):
            self.findings.append(("not-a-number", {"val": val, "node": node}))
        return node

    def _check_value(self, field: _Tok, op: _Tok, val: _Tok, rest: deque[_Tok]) -> None:
        if val.type == "string" and val.value.startswith("'"):
            self.findings.append(("single-quote", {"tok": val}))
        elif val.type == "eos":
            self.findings.append(("eos-value", {"field": field, "op": op}))
        elif (val.type == "operator" and val.value == "=" and op.value in ("<", ">", "=")
              and val.pos == op.pos + 1):
            # `<=5`, `>=5` (no space before the value) and `==`: the lexer splits the operator.
            self.findings.append(("split-operator", {"op": op, "val": val}))
            if rest and rest[0].type in ("string", "number", "null", "ident") \
                    and rest[0].value.split(".")[0] not in _FAMILIES:
                self.covered.add(rest[0].pos)
        elif val.type in _ODD_VALUE_TYPES:
            self.findings.append(("odd-value", {"field": field, "op": op, "val": val}))

    def _function(self, fn: _Tok, nodes: list[Any], toks: deque[_Tok], negate: bool) -> None:
        # parseFqlFunction takes its tokens by position without checking them.
        open_ = _shift(toks)
        arg = _shift(toks)
        if arg is None:
            raise _ParseError("fn-arg-missing", fn, which="first")
        comma = _shift(toks)
        val = _shift(toks)
        if val is None:
            raise _ParseError("fn-arg-missing", fn, which="second")
        close = _shift(toks)
        # Inside parentheses the group collector took the function's ")" and left the end marker
        # in its place (the "paren-cut" warning explains that case).
        closed = close is not None and (close.type == "parenright" or (close.type == "eos" and close.pos < 0))
        if not (open_ is not None and open_.type == "parenleft" and comma is not None
                and comma.type == "comma" and closed):
            self.findings.append(("malformed-call", {"tok": fn}))
        if val.type == "string" and val.value.startswith("'"):
            self.findings.append(("single-quote", {"tok": val}))

        text = js_string(_token_value(val))
        if fn.value == "contains":
            operator, value = ("not_contains" if negate else "contains"), text
        elif val.value.endswith('*"'):
            # match() is no glob: a pattern ending in `*` is a prefix test, anything else a suffix
            # test of the pattern minus its first character.
            operator, value = ("not_starts_with" if negate else "starts_with"), js_utf16_slice(text, 0, -1)
        else:
            operator, value = ("not_ends_with" if negate else "ends_with"), js_utf16_slice(text, 1, None)

        a = arg.value
        made = []
        if a in ("event", "name", "userId"):
            made.append({"type": a, "operator": operator, "value": value})
        for family, container in _CONTAINERS.items():
            if a.startswith(container):  # a bare prefix test, as in parseFql (`/^(properties)/`)
                name = a[len(container) + 1:] if a.startswith(container + ".") else a
                made.append({"type": family, "name": name, "operator": operator, "value": value})
        if not made:  # e.g. contains(type, ...): silently dropped
            self.findings.append(("fn-arg-ignored", {"tok": fn, "arg": arg}))
        elif fn.value == "match" and not _simple_glob(val):
            self.findings.append(("match-glob", {"tok": fn, "arg": arg, "val": val, "node": made[0]}))
        nodes.extend(made)

    def _unknown_word(self, tok: _Tok, toks: deque[_Tok]) -> None:
        word = tok.value
        low = word.lower()
        nxt = toks[0] if toks else None
        if tok.pos in self.covered:
            self._cover_condition_tail(toks)
        elif low in ("and", "or"):
            self.findings.append(("ignored-keyword", {"tok": tok, "next": nxt}))
        elif low == "not":
            self.findings.append(("negation", {"word": word, "tok": tok}))
        elif nxt is not None and nxt.type == "parenleft":
            self.findings.append(("unsupported-function", {"tok": tok}))
        elif low == "in":
            self.findings.append(("in-operator", {"tok": tok}))
        else:
            self.findings.append(("ignored-field", {"tok": tok}))
            self._cover_condition_tail(toks)

    def _cover_condition_tail(self, toks: deque[_Tok]) -> None:
        """The operator and value after an ignored field are skipped too; one warning is enough."""
        nxt = toks[0] if toks else None
        if nxt is not None and ((nxt.type == "operator" and nxt.value != "!")
                                or (nxt.type == "ident" and nxt.value in _KNOWN_OPERATORS)):
            self.covered.add(nxt.pos)
            after = toks[1] if len(toks) > 1 else None
            if after is not None and after.type in ("string", "number", "null", "ident") \
                    and after.value.split(".")[0] not in _FAMILIES and after.value not in _FUNCTIONS:
                self.covered.add(after.pos)


def _simple_glob(val: _Tok) -> bool:
    """Is a match() pattern a plain `"X*"` or `"*X"`, which Segment reads as the glob it looks like?"""
    if val.type != "string" or not val.value.startswith('"'):
        return False
    pattern = val.value[1:-1]
    wild = set("*?[\\")
    if pattern.endswith("*"):
        return not (set(pattern[:-1]) & wild)
    return pattern.startswith("*") and not (set(pattern[1:]) & wild)


# ============================================================================================
# Compiler: `validate` semantics as closures, built once
# ============================================================================================

_PATH_SEGMENTS = re.compile(r"[^[.\]]+")  # the getter splits paths on `.`, `[` and `]`


def _never(event: Any) -> bool:
    return False


def _predicate(operator: str, expected: Any) -> Matcher | None:
    """The test `validate` applies to the field's value; None when it can never be true.

    Typing is strict and the event value is never coerced: `=` needs a string, the numeric
    operators need a JSON number, the string operators (negated ones too) need a string.
    """
    if operator in ("=", "!=") or operator in _STRING_OPERATORS:
        s = js_string(expected)
        if js_has_surrogate(s):  # compare as JavaScript does, in UTF-16 code units
            u = js_utf16(s)
            tests: dict[str, Matcher] = {
                "=": lambda a: type(a) is str and js_utf16(a) == u,
                "!=": lambda a: not (type(a) is str and js_utf16(a) == u),
                "contains": lambda a: type(a) is str and u in js_utf16(a),
                "not_contains": lambda a: type(a) is str and u not in js_utf16(a),
                "starts_with": lambda a: type(a) is str and js_utf16(a).startswith(u),
                "not_starts_with": lambda a: type(a) is str and not js_utf16(a).startswith(u),
                "ends_with": lambda a: type(a) is str and js_utf16(a).endswith(u),
                "not_ends_with": lambda a: type(a) is str and not js_utf16(a).endswith(u),
            }
            return tests[operator]
        if operator == "=":
            return lambda a: a == s  # only a str can equal a str
        if operator == "!=":
            return lambda a: a != s  # true for missing fields, numbers, booleans
        if operator == "contains":
            return lambda a: type(a) is str and s in a
        if operator == "not_contains":
            return lambda a: type(a) is str and s not in a
        if operator == "starts_with":
            return lambda a: type(a) is str and a.startswith(s)
        if operator == "not_starts_with":
            return lambda a: type(a) is str and not a.startswith(s)
        if operator == "ends_with":
            return lambda a: type(a) is str and a.endswith(s)
        return lambda a: type(a) is str and not a.endswith(s)
    if operator in _NUMERIC_OPERATORS or operator in ("number_equals", "number_not_equals"):
        n = js_to_number(expected)
        if operator == "number_not_equals":
            return lambda a: (type(a) is int or type(a) is float) and a != n
        if n != n:
            return None
        if operator == "number_equals":
            return lambda a: (type(a) is int or type(a) is float) and a == n
        if operator == "<":
            return lambda a: (type(a) is int or type(a) is float) and a < n
        if operator == "<=":
            return lambda a: (type(a) is int or type(a) is float) and a <= n
        if operator == ">":
            return lambda a: (type(a) is int or type(a) is float) and a > n
        return lambda a: (type(a) is int or type(a) is float) and a >= n
    if operator == "exists":
        return lambda a: a is not None  # JSON null and a missing field are alike
    if operator == "not_exists":
        return lambda a: a is None
    if operator == "is_true":
        return lambda a: a is True
    if operator == "is_false":
        return lambda a: a is False
    return None  # `validate` answers false for an operator it does not know


def _path_reader(container: str, name: str) -> Callable[[dict[str, Any]], Any]:
    """`get(event[container], name)`: a lodash-like walk that stops at the first falsy value.

    So `properties.a.b` is 0 when `properties.a` is 0 (and `!= null` is then true).
    """
    if name == "":
        return lambda e: None  # the getter returns undefined for an empty path
    segments = _PATH_SEGMENTS.findall(name)
    if not segments:
        raise _ParseError("bad-path", None, container=container, name=name)
    if len(segments) == 1:
        key = segments[0]

        def read_one(e: dict[str, Any]) -> Any:
            v = e.get(container)
            return v.get(key) if type(v) is dict else _js_member(v, key)
        return read_one

    def read_path(e: dict[str, Any]) -> Any:
        v = e.get(container)
        for k in segments:
            v = v.get(k) if type(v) is dict else _js_member(v, k)
        return v
    return read_path


def _plain_equality(node: dict[str, Any]) -> tuple[str, str] | None:
    """(top-level key, value) when the node is `key = "value"` on type/event/name/userId."""
    if node["type"] in _TOP_LEVEL and node["operator"] == "=":
        value = node["value"]
        if type(value) is str and not js_has_surrogate(value):
            return _TOP_LEVEL[node["type"]], value
    return None


def _compile(node: dict[str, Any]) -> Matcher:
    """The node as a function of a dict event."""
    if node["type"] == "group":
        children = node["children"]
        if node["operator"] == "or":
            equalities = [_plain_equality(c) for c in children]
            keys = {eq[0] for eq in equalities if eq is not None}
            if None not in equalities and len(keys) == 1:  # `event = "A" or event = "B"`
                key = keys.pop()
                allowed = frozenset(eq[1] for eq in equalities if eq is not None)
                return lambda e: type(v := e.get(key)) is str and v in allowed
            return _any_of([_compile(c) for c in children])
        if node["operator"] == "and":
            return _all_of([_compile(c) for c in children])
        return _never
    test = _predicate(node["operator"], node.get("value"))
    if test is None:
        return _never
    equality = _plain_equality(node)
    if equality is not None:
        key, value = equality
        return lambda e: e.get(key) == value
    if node["type"] in _TOP_LEVEL:
        key = _TOP_LEVEL[node["type"]]
        return lambda e: test(e.get(key))
    read = _path_reader(_CONTAINERS[node["type"]], node["name"])
    return lambda e: test(read(e))


def _all_of(fns: list[Matcher]) -> Matcher:
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        f, g = fns
        return lambda e: f(e) and g(e)
    if len(fns) == 3:
        f, g, h = fns
        return lambda e: f(e) and g(e) and h(e)

    def all_of(e: dict[str, Any]) -> bool:
        for f in fns:
            if not f(e):
                return False
        return True
    return all_of


def _any_of(fns: list[Matcher]) -> Matcher:
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        f, g = fns
        return lambda e: f(e) or g(e)

    def any_of(e: dict[str, Any]) -> bool:
        for f in fns:
            if f(e):
                return True
        return False
    return any_of


def _build_matcher(root: dict[str, Any]) -> Matcher:
    """The whole trigger, including the "not a dict -> no match" rule.

    Triggers that are only `type`/`event`/... equalities joined by `and` (nearly all of them)
    get a closure of plain dict lookups, `event` first since it is the more selective key.
    Evaluation has no side effects, so the order of an `and` does not change its result.
    """
    if root["operator"] == "and":
        equalities = [_plain_equality(c) for c in root["children"]]
        if None not in equalities and len(equalities) <= 2:
            pairs = sorted((eq for eq in equalities if eq is not None), key=lambda kv: kv[0] != "event")
            if len(pairs) == 1:
                (k1, v1), = pairs
                return lambda e: isinstance(e, dict) and e.get(k1) == v1
            (k1, v1), (k2, v2) = pairs
            return lambda e: isinstance(e, dict) and e.get(k1) == v1 and e.get(k2) == v2
    fn = _compile(root)
    return lambda e: isinstance(e, dict) and fn(e)


def _hints(node: dict[str, Any]) -> dict[str, frozenset[str]]:
    """For `event`/`type`: the set of top-level string values the node can possibly match."""
    if node["type"] == "group":
        found = [_hints(c) for c in node["children"]]
        out: dict[str, frozenset[str]] = {}
        for field in ("event", "type"):
            sets = [h[field] for h in found if field in h]
            if node["operator"] == "and" and sets:
                out[field] = frozenset.intersection(*sets)  # every child must hold
            elif node["operator"] == "or" and sets and len(sets) == len(found):
                out[field] = frozenset.union(*sets)         # one child holds, and each constrains
        return out
    equality = _plain_equality(node)  # `=` is true only for a string equal to the value
    if equality is not None and equality[0] in ("event", "type"):
        return {equality[0]: frozenset({equality[1]})}
    return {}


def key_only(node: dict[str, Any]) -> bool:
    """True when the trigger reads nothing but the top-level `event` and `type`: its result is
    then the same for every event with the same string values (or absence) of those two."""
    if node["type"] == "group":
        return all(key_only(child) for child in node["children"])
    return node["type"] in ("event", "event-type")


def read_paths(node: dict[str, Any]) -> list[tuple[str, ...]] | None:
    """The paths of the event a trigger reads, each as its keys from the top (a top-level field,
    or a container and the getter's keys below it; the value there is read whole), or None where a
    condition reads what this cannot list. Not part of Segment's code: for the decode stage, which
    decodes only what the mappings and triggers read (mapping/reads.py)."""
    if node["type"] == "group":
        paths: list[tuple[str, ...]] = []
        for child in node["children"]:
            found = read_paths(child)
            if found is None:
                return None
            paths += found
        return paths
    if node["type"] in _TOP_LEVEL:
        return [(_TOP_LEVEL[node["type"]],)]
    if node["type"] in _CONTAINERS:
        return [(_CONTAINERS[node["type"]], *_PATH_SEGMENTS.findall(node.get("name") or ""))]
    return None


def _index_hint(root: dict[str, Any]) -> tuple[str, frozenset[str]] | None:
    hints = _hints(root)
    for field in ("event", "type"):  # `event` is the more selective key
        if field in hints:
            return field, hints[field]
    return None


# The compiler's parts that segment/trigger_programs.py (the same conditions run as programs, in
# the compiled build) follows, and the closure it is tested against. Not Segment's names.
TOP_LEVEL = _TOP_LEVEL
CONTAINERS = _CONTAINERS
PATH_SEGMENTS = _PATH_SEGMENTS
js_member = _js_member
test_for = _predicate
plain_equality = _plain_equality
build_matcher = _build_matcher


# ============================================================================================
# Describing: how Segment reads a trigger
# ============================================================================================


def _quote(s: str) -> str:
    """A value in double quotes; JSON escapes when it holds quotes or unprintable characters."""
    if '"' in s or not s.isprintable():
        return "".join(c if c.isprintable() else json.dumps(c)[1:-1]
                       for c in json.dumps(s, ensure_ascii=False))
    return f'"{s}"'


def _one_line(s: str) -> str:
    """Messages are single lines: escape anything unprintable a trigger smuggled into one."""
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in s)


def _show(s: str) -> str:
    """A piece of trigger text (may hold double quotes) for a message."""
    if not s.isprintable():
        s = "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in s)
    if '"' not in s:
        return f'"{s}"'
    return f"'{s}'" if "'" not in s else _quote(s)


def _field_label(node: dict[str, Any]) -> str:
    if node["type"] in _TOP_LEVEL:
        return _TOP_LEVEL[node["type"]]
    name = re.sub(r"([^a-zA-Z0-9._-])", r"\\\1", node["name"])  # as Segment's generateFql writes it
    return f"{_CONTAINERS[node['type']]}.{name}"


def _describe(node: dict[str, Any], nested: bool = False) -> str:
    if node["type"] == "group":
        parts = [_describe(c, True) for c in node["children"]]
        if len(parts) == 1:
            return parts[0]
        text = f" {node['operator'].upper()} ".join(parts)
        return f"({text})" if nested else text
    field, op, value = _field_label(node), node["operator"], node.get("value")
    if op in ("=", "!="):
        return f"{field} {op} {_quote(js_string(value))}"
    if op in _NUMERIC_OPERATORS:
        n = js_to_number(value)
        return f"{field} {op} {js_number_to_string(n)}" + (" (never true)" if n != n else "")
    if op in ("number_equals", "number_not_equals"):
        n = js_to_number(value)
        never = " (never true)" if n != n and op == "number_equals" else ""
        return f"{field} {'=' if op == 'number_equals' else '!='} {js_number_to_string(n)}{never}"
    if op in ("contains", "not_contains"):
        return f"{'!' if op == 'not_contains' else ''}contains({field}, {_quote(js_string(value))})"
    words = {"starts_with": "starts with", "not_starts_with": "does not start with",
             "ends_with": "ends with", "not_ends_with": "does not end with"}
    if op in words:
        return f"{field} {words[op]} {_quote(js_string(value))}"
    fixed = {"exists": "!= null", "not_exists": "= null", "is_true": "= true", "is_false": "= false"}
    if op in fixed:
        return f"{field} {fixed[op]}"
    shown = "" if value is None else " " + _quote(js_string(value))
    return f"{field} {op}{shown} (never true)"


# ============================================================================================
# Messages: errors (why Segment cannot parse) and warnings (how Segment reads it)
# ============================================================================================


def _at(text: str, pos: int) -> str:
    if "\n" not in text:
        return f"column {pos + 1}"
    line = text.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def _backslash_hint(text: str, lexer: _Lexer) -> str:
    """Explain a lexer failure caused by a string that ends in a backslash-quote."""
    for tok in reversed(lexer.tokens):
        if tok.type == "string" and tok.value[-2:-1] == "\\":
            return (" (a backslash does not escape a quote in Segment's triggers: the string at "
                    f"{_at(text, tok.pos)} ends at its backslash-quote)")
    return ""


def _explain_lex_error(text: str, err: _LexError, lexer: _Lexer) -> str:
    if "\r" in text:
        try:
            _Lexer(text.replace("\r", " ")).lex()
            carriage_return_is_the_cause = True
        except _LexError:
            carriage_return_is_the_cause = err.kind == "invalid-char" and err.char == "\r"
        if carriage_return_is_the_cause:
            return (f"carriage return (\\r) is not allowed in a trigger ({_at(text, text.index(chr(13)))}; "
                    "Segment's lexer does not treat it as whitespace, so use LF line endings)")
    where = _at(text, err.pos)
    if err.kind == "invalid-char":
        c = err.char or ""
        if c in ("&", "|"):
            return f'"{c}" at {where} is not supported; combine conditions with lower-case "and" / "or"'
        if c == "$":
            return f'invalid character "$" at {where} (Segment\'s triggers cannot address "$" array paths)'
        if c == "*":
            return (f'invalid character "*" at {where} (Segment\'s triggers have no "*" operator; '
                    'wildcards only work inside match(field, "X*"))')
        if c in "\u201c\u201d\u2018\u2019":
            return f"invalid character {c} at {where} (typographic quote; use straight double quotes)"
        return f"invalid character {_show(c)} at {where}"
    if err.kind == "bang":
        if text[err.pos + 1:err.pos + 2] == "=":
            return f'"!=" at {where} must be followed by a space'
        return f'"!" at {where} must be followed by "=" (as in "!="), contains( or match('
    if err.kind == "unterminated":
        if err.pos in lexer.glued_quotes:
            following = text[err.pos + 1:err.pos + 2]
            return (f"unterminated string starting at {where}: the closing quote there is directly "
                    f"followed by {_show(following)}, so Segment reads it as "
                    "the opening quote of a new string (put a space after the closing quote)")
        return f"unterminated string starting at {where}{_backslash_hint(text, lexer)}"
    if err.kind == "ident-end":
        c = err.char or ""
        if c == "[":
            return (f'bracket indexes are not supported in trigger field paths '
                    f'("{err.ident}[" at {where})')
        if c in "<>":
            return f'"{err.ident}" must be separated from "{c}" by a space ({where})'
        if c in "\"'":
            return (f"unexpected quote right after \"{err.ident}\" at {where}"
                    + (_backslash_hint(text, lexer) or " (is an opening quote missing?)"))
        return f'unexpected {_show(c)} right after "{err.ident}" at {where}'
    if err.kind == "escape-eos":
        return "the trigger ends with a backslash, which escapes nothing"
    if err.kind == "decimal-end":
        return f"the number at {where} ends with a decimal point"
    if err.kind == "decimals":
        return f"the number at {where} has more than one decimal point"
    return f"Segment's trigger lexer fails at {where}"  # pragma: no cover - every kind is handled


def _explain_parse_error(text: str, err: _ParseError, parser: _Parser) -> str:
    kind, tok = err.kind, err.tok
    if kind in ("value-missing", "no-condition"):
        # Root causes Segment only reports as a generic failure.
        if parser.unsupported_functions:
            fn = parser.unsupported_functions[0]
            return (f"function {fn.value}() is not supported by Segment's triggers "
                    "(only contains() and match())")
        if parser.in_operator is not None:
            return (f'"{parser.in_operator.value}" is not supported by Segment\'s triggers '
                    "(a condition tests one field against one value)")
    if kind == "value-missing" and tok is not None:
        return f'missing value after "{tok.value}" ({_CONDITION_SHAPE})'
    if kind == "fn-arg-missing" and tok is not None:
        return f"{tok.value}() at {_at(text, tok.pos)} is missing its {err.info['which']} argument"
    if kind == "unclosed-paren" and tok is not None:
        return f'unclosed parenthesis "(" at {_at(text, tok.pos)}'
    if kind == "nested-paren" and tok is not None:
        return f"nested parentheses are not supported by Segment's trigger parser ({_at(text, tok.pos)})"
    if kind == "empty-group" and tok is not None:
        for fn in parser.unsupported_functions:
            if text[fn.pos + len(fn.value):tok.pos].strip(" \t\n") == "":  # `fn(` made that group
                return (f"function {fn.value}() is not supported by Segment's triggers "
                        "(only contains() and match())")
        return f"the parentheses at {_at(text, tok.pos)} contain no condition Segment can evaluate"
    if kind == "bad-path":
        return (f'field path "{err.info["container"]}.{err.info["name"]}" names no property '
                "(Segment would fail on every event)")
    if kind == "no-condition":
        if not text.strip(" \t\n"):
            return "the trigger is empty"
        for finding, info in parser.findings:
            if finding == "fn-arg-ignored":
                return (f'{info["tok"].value}() cannot test "{info["arg"].value}" '
                        f"(its first argument must be {_FUNCTION_ARGS})")
            if finding == "ignored-field":
                return f'field "{info["tok"].value}" is not one Segment\'s triggers can test ({_FIELD_LIST})'
        return f"no condition Segment can evaluate ({_CONDITION_SHAPE})"
    return "Segment's trigger parser fails on this trigger"


def _warnings(text: str, description: str, parser: _Parser, lexer: _Lexer) -> list[str]:
    t, d = repr(text), description
    out: list[str] = []
    strays: list[str] = []
    paren_cut = any(k == "paren-cut" for k, _ in parser.findings)
    glued = lexer.glued_quotes
    for kind, info in parser.findings:
        tok: Any = info.get("tok")
        where = _at(text, tok.pos) if tok is not None and tok.pos >= 0 else ""
        if kind == "mixed":
            out.append(f'Trigger {t} mixes "and" and "or" in one group without parentheses; Segment has '
                       f'no precedence and applies the last keyword ("{info["operator"]}") to the whole '
                       f"group, reading it as: {d}.")
        elif kind == "negation":
            out.append(f'Trigger {t} negates with "{info["word"]}" at {where}, which Segment ignores (only '
                       "!contains() and !match() negate), so the negation is dropped and the trigger "
                       f"matches the opposite of what is written: {d}.")
        elif kind == "single-quote":
            out.append(f"Trigger {t} uses the single-quoted string {tok.value}; Segment keeps single "
                       f"quotes as part of the value, so it compares with {tok.value} including the "
                       f"quotes (use double quotes), reading it as: {d}.")
        elif kind == "match-glob":
            out.append(f"Trigger {t} uses match({info['arg'].value}, {info['val'].value}), which Segment "
                       "does not treat as a glob but as a prefix/suffix test, reading it as: "
                       f"{_describe(info['node'])}.")
        elif kind == "ignored-field":
            out.append(f'Trigger {t} tests "{tok.value}", which Segment\'s triggers ignore ({_FIELD_LIST} '
                       f"can be tested), so it is read as: {d}.")
        elif kind == "ignored-keyword":
            nxt = info["next"]
            why = ("is not lower-case" if tok.value != tok.value.lower()
                   else f'is directly followed by "{nxt.value if nxt is not None else ""}"')
            out.append(f'Trigger {t} uses "{tok.value}" at {where}, which Segment does not recognise as a '
                       f"keyword because it {why}, and ignores it, so it is read as: {d}.")
        elif kind == "eos-value":
            field, op = info["field"], info["op"]
            label = f"{field.value} {op.value}" if op.type != "eos" else field.value
            out.append(f'Trigger {t} has no value after "{label}"; Segment then compares with the text '
                       f'"eos" (its end-of-input marker), reading it as: {d}.')
        elif kind == "null-string":
            out.append(f'Trigger {t} writes {tok.value} {info["op"]} null, which Segment compares with the '
                       f'text "null" (so "!= null" is true even when the field is missing), reading it '
                       f"as: {d}.")
        elif kind == "extra-path":
            out.append(f'Trigger {t} tests "{tok.value}", but Segment only reads the top-level '
                       f'"{info["field"]}" and ignores the rest of the path, reading it as: {d}.')
        elif kind == "unknown-op":
            op = info["op"]
            out.append(f"Trigger {t} uses {_show(op.value)} as an operator, which Segment accepts but never "
                       f"evaluates as true, so that condition never matches: {d}.")
        elif kind == "array-index":
            path = f"{tok.value}.{info['val'].value.rstrip('.')}"
            out.append(f"Trigger {t} addresses an array element with \"{path}\"; "
                       "Segment's parser cannot put a number in a field path and turns the rest into "
                       f"an operator that is never true: {d}.")
        elif kind == "not-a-number":
            out.append(f"Trigger {t} compares {_field_label(info['node'])} with {info['val'].value}, which "
                       f"is not a number, so that condition is never true: {d}.")
        elif kind == "split-operator":
            op, val = info["op"], info["val"]
            out.append(f'Trigger {t} writes "{op.value}{val.value}" at {_at(text, op.pos)} without a space '
                       f'before the value; Segment\'s lexer splits it into "{op.value}" and "{val.value}" '
                       f'and compares with "{val.value}", reading it as: {d}.')
        elif kind == "odd-value":
            out.append(f'Trigger {t} has "{info["val"].value}" where the value of "{info["field"].value} '
                       f'{info["op"].value}" belongs; Segment takes it as the value, reading it as: {d}.')
        elif kind == "fn-arg-ignored":
            out.append(f'Trigger {t} calls {tok.value}({info["arg"].value}, ...), which Segment silently '
                       f"drops because {tok.value}() can only test {_FUNCTION_ARGS}, so it is read "
                       f"as: {d}.")
        elif kind == "unsupported-function":
            out.append(f"Trigger {t} calls {tok.value}(), which Segment's triggers do not support (only "
                       f"contains() and match()); its name is skipped and the trigger is read as: {d}.")
        elif kind == "in-operator":
            out.append(f'Trigger {t} uses "{tok.value}", which Segment\'s triggers do not support; it is '
                       f"skipped and the trigger is read as: {d}.")
        elif kind == "malformed-call":
            out.append(f"Trigger {t} has a malformed {tok.value}() call at {where}; Segment takes its "
                       f"arguments by position, reading it as: {d}.")
        elif kind == "paren-cut":
            out.append(f'Trigger {t} has a {info["function"]}() call inside parentheses; Segment\'s parser '
                       f'ends the parenthesised group at the function\'s own ")", reading it as: {d}.')
        elif kind == "stray":
            if paren_cut and tok.type == "parenright":
                continue  # the group's real ")" after a cut; the paren-cut warning covers it
            if glued and tok.type == "string" and tok.pos >= glued[0]:
                continue  # strings made of a re-read quote; the glued-quote warning covers them
            strays.append(f"{_show(tok.value)} at {where}")
    if strays:
        out.append(f"Trigger {t} has {', '.join(strays)}, which Segment's parser skips, so it reads the "
                   f"trigger as: {d}.")
    if glued:
        pos = glued[0]
        following = _show(text[pos + 1:pos + 2])
        out.append(f"Trigger {t} has a closing quote at {_at(text, pos)} directly followed by {following}; "
                   "Segment's lexer then reads that quote as the opening quote of another string, so it "
                   f"reads the trigger as: {d}.")
    return list(dict.fromkeys(out))  # drop repeats, keep order


# ============================================================================================
# Public API
# ============================================================================================


class Trigger:
    """A compiled trigger.

    `matches(event)` is a plain callable attribute (a closure built at compile time): True when
    Segment would deliver `event` to the mapping. A non-dict event never matches.
    """

    __slots__ = ("source", "ast", "warnings", "index_hint", "matches", "_description")

    source: str
    """The trigger text."""
    ast: dict[str, Any]
    """The tree in parseFql's own vocabulary (a group at the root), as Segment parses it."""
    warnings: list[str]
    """One sentence per place where Segment's reading differs from the obvious one."""
    index_hint: tuple[str, frozenset[str]] | None
    """("event", {...}) or ("type", {...}): the trigger can only match events whose top-level
    field is a string in the set. None when there is no such guarantee."""
    matches: Matcher

    def __init__(self, source: str, ast: dict[str, Any], matches: Matcher, warnings: list[str],
                 index_hint: tuple[str, frozenset[str]] | None, description: str):
        self.source = source
        self.ast = ast
        self.matches = matches
        self.warnings = warnings
        self.index_hint = index_hint
        self._description = description

    def describe(self) -> str:
        """How Segment reads the trigger, e.g. `type = "track" AND event = "Order Completed"`."""
        return self._description

    def __repr__(self) -> str:
        return f"Trigger({self.source!r})"


def compile_trigger(text: str) -> Trigger:
    """Parse and compile a trigger as Segment's Actions runtime would.

    Raises TriggerSyntaxError (one-line reason) where Segment cannot parse it.
    """
    if not isinstance(text, str):
        raise TriggerSyntaxError(f"a trigger must be a string, not {type(text).__name__}")
    lexer = _Lexer(text)
    try:
        tokens = _merge_paths(lexer.lex())
    except _LexError as err:
        raise TriggerSyntaxError(_one_line(_explain_lex_error(text, err, lexer))) from None
    parser = _Parser()
    try:
        root = parser.parse(tokens)
        matcher = _build_matcher(root)
    except _ParseError as err:
        raise TriggerSyntaxError(_one_line(_explain_parse_error(text, err, parser))) from None
    description = _one_line(_describe(root))
    warnings = [_one_line(w) for w in _warnings(text, description, parser, lexer)]
    return Trigger(text, root, matcher, warnings, _index_hint(root), description)
