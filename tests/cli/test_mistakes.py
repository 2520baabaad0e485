"""An operator's ordinary mistakes (issue 23): each one used to send wrong data, lose it or keep a
nightly job failing, with exit 0 or without a word. Each test is the mistake, made through the
command line, and what the tool now says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from helpers import MISTAKES, ROOT, SAMPLES, invoke, ndjson

TRACK = {"type": "track", "event": "Song Played", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z",
         "properties": {"song_id": "s-1", "qty": 2}}


def _config(tmp_path, text: str, name: str = "c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _one_mapping(fields: str, action: str = "addDetailView", extra: str = "") -> str:
    return ('[replay]\npresets = false\n\n[[mappings]]\nname = "Songs"\n'
            f'trigger = \'type = "track" and event = "Song Played"\'\naction = "{action}"\n{extra}'
            f'[mappings.fields]\n{fields}\n')


def _events(tmp_path, *events, name="day.ndjson"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


# -- 1. a path written without `$.` is a constant: refused at load ------------------------------------

@pytest.mark.parametrize("command", ["validate", "replay"])
def test_a_path_without_dollar_dot_in_an_id_field_is_refused_with_the_fix(tmp_path, command):
    config = _config(tmp_path, _one_mapping('itemId = "properties.song_id"'))
    args = ["--config", str(config)] + (["--dry-run", str(_events(tmp_path, TRACK))] if command == "replay" else [])
    result = invoke([command, *args])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"recombee-cli: error: {config}:9, mapping 'Songs', field 'itemId': ")
    assert '"$.properties.song_id"' in line and '{ "@literal" = "properties.song_id" }' in line


def test_a_deliberate_literal_is_written_with_at_literal(tmp_path):
    config = _config(tmp_path, _one_mapping('itemId = { "@literal" = "properties.song_id" }'))
    result = invoke(["replay", "--dry-run", "--quiet", "--config", str(config), str(_events(tmp_path, TRACK))])
    assert result.exit_code == 0, result.stderr
    assert [r["params"]["itemId"] for r in ndjson(result.stdout)] == ["properties.song_id"]


@pytest.mark.parametrize("action, fields, field, words", [
    ("addDetailView", 'userId = "anonymousId"', "userId", '"$.anonymousId"'),
    ("addDetailView", 'itemId = "$properties.song_id"', "itemId", '"$.properties.song_id"'),
    ("addDetailView", 'itemId = "$.properties.song_id"\ntimestamp = "timestamp"', "timestamp", '"$.timestamp"'),
    ("addDetailView", 'itemId = "$.properties.song_id"\ntimestamp = "yesterday"', "timestamp", "is not a date"),
    ("addCartAddition", 'item = { itemId = "$.properties.song_id", amount = "properties.qty" }', "item",
     '"$.properties.qty"'),
    ("addCartAddition", 'item = { itemId = "$.properties.song_id", amount = "qty" }', "item", "is not a number"),
    ("addPurchase", 'items = { "@arrayPath" = ["$.properties.products", { itemId = "properties.sku" }] }',
     "items", "looks like a path"),
    ("addDetailView", 'itemId = "$.properties.song_id"\nadditionalData = { album = "properties.album" }',
     "additionalData", '"$.properties.album"'),
])
def test_the_same_trap_in_other_fields_is_refused(tmp_path, action, fields, field, words):
    config = _config(tmp_path, _one_mapping(fields, action))
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 2, result.stdout
    assert f"mapping 'Songs', field '{field}':" in result.stderr and words in result.stderr


# -- 3. whether the presets run is said in the file, and shown ----------------------------------------

def test_a_config_with_mappings_must_say_whether_the_presets_run(tmp_path):
    config = _config(tmp_path, '[[mappings]]\nname = "Songs"\ntrigger = \'event = "Song Played"\'\n'
                               'action = "addDetailView"\n[mappings.fields]\nitemId = "$.properties.song_id"\n')
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 2
    assert f"{config}:1: say whether Segment's 14 presets run beside the 1 mapping of this file" in result.stderr
    assert "`presets = false`" in result.stderr


@pytest.mark.parametrize("presets, count, words", [
    ("false", 1, "presets: off (presets = false, {config}:2): only the 1 mapping of this file"),
    ("true", 15, "presets: on (presets = true, {config}:2): 14 of Segment's 14 presets, and 1 mapping of this file"),
])
def test_validate_shows_whether_the_presets_are_in(tmp_path, presets, count, words):
    config = _config(tmp_path, _one_mapping('itemId = "$.properties.song_id"').replace(
        "presets = false", f"presets = {presets}"))
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 0, result.stderr
    assert f"OK, {count} mapping{'s' if count != 1 else ''} (" in result.stdout
    assert words.format(config=config) in result.stdout
    with_inputs = invoke(["validate", "--json", "--config", str(config), str(_events(tmp_path, TRACK))])
    report = json.loads(with_inputs.stdout)
    assert len(report["mappings"]) == count and report["presets"]["included"] is (presets == "true")


# -- 10. values of the wrong type are refused, never read as something else -----------------------------

@pytest.mark.parametrize("text, line, words", [
    (_one_mapping('itemId = "$.properties.song_id"', extra='enabled = "false"\n'), 8,
     "mapping 'Songs': enabled must be true or false (it is a string: \"false\")"),
    (_one_mapping('itemId = "$.properties.song_id"', extra='use_defaults = "no"\n'), 8,
     "mapping 'Songs': use_defaults must be true or false (it is a string: \"no\")"),
    ('[replay]\ndisable_presets = [["x"]]\n', 2, "replay.disable_presets must be a list of strings"),
    ('[replay]\nenable_presets = [["x"]]\n', 2, "replay.enable_presets must be a list of strings"),
    ('segment_subscriptions = [1]\n', 1, "segment_subscriptions must be a list of strings"),
    ('[replay]\npresets = "yes"\n', 2, 'replay.presets must be true or false (it is a string: "yes")'),
    ('[replay]\nbatch_size = true\n', 2, "replay.batch_size must be an integer (it is a boolean: true)"),
])
def test_a_value_of_the_wrong_type_is_exit_2_with_file_line_and_key(tmp_path, text, line, words):
    config = _config(tmp_path, text)
    result = invoke(["replay", "--dry-run", "--config", str(config), str(_events(tmp_path, TRACK))])
    assert result.exit_code == 2 and result.stdout == ""
    (message,) = result.stderr.splitlines()
    assert message.startswith(f"recombee-cli: error: {config}:{line}") and words in message, message


def test_a_subscriptions_file_with_a_list_as_action_is_one_line(tmp_path):
    (tmp_path / "subs.json").write_text(json.dumps({"data": {"subscriptions": [
        {"name": "Viewed", "actionSlug": ["addDetailView"], "trigger": 'type = "track"', "settings": {}}]}},
        indent=2))
    config = _config(tmp_path, 'segment_subscriptions = ["subs.json"]\n[replay]\npresets = false\n')
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert f"{tmp_path / 'subs.json'}:5, mapping 'Viewed': unknown action [\"addDetailView\"]" in result.stderr


# -- 11. every config error names a line -----------------------------------------------------------

@pytest.mark.parametrize("text, line, words", [
    ('[replay]\npresets = true\n\nbatchsize = 5\n', 4, "unknown key 'batchsize' in [replay]; did you mean 'batch_size'?"),
    ('\n[recombee]\ndatabase_id = "x"\ndatabse = "y"\n', 4, "unknown key 'databse' in [recombee]"),
    ('\n\nmapings = []\n', 3, "unknown key 'mapings' in the top level"),
    ('[recombee]\n\nregion = "eu"\n', 3, "recombee.region 'eu' is not one of"),
    ('[recombee]\ndatabase_id = 7\n', 2, "recombee.database_id must be a string"),
    ('[replay]\n\npresets = 1\n', 3, "replay.presets must be true or false"),
    ('[replay]\n\ndisable_presets = ["Page Viewed"]\n', 3, "did you mean 'Page - Viewed'?"),
    ('[replay]\n\nrejects = ["r.ndjson"]\n', 3, "replay.rejects must be a string"),
    ('[user_properties]\n\nage = "integer"\n', 3, "user_properties.age: type 'integer' is not one of"),
    ('[user_properties]\n\nid = "int"\n', 3, "'id' is not a property name Recombee accepts"),
    ('[user_properties]\n\nage = 5\n', 3, "[user_properties] age must be a type name"),
])
def test_every_config_error_names_a_line(tmp_path, text, line, words):
    config = _config(tmp_path, text)
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 2
    (message,) = result.stderr.splitlines()
    assert message.startswith(f"recombee-cli: error: {config}:{line}") and words in message, message


# -- 12. whatever validate refuses, replay refuses; what can be checked at load is ------------------------

@pytest.mark.parametrize("value, words", [
    ('{ "@path" = "$..[" }', "is not a path Segment can read"),
    ('{ "@if" = { exists = { "@path" = "$.userId" } } }', "@if has no `then`"),
    ('{ "@liquid" = "{{ properties.song_id | no_such_filter }}" }', "filter 'no_such_filter'"),
    ('{ "@template" = "song-{{properties.song_id" }', "unclosed placeholder"),
    ('{ "@case" = { operator = "sideways", value = { "@path" = "$.properties.song_id" } } }', "sideways"),
])
@pytest.mark.parametrize("command", ["validate", "replay"])
def test_mappings_that_never_build_are_refused_by_validate_and_replay(tmp_path, value, words, command):
    config = _config(tmp_path, _one_mapping(f"itemId = {value}"))
    args = ["--dry-run", str(_events(tmp_path, TRACK))] if command == "replay" else []
    result = invoke([command, "--config", str(config), *args])
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{config}:9, mapping 'Songs', field 'itemId': " in result.stderr and words in result.stderr


def test_replay_refuses_a_trigger_validate_refuses(tmp_path):
    config = _config(tmp_path, _one_mapping('itemId = "$.properties.song_id"').replace(
        'type = "track" and event = "Song Played"', "type = "))
    checked = invoke(["validate", "--config", str(config)])
    sent = invoke(["replay", "--dry-run", "--config", str(config), str(_events(tmp_path, TRACK))])
    assert checked.exit_code == sent.exit_code == 2 and sent.stdout == ""
    assert "the trigger can never match" in sent.stderr.splitlines()[-1]


def test_a_config_that_maps_nothing_is_refused(tmp_path):
    config = _config(tmp_path, '[replay]\npresets = false\n')
    result = invoke(["replay", "--dry-run", "--config", str(config), str(SAMPLES)])
    assert result.exit_code == 2 and f"{config}:2: no mappings: every event would be unmatched" in result.stderr


# -- 13. a config that is not UTF-8 ---------------------------------------------------------------------

def test_a_config_that_is_not_utf8_is_exit_2_naming_the_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_bytes(b'[replay]\npresets = true\n# caf\xe9 au lait\n')
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr == (f"recombee-cli: error: {config}:3: is not UTF-8 (byte 0xe9 at byte 29); "
                             "TOML files are UTF-8: save it as UTF-8\n")


# -- 8. a full disk is exit 3 and one line, in a shell that buffers stdout too ----------------------------

@pytest.mark.parametrize("args", [["replay", "--dry-run", str(SAMPLES)], ["presets"],
                                  ["validate", "--config", str(ROOT / "mappings.example.toml")],
                                  ["explain", str(SAMPLES / "hand-written.ndjson")]])
def test_a_full_disk_is_exit_3_and_one_line_with_stdout_buffered(args):
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}   # as in a user's shell
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, "-m", "recombee_cli", *args], stdout=full, stderr=subprocess.PIPE,
                                text=True, timeout=120, env=environ)
    assert result.returncode == 3, result.stderr
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("recombee-cli: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert result.stderr.rstrip().endswith(errors[0])


def test_ci_runs_the_suite_as_a_users_shell_does():
    runs = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in line
            and not line.startswith("#") and "pip install" not in line]
    assert runs and all(line.startswith("env -u PYTHONUNBUFFERED ") for line in runs), runs


# -- 9. environment variables: one rule, a separator, and nothing set that goes unread ---------------------

def test_every_option_reads_the_variable_the_rule_names(tmp_path):
    from recombee_cli.cli.main import COMMANDS, load_command

    for command in map(load_command, COMMANDS):
        for param in command.params:
            if getattr(param, "opts", None) and param.param_type_name == "option":
                longest = max(param.opts, key=len)
                rule = f"RECOMBEE_CLI_{command.name}_{longest.lstrip('-')}".upper().replace("-", "_")
                assert rule in param.envvar, (command.name, param.opts, param.envvar)
                text = " ".join(invoke([command.name, "--help"]).stdout.split())
                assert rule in text.replace(" ", "") or rule in text, (command.name, rule)


def test_the_variables_the_issue_found_ignored_now_work(tmp_path):
    rejects, report = tmp_path / "r.ndjson", tmp_path / "run.json"
    result = invoke(["replay", "--dry-run", str(MISTAKES)],
                    env={"RECOMBEE_CLI_REPLAY_REJECTS": str(rejects), "RECOMBEE_CLI_REPLAY_REPORT": str(report)})
    assert result.exit_code == 1 and len(ndjson(rejects.read_text())) == 16 and json.loads(report.read_text())
    from recombee_cli.segment.presets import OPT_IN_PRESETS, PRESETS

    everything = len(PRESETS) + len(OPT_IN_PRESETS)   # `presets --all`: Segment's and the opt-in ones
    assert invoke(["presets"], env={"RECOMBEE_CLI_PRESETS_ALL": "1"}).stdout.count("\n[[mappings]]\n") == everything
    assert invoke(["status"], env={"RECOMBEE_CLI_STATUS_JSON": "1"}).stdout.startswith("{")


def test_a_repeatable_option_takes_comma_separated_values_from_the_environment():
    both = "Identify - User Traits, Ecommerce - Item Properties"
    result = invoke(["validate", "--json"], env={"RECOMBEE_CLI_VALIDATE_PRESET": both})
    assert result.exit_code == 0, result.stderr
    from recombee_cli.segment.presets import OPT_IN_GROUPS

    enabled = [p.name for group in ("Identify - User Traits", "Ecommerce - Item Properties") for p in OPT_IN_GROUPS[group]]
    assert json.loads(result.stdout)["mappings"][-len(enabled):] == enabled   # both, in the order given


def test_an_unknown_variable_is_a_warning_naming_the_closest_one():
    result = invoke(["replay", "--dry-run", str(SAMPLES)],
                    env={"RECOMBEE_CLI_REPLAY_QUEIT": "1", "RECOMBEE_PRIVATE_TOKN": "x"})
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("recombee-cli: warning:")]
    assert warnings == [
        "recombee-cli: warning: RECOMBEE_CLI_REPLAY_QUEIT is set, but no option reads it; did you mean "
        "RECOMBEE_CLI_REPLAY_QUIET? (the rule: RECOMBEE_CLI_<COMMAND>_<OPTION>, e.g. RECOMBEE_CLI_REPLAY_BATCH_SIZE)",
        "recombee-cli: warning: RECOMBEE_PRIVATE_TOKN is set, but nothing reads it; did you mean RECOMBEE_PRIVATE_TOKEN?"]


@pytest.mark.parametrize("variable, value, words", [
    ("RECOMBEE_CLI_REPLAY_BATCH_SIZE", "abc", "not a value --batch-size takes: 'abc' is not a valid integer range"),
    ("RECOMBEE_REGION", "eu", "not a value --region takes: 'eu' is not one of"),
])
def test_a_bad_value_from_the_environment_is_one_line_naming_the_variable(variable, value, words):
    result = invoke(["replay", "--dry-run", str(SAMPLES)], env={variable: value})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"recombee-cli: error: {variable}={value!r}: {words}")
    assert len(result.stderr.splitlines()) == 1 and "Usage:" not in result.stderr


# -- 7. reasons grouped by kind: count, share, two examples; the value stays in the rejects ---------------

def test_reasons_are_grouped_by_kind_in_the_summary_the_report_and_validate(tmp_path):
    pages = [{"type": "page", "name": f"Landing Page {i}", "userId": f"u{i}", "timestamp": "2024-01-01T00:00:00Z"}
             for i in range(300)]
    anonymous = [{"type": "page", "name": "home", "timestamp": "2024-01-01T00:00:00Z"}] * 100
    path = _events(tmp_path, *pages, *anonymous)
    rejects, report = tmp_path / "r.ndjson", tmp_path / "run.json"
    result = invoke(["replay", "--dry-run", "--rejects", str(rejects), "--report", str(report), str(path)])
    assert result.exit_code == 1
    summary = result.stderr[result.stderr.index("invalid, by kind of reason:"):].splitlines()
    assert summary[1].split() == ["300", "75.0%", "mapping", "'Page", "-", "Viewed':", "itemId", "…", "is", "not",
                                  "a", "valid", "Recombee", "ID", "(allowed:", "letters,", "digits,", "_", "-", ":",
                                  "@", ".)"]
    assert summary[2].strip() == "e.g. 'Landing Page 0'; 'Landing Page 1'"
    assert summary[3].split()[:2] == ["100", "25.0%"] and "missing the required field 'userId'" in summary[3]
    kinds = json.loads(report.read_text())["invalid_reason_kinds"]
    assert [(k["count"], k["share"]) for k in kinds] == [(300, 0.75), (100, 0.25)]
    assert kinds[0]["examples"] == [f"mapping 'Page - Viewed': itemId 'Landing Page {i}' is not a valid Recombee ID "
                                    "(allowed: letters, digits, _ - : @ .)" for i in (0, 1)]
    assert sum(1 for r in ndjson(rejects.read_text()) if "'Landing Page 299'" in r["reason"]) == 1
    checked = json.loads(invoke(["validate", "--json", str(path)]).stdout)
    (kind,) = checked["mappings"]["Page - Viewed"]["invalid_kinds"][:1]
    assert kind["kind"].startswith("itemId … is not a valid Recombee ID") and kind["count"] == 300
    shown = invoke(["validate", str(path)]).stdout
    assert "Page - Viewed: invalid, by kind of reason:" in shown and "e.g. 'Landing Page 0'; 'Landing Page 1'" in shown


# -- 6. files that are not Segment exports are named; --exclude leaves them out -------------------------

def _export_folder(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    _events(folder, TRACK | {"event": "Product Viewed", "properties": {"product_id": "p1"}}, name="day.ndjson")
    (folder / "README.txt").write_text("How this export was made\n" * 30)
    (folder / "data.csv").write_text("user,item\n" + "u1,p1\n" * 40)
    _events(folder, *({"id": i, "score": i / 10} for i in range(200)), name="scores.ndjson")
    return folder


def test_files_that_are_not_segment_exports_are_named_and_warned_about_once(tmp_path):
    result = invoke(["replay", "--dry-run", str(_export_folder(tmp_path))])
    assert result.exit_code == 1   # the not-JSON lines are still invalid events: nothing is hidden
    folder = tmp_path / "export"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("recombee-cli: warning:")]
    assert warnings == [
        f"recombee-cli: warning: {folder / 'README.txt'}: not a Segment export? none of its 30 lines is a JSON "
        "object; --exclude GLOB leaves such files out",
        f"recombee-cli: warning: {folder / 'data.csv'}: not a Segment export? none of its 41 lines is a JSON "
        "object; --exclude GLOB leaves such files out",
        f"recombee-cli: warning: {folder / 'scores.ndjson'}: not a Segment export? none of its 200 events has a "
        "Segment type (track, page, screen, identify, group, alias); --exclude GLOB leaves such files out"]
    assert (f"not Segment exports (no line is a Segment event): {folder / 'README.txt'}, {folder / 'data.csv'}, "
            f"{folder / 'scores.ndjson'}") in result.stderr
    quiet = invoke(["replay", "--dry-run", "--quiet", str(folder / "scores.ndjson")])
    assert quiet.exit_code == 0 and "scores.ndjson: not a Segment export?" in quiet.stderr   # said under --quiet too


def test_exclude_leaves_files_out_from_the_option_the_config_and_the_environment(tmp_path):
    folder = _export_folder(tmp_path)
    option = invoke(["replay", "--dry-run", "--exclude", "*.txt", "--exclude", "*.csv", "--exclude", "scores*",
                     str(folder)])
    assert option.exit_code == 0, option.stderr
    assert "3 input files left out by --exclude" in option.stderr and "not a Segment export" not in option.stderr
    config = _config(tmp_path, '[replay]\nexclude = ["README*", "export/*.csv"]\n')
    configured = invoke(["replay", "--dry-run", "--config", str(config), str(folder)])
    assert "2 input files left out" in configured.stderr and "scores.ndjson: not a Segment export?" in configured.stderr
    environ = invoke(["replay", "--dry-run", str(folder)], env={"RECOMBEE_CLI_REPLAY_EXCLUDE": "*.txt,*.csv"})
    assert "2 input files left out" in environ.stderr
    report = json.loads(invoke(["validate", "--json", "--exclude", "*.txt", str(folder)]).stdout)
    assert [e["source"] for e in report["not_segment_sources"]["named"]] == [str(folder / "data.csv"),
                                                                          str(folder / "scores.ndjson")]


# -- 4. a sending run keeps its rejects beside the state; one command re-sends them -------------------------

DB = "mistakes-db"
TOKEN = "mistakes-token-23"


def _send(emu, *args, env=None):
    return invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", DB, *map(str, args)],
                  env={"RECOMBEE_PRIVATE_TOKEN": TOKEN, **(env or {})})


PAGES = [{"type": "page", "name": name, "userId": f"u{i}", "timestamp": f"2024-01-0{i + 1}T00:00:00Z",
          "properties": {"path": f"/p/{i}"}} for i, name in enumerate(["home", "Search Results", "Order Confirmation"])]
FIXED = ('[replay]\npresets = true\n\n[[mappings]]\nname = "Page - Viewed"\n[mappings.fields]\n'
         'itemId = { "@replace" = { value = { "@path" = "$.properties.path" }, pattern = "/", replacement = ":" } }\n')


def test_a_sending_run_keeps_its_rejects_and_one_command_resends_them_after_the_fix(tmp_path):
    from recombee_cli.recombee.emulator import Emulator
    from recombee_cli.record.state import default_rejects_path, default_state_path

    day = _events(tmp_path, *PAGES)
    kept = default_rejects_path(default_state_path(DB))
    with Emulator(DB, TOKEN) as emu:
        first = _send(emu, "--rejects", tmp_path / "copy.ndjson", day)   # no --state: the database's default
        assert first.exit_code == 1
        records = ndjson(open(kept).read())
        assert [r["event"]["name"] for r in records] == ["Search Results", "Order Confirmation"]
        assert ndjson((tmp_path / "copy.ndjson").read_text()) == records            # the copy asked for
        assert f"rejected events written to {kept} and {tmp_path / 'copy.ndjson'}" in first.stderr
        status = invoke(["status", "--database-id", DB])
        assert f"rejects kept: 2 events (2 invalid) in {kept}" in status.stdout
        assert json.loads(invoke(["status", "--database-id", DB, "--json"]).stdout)["rejects"]["count"] == 2
        again = _send(emu, day)                                     # the same night again: nothing new
        assert len(ndjson(open(kept).read())) == 2
        config = _config(tmp_path, FIXED)
        resent = _send(emu, "--config", config, kept)               # the README's command, after the fix
        assert resent.exit_code == 0, resent.stderr
        assert open(kept).read() == ""                              # delivered: nothing is kept any more
        items = {row[0] for row in emu.snapshot()["items"]}
    assert again.exit_code == 0
    assert "rejects kept: none" in invoke(["status", "--database-id", DB]).stdout
    assert {"home", ":p:1", ":p:2"} <= items


def test_resending_the_kept_rejects_keeps_those_still_rejected_with_their_origin(tmp_path):
    from recombee_cli.recombee.emulator import Emulator
    from recombee_cli.record.state import default_rejects_path, default_state_path

    day = _events(tmp_path, *PAGES)
    kept = default_rejects_path(default_state_path(DB))
    with Emulator(DB, TOKEN) as emu:
        _send(emu, day)
        before = ndjson(open(kept).read())
        still = _send(emu, kept)                      # re-sent without fixing anything: rejected again
        interrupted_file = open(kept).read()
    assert still.exit_code == 1
    after = ndjson(interrupted_file)
    assert [(r["source"], r["line"], r["offset"], r["key"]) for r in after] == \
        [(r["source"], r["line"], r["offset"], r["key"]) for r in before]
    assert all(r["source"] == str(day) for r in after)


# -- 2. the config the README teaches is the one found; a change of mappings is said ---------------------

def test_the_config_the_readme_writes_is_the_one_discovery_finds(tmp_path, monkeypatch):
    from recombee_cli.cli.common import CONFIG_FILE_NAME

    readme = (ROOT / "README.md").read_text()
    written = re.findall(r"recombee-cli (?:presets|import-segment \S+)(?: --all)? > (\S+)", readme)
    assert written and set(written) == {CONFIG_FILE_NAME}, written
    named = set(re.findall(r"--config ([^\s`]+)", readme)) - {"FILE"}
    assert named <= {CONFIG_FILE_NAME, "mappings.example.toml"} | {n for n in named if n.startswith("/")}, named
    monkeypatch.chdir(tmp_path)
    (tmp_path / CONFIG_FILE_NAME).write_text(invoke(["presets"]).stdout + (
        '\n[[mappings]]\nname = "Songs"\ntrigger = \'event = "Song Played"\'\naction = "addDetailView"\n'
        '[mappings.fields]\nitemId = "$.properties.song_id"\n'))
    result = invoke(["replay", "--dry-run", str(_events(tmp_path, TRACK))])   # --config forgotten
    assert result.exit_code == 0 and [r["params"]["itemId"] for r in ndjson(result.stdout)] == ["s-1"]


def test_a_config_lying_beside_the_presets_is_a_warning_even_under_quiet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mappings.toml").write_text(_one_mapping('itemId = "$.properties.song_id"'))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    result = invoke(["replay", "--dry-run", "--quiet", str(_events(tmp_path, TRACK))])
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == ("recombee-cli: warning: no config given, so Segment's 14 built-in presets are used, "
                             "but ./mappings.toml looks like a config: pass --config mappings.toml, or name it "
                             "recombee-cli.toml to have it found\n")


def test_a_run_whose_mappings_differ_from_the_last_one_says_so_even_under_quiet(tmp_path, monkeypatch):
    from recombee_cli.recombee.emulator import Emulator

    (tmp_path / "cron").mkdir()
    monkeypatch.chdir(tmp_path / "cron")   # where cron starts it: no config lying around
    day = _events(tmp_path, TRACK | {"event": "Product Viewed", "properties": {"product_id": "p1"}})
    config = _config(tmp_path, _one_mapping('itemId = "$.properties.song_id"').replace("presets = false",
                                                                                     "presets = true"))
    state = tmp_path / "s.sqlite"
    runs = []
    with Emulator(DB, TOKEN) as emu:
        for step in ("first", "same", "edited", "forgotten"):
            if step == "edited":
                config.write_text(config.read_text().replace("song_id", "track_id"))
            args = ["--quiet", "--reprocess", "--state", state] + (["--config", config] if step != "forgotten" else [])
            runs.append(_send(emu, *args, day))
    assert [r.exit_code for r in runs] == [0, 0, 0, 0], runs[-1].stderr
    assert runs[0].stderr == runs[1].stderr == ""
    edited, forgotten = runs[2].stderr.splitlines(), runs[3].stderr.splitlines()
    assert len(edited) == 1 and edited[0].startswith("recombee-cli: warning: the mappings differ from the last run "
                                                      "on this state (run 2 of ")
    assert f"{config}, 15 mappings, digest " in edited[0] and "; now: " in edited[0]
    assert len(forgotten) == 1 and "now: Segment's built-in presets, 14 mappings, digest" in forgotten[0]
    shown = invoke(["status", "--state", str(state)]).stdout
    assert shown.count(f"{config}, 15 mappings, digest ") == 3 and shown.count("built-in presets, 14 mappings") == 1
    assert "mappings each run used:\n  run 4: Segment's built-in presets" in shown
    runs_json = json.loads(invoke(["status", "--state", str(state), "--json"]).stdout)["runs"]
    digests = [r["mappings"]["digest"] for r in reversed(runs_json)]
    assert digests[0] == digests[1] != digests[2] != digests[3]


V2_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (path TEXT PRIMARY KEY, identity TEXT NOT NULL, offset INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL, failed INTEGER NOT NULL DEFAULT 0, reason TEXT);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, finished REAL,
    status TEXT NOT NULL, command TEXT NOT NULL, report TEXT);
INSERT INTO meta VALUES ('schema_version', '2');
INSERT INTO runs (started, finished, status, command) VALUES (1700000000, 1700000100, 'done', 'recombee-cli replay x');
"""


def test_a_state_of_the_previous_schema_is_upgraded_and_its_old_runs_say_their_mappings_are_unknown(tmp_path):
    import sqlite3

    state = tmp_path / "old.sqlite"
    with sqlite3.connect(state) as db:
        db.executescript(V2_SCHEMA)
    from recombee_cli.recombee.emulator import Emulator

    with Emulator(DB, TOKEN) as emu:
        result = _send(emu, "--quiet", "--state", state, _events(tmp_path, TRACK))
    assert result.exit_code == 0 and result.stderr == ""   # no earlier mappings: nothing to compare
    shown = invoke(["status", "--state", str(state)]).stdout
    assert "run 1: not recorded" in shown and "run 2: Segment's built-in presets, 14 mappings, digest" in shown


# -- beyond the list: a new user's ordinary mistakes, none of which may pass silently ---------------------

def test_wrong_paths_are_one_line_each(tmp_path):
    typo = invoke(["replay", "--dry-run", str(tmp_path / "exprots")])
    assert typo.exit_code == 2 and typo.stderr.strip().endswith("no such file or directory")
    pattern = invoke(["replay", "--dry-run", str(tmp_path / "2024-*.gz")])
    assert pattern.exit_code == 2 and "the pattern matches no file" in pattern.stderr
    config = invoke(["replay", "--dry-run", "--config", str(tmp_path / "mapings.toml"), str(SAMPLES)])
    assert config.exit_code == 2 and "mapings.toml: cannot read: No such file or directory" in config.stderr
    folder = invoke(["validate", "--config", str(tmp_path)])
    assert folder.exit_code == 2 and folder.stderr == f"recombee-cli: error: --config: File '{tmp_path}' is a directory.\n"


def test_an_empty_folder_is_said_even_under_quiet(tmp_path):
    (tmp_path / "2024-05-02").mkdir()
    result = invoke(["replay", "--dry-run", "--quiet", str(tmp_path / "2024-05-02")])
    assert result.exit_code == 0
    assert result.stderr == f"recombee-cli: warning: {tmp_path / '2024-05-02'}: holds no file to read (a wrong path?)\n"


def test_swapped_config_and_input_are_named_for_what_they_are(tmp_path):
    config = _config(tmp_path, _one_mapping('itemId = "$.properties.song_id"'))
    events = _events(tmp_path, TRACK)
    as_config = invoke(["replay", "--dry-run", "--config", str(events), str(config)])
    assert as_config.exit_code == 2
    assert "invalid TOML" in as_config.stderr and "it looks like JSON (events, or Segment subscriptions?)" in as_config.stderr
    as_input = invoke(["replay", "--dry-run", "--quiet", str(config)])    # --config forgotten: the TOML as input
    assert as_input.exit_code == 1
    assert f"{config}: not a Segment export? none of its 8 lines is a JSON object (a TOML file: is it the config? " \
           "give it with --config)" in as_input.stderr


@pytest.mark.parametrize("option", ["--rejects", "--report"])
def test_an_output_option_never_overwrites_a_file_given_by_mistake(tmp_path, option):
    config = _config(tmp_path, _one_mapping('itemId = "$.properties.song_id"'))
    before = config.read_bytes()
    result = invoke(["replay", "--dry-run", option, str(config), str(MISTAKES)])
    assert result.exit_code == 2 and config.read_bytes() == before
    assert "exists and is not a" in result.stderr and "refusing to" in result.stderr
    assert result.stdout == ""


def test_a_state_file_given_an_events_file_is_refused_and_left_alone(tmp_path):
    events = _events(tmp_path, TRACK)
    before = events.read_bytes()
    result = invoke(["replay", "--database-id", DB, "--state", str(events), "--base-uri", "http://127.0.0.1:9",
                     "--allow-http", str(events)], env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert result.exit_code == 2 and "not a usable state file" in result.stderr and events.read_bytes() == before


def test_a_trigger_with_a_typo_in_the_event_name_is_a_warning_even_under_quiet(tmp_path):
    config = _config(tmp_path, _one_mapping('itemId = "$.properties.song_id"').replace("Song Played", "Song Plaied"))
    result = invoke(["replay", "--dry-run", "--quiet", "--config", str(config), str(_events(tmp_path, TRACK, TRACK))])
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == ("recombee-cli: warning: mapping 'Songs' matched no event: its trigger asks for event "
                             "\"Song Plaied\", and 2 unmatched events are \"Song Played\" (a typo?)\n")


def test_the_dry_runs_own_output_inside_the_input_folder_is_not_read_back(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    _events(folder, TRACK | {"event": "Product Viewed", "properties": {"product_id": "p1"}})
    with open(folder / "requests.ndjson", "wb") as out:
        result = subprocess.run([sys.executable, "-m", "recombee_cli", "replay", "--dry-run", "--quiet", str(folder)],
                                stdout=out, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"recombee-cli: warning: {folder / 'requests.ndjson'}: is this run's own output (stdout): left out\n"
    assert len(ndjson((folder / "requests.ndjson").read_text())) == 1


def test_forgotten_options_are_named(tmp_path):
    no_db = invoke(["replay", str(SAMPLES)], env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert no_db.exit_code == 2 and "no database id: pass --database-id" in no_db.stderr
    no_token = invoke(["replay", "--database-id", DB, str(SAMPLES)])
    assert no_token.exit_code == 2 and "RECOMBEE_PRIVATE_TOKEN" in no_token.stderr and "--dry-run" in no_token.stderr
    no_input = invoke(["replay", "--dry-run"])
    assert no_input.exit_code == 2 and "INPUTS" in no_input.stderr
