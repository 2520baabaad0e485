"""Three house rules that ruff, mypy and import-linter do not check (docs/architecture.md):
no module imports another module's private (`_name`) names, no module grows past about 600
lines except the faithful ports in segment/, whose size follows Segment's source, and no test
module imports another test module (it would find it only when pytest happened to collect that
folder first: shared test code lives in tests/helpers.py)."""

from __future__ import annotations

import ast
import pathlib
import sys

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "recombee_cli"
MAX_LINES = 620
PORTS = PACKAGE / "segment"

problems = []
for path in sorted(PACKAGE.rglob("*.py")):
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(PACKAGE.parent)
    lines = text.count("\n")
    if lines > MAX_LINES and PORTS not in path.parents:
        problems.append(f"{name}: {lines} lines (the limit is about 600 outside segment/): split it by what it owns")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("recombee_cli")):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    problems.append(f"{name}:{node.lineno}: imports the private name {alias.name} "
                                    f"from {node.module}: make it public where it lives, or move it")
TESTS = PACKAGE.parent / "tests"
for path in sorted(TESTS.rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                   else [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
        for module in modules:
            if module.split(".")[0].startswith(("test_", "conftest")):
                problems.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: imports the test module {module}: "
                                "move what it shares into tests/helpers.py")
print("\n".join(problems) or f"house rules kept: no private imports, no module over {MAX_LINES} lines outside "
      "segment/, no test importing another")
sys.exit(1 if problems else 0)
