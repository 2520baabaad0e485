"""What a replay reads of an event: the paths its mappings and triggers read, for the decode stage.

A browser event is mostly `context`, `_metadata` and `integrations`, which no preset reads;
decoding them was most of a replay's cost. From the compiled mappings (their programs, as
mapping/fastpath.py writes them for mapcore) and their triggers, `event_reads` lists every path
a replay reads of an event, with what the translate loop itself reads (the event's clocks for its
hour, --since/--until and the builders' fallback timestamps; `messageId` for --dedupe; `type` and
`event` for the plan and the unmatched count), and gives them as the table that
sources/scan.restrict takes: a line is then decoded with only those members.

`lean_reads` gives a second, leaner table for the common run (no --dedupe, no --since/--until):
without `messageId` and the stand-in clocks (originalTimestamp, receivedAt, sentAt), which are read
only where an event's own time is missing or unusable. A line decoded with it is decoded again whole
where that may be so (translate.translate_block asks `mapcore.clocks_given`, and looks at the
event's `timestamp` for its hour): a rare line, and then nothing differs from the full table.

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
from recombee_cli.segment.actions import FALLBACK_TIMESTAMPS, AddBuilder, preparer_plan
from recombee_cli.segment.triggers import read_paths
from recombee_cli.sources.decode import REJECT_MARKER
from recombee_cli.sources.scan import Reads, reads_node

# What the translate loop reads of every event, whatever its mappings: its own time (the hour,
# --since/--until: filters.py), the builders' fallback clocks, the de-duplicator's messageId, the
# plan's and the unmatched count's `type` and `event`. The lean table leaves LEAN_LEFT_OUT out.
LEAN_LOOP_PATHS: tuple[tuple[str, ...], ...] = (("timestamp",), ("type",), ("event",))
LEAN_LEFT_OUT: tuple[tuple[str, ...], ...] = tuple((key,) for key in (*FALLBACK_TIMESTAMPS, "messageId"))
LOOP_PATHS: tuple[tuple[str, ...], ...] = LEAN_LOOP_PATHS + LEAN_LEFT_OUT
# Top-level keys that send a line to the full decode: an HTTP-API envelope's batch, a rejects record.
STOPS = ("batch", REJECT_MARKER)


def mapping_paths(mapping: Any) -> list[tuple[str, ...]] | None:
    """The paths a compiled mapping (compile.CompiledMapping) reads: its trigger's and its
    program's; None where they cannot be listed."""
    found = _mapping_reads(mapping)
    return None if found is None else found[0]


def _mapping_reads(mapping: Any) -> tuple[list[tuple[str, ...]], bool, tuple[Any, ...] | None] | None:
    """A mapping's paths (see mapping_paths); whether its builder reads a stand-in clock where its
    mapped timestamp is missing; and that timestamp's program node (None: none is mapped, and the
    builder reads a clock for every event). Only the add-type builders (actions.AddBuilder) read
    the clocks (actions.interaction_timestamp)."""
    paths = read_paths(mapping.trigger.ast)
    if paths is None or preparer_plan(mapping.action, mapping.resolvers)[1]:
        return None
    fields, _builder = compile_program(mapping)
    for field in fields:
        if not _node_paths(field[0], paths):
            return None
    if type(mapping.action.build) is not AddBuilder:
        return paths, False, None
    return paths, True, next((field[0] for field in fields if field[4].name == "timestamp"), None)


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
    return decode_tables(mappings)[0]


def lean_reads(mappings: Iterable[Any]) -> tuple[Reads, tuple[tuple[Any, ...], ...]] | None:
    """The lean table (LEAN_LEFT_OUT left out, unless a mapping reads them itself) and the mapped
    timestamps that settle whether a builder reads a stand-in clock (mapcore.clock_stamp, one of
    each shape), or None: see decode_tables."""
    return decode_tables(mappings)[1]


def decode_tables(mappings: Iterable[Any]) -> tuple[Reads | None, tuple[Reads, tuple[tuple[Any, ...], ...]] | None]:
    """Both tables at once (each mapping's program written out once): `event_reads`' and
    `lean_reads`'. The lean one is None where the full one is, and where a builder reads the
    clocks with no timestamp mapped (it would read them for every event)."""
    paths: list[tuple[str, ...]] = []
    stamps: dict[str, tuple[Any, ...]] = {}
    lean = True
    for mapping in mappings:
        found = _mapping_reads(mapping)
        if found is None:
            return None, None
        more, clocks, stamp = found
        paths += more
        if clocks and stamp is None:
            lean = False
        elif stamp is not None:   # (one of each shape; the key a text: a literal may hold a dict)
            stamps.setdefault(repr(_shape(stamp)), mapcore.clock_stamp(stamp))
    if any(not path for path in paths):
        return None, None
    full = reads_table([*LOOP_PATHS, *paths])
    return full, ((reads_table([*LEAN_LOOP_PATHS, *paths]), tuple(stamps.values())) if lean else None)


def _shape(node: Any) -> Any:
    """A program node without its functions (the resolvers a path falls back to, which are the
    same for the same path): nodes of one shape resolve alike."""
    if type(node) is tuple:
        return tuple(_shape(part) for part in node)
    return None if callable(node) else node
