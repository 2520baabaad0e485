"""The export against Microsoft's `Reco_Interactions` contract, read from the seed's own text
(tests/conformance/ms-intelligent-recommendations-interactions.txt, copied from the project's
seed): its table of columns gives each column's name, order, type, length, whether it is
mandatory and what an invalid value does. Every row of the 20k export and every IR root folder
is checked against those rules, not against the exporter's code; the rows expected are computed
from the events with the contract's rules only (Recombee's ID rule does not apply to a file)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import CONFORMANCE, DATA, export_events, invoke

from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import load_config
from recombee_cli.mapping.translate import Translator

SEED = CONFORMANCE / "ms-intelligent-recommendations-interactions.txt"
EXPORT_20K = DATA / "segment-export-20k.ndjson.gz"
TABLES = {"/purchases/": "purchases", "/cartadditions/": "cartadditions", "/detailviews/": "detailviews",
          "/bookmarks/": "bookmarks", "/ratings/": "ratings", "/viewportions/": "viewportions"}

# ---------------------------------------------------------------------------------------------
# The contract, parsed from the seed


def _contract() -> tuple[str, list[dict]]:
    text = SEED.read_text()
    entity = re.search(r"Data entity name: (\w+)\.", text).group(1)
    header = "Name Data type Mandatory Default value Invalid value behavior Comments\n"
    table = text[text.index(header) + len(header):].split("\n\n")[0]
    row = re.compile(r"(?P<name>.+?) (?P<type>String\((?P<length>\d+)\)|String|DateTime|Double|Bool) "
                     r"(?P<mandatory>Yes|No) (?P<rest>.*)")
    columns = []
    for line in table.splitlines():
        m = row.fullmatch(line)
        assert m, f"a line of the seed's table this parser does not read: {line!r}"
        rest = m["rest"]
        columns.append({"name": m["name"], "type": m["type"].split("(")[0],
                        "length": int(m["length"]) if m["length"] else None, "mandatory": m["mandatory"] == "Yes",
                        "drop": "Drop entry" in rest, "trim": "Trim value" in rest,
                        "only": re.search(r"(\w+) is the only valid value", rest)})
    return entity, columns


ENTITY, CONTRACT = _contract()
NAMES = [c["name"] for c in CONTRACT]
COL = {name: i for i, name in enumerate(NAMES)}
CDM_TYPE = {"String": "string", "DateTime": "dateTime", "Double": "double", "Bool": "boolean"}
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z")


def test_the_seed_parses_into_the_contracts_twelve_columns():
    assert ENTITY == "Reco_Interactions"
    assert NAMES == ["InteractionGroupingId", "ItemId", "ItemVariantId", "UserId", "InteractionType", "TimeStamp",
                     "String Attribute", "Double Attribute", "Channel", "Catalog", "Strength", "IsPositive"]
    assert [c["name"] for c in CONTRACT if c["mandatory"]] == ["InteractionGroupingId", "ItemId"]
    assert [c["name"] for c in CONTRACT if c["trim"]] == ["Channel", "Catalog"]
    assert CONTRACT[COL["InteractionType"]]["only"].group(1) == "Transaction"


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def check_row(row: list[str]) -> None:
    """One CSV row against every rule of the seed's table (a row breaking a "drop entry" rule
    must not have been written at all; a "trim value" column must have been trimmed)."""
    assert len(row) == len(CONTRACT), row
    for column, cell in zip(CONTRACT, row):
        name = column["name"]
        if column["mandatory"]:
            assert cell != "", (name, row)
        if column["length"] is not None:
            assert _units(cell) <= column["length"], (name, row)
        if cell == "":
            continue   # the contract's default
        if column["type"] == "DateTime":
            assert ISO.fullmatch(cell) and datetime.strptime(cell[:19], "%Y-%m-%dT%H:%M:%S"), (name, cell)
        elif column["type"] == "Double":
            assert re.fullmatch(r"-?\d+(\.\d+)?", cell) and math.isfinite(float(cell)), (name, cell)
        elif column["type"] == "Bool":
            assert cell in ("True", "False"), (name, cell)
        if column["only"]:
            assert cell == column["only"].group(1), (name, cell)
    # "Using "0" as the value for either the "Channel" or "Catalog" attributes result in a processing error."
    assert "0" not in (row[COL["Channel"]], row[COL["Catalog"]])


def _parts(root: Path) -> list[Path]:
    return sorted((root / ENTITY).glob("part-*"))


def read_rows(root: Path) -> list[list[str]]:
    rows = []
    for part in _parts(root):
        data = part.read_bytes()
        text = (gzip.decompress(data) if part.name.endswith(".gz") else data).decode("utf-8")
        rows += list(csv.reader(io.StringIO(text)))
    return rows


def check_root(root: Path) -> None:
    """An IR root as the data contract describes it: `model.json` beside the entity's folder of
    CSV partitions; the model lists the entity with the contract's columns, in its order."""
    assert sorted(p.name for p in root.iterdir()) == sorted([ENTITY, "model.json"])
    model = json.loads((root / "model.json").read_text())
    [entity] = model["entities"]
    assert entity["name"] == ENTITY and entity["$type"] == "LocalEntity"
    assert [(a["name"], a["dataType"]) for a in entity["attributes"]] == \
        [(c["name"], CDM_TYPE[c["type"]]) for c in CONTRACT]
    assert _parts(root) and all(re.fullmatch(r"part-\d{5}\.csv(\.gz)?", p.name) for p in _parts(root))
    for part in _parts(root):
        data = part.read_bytes()
        text = gzip.decompress(data) if part.name.endswith(".gz") else data
        assert not text.startswith(b"\xef\xbb\xbf") and b"\r" not in text   # UTF-8, no BOM, "\n" line ends
        assert not text.startswith(",".join(NAMES).encode())                 # "Headers ... shouldn't be part"


# ---------------------------------------------------------------------------------------------
# What the rows must be: the events translated by the presets, the contract's rules only


def _events() -> list[dict]:
    return export_events(EXPORT_20K)


def expected_rows(events: list[dict], *, keep_anonymous: bool = False) -> Counter:
    """(table, ItemId, UserId, IsPositive) per row the contract keeps, from each event's requests
    translated without Recombee's ID rule; a row with an ItemId over 16 characters is dropped."""
    from recombee_cli.segment.actions import recombee_id_rule

    expected: Counter = Counter()
    with recombee_id_rule(False):
        translator = Translator(compile_config(load_config(None)))
        for event in events:
            for request in translator.translate(event).requests:
                table = TABLES.get(request["path"])
                params = request["params"]
                if table is None or _units(params["itemId"]) > 16:
                    continue
                user = params["userId"]
                anonymous = not event.get("userId") and user == event.get("anonymousId")
                positive = request["method"] == "POST" and not (table == "ratings" and params["rating"] < 0)
                expected[(table, params["itemId"], "" if anonymous and not keep_anonymous else user,
                          str(positive))] += 1
    return expected


@pytest.fixture(scope="module")
def export_20k(tmp_path_factory):
    out = tmp_path_factory.mktemp("ir") / "out"
    report = out.parent / "report.json"
    result = invoke(["export", "--format", "reco-interactions", "-o", str(out), "--report", str(report),
                     "--quiet", str(EXPORT_20K)])
    return result, out, json.loads(report.read_text())


def test_every_type_is_an_ir_root_and_every_row_follows_the_contract(export_20k):
    result, out, report = export_20k
    assert result.exit_code == 1   # some item ids are longer than the contract's 16 characters
    roots = sorted(p for p in out.iterdir() if p.is_dir())
    assert {p.name for p in roots} == {t for t, n in report["export"]["rows"].items() if n}
    rows = {}
    for root in roots:
        check_root(root)
        rows[root.name] = read_rows(root)
        for row in rows[root.name]:
            check_row(row)
    got = Counter((table, r[COL["ItemId"]], r[COL["UserId"]], r[COL["IsPositive"]])
                  for table, table_rows in rows.items() for r in table_rows)
    assert got == expected_rows(_events())
    assert sum(got.values()) == report["rows_written"] > 10_000
    # "Make sure that Interactions data entity contains interactions of the same type": a root per type
    assert {p.name for p in roots} <= set(TABLES.values())


def test_pages_named_like_search_results_are_exported(export_20k):
    """The contract has no rule about the characters of an ItemId: a page named "Search Results"
    (16 characters or fewer) is a row, though Recombee would refuse it as an ID."""
    _, out, report = export_20k
    views = read_rows(out / "detailviews")
    items = Counter(r[COL["ItemId"]] for r in views)
    assert items["Search Results"] == 405 and items["Product Detail"] == 506
    assert "not a valid Recombee ID" not in json.dumps(report["invalid_reasons"])


def test_events_without_a_user_id_have_an_empty_user_id(export_20k):
    """"An empty value represents an anonymous interaction": an event without userId (its
    anonymousId would be the user) has an empty UserId; its rows stay grouped by that visitor."""
    _, out, _ = export_20k
    rows = [r for root in out.iterdir() if root.is_dir() for r in read_rows(root)]
    anonymous = [r for r in rows if r[COL["UserId"]] == ""]
    assert len(anonymous) > 3000
    events = _events()
    anonymous_ids = {e["anonymousId"] for e in events if not e.get("userId") and e.get("anonymousId")}
    assert all(r[COL["InteractionGroupingId"]] in anonymous_ids or r[COL["InteractionGroupingId"]].startswith("ORD")
               for r in anonymous)
    user_ids = {e["userId"] for e in events if e.get("userId")}
    assert {r[COL["UserId"]] for r in rows} - {""} <= user_ids


def test_keep_anonymous_id_writes_the_anonymous_id(tmp_path):
    events = [{"type": "page", "name": "Search Results", "anonymousId": "anon-1", "userId": None,
               "timestamp": "2024-03-01T00:00:00Z"},
              {"type": "page", "name": "Home", "anonymousId": "anon-1", "userId": "u-1",
               "timestamp": "2024-03-01T00:01:00Z"}]
    path = tmp_path / "e.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    for flag, users in (([], ["", "u-1"]), (["--keep-anonymous-id"], ["anon-1", "u-1"])):
        out = tmp_path / f"out{len(flag)}"
        result = invoke(["export", "-o", str(out), "--quiet", *flag, str(path)])
        assert result.exit_code == 0, result.stderr
        rows = read_rows(out / "detailviews")
        for row in rows:
            check_row(row)
        assert [r[COL["UserId"]] for r in rows] == users
        assert [r[COL["InteractionGroupingId"]] for r in rows] == ["anon-1", "u-1"]
        assert json.loads((out / "_manifest.json").read_text())["anonymous_user_ids"] == bool(flag)


def _iso_ms(seconds: float) -> str:
    moment = datetime.fromtimestamp(round(seconds * 1000) / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_exported_orders_are_the_events_purchases_grouped_by_order(export_20k):
    _, out, _ = export_20k
    from recombee_cli.segment.actions import recombee_id_rule

    translated = defaultdict(list)   # (order id) -> its purchases as the contract keeps them
    users = {}
    with recombee_id_rule(False):
        translator = Translator(compile_config(load_config(None)))
        for event in _events():
            if event.get("event") != "Order Completed":
                continue
            order = event["properties"]["order_id"]
            users[order] = event.get("userId") or ""          # anonymous: an empty UserId
            for request in translator.translate(event).requests:
                p = request["params"]
                if _units(p["itemId"]) <= 16:
                    translated[order].append((p["itemId"], p.get("price"), _iso_ms(p["timestamp"])))
    groups = defaultdict(list)
    for row in read_rows(out / "purchases"):
        groups[row[COL["InteractionGroupingId"]]].append(row)
    assert groups and set(groups) == {o for o, rows in translated.items() if rows}
    for order, rows in groups.items():
        assert {r[COL["UserId"]] for r in rows} == {users[order]}, order      # one order: one user...
        assert [(r[COL["ItemId"]], float(r[COL["Double Attribute"]]) if r[COL["Double Attribute"]] else None,
                 r[COL["TimeStamp"]]) for r in rows] == translated[order], order   # ...its products, one time


def test_after_an_export_a_replay_in_the_same_process_still_applies_recombees_id_rule(tmp_path):
    event = {"type": "page", "name": "Home Page", "userId": "u 1", "timestamp": "2024-03-01T00:00:00Z"}
    path = tmp_path / "e.ndjson"
    path.write_text(json.dumps(event) + "\n")
    for _ in range(2):   # the second time round, the IDs were seen by an export before
        exported = invoke(["export", "-o", str(tmp_path / f"out{_}"), "--quiet", str(path)])
        assert exported.exit_code == 0 and read_rows(tmp_path / f"out{_}" / "detailviews")[0][1:4] == \
            ["Home Page", "", "u 1"]
        replayed = invoke(["replay", "--dry-run", "--report", str(tmp_path / "r.json"), str(path)])
        assert replayed.exit_code == 1 and replayed.stdout == ""
        assert "is not a valid Recombee ID" in json.dumps(json.loads((tmp_path / "r.json").read_text()))
