"""Which build runs: the hot modules compiled by Cython, or pure Python.

The package is pure Python; where the install found Cython and a C compiler, setup.py compiled
the modules in COMPILED_MODULES (their .py source unchanged, compiled as is) into extension
modules next to the source, which the import system prefers. The .py files stay the reference:

- RECOMBEE_CLI_PURE=1 runs the same install as pure Python (every module from its .py source),
  which is how the tests compare both builds byte for byte;
- a compiled module whose .py changed since the build (an editable install being worked on) is
  imported from its source, so that an edit is never hidden by an older compiled copy; so are
  the compiled modules that read its C structs (their .pxd cimports it);
- `recombee-cli --version` says which build runs, and why it is pure where it is.

This file is read by setup.py (run as a plain file, before the package can be imported), so it
imports only the standard library; it runs at every start, so only what is cheap to import (no
hashlib: OpenSSL takes milliseconds to load) and only when needed.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
import zlib
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

# The modules compiled where a compiler is present: the dry-run profile's hot, stable code. Each
# costs install time (gcc, about 5-25 s of CPU per module); segment.mappingkit was left out: 1 % fewer
# instructions per event (server mix) for a third of the compile time.
# A name here that no longer exists (a module moved or split) is skipped by the build with a note,
# and tests/test_builds.py fails under RECOMBEE_CLI_EXPECT_COMPILED=1 (CI) until the list is fixed.
COMPILED_MODULES: tuple[str, ...] = (
    "recombee_cli.mapping.translate",     # translate_block, the per-event loop; Translator.plan
    "recombee_cli.mapping.mapcore",       # every mapping's program: one call per mapping per event
    "recombee_cli.segment.trigger_programs",  # every candidate trigger of an event: one call per event
    "recombee_cli.segment.timestamps",     # the timestamp fast path
    "recombee_cli.segment.actions",        # the preset builders' coercions and ID checks
    "recombee_cli.sources.lines",          # cutting blocks into lines
    "recombee_cli.sources.scan",           # decoding only what is read: a check of every byte
    "recombee_cli.outcomes",               # unmatched_name, once per unmatched event
    "recombee_cli.request_kinds",          # each request's route, when sending
    "recombee_cli.recombee.items",         # an Item made for every request queued
    "recombee_cli.recombee.batching",      # building each Batch: a look at every request
    "recombee_cli.recombee.sender",        # queueing every request, reading every answer
)

PURE_ENV = "RECOMBEE_CLI_PURE"            # "1": run every module from its .py source
RECORD_NAME = "_build.json"               # written by setup.py next to this file: what was compiled


def source_digest(path: str) -> str:
    """Size and CRC-32 of a source file: enough to tell that it changed since the build (not a
    defence against tampering), and cheap at every start."""
    with open(path, "rb") as f:
        data = f.read()
    return f"{len(data)}:{zlib.crc32(data):08x}"


def pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "") not in ("", "0")


@cache
def build_record() -> dict[str, Any]:
    """What the install compiled: {"compiler": "cython 3.x", "modules": {name: source_digest of
    the .py compiled}, "cimports": {name: [modules its .pxd cimports]}, "note": why not, when it
    could not}. Empty when the install wrote none (an older install, or a checkout used without
    installing)."""
    import json

    try:
        with open(os.path.join(os.path.dirname(__file__), RECORD_NAME), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def cimported(source: str) -> list[str]:
    """The recombee_cli modules whose C structs a module's compiled code reads: what the `.pxd`
    beside its source cimports (setup.py records them; called at build time only)."""
    import re

    try:
        with open(source[:-3] + ".pxd", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return []
    return re.findall(r"^\s*from\s+(recombee_cli(?:\.\w+)+)\s+cimport\b", text, re.MULTILINE)


def _vouched(fullname: str, source: str) -> bool:
    """The build record compiled this very source (an extension without one is from another build,
    or its .py was edited since), and every module it cimports runs compiled too: a module
    compiled against another's struct layout cannot run beside that module's source (Python
    refuses the import: "size changed, may indicate binary incompatibility")."""
    record = build_record()
    compiled = record.get("modules", {})
    if fullname not in compiled or compiled[fullname] != source_digest(source):
        return False
    package = os.path.dirname(os.path.abspath(__file__))
    return all(_vouched(name, os.path.join(package, *name.split(".")[1:]) + ".py")
               for name in record.get("cimports", {}).get(fullname, ()))


class SourceFirst:
    """A meta path finder: imports a recombee_cli module from its .py source where an extension
    module beside it should not run: the pure build is asked for, or the build record does not
    vouch for it (its source changed since the compile, or it was left by an earlier build). Every
    other import goes on as usual (compiled where vouched for)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("recombee_cli.") or not path:
            return None
        leaf = fullname.rpartition(".")[2]
        for folder in path:
            source = os.path.join(folder, leaf + ".py")
            if os.path.isfile(source):
                break
        else:
            return None
        if not any(os.path.isfile(os.path.join(folder, leaf + suffix))
                   for suffix in importlib.machinery.EXTENSION_SUFFIXES):
            return None          # nothing would shadow the source
        if not pure_requested() and _vouched(fullname, source):
            return None          # the compiled module runs
        from importlib.util import spec_from_file_location

        return spec_from_file_location(fullname, source, loader=importlib.machinery.SourceFileLoader(fullname, source))


def install() -> None:
    """Called by recombee_cli/__init__.py before any submodule is imported."""
    if not any(isinstance(finder, SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceFirst())


def is_compiled(module: ModuleType) -> bool:
    return (getattr(module, "__file__", None) or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def compiled_modules() -> list[str]:
    """The modules of COMPILED_MODULES (and of the build record) that run compiled: found as the
    import system finds them, without running them (--version must not load the HTTP stack)."""
    from importlib.util import find_spec

    names = dict.fromkeys((*COMPILED_MODULES, *build_record().get("modules", {})))
    running = []
    for name in names:
        try:
            spec = find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and (spec.origin or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            running.append(name)
    return running


def describe() -> str:
    """For --version: "compiled: cython 3.3.1, 4 modules" or "pure Python[: why]"."""
    record = build_record()
    running = compiled_modules()
    if running:
        text = f"compiled: {record.get('compiler', 'cython')}, {len(running)} modules"
        stale = [n for n in record.get("modules", {}) if n not in running]
        if stale:
            text += f"; from source, changed since the build (or compiled against one that did): " \
                    f"{', '.join(sorted(stale))}"
        if record.get("note"):     # some module did not compile
            text += f"; {record['note']}"
        return text
    if pure_requested():
        return f"pure Python: {PURE_ENV}={os.environ[PURE_ENV]}"
    if record.get("note"):
        return f"pure Python: {record['note']}"
    if record.get("modules"):
        return "pure Python: every compiled module changed since the build"
    return "pure Python"
