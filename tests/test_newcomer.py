"""A newcomer's first hour: the README's first commands, the example config, the screens and
the inputs people paste. Each test is something a new user would run into."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import MISTAKES, ROOT, SAMPLES, invoke, ndjson
from recombee_cli.config import load_config
from recombee_cli.errors import ConfigError


# -- 1. the first README command succeeds; the bad lines have a place of their own ---------------

def test_the_readme_first_command_runs_on_samples_that_succeed():
    first = (ROOT / "README.md").read_text().split("```")[1].strip().splitlines()[0]
    assert first.endswith("&& recombee-cli replay --dry-run sample_events/")
    result = invoke(["replay", "--dry-run", str(SAMPLES)])
    assert result.exit_code == 0, result.stderr
    assert len(ndjson(result.stdout)) > 50 and "invalid" in result.stderr


def test_the_samples_with_mistakes_fail_and_their_rejects_say_why(tmp_path):
    rejects = tmp_path / "rejects.ndjson"
    result = invoke(["replay", "--dry-run", "--rejects", str(rejects), str(MISTAKES)])
    assert result.exit_code == 1
    reasons = [r["reason"] for r in ndjson(rejects.read_text())]
    assert any("missing the required field 'userId'" in r for r in reasons)
    assert any(r.startswith("truncated JSON") for r in reasons)
    assert any("is not a valid Recombee ID" in r for r in reasons)


# -- 2. the example config works wherever it is copied; short forms where they do not work -------

def test_every_mapping_of_the_example_config_builds_from_the_samples_in_any_directory(tmp_path, monkeypatch):
    copy = tmp_path / "elsewhere" / "mappings.toml"
    copy.parent.mkdir()
    shutil.copy(ROOT / "mappings.example.toml", copy)
    monkeypatch.chdir(tmp_path)
    result = invoke(["validate", "--json", "--config", str(copy), str(SAMPLES)])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    names = [m.name for m in load_config(str(copy)).effective_mappings()]
    assert set(report["mappings"]) == set(names) and len(names) > 20
    for name, stats in report["mappings"].items():
        assert stats["matched"] >= 1, f"{name} matches no bundled sample event"
        assert stats["built"] == stats["matched"] and not stats["invalid"], (name, stats)
    printed = invoke(["replay", "--dry-run", "--quiet", "--config", str(copy), str(SAMPLES)])
    assert printed.exit_code == 0, printed.stderr
    purchases = [r for r in ndjson(printed.stdout) if r["path"] == "/purchases/"
                 and r["params"]["additionalData"]["segmentEventName"] == "Subscription Purchased"]
    assert purchases and purchases[0]["params"]["itemId"] == "plan-pro" and purchases[0]["params"]["price"] == 12


def test_a_short_form_inside_a_directive_is_refused_with_file_line_and_field(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[replay]\npresets = false\n\n[[mappings]]\nname = "Plans"\naction = "addPurchase"\n'
                      'trigger = \'type = "track"\'\n[mappings.fields]\n'
                      'items = { "@arrayPath" = ["$.properties", { itemId = "$.plan_id" }] }\n')
    with pytest.raises(ConfigError, match="not expanded"):
        load_config(str(config))
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 2
    assert f"{config}:9" in result.stderr and "'Plans'" in result.stderr and "'items'" in result.stderr
    assert '{ "@path" = "$.plan_id" }' in result.stderr


# -- 6. which config is used is said, and found by a documented rule ------------------------------

def test_without_a_config_one_line_on_stderr_says_the_builtin_presets_are_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(["replay", "--dry-run", str(SAMPLES / "hand-written.ndjson")])
    notices = [line for line in result.stderr.splitlines() if "built-in presets" in line]
    assert notices == ["recombee-cli: info: no config given (--config, RECOMBEE_CLI_CONFIG or "
                       "./recombee-cli.toml): using Segment's 14 built-in presets"]
    given = invoke(["replay", "--dry-run", "--config", str(ROOT / "mappings.example.toml"),
                    str(SAMPLES / "hand-written.ndjson")])
    assert "built-in presets" not in given.stderr and "recombee-cli.toml" not in given.stderr


def test_a_config_in_the_current_directory_is_found_and_named(tmp_path, monkeypatch):
    (tmp_path / "recombee-cli.toml").write_text(
        '[replay]\npresets = false\n[[mappings]]\nname = "Wishlist"\naction = "addBookmark"\n')
    monkeypatch.chdir(tmp_path)
    result = invoke(["replay", "--dry-run", str(SAMPLES / "hand-written.ndjson")])
    assert "using ./recombee-cli.toml" in result.stderr
    assert [r["path"] for r in ndjson(result.stdout)] == ["/bookmarks/"]
    # RECOMBEE_CLI_CONFIG comes before the file in the current directory
    other = tmp_path / "other.toml"
    other.write_text('[replay]\npresets = false\n[[mappings]]\nname = "Rated"\naction = "addDetailView"\n'
                     'trigger = \'event = "Product Rated"\'\n')
    by_env = invoke(["replay", "--dry-run", str(SAMPLES / "hand-written.ndjson")],
                    env={"RECOMBEE_CLI_CONFIG": str(other)})
    assert [r["path"] for r in ndjson(by_env.stdout)] == ["/detailviews/"] and "recombee-cli.toml" not in by_env.stderr


def test_help_documents_how_the_config_is_found():
    text = " ".join(invoke(["replay", "--help"]).stdout.split())
    assert "RECOMBEE_CLI_CONFIG, else ./recombee-cli.toml in the current directory" in text
