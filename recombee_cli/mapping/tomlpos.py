"""Where things are in a TOML text, for error messages: tomllib keeps no positions.

`TomlPositions(text)` finds the line of each table header and of each key, by table: the top
level is `()`, `[replay]` is `("replay",)`, the k-th `[[mappings]]` entry is `("mappings", k)`
and its `[mappings.fields]` table `("mappings", k, "fields")`. It reads the text line by line as
a person writes a config (keys at the start of a line); a value spread over several lines is not
mistaken for keys unless a line of it starts like `key =`. Good enough to name a line; never
used to read a value.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*=""")
_PART = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|$)""")

Table = tuple[str | int, ...]


def _parts(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(dotted)]


class TomlPositions:
    def __init__(self, text: str):
        self.tables: dict[Table, int] = {}
        self.keys: dict[tuple[Table, str], int] = {}
        arrays: dict[tuple[str, ...], int] = {}   # array-of-tables name -> index of its last entry
        current: Table = ()
        for number, line in enumerate(text.splitlines(), 1):
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                names = tuple(_parts(header.group(2)))
                if header.group(1) == "[[":
                    arrays[names] = arrays.get(names, -1) + 1
                current = self._resolve(names, arrays)
                self.tables.setdefault(current, number)
                continue
            key = _KEY.match(line)
            if key:
                parts = _parts(key.group(1))
                table = current + tuple(parts[:-1])
                self.keys.setdefault((table, parts[-1]), number)
                for depth in range(len(parts) - 1):   # a dotted key also names its tables here
                    self.tables.setdefault(current + tuple(parts[:depth + 1]), number)

    @staticmethod
    def _resolve(names: tuple[str, ...], arrays: dict[tuple[str, ...], int]) -> Table:
        """`[mappings.fields]` after the third `[[mappings]]` is ("mappings", 2, "fields")."""
        out: list[str | int] = []
        for depth, name in enumerate(names):
            out.append(name)
            prefix = names[:depth + 1]
            if prefix in arrays:
                out.append(arrays[prefix])
        return tuple(out)

    def line(self, table: Table, key: str | None = None) -> int | None:
        """The line of `key` in `table`, else of the table's header, else None."""
        if key is not None and (table, key) in self.keys:
            return self.keys[(table, key)]
        if table in self.tables:
            return self.tables[table]
        if len(table) == 1 and ((), table[0]) in self.keys:   # `replay = { ... }` inline
            return self.keys[((), str(table[0]))]
        return None
