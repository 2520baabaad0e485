"""Reasons counted by kind: what a summary of a million invalid events can say.

A reason carries its value (`itemId 'Search Results' is not a valid Recombee ID`), which the
rejects file keeps. Counted as written, a few hundred page names crowd out everything else and
the real count of "not a valid Recombee ID" is nowhere. `reason_kind` takes the values out
(`itemId … is not a valid Recombee ID`); a `ReasonCounter` counts both: the reasons as written
(bounded, as before) and every kind with its count and two examples.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any

REASON_LIMIT = 200   # distinct reasons (or kinds) kept; the rest are summed under "other"
OTHER_REASONS = "(other reasons)"
EXAMPLES = 2

# A value in a reason: a quoted text not naming a field or a property, or a value after words
# that introduce one. Each is replaced by "…" in the kind.
_MAPPING = re.compile(r"(mapping '(?:[^'\\]|\\.)*': )")
# (The lookahead first: a position that holds no quote is left at once, before the four lookbehinds:
# half the time of the search. It changes nothing that matches.)
_QUOTED = re.compile(r"""(?=['"])(?<![Ff]ield )(?<!property )(?<!property name )(?<!names )"""
                     r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
_AFTER = re.compile(r"(Invalid timestamp provided: |(?:rating|portion) )(\S.*?)(?= is outside|$)")
_DETAIL = re.compile(r"^((?:truncated JSON|not JSON)) \(.*\)$")
_NUMBERS = re.compile(r"(byte |of |after |than )\d[\d,]*")


def reason_kind(reason: str) -> tuple[str, list[str]]:
    """A reason without its values, and the values taken out."""
    mapping = _MAPPING.match(reason)
    prefix = mapping.group(1) if mapping else ""
    rest = reason[len(prefix):]
    values: list[str] = []

    def take(match: re.Match[str]) -> str:
        values.append(match.group(0))
        return "…"

    detail = _DETAIL.match(rest)
    if detail:
        return prefix + detail.group(1), []
    def after(match: re.Match[str]) -> str:
        values.append(match.group(2))
        return match.group(1) + "…"

    rest = _AFTER.sub(after, rest)
    rest = _QUOTED.sub(take, rest)
    rest = _NUMBERS.sub(lambda m: m.group(1) + "N", rest)
    return prefix + rest, values


@lru_cache(maxsize=4096)
def kind_of(reason: str) -> str:
    """`reason_kind(reason)[0]`, remembered: the same reason comes back for every event with the
    same bad value (a page name as an item id: 2 % of a realistic export), and taking its values
    out costs tens of thousands of instructions."""
    return reason_kind(reason)[0]


class ReasonCounter(Counter[str]):
    """Reasons as written (at most REASON_LIMIT distinct ones, the rest under OTHER_REASONS), and
    by kind: each kind's count and its first EXAMPLES distinct reasons."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.kinds: dict[str, list[Any]] = {}   # kind -> [count, [example reasons]]

    def add(self, reason: str, n: int = 1) -> None:
        if reason in self or len(self) < REASON_LIMIT:
            self[reason] += n
        else:
            self[OTHER_REASONS] += n
        kind = kind_of(reason)
        entry = self.kinds.get(kind)
        if entry is None:
            if len(self.kinds) >= REASON_LIMIT:
                kind = "(other kinds of reason)"
                entry = self.kinds.setdefault(kind, [0, []])
            else:
                entry = self.kinds[kind] = [0, []]
        entry[0] += n
        if len(entry[1]) < EXAMPLES and reason not in entry[1]:
            entry[1].append(reason)

    def by_kind(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Kinds, most frequent first: kind, count, share of all counted, examples."""
        total = sum(entry[0] for entry in self.kinds.values()) or 1
        ranked = sorted(self.kinds.items(), key=lambda item: -item[1][0])[:limit]
        return [{"kind": kind, "count": count, "share": round(count / total, 4), "examples": list(examples)}
                for kind, (count, examples) in ranked]


def example_values(kind: dict[str, Any]) -> list[str]:
    """What differs between a kind's examples, for a screen: the values taken out, else nothing."""
    shown = []
    for example in kind["examples"]:
        values = reason_kind(example)[1]
        if values:
            shown.append(", ".join(values))
    return shown
