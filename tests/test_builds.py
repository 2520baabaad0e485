"""The two builds: the hot modules compiled by Cython where the install could, and pure Python.

Both must print the same bytes. `recombee-cli --version` says which one runs. Where the compiled
build is expected (CI sets RECOMBEE_CLI_EXPECT_COMPILED=1 in .ci/run), every module listed in
recombee_cli/build.py must run compiled, so a build that silently fell back, or a list naming a
module that moved, fails here. .ci/run also runs the differential and conformance tests with
RECOMBEE_CLI_PURE=1, the pure build of the same install.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DATA, ROOT, SAMPLES

import recombee_cli
from recombee_cli.build import COMPILED_MODULES, PURE_ENV, RECORD_NAME

PACKAGE = Path(recombee_cli.__file__).resolve().parent
EXPECT_COMPILED = os.environ.get("RECOMBEE_CLI_EXPECT_COMPILED", "") not in ("", "0")
HAS_EXTENSIONS = any(PACKAGE.rglob("*.so")) or any(PACKAGE.rglob("*.pyd"))
TIMEOUT = 300

# Prints, per listed module, whether it runs compiled (as JSON).
WHICH = """
import importlib, json, sys
from recombee_cli.build import COMPILED_MODULES, is_compiled
out = {}
for name in COMPILED_MODULES:
    try:
        out[name] = is_compiled(importlib.import_module(name))
    except ImportError:
        out[name] = None
print(json.dumps(out))
"""


def _env(pure: bool, pythonpath: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def _run(args: list[str], *, pure: bool, pythonpath: Path | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=_env(pure, pythonpath), cwd=cwd, capture_output=True,
                          timeout=TIMEOUT, check=False)


def _which(*, pure: bool, pythonpath: Path | None = None, cwd: Path = ROOT) -> dict:
    done = _run(["-c", WHICH], pure=pure, pythonpath=pythonpath, cwd=cwd)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def _version(*, pure: bool, pythonpath: Path | None = None, cwd: Path = ROOT) -> str:
    done = _run(["-m", "recombee_cli", "--version"], pure=pure, pythonpath=pythonpath, cwd=cwd)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


@pytest.mark.parametrize("inputs", [DATA, SAMPLES], ids=["tests-data-20k", "sample_events"])
def test_both_builds_print_the_same_bytes(inputs, tmp_path):
    outputs = {}
    for pure in (False, True):
        report = tmp_path / f"report-{pure}.json"
        done = _run(["-m", "recombee_cli", "replay", "--dry-run", "--report", str(report), str(inputs)], pure=pure)
        assert done.returncode in (0, 1), done.stderr.decode()[-2000:]   # 1: tests/data has bad lines
        outputs[pure] = (hashlib.sha256(done.stdout).hexdigest(), done.stdout.count(b"\n"), done.returncode,
                         json.loads(report.read_text())["timeline"])   # and the same counts per day and hour
    assert outputs[False][1] > 50
    assert outputs[False] == outputs[True]


def test_the_pure_build_runs_every_module_from_its_source():
    assert set(_which(pure=True).values()) <= {False}
    assert _version(pure=True) == f"recombee-cli {recombee_cli.__version__} (pure Python: {PURE_ENV}=1)"


def test_version_says_which_build_runs():
    which = _which(pure=False)
    version = _version(pure=False)
    assert version.startswith(f"recombee-cli {recombee_cli.__version__} (")
    if EXPECT_COMPILED:
        missing = [name for name, compiled in which.items() if compiled is None]
        assert not missing, f"listed in recombee_cli/build.py but not importable (moved?): {missing}"
        assert all(which.values()), f"expected every listed module compiled: {which}"
    if any(which.values()):
        assert f"(compiled: cython {_cython_version()}, {sum(map(bool, which.values()))} modules" in version
    else:
        assert "(pure Python" in version


def _cython_version() -> str:
    record = json.loads((PACKAGE / RECORD_NAME).read_text())
    return record["compiler"].split()[-1]


def _copy_of_the_package(tmp_path: Path) -> Path:
    """The installed package (its compiled modules and build record included) under tmp_path."""
    shutil.copytree(PACKAGE, tmp_path / "recombee_cli", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_source_changed_after_the_build_runs_instead_of_its_compiled_copy(tmp_path):
    tree = _copy_of_the_package(tmp_path)
    before = _which(pure=False, pythonpath=tree, cwd=tmp_path)
    changed = "recombee_cli.segment.timestamps" if "recombee_cli.segment.timestamps" in before else COMPILED_MODULES[0]
    source = tree / (changed.replace(".", "/") + ".py")
    source.write_text(source.read_text() + "\nEDITED_AFTER_THE_BUILD = True\n")
    check = (f"import {changed} as m, json; "
             f"print(json.dumps([m.__file__.endswith('.py'), getattr(m, 'EDITED_AFTER_THE_BUILD', False)]))")
    done = _run(["-c", check], pure=False, pythonpath=tree, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == [True, True]
    after = _which(pure=False, pythonpath=tree, cwd=tmp_path)
    assert after == {**before, changed: False}
    if EXPECT_COMPILED:
        assert sum(map(bool, after.values())) == len(COMPILED_MODULES) - 1


def test_a_changed_module_takes_the_modules_compiled_against_it_to_their_source(tmp_path):
    """batching.pxd and sender.pxd cimport items' Item: compiled, they read Item as a C struct, so
    they cannot run beside an items.py edited since the build (Python would refuse the import). An
    edit to items.py runs all three from their source; the sender still imports and sends."""
    tree = _copy_of_the_package(tmp_path)
    before = _which(pure=False, pythonpath=tree, cwd=tmp_path)
    source = tree / "recombee_cli/recombee/items.py"
    source.write_text(source.read_text() + "\nEDITED_AFTER_THE_BUILD = True\n")
    check = ("import json, recombee_cli.recombee.sender as s, recombee_cli.recombee.batching as b; "
             "import recombee_cli.recombee.items as i; "
             "items = i.queued_items(None, [b'{}'], [(('u',), 0, None, 0, 'i')], [0], 0, 0.0); "
             "print(json.dumps([m.__file__.endswith('.py') for m in (s, b, i)] + [items[0].pair]))")
    done = _run(["-c", check], pure=False, pythonpath=tree, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == [True, True, True, "u\u0000i"]
    after = _which(pure=False, pythonpath=tree, cwd=tmp_path)
    assert after == {**before, "recombee_cli.recombee.items": False, "recombee_cli.recombee.batching": False,
                     "recombee_cli.recombee.sender": False}
    if EXPECT_COMPILED:
        assert sum(map(bool, after.values())) == len(COMPILED_MODULES) - 3


def test_an_install_that_could_not_compile_says_why(tmp_path):
    tree = _copy_of_the_package(tmp_path)
    for ext in [*tree.rglob("*.so"), *tree.rglob("*.pyd")]:
        ext.unlink()
    note = "not compiled at install: no working C compiler (command 'gcc' failed)"
    (tree / "recombee_cli" / RECORD_NAME).write_text(json.dumps({"compiler": "cython 3.0", "modules": {},
                                                                 "note": note}))
    assert _version(pure=False, pythonpath=tree, cwd=tmp_path) == \
        f"recombee-cli {recombee_cli.__version__} (pure Python: {note})"
    assert set(_which(pure=False, pythonpath=tree, cwd=tmp_path).values()) == {False}


def test_the_compiled_build_is_what_ci_expects():
    """CI installs with gcc and Cython: a build that fell back to pure Python must not pass there."""
    if not EXPECT_COMPILED:
        assert HAS_EXTENSIONS == any(_which(pure=False).values())
        return
    assert HAS_EXTENSIONS, "RECOMBEE_CLI_EXPECT_COMPILED=1 but the install compiled nothing"
    record = json.loads((PACKAGE / RECORD_NAME).read_text())
    assert sorted(record["modules"]) == sorted(COMPILED_MODULES), record.get("note")


def test_a_queued_request_is_left_out_of_the_garbage_collectors_walks_where_compiled():
    """items.py's Item is `@cython.no_gc` (an Item is in no reference cycle): compiled, the collector
    never tracks the thousands a sender keeps; as Python, the same class is an ordinary one. Until
    the decorator moved from items.pxd, where Cython ignores it, every compiled Item was tracked."""
    check = ("import gc, json; from recombee_cli.build import is_compiled; import recombee_cli.recombee.items as i; "
             "item = i.Item(None, 0, b'{}', ('u',), 0, None, 0, 0.0, 'x'); "
             "print(json.dumps([is_compiled(i), gc.is_tracked(item), item.pair]))")
    for pure in (False, True):
        done = _run(["-c", check], pure=pure)
        assert done.returncode == 0, done.stderr.decode()
        compiled, tracked, pair = json.loads(done.stdout)
        assert compiled == (HAS_EXTENSIONS and not pure)
        assert tracked == (not compiled)
        assert pair == "u\u0000x"
