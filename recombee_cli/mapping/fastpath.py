"""Map and build stages compiled to Python source: one function per mapping, `event -> requests`.

The interpreter (mappingkit's closures, `actions.make_preparer`, the action's builder) stays the
reference and is what `explain` uses. For a replay each mapping is also written out as one
straight-line function that does the same steps in the same order, with the common mapping forms
inlined: `@path` (dict lookups; anything else falls back to the field's own resolver), the
`@if exists X then X else Y` coalesce, constants and `@literal` scalars, and objects of those. The
add-type builders (`AddBuilder`) are inlined too; every other builder is called as it is. The
result — requests or the first PayloadInvalid/MappingError — is the interpreter's, which
tests/mapping/test_fastpath.py checks event by event on every corpus we have.

The same analysis is also given as data, a *program* (`compile_program`), which
`mapcore.run_program` runs in one call. Which of the two a replay uses is the build's: where the
install compiled mapcore, the program (C does the lookups); in the pure build, the generated source
(the faster of the two in pure Python). Tests run both in either build.

Why: calling a dozen closures per event was most of the translate stage's time (profile in
bench/README.md); the generated function does the same work with local variables.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, cast

from recombee_cli.errors import PayloadInvalid
from recombee_cli.mapping import mapcore
from recombee_cli.segment.actions import (
    FALLBACK_TIMESTAMPS,
    NO_TIMESTAMP,
    SKIP_IN_BODY,
    AddBuilder,
    check_id,
    coerce_field,
    is_valid_id,
    missing_field,
    preparer_plan,
)
from recombee_cli.segment.jsvalues import UNDEFINED, js_keys
from recombee_cli.segment.mappingkit import compile_node as _compile
from recombee_cli.segment.mappingkit import compile_path as _compile_path
from recombee_cli.segment.mappingkit import copy_value as _copy
from recombee_cli.segment.mappingkit import has_directive as _has_directive
from recombee_cli.segment.mappingkit import is_directive
from recombee_cli.segment.timestamps import fast_canonical as _fast_canonical
from recombee_cli.segment.timestamps import first_epoch_seconds, to_epoch_seconds
from recombee_cli.sources.scan import decoded_key

_SCALARS = (str, int, float, bool, type(None))


class _Writer:
    """Source lines plus the objects the source refers to by name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {
            "U": UNDEFINED, "PayloadInvalid": PayloadInvalid, "coerce_field": coerce_field,
            "_copy": _copy, "CONTAINERS": (dict, list), "to_epoch_seconds": to_epoch_seconds,
            "fast_timestamp": _fast_canonical,
            "first_epoch_seconds": first_epoch_seconds, "FALLBACK": FALLBACK_TIMESTAMPS,
            "NO_TIMESTAMP": NO_TIMESTAMP, "_id_ok": is_valid_id, "check_id": check_id,
            "VALID_IDS": mapcore.VALID_IDS, "VALID_IDS_LIMIT": mapcore.VALID_IDS_LIMIT,
        }
        self._temps = 0

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def ref(self, value: Any, prefix: str = "K") -> str:
        name = f"{prefix}{len(self.names)}"
        self.names[name] = value
        return name

    def temp(self) -> str:
        self._temps += 1
        return f"t{self._temps}"


def _inlinable(node: Any) -> bool:
    """The mapping forms written out inline; anything else calls the field's resolver."""
    t = type(node)
    if t in _SCALARS:
        return True
    if t is not dict:
        return False
    if is_directive(node):
        if len(node) != 1:
            return False
        (key, value), = node.items()
        if key == "@path":
            # (a path of no keys, such as "..", is the whole event: its resolver copies it)
            return type(value) is str and bool(_compile_path(value.replace("$.", "", 1)))
        if key == "@literal":
            return type(value) in _SCALARS
        if key == "@if":
            return _is_coalesce(value)
        return False
    # A plain object is inlined only where it holds directives: one without is a constant,
    # which the interpreter copies with its own key order.
    return _has_directive(node) and all(
        _inlinable(v) and (type(v) is not dict or _has_directive(v))
        for v in node.values())


def _is_coalesce(opts: Any) -> bool:
    """`{"exists": {"@path": X}, "then": {"@path": X}, "else": {"@path": Y}}`, the UI's coalesce."""
    if type(opts) is not dict or set(opts) != {"exists", "then", "else"}:
        return False
    exists, otherwise = opts["exists"], opts["else"]

    def path_only(n: Any) -> bool:
        return (type(n) is dict and len(n) == 1 and type(n.get("@path")) is str
                and bool(_compile_path(n["@path"].replace("$.", "", 1))))

    return path_only(exists) and opts["then"] == exists and path_only(otherwise)


def _emit_value(w: _Writer, node: Any, target: str, depth: int, fallback: str) -> None:
    """Code that leaves `node`'s resolved value (UNDEFINED when missing) in `target`; where the
    event's shape is not the common one, the whole field is resolved again by `fallback`."""
    t = type(node)
    if t in _SCALARS:
        w.line(depth, f"{target} = {w.ref(node)}")
        return
    key: Any
    value: Any
    key, value = next(iter(node.items())) if is_directive(node) else (None, None)
    if key == "@literal":
        w.line(depth, f"{target} = {w.ref(value)}")
    elif key == "@path":
        _emit_path(w, value.replace("$.", "", 1), target, depth, fallback)
    elif key == "@if":
        _emit_path(w, value["exists"]["@path"].replace("$.", "", 1), target, depth, fallback)
        w.line(depth, f"if {target} is None or {target} is U:")
        _emit_value(w, value["else"], target, depth + 1, fallback)
    else:   # an object of inlinable values: keys in JavaScript order, undefined values dropped
        obj = w.temp()
        w.line(depth, f"{obj} = {{}}")
        for k in js_keys(node):
            item = w.temp()
            child = node[k]
            # a child's own fallback: the field's resolver would give the whole object
            _emit_value(w, child, item, depth, w.ref(_compile(child, False), "R"))
            w.line(depth, f"if {item} is not U:")
            w.line(depth + 1, f"{obj}[{w.ref(k)}] = {item}")
        w.line(depth, f"{target} = {obj}")


def _emit_path(w: _Writer, path: str, target: str, depth: int, fallback: str) -> None:
    # Through dicts a path is plain lookups; a list, string or falsy value on the way has
    # JavaScript semantics (indexes, `length`, short-circuit) that the resolver knows.
    compiled = _compile_path(path)
    assert compiled   # (_inlinable checked it)
    keys = [k for k, _ in compiled]
    w.line(depth, f"{target} = event.get({w.ref(keys[0])}, U)")
    for level, key in enumerate(keys[1:]):
        w.line(depth + level, f"if type({target}) is dict:")
        w.line(depth + level + 1, f"{target} = {target}.get({w.ref(key)}, U)")
    w.line(depth + len(keys) - 1, f"if type({target}) in CONTAINERS:")
    w.line(depth + len(keys), f"{target} = _copy({target})")
    for level in reversed(range(len(keys) - 1)):
        w.line(depth + level, "else:")
        w.line(depth + level + 1, f"{target} = {fallback}(event)")


MappingFunction = Callable[[dict[str, Any]], list[dict[str, Any]]]


def compile_mapping_function(mapping: Any) -> MappingFunction:
    """`event -> requests` for a compiled mapping, a compile.CompiledMapping (not imported here:
    compile imports this module); raises PayloadInvalid or MappingError like the interpreter.
    Where mapcore runs compiled, the mapping's program (one C call per event); else its
    generated source."""
    return program_function(mapping) if mapcore.COMPILED else source_function(mapping)


def written_function(mapping: Any, run: MappingFunction) -> Callable[[dict[str, Any]], list[Any]]:
    """`run` (the mapping's compile_mapping_function) as a replay that only needs the requests'
    bytes calls it: where `run` is a program, the same program by mapcore.run_written (an
    add-type request as its JSON bytes, written without building its dicts); else `run` itself."""
    if isinstance(run, partial) and run.func is mapcore.run_program:
        return partial(mapcore.run_written, *run.args)
    return run


def _unmapped(mapping: Any) -> MappingFunction | None:
    """A mapping that leaves a required field unmapped: Segment refuses every event of it, so
    there is no need for speed: the interpreter runs it."""
    if not preparer_plan(mapping.action, mapping.resolvers)[1]:
        return None
    prepare, build = mapping.prepare, mapping.action.build
    return lambda event: build(prepare(event), event)


def program_function(mapping: Any) -> MappingFunction:
    """The mapping as a mapcore program, run by `mapcore.run_program`."""
    return _unmapped(mapping) or partial(mapcore.run_program, compile_program(mapping))


def source_function(mapping: Any) -> MappingFunction:
    """The mapping written out as Python source (its `.source`), compiled by the interpreter."""
    unmapped = _unmapped(mapping)
    if unmapped is not None:
        return unmapped
    action = mapping.action
    plan, _ = preparer_plan(action, mapping.resolvers)
    w = _Writer()
    w.line(0, "def run(event):")
    fields: list[tuple[str, str, bool]] = []   # (name, local, always present)
    for name, resolve, spec, plain in plan:
        local = f"f_{len(fields)}"
        node = mapping.spec.fields[name]
        resolver = w.ref(resolve, "R")
        if _inlinable(node):
            _emit_value(w, node, local, 1, resolver)
        else:
            w.line(1, f"{local} = {resolver}(event)")
        w.line(1, f"if {local} is U or {local} is None or {local} == '':")
        if spec.required:
            w.line(2, f"raise PayloadInvalid({w.ref(missing_field(name))})")
        else:
            w.line(2, f"{local} = None")
        check = f"type({local}) not in {w.ref(plain)}" if plain is not None else "True"
        w.line(1, f"{'' if spec.required else 'el'}if {check}:")
        w.line(2, f"{local} = coerce_field({w.ref(spec, 'S')}, {local})")
        fields.append((name, local, spec.required))
    build = action.build
    others = {name for name, _, _ in fields} - {build.first_field} if type(build) is AddBuilder else set()
    if type(build) is AddBuilder and not build.first_keys & others:   # (no key set twice)
        _emit_add(w, build, fields)
    else:
        w.line(1, "payload = {}")
        for name, local, required in fields:
            if required:
                w.line(1, f"payload[{name!r}] = {local}")
            else:
                w.line(1, f"if {local} is not None:")
                w.line(2, f"payload[{name!r}] = {local}")
        w.line(1, f"return {w.ref(build, 'B')}(payload, event)")
    source = "\n".join(w.lines) + "\n"
    namespace = dict(w.names)
    exec(compile(source, f"<mapping {mapping.name!r}>", "exec"), namespace)
    run = namespace["run"]
    run.source = source   # for tests and for whoever debugs a difference
    return cast("MappingFunction", run)


def compile_program(mapping: Any) -> tuple[Any, ...]:
    """The mapping as a program for mapcore.run_program: source_function's analysis, as data
    (a mapping with an unmapped required field has none: see _unmapped)."""
    plan, unmapped = preparer_plan(mapping.action, mapping.resolvers)
    assert not unmapped, "a mapping that leaves a required field unmapped has no program"
    fields = []
    for name, resolve, spec, plain in plan:
        node = mapping.spec.fields[name]
        if _inlinable(node):
            program_node = _program_node(node, resolve)
        elif _is_array_path(node):
            (path, shape), = node.values()
            shape_resolver = _compile(shape, False)
            program_node = (mapcore.ARRAY, *_program_path(path, resolve)[1:], _program_node(shape, shape_resolver),
                            shape_resolver)
        else:
            program_node = (mapcore.CALL, resolve)
        fields.append((program_node, spec.required, missing_field(name), plain, spec))
    names = [name for name, _, _, _ in plan]
    build = mapping.action.build
    others = set(names) - {build.first_field} if type(build) is AddBuilder else set()
    if type(build) is not AddBuilder or build.first_keys & others:
        return tuple(fields), (mapcore.GENERIC, tuple(names), build)
    at = {name: position for position, name in enumerate(names)}
    required = {name: spec.required for name, _, spec, _ in plan}
    check = (build.check, at[build.checked_field]) if build.check is not None and build.checked_field else None
    first = (build.first, at[build.first_field], build.each) if build.first_field is not None else None
    body = tuple((name, at[name], required[name]) for name in names
                 if name not in SKIP_IN_BODY and name != build.first_field)
    ids = () if first is not None else tuple((name, at[name], required[name]) for name in mapcore.ID_FIELDS
                                             if name in at)
    extras = tuple(at[name] for name in ("additionalData", "internalAdditionalData") if name in at)
    named = [name for name, _, _ in body]
    # (a body key the dict sets again in place, or twice, is left to the dict: the writer appends)
    shell = None if {"timestamp", "cascadeCreate", "additionalData"} & set(named) or len(set(named)) < len(named) \
        else mapcore.request_shell(build.path, named)
    builder = (mapcore.ADD, check, first, at.get("timestamp", -1), extras, build.path, body, ids, shell)
    return tuple(fields), builder


def _is_array_path(node: Any) -> bool:
    """`{"@arrayPath": [path, shape]}` with a path of dict lookups and an inlinable object shape:
    an order's products, say."""
    if type(node) is not dict or len(node) != 1 or type(node.get("@arrayPath")) is not list:
        return False
    args = node["@arrayPath"]
    if len(args) != 2 or type(args[0]) is not str or type(args[1]) is not dict or is_directive(args[1]):
        return False
    path, shape = args
    return _inlinable({"@path": path}) and _inlinable(shape)


def _program_node(node: Any, fallback: Callable[[dict[str, Any]], Any]) -> tuple[Any, ...]:
    """_emit_value's forms as a mapcore node."""
    if type(node) in _SCALARS:
        return (mapcore.LITERAL, node)
    key: Any
    value: Any
    key, value = next(iter(node.items())) if is_directive(node) else (None, None)
    if key == "@literal":
        return (mapcore.LITERAL, value)
    if key == "@path":
        return _program_path(value, fallback)
    if key == "@if":
        return (mapcore.COALESCE, _program_path(value["exists"]["@path"], fallback),
                _program_path(value["else"]["@path"], fallback))
    return (mapcore.OBJECT, tuple((k, _program_node(node[k], _compile(node[k], False))) for k in js_keys(node)))


def _program_path(path: str, fallback: Callable[[dict[str, Any]], Any]) -> tuple[Any, ...]:
    compiled = _compile_path(path.replace("$.", "", 1))
    assert compiled   # (_inlinable checked it)
    # (each key the object orjson makes of it: an event's lookups are then found by identity)
    return (mapcore.PATH, tuple(decoded_key(k) if type(k) is str else k for k, _ in compiled), fallback)


def _emit_add(w: _Writer, build: AddBuilder, fields: list[tuple[str, str, bool]]) -> None:
    """AddBuilder and actions._add_params, step for step, on the fields' locals."""
    local = {name: (var, required) for name, var, required in fields}
    if build.check is not None:
        assert build.checked_field is not None   # a check is of a field
        w.line(1, f"{w.ref(build.check, 'C')}({local[build.checked_field][0]})")
    if build.first_field is not None:
        # the first parameters of each request, all of them before the timestamp (as the
        # builder: a purchase with no products sends nothing and needs no timestamp)
        value = local[build.first_field][0]
        first = w.ref(build.first, "F")
        w.line(1, f"firsts = [{first}(v) for v in {value}]" if build.each else f"firsts = [{first}({value})]")
        w.line(1, "if not firsts:")
        w.line(2, "return []")
    if "timestamp" in local:
        stamp = local["timestamp"][0]
        w.line(1, f"if {stamp} is not None:")
        w.line(2, f"ts = fast_timestamp({stamp}) if type({stamp}) is str else None")
        w.line(2, "if ts is None:")
        w.line(3, f"ts = to_epoch_seconds({stamp})")
        w.line(1, "else:")
        depth = 2
    else:
        depth = 1
    w.line(depth, "ts = first_epoch_seconds(event, FALLBACK)")
    w.line(depth, "if ts is None:")
    w.line(depth + 1, "raise PayloadInvalid(NO_TIMESTAMP)")
    given = [local[name][0] for name in ("additionalData", "internalAdditionalData") if name in local]
    if len(given) == 2:
        w.line(1, f"if {given[0]} and {given[1]}:")
        w.line(2, f"extra = {{**{given[0]}, **{given[1]}}}")
        w.line(1, "else:")
        w.line(2, f"extra = dict({given[0]} or {given[1]} or {{}})")
    else:
        w.line(1, f"extra = dict({given[0]}) if {given[0]} else {{}}" if given else "extra = {}")
    request = f"{{'method': 'POST', 'path': {build.path!r}, 'params': params}}"
    if build.first_field is None:
        _emit_params(w, 1, fields, local, None)
        w.line(1, f"return [{request}]")
        return
    w.line(1, "requests = []")
    w.line(1, "for first in firsts:")
    _emit_params(w, 2, [f for f in fields if f[0] != build.first_field], local, "first")
    w.line(2, f"requests.append({request})")
    w.line(1, "return requests")


def _emit_params(w: _Writer, depth: int, fields: list[tuple[str, str, bool]], local: dict[str, tuple[str, bool]],
                 first: str | None) -> None:
    """params: timestamp, cascadeCreate, additionalData, the first parameters, then the rest
    in field order; then the IDs checked."""
    w.line(depth, "params = {'timestamp': ts, 'cascadeCreate': True, 'additionalData': extra}")
    if first is not None:
        w.line(depth, f"if {first}:")
        w.line(depth + 1, f"params.update({first})")
    for name, var, required in fields:
        if name in SKIP_IN_BODY:
            continue
        if required:
            w.line(depth, f"params[{name!r}] = {var}")
        else:
            w.line(depth, f"if {var} is not None:")
            w.line(depth + 1, f"params[{name!r}] = {var}")
    for name in ("userId", "itemId", "sessionId"):
        if name in local and first is None:
            var, required = local[name]
            guard = "" if required else f"{var} is not None and "
        elif first is not None:   # the first parameters may bring an itemId
            var, guard = f"params[{name!r}]", f"{name!r} in params and "
        else:
            continue
        # IDs repeat (users, products): a set of those seen valid saves the regular expression
        w.line(depth, f"if {guard}{var} not in VALID_IDS:")
        w.line(depth + 1, f"if not _id_ok({var}):")
        w.line(depth + 2, f"check_id({name!r}, {var})")   # (returns only when the ID rule is off)
        w.line(depth + 1, "elif len(VALID_IDS) < VALID_IDS_LIMIT:")
        w.line(depth + 2, f"VALID_IDS.add({var})")
