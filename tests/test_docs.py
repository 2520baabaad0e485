"""Docs that stay true: the CLI reference is what --help says, the troubleshooting page explains
every error message the code can print, links lead to files of the repository, and no doc points
outside it."""

from __future__ import annotations

import ast
import importlib.util
import re

from helpers import ROOT

from recombee_cli import __version__

DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# The errors that end a command (or `show`'s one line), and where a config error's words are built.
ENDING = {"Abort", "ConfigError", "InputError", "StateError", "StateLocked", "StateWriteError", "ReprocessRefused",
          "AuthenticationError", "ServiceError", "UnreachableError", "CallFailed", "OutputError", "WorkerError",
          "WorkerStartError", "ClusterError", "ClusterUsageError", "ExportError", "ExportWriteError",
          "EnvironmentValueError", "PicturesError", "error", "fail"}


def _text(node: ast.AST) -> str | None:
    """A message's text, `…` where it is filled in."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "…" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return (_text(node.left) or "…") + (_text(node.right) or "…")
    return None   # a name, a call, a conditional: filled in


def error_messages() -> list[tuple[str, str]]:
    """(where, message) for every error message in recombee_cli/ outside Segment's ports (whose
    messages are per-event reasons) and the emulator (whose messages are Recombee's)."""
    found = []
    for path in sorted((ROOT / "recombee_cli").rglob("*.py")):
        parts = path.relative_to(ROOT / "recombee_cli").parts
        if parts[0] == "segment" or "emulator" in parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            text = None
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else \
                    node.func.attr if isinstance(node.func, ast.Attribute) else None
                args = node.args
                if name == "say" and len(args) >= 3 and isinstance(args[1], ast.Constant) and args[1].value == "error":
                    text = _text(args[2])
                elif name == "fail" and len(args) >= 2:
                    text = _text(args[1])
                elif name in ENDING and args:
                    text = _text(args[0])
            elif isinstance(node, ast.Return) and parts[-1] == "fieldcheck.py" and node.value is not None:
                value = node.value.elts[0] if isinstance(node.value, ast.Tuple) else node.value
                text = _text(value)
            if text:
                found.append((f"{'/'.join(parts)}:{node.lineno}", text))
    return found


def _words(text: str) -> str:
    return " ".join(text.split())


def test_the_cli_reference_is_what_help_says():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / ".ci" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "cli.md").read_text() == module.reference(), \
        "docs/cli.md is stale: run python .ci/cli_reference.py"


def test_the_troubleshooting_page_explains_every_error_message():
    page = _words((ROOT / "docs" / "troubleshooting.md").read_text())
    missing = []
    messages = error_messages()
    assert len(messages) > 100
    for where, message in messages:
        chunks = [c.strip(" :;,.()") for c in _words(message).split("…")]
        key = max(chunks, key=len)
        if len(key) >= 10 and key not in page:
            missing.append(f"{where}: {message!r} (looked for {key!r})")
    assert not missing, "docs/troubleshooting.md does not explain:\n" + "\n".join(missing)


def test_no_doc_points_outside_the_repository():
    outside = re.compile(r"SPEC(\.md| §)|shared/|seeds/|recombee-api\.md")
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            assert not outside.search(line), f"{doc.relative_to(ROOT)}:{number}: {line.strip()}"


def test_every_relative_link_leads_to_a_file_of_the_repository():
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to {target}, which is not there"


def test_the_changelog_starts_with_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    first = re.search(r"^## (\S+)", text, re.M)
    assert text.startswith("# Changelog\n") and first and first.group(1) == __version__
    for issue in ("issue 26", "issues 21, 23, 24", "issues 10–16", "issues 2–5"):
        assert issue in text
