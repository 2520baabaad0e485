"""A newcomer's first hour: the README's first commands, the example config, the screens and
the inputs people paste. Each test is something a new user would run into."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from helpers import MISTAKES, ROOT, SAMPLES, invoke, ndjson

from recombee_cli.errors import ConfigError
from recombee_cli.mapping.config import load_config

# -- 1. the first README command succeeds; the bad lines have a place of their own ---------------

def test_the_readme_first_command_runs_on_samples_that_succeed():
    first = (ROOT / "README.md").read_text().split("```")[1].split("\n", 1)[1].strip().splitlines()[0]
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


# -- 5. screens that say what happened --------------------------------------------------------------

DB = "newcomer-db"
TOKEN = "newcomer-token-5d1e"


def _send(emu, state, *inputs, extra=()):
    return invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, "--state", str(state),
                   *extra, *map(str, inputs)], env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})


def _events(path, *events):
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_the_progress_bar_counts_invalid_events_apart_from_failed_ones():
    import io

    from rich.console import Console

    from recombee_cli.cli import ui
    from recombee_cli.record.report import RunReport

    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    bar = ui._ProgressBar(console, 1000)
    report = RunReport()
    report.outcomes["invalid"] = 5
    bar.progress(report, 10)
    shown = Console(file=io.StringIO(), width=200, record=True)
    shown.print(bar._bar.make_tasks_table(bar._bar.tasks))
    assert "invalid 5, failed 0" in shown.export_text()


def test_a_repeat_run_says_the_files_were_skipped_instead_of_an_all_zero_table(tmp_path):
    from recombee_cli.recombee.emulator import Emulator

    events = _events(tmp_path / "day.ndjson", {"type": "track", "event": "Product Viewed", "userId": "u1",
                                               "properties": {"product_id": "p1"}, "timestamp": "2024-01-01T00:00:00Z"})
    with Emulator(DB, TOKEN) as emu:
        first = _send(emu, tmp_path / "s.sqlite", events)
        again = _send(emu, tmp_path / "s.sqlite", events)
    assert first.exit_code == again.exit_code == 0, again.stderr
    assert "1 file already done (skipped); nothing new" in again.stderr
    assert "outcome" not in again.stderr and "outcome" in first.stderr


def test_merges_and_deletes_with_nothing_to_do_are_said_in_words(tmp_path):
    from recombee_cli.recombee.emulator import Emulator

    events = _events(tmp_path / "day.ndjson",
                     {"type": "track", "event": "Product Removed from Wishlist", "userId": "u1",
                      "properties": {"product_id": "p1", "timestamp": "2024-01-01T00:00:00Z"},
                      "timestamp": "2024-01-01T00:00:00Z"},
                     {"type": "track", "event": "Product Removed", "userId": "u2",
                      "properties": {"product_id": "p2", "timestamp": "2024-01-01T00:00:00Z"},
                      "timestamp": "2024-01-01T00:00:00Z"})
    with Emulator(DB, TOKEN) as emu:    # an empty database: nothing to delete
        result = _send(emu, tmp_path / "s.sqlite", events)
    assert result.exit_code == 0, result.stderr
    said = " ".join(result.stderr.split())   # the line is wrapped at 80 columns
    assert ("2 deletes or merges had nothing to do (Recombee answered 404: never there, or done by an "
            "earlier run); the table counts them with duplicate") in said
    assert re.search(r"│ +nothing to do +│ +2 │ +2 │", result.stderr)


def test_status_without_a_database_id_finds_the_state_files_or_says_there_is_none(tmp_path):
    from recombee_cli.record.state import StateStore, default_state_path

    none = invoke(["status"])
    assert none.exit_code == 0 and none.stdout.startswith("no state file in ") and none.stderr == ""
    os.makedirs(os.path.dirname(default_state_path("shop")), exist_ok=True)
    StateStore(default_state_path("shop")).close()
    one = invoke(["status"])
    assert one.exit_code == 0 and one.stdout.startswith(f"state file {default_state_path('shop')}: 0 files done")
    StateStore(default_state_path("blog")).close()
    two = invoke(["status"])
    assert two.exit_code == 0 and "2 state files in" in two.stdout and "--database-id" in two.stdout
    assert "  blog    " in two.stdout and "  shop    " in two.stdout


# -- 7. --verbose, timestamps on JSON logs, an aborted run logged as an error -----------------------

def test_verbose_prints_one_line_per_batch_with_size_status_attempts_and_time(tmp_path):
    import re

    from recombee_cli.recombee.emulator import Emulator

    events = _events(tmp_path / "day.ndjson", *({"type": "track", "event": "Product Viewed", "userId": f"u{i}",
                                                 "properties": {"product_id": "p1"},
                                                 "timestamp": "2024-01-01T00:00:00Z"} for i in range(7)))
    with Emulator(DB, TOKEN) as emu:
        result = _send(emu, tmp_path / "s.sqlite", events, extra=["--verbose", "--batch-size", "5",
                                                                  "--concurrency", "1"])
        quiet = _send(emu, tmp_path / "s2.sqlite", events, extra=["--batch-size", "5"])
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "Batch of" in line]
    assert len(lines) == 2
    sizes = []
    for line in lines:
        match = re.fullmatch(r"recombee-cli: info: Batch of (\d) requests: HTTP 200, 1 attempt, \d+\.\d\d s", line)
        assert match, line
        sizes.append(int(match.group(1)))
    assert sorted(sizes) == [2, 5]
    assert "Batch of" not in quiet.stderr


def test_json_log_lines_carry_a_utc_time_and_an_aborted_run_is_an_error(tmp_path):
    import datetime

    from recombee_cli.recombee.emulator import Emulator

    second = datetime.timedelta(seconds=1)
    before = datetime.datetime.now(datetime.UTC) - second
    with Emulator(DB, TOKEN) as emu:
        result = invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, "--no-state",
                         "--log-format", "json", str(SAMPLES)], env={"RECOMBEE_PRIVATE_TOKEN": "wrong-token"})
    after = datetime.datetime.now(datetime.UTC) + second
    assert result.exit_code == 3
    records = [json.loads(line) for line in result.stderr.splitlines()]
    for record in records:
        assert record["time"].endswith("Z")
        stamp = datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
        assert before <= stamp <= after               # UTC now, not local time written as UTC
    (summary,) = [r for r in records if r["message"] == "summary"]
    assert summary["level"] == "error" and summary["report"]["aborted"]


# -- 4. a JSON document that spans lines: one pretty-printed event, or an array of events ----------

PRETTY = json.dumps({"anonymousId": "anon-1", "event": "Product Viewed", "messageId": "m-1",
                     "properties": {"product_id": "sku-9"}, "timestamp": "2024-05-02T10:00:00.000Z",
                     "type": "track", "userId": "zoe"}, indent=2)


def test_explain_reads_an_event_pasted_pretty_printed_from_stdin_and_from_a_file(tmp_path):
    result = invoke(["explain", "--json", "-"], input=PRETTY + "\n")
    (record,) = ndjson(result.stdout)
    assert record["outcome"] == "sent" and record["line"] == 1
    assert record["requests"][0]["params"]["itemId"] == "sku-9"
    (tmp_path / "event.json").write_text(PRETTY)   # no newline at the end, as copied
    human = invoke(["explain", str(tmp_path / "event.json")])
    assert human.stdout.startswith(f"{tmp_path / 'event.json'}:1: sent") and "invalid" not in human.stdout


def test_replay_reads_a_file_that_is_one_json_array_with_the_line_each_event_starts_on(tmp_path):
    events = [json.loads(PRETTY), {"type": "page", "name": "Home Page", "userId": "u2",
                                   "timestamp": "2024-01-01T00:00:00Z"}, json.loads(PRETTY) | {"userId": "yan"}]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events, indent=2) + "\n")
    rejects = tmp_path / "rejects.ndjson"
    result = invoke(["replay", "--dry-run", "--rejects", str(rejects), str(path)])
    assert result.exit_code == 1
    assert [r["params"]["userId"] for r in ndjson(result.stdout)] == ["zoe", "yan"]
    (reject,) = ndjson(rejects.read_text())
    text = path.read_text()
    assert reject["line"] == 1 + text[:text.index('"Home Page"')].count("\n") - 2   # the line of its `{`
    assert text.encode()[reject["offset"]:reject["offset"] + 1] == b"{"
    again = invoke(["replay", "--dry-run", "--quiet", str(rejects)])   # rejects of a document replay too
    assert again.exit_code == 1 and again.stdout == ""


def test_ndjson_is_still_read_line_by_line_and_a_document_too_large_is_read_as_lines_with_a_warning(tmp_path):
    lines = tmp_path / "lines.ndjson"
    lines.write_text('[1, 2]\n{"type": "page", "name": "home", "userId": "u", "timestamp": 1}\n')
    result = invoke(["explain", "--json", str(lines)])
    assert [(r["line"], r["outcome"]) for r in ndjson(result.stdout)] == [(1, "invalid"), (2, "sent")]
    big = tmp_path / "big.json"
    big.write_text("[\n" + ",\n".join(PRETTY for _ in range(40)) + "\n]\n")
    capped = invoke(["explain", "--max-line-bytes", "2048", str(big)])
    assert "looks like one JSON document spanning lines, larger than 2048 bytes" in capped.stderr
    assert "jq -c" in capped.stderr and "invalid" in capped.stdout
    assert invoke(["explain", "--json", str(big)]).stdout.count('"outcome":"sent"') == 40


# -- 3. validate without inputs: what can be checked statically is, and what cannot is said ------

def test_validate_without_inputs_refuses_mappings_that_can_never_build(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[replay]\npresets = false\n\n'
                      '[[mappings]]\nname = "No user"\ntrigger = \'type = "track" and event = "Product Viewed"\'\n'
                      'action = "addDetailView"\nuse_defaults = false\n[mappings.fields]\n'
                      'itemId = "$.properties.product_id"\n\n'
                      '[[mappings]]\nname = "Typo"\ntrigger = \'type = "trak"\'\naction = "addBookmark"\n\n'
                      '[[mappings]]\nname = "Both"\ntrigger = \'event = "A" and event = "B"\'\naction = "addBookmark"\n')
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 2 and "3 problems" in result.stdout and "OK" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("recombee-cli: error:")]
    assert errors == [
        f"recombee-cli: error: {config}:4, mapping 'No user', field 'userId': is required and nothing maps it: "
        "every event the mapping matches would be invalid",
        f"recombee-cli: error: {config}:12, mapping 'Typo', field 'trigger': the trigger can never match: "
        "Segment sends no event of type 'trak' (types: track, page, screen, identify, group, alias)",
        f"recombee-cli: error: {config}:17, mapping 'Both', field 'trigger': the trigger can never match: "
        'it asks for two different values of `event` at once (event = "A" AND event = "B")']
    as_json = json.loads(invoke(["validate", "--json", "--config", str(config)]).stdout)
    assert len(as_json["problems"]) == 3 and "not_checked" in as_json


def test_validate_ok_says_what_it_could_not_check_without_inputs():
    result = invoke(["validate", "--config", str(ROOT / "mappings.example.toml")])
    assert result.exit_code == 0
    first, presets, second = result.stdout.splitlines()
    assert presets.startswith("presets: on (presets = true, ") and "12 mappings of this file" in presets
    assert re.search(r": OK, \d+ mappings \(checked: triggers, fields, a source for every required field, "
                     r"triggers that can match\)$", first), first
    assert second.startswith("not checked without inputs: whether your events carry the fields")


# -- 8. shell completion, as the README shows it ------------------------------------------------------

@pytest.mark.parametrize("shell, words", [("bash", "complete -o nosort -F _recombee_cli_completion recombee-cli"),
                                          ("zsh", "compdef _recombee_cli_completion recombee-cli"),
                                          ("fish", "complete --no-files --command recombee-cli")])
def test_the_completion_scripts_the_readme_shows_are_produced(shell, words):
    readme = (ROOT / "README.md").read_text()
    assert f"_RECOMBEE_CLI_COMPLETE={shell}_source recombee-cli" in readme
    result = invoke([], env={"_RECOMBEE_CLI_COMPLETE": f"{shell}_source"}, prog_name="recombee-cli")
    assert result.exit_code == 0 and words in result.stdout


def test_completion_completes_commands_and_options():
    result = invoke([], env={"_RECOMBEE_CLI_COMPLETE": "bash_complete", "COMP_WORDS": "recombee-cli rep",
                             "COMP_CWORD": "1"}, prog_name="recombee-cli")
    assert result.stdout.split() == ["plain,replay", "plain,report"]
    options = invoke([], env={"_RECOMBEE_CLI_COMPLETE": "bash_complete", "COMP_WORDS": "recombee-cli replay --verb",
                              "COMP_CWORD": "2"}, prog_name="recombee-cli")
    assert options.stdout.split() == ["plain,--verbose"]
