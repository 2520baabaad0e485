"""What a replay reads of an event: the paths its mappings and triggers read, for the decode stage.

A browser event is mostly `context`, `_metadata` and `integrations`, which no preset reads;
decoding them was most of a replay's cost. From the compiled mappings (their programs, as
mapping/fastpath.py writes them for mapcore) and their triggers, `event_reads` lists every path
a replay reads of an event, with what the translate loop itself reads (the event's clocks for its
hour, --since/--until and the builders' fallback timestamps; `messageId` for --dedupe; `type` and
`event` for the plan and the unmatched count), and gives them as the table that
sources/scan.restrict takes: a line is then decoded with only those members.

Anything whose reads cannot be listed makes `event_reads` give None, and every line is decoded
whole: a field resolved by its own resolver (`@template`, `@liquid`, `@case`, ... anything the
program calls instead of running), a path of the whole event, a mapping that leaves a required
field unmapped (the interpreter runs it), a trigger condition of an unknown kind. A path's value
is read whole (an array, say, is kept as written); the objects on the way are read in part.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from recombee_cli.mapping import mapcore
from recombee_cli.mapping.fastpath import compile_program
from recombee_cli.segment.actions import FALLBACK_TIMESTAMPS, preparer_plan
from recombee_cli.segment.triggers import read_paths
from recombee_cli.sources.decode import REJECT_MARKER
from recombee_cli.sources.scan import Reads, reads_node

# What the translate loop reads of every event, whatever its mappings: its own time (the hour,
# --since/--until: filters.py), the builders' fallback clocks, the de-duplicator's messageId, the
# plan's and the unmatched count's `type` and `event`.
LOOP_PATHS: tuple[tuple[str, ...], ...] = tuple(
    (key,) for key in ("timestamp", *FALLBACK_TIMESTAMPS, "messageId", "type", "event"))
# Top-level keys that send a line to the full decode: an HTTP-API envelope's batch, a rejects record.
STOPS = ("batch", REJECT_MARKER)


def mapping_paths(mapping: Any) -> list[tuple[str, ...]] | None:
    """The paths a compiled mapping (compile.CompiledMapping) reads: its trigger's and its
    program's; None where they cannot be listed."""
    paths = read_paths(mapping.trigger.ast)
    if paths is None or preparer_plan(mapping.action, mapping.resolvers)[1]:
        return None
    fields, _builder = compile_program(mapping)
    for field in fields:
        if not _node_paths(field[0], paths):
            return None
    # (the builders read the event only for the fallback clocks, in LOOP_PATHS)
    return paths


def _node_paths(node: tuple[Any, ...], paths: list[tuple[str, ...]]) -> bool:
    """Adds the paths a program node reads to `paths`; False where they cannot be listed."""
    kind = node[0]
    if kind == mapcore.LITERAL:
        return True
    if kind == mapcore.PATH or kind == mapcore.ARRAY:   # (an @arrayPath's items: read whole)
        if not node[1]:
            return False
        paths.append(tuple(str(key) for key in node[1]))
        return True
    if kind == mapcore.COALESCE:
        return _node_paths(node[1], paths) and _node_paths(node[2], paths)
    if kind == mapcore.OBJECT:
        return all(_node_paths(child, paths) for _, child in node[1])
    return False    # CALL: a resolver, which may read anything


def reads_table(paths: Iterable[tuple[str, ...]]) -> Reads:
    """The paths as scan.restrict's table: a path's value read whole; a shorter path wins over a
    longer one through it; the STOPS at the top."""
    tree: dict[str, Any] = {}
    for path in sorted(set(paths), key=len):
        node = tree
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if child is None:      # a shorter path reads this whole
                break
            node = child
        else:
            node[path[-1]] = None
    for key in STOPS:
        tree[key] = False
    return _table(tree)


def _table(tree: dict[str, Any]) -> Reads:
    return reads_node({key.encode("utf-8"): (child if child is None or child is False else _table(child))
                       for key, child in tree.items()})


def event_reads(mappings: Iterable[Any]) -> Reads | None:
    """scan.restrict's table of what a replay with these mappings reads of an event, or None
    where the whole event must be decoded."""
    paths: list[tuple[str, ...]] = list(LOOP_PATHS)
    for mapping in mappings:
        found = mapping_paths(mapping)
        if found is None:
            return None
        paths += found
    if any(not path for path in paths):
        return None
    return reads_table(paths)
