"""`export --format reco-interactions`: Microsoft Intelligent Recommendations' Reco_Interactions
files. Every column rule and every type mapping has its own case; the 20k export is written and
every row checked against the contract; exported orders are compared with the dry run's requests."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers import DATA, MISTAKES, invoke, ndjson, open_fifo_when_read

from recombee_cli import translate_event
from recombee_cli.errors import ExportError
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import load_config
from recombee_cli.mapping.translate import Translator
from recombee_cli.outcomes import NOT_REPRESENTABLE, REFUSED
from recombee_cli.pipeline.replay import run
from recombee_cli.record.recorder import Recorder
from recombee_cli.record.report import RunReport
from recombee_cli.sinks.files import (
    MANIFEST,
    SUCCESS,
    Column,
    ExportSink,
    FileExporter,
    NotRepresentable,
    Refused,
    format_datetime,
    format_double,
)
from recombee_cli.sinks.protocol import EventTicket as Ticket
from recombee_cli.sinks.reco_interactions import RecoInteractions
from recombee_cli.sources.reader import Line, expand_inputs

EXPORT_20K = DATA / "segment-export-20k.ndjson.gz"
FORMAT = RecoInteractions()
CONTRACT_COLUMNS = ["InteractionGroupingId", "ItemId", "ItemVariantId", "UserId", "InteractionType", "TimeStamp",
                    "String Attribute", "Double Attribute", "Channel", "Catalog", "Strength", "IsPositive"]
TABLES = ("purchases", "cartadditions", "detailviews", "bookmarks", "ratings", "viewportions")
COL = {name: i for i, name in enumerate(CONTRACT_COLUMNS)}
E = "Reco_Interactions"   # each type's folder is an IR root: model.json, and the entity's folder of parts

GOOD = {"InteractionGroupingId": "g1", "ItemId": "item-1", "UserId": "u1", "InteractionType": "Transaction",
        "TimeStamp": 1714644000, "IsPositive": True}


def cells(line: bytes) -> list[str]:
    [row] = list(csv.reader(io.StringIO(line.decode("utf-8"))))
    return row


def encoded(**changes) -> list[str]:
    return cells(FORMAT.encode({**GOOD, **changes}))


def refused(**changes) -> str:
    with pytest.raises(Refused) as caught:
        FORMAT.encode({**GOOD, **changes})
    return str(caught.value)


def row_of(request: dict, event: dict | None = None) -> tuple[str, list[str]]:
    table, line = FORMAT.row(request, lambda: event)
    return table, cells(line)


def event(name: str, **properties) -> dict:
    return {"type": "track", "event": name, "userId": "alice", "timestamp": "2024-05-02T10:10:00.123Z",
            "messageId": "m-1", "properties": properties}


# ---------------------------------------------------------------------------------------------
# The columns, one rule per case

def test_columns_are_the_contracts_in_its_order():
    assert [c.name for c in FORMAT.columns] == CONTRACT_COLUMNS
    assert encoded() == ["g1", "item-1", "", "u1", "Transaction", "2024-05-02T10:00:00.000Z", "", "", "", "", "",
                         "True"]


def test_interaction_grouping_id_is_required_and_at_most_256_characters():
    assert encoded(InteractionGroupingId="g" * 256)[0] == "g" * 256
    assert "InteractionGroupingId is longer than 256 characters (257)" in refused(InteractionGroupingId="g" * 257)
    assert "InteractionGroupingId is empty but required" in refused(InteractionGroupingId="")


def test_item_id_is_required_and_at_most_16_characters():
    assert encoded(ItemId="i" * 16)[1] == "i" * 16
    assert "ItemId is longer than 16 characters (24)" in refused(ItemId="8418b06692c484000f2382a3")
    assert "ItemId is empty but required" in refused(ItemId=None)


def test_item_variant_id_is_optional_and_at_most_16_characters():
    assert encoded(ItemVariantId="v" * 16)[2] == "v" * 16
    assert "ItemVariantId is longer than 16 characters (17)" in refused(ItemVariantId="v" * 17)


def test_user_id_may_be_empty_for_anonymous_and_is_at_most_256_characters():
    assert encoded(UserId="")[3] == ""
    assert encoded(UserId="u" * 256)[3] == "u" * 256
    assert "UserId is longer than 256 characters (257)" in refused(UserId="u" * 257)


def test_interaction_type_transaction_is_the_only_valid_value():
    assert encoded()[4] == "Transaction"
    assert encoded(InteractionType=None)[4] == ""   # empty: the contract's default, Transaction
    assert "InteractionType 'Purchase' is not one of Transaction" in refused(InteractionType="Purchase")


def test_timestamp_is_iso_8601_utc_with_milliseconds():
    assert encoded(TimeStamp=1709275327.7285)[5] == "2024-03-01T06:42:07.728Z"   # rounded to the millisecond
    assert encoded(TimeStamp=1709275327.9996)[5] == "2024-03-01T06:42:08.000Z"
    assert encoded(TimeStamp=0)[5] == "1970-01-01T00:00:00.000Z"
    assert format_datetime(-0.001) == "1969-12-31T23:59:59.999Z"
    assert "TimeStamp is outside the years 1-9999" in refused(TimeStamp=1e12)
    assert "TimeStamp is not a time" in refused(TimeStamp="2024-03-01")


def test_string_attribute_is_at_most_64_characters():
    assert encoded(**{"String Attribute": "s" * 64})[6] == "s" * 64
    assert "String Attribute is longer than 64 characters (65)" in refused(**{"String Attribute": "s" * 65})


def test_double_attribute_is_a_finite_double_written_with_a_point_and_no_exponent():
    assert encoded(**{"Double Attribute": 2})[7] == "2.0"
    assert encoded(**{"Double Attribute": 0.1 + 0.2})[7] == "0.30000000000000004"   # round-trips exactly
    assert encoded(**{"Double Attribute": 1e-7})[7] == "0.0000001"
    assert encoded(**{"Double Attribute": 1e22})[7] == "10000000000000000000000.0"
    assert "Double Attribute is not a finite number" in refused(**{"Double Attribute": math.inf})
    assert "Double Attribute is not a number" in refused(**{"Double Attribute": "12.5"})
    assert "Double Attribute is not a number" in refused(**{"Double Attribute": True})


def test_channel_and_catalog_longer_than_64_characters_are_trimmed_not_dropped():
    row = encoded(Channel="c" * 70, Catalog="k" * 64)
    assert row[8] == "c" * 64 and row[9] == "k" * 64
    # trimmed by UTF-16 code units (the contract's platform counts so), never inside a pair
    assert encoded(Catalog="k" * 63 + "\U0001F600")[9] == "k" * 63


def test_channel_or_catalog_zero_is_an_error_so_the_entry_is_dropped():
    assert "Channel '0' is not allowed" in refused(Channel="0")
    assert "Catalog '0' is not allowed" in refused(Catalog="0")
    assert encoded(Channel="web", Catalog="00")[8:10] == ["web", "00"]


def test_strength_is_a_finite_double():
    assert encoded(Strength=4)[10] == "4.0"
    assert "Strength is not a finite number" in refused(Strength=math.nan)


def test_is_positive_is_true_or_false():
    assert encoded(IsPositive=True)[11] == "True"
    assert encoded(IsPositive=False)[11] == "False"
    assert "IsPositive is not a boolean" in refused(IsPositive="yes")


def test_lengths_count_utf16_code_units():
    assert encoded(ItemId="\u00e9" * 16)[1] == "\u00e9" * 16                     # one unit each
    assert "ItemId is longer than 16 characters (18)" in refused(ItemId="\U0001F600" * 9)   # two each


def test_values_are_quoted_as_rfc_4180_only_where_needed():
    line = FORMAT.encode({**GOOD, "InteractionGroupingId": 'ORD, "7"', "String Attribute": "two\nlines"})
    assert line.startswith(b'"ORD, ""7""",item-1,')
    assert line.endswith(b"\n") and line.count(b"\n") == 2
    assert cells(line)[0] == 'ORD, "7"' and cells(line)[6] == "two\nlines"
    assert b'"' not in FORMAT.encode(GOOD)


def test_double_formatting_refuses_what_is_not_a_double():
    assert format_double(-0.0) == "-0.0"
    with pytest.raises(Refused):
        format_double(10 ** 400)


def test_a_column_can_trim_or_drop():
    assert Column("X", max_length=3, on_invalid="trim").cell("abcd") == "abc"
    with pytest.raises(Refused):
        Column("X", max_length=3).cell("abcd")


# ---------------------------------------------------------------------------------------------
# Recombee interactions -> rows, one type per case (requests built by the real presets)

def test_purchases_are_grouped_by_the_order_id_one_row_per_product():
    order = event("Order Completed", order_id="ORD-1",
                  products=[{"product_id": "p1", "quantity": 2, "price": 19.99}, {"sku": "p2", "price": 5}])
    rows = [row_of(r, order) for r in translate_event(order)]
    assert [t for t, _ in rows] == ["purchases", "purchases"]
    assert [r for _, r in rows] == [
        ["ORD-1", "p1", "", "alice", "Transaction", "2024-05-02T10:10:00.123Z", "", "39.98", "", "", "", "True"],
        ["ORD-1", "p2", "", "alice", "Transaction", "2024-05-02T10:10:00.123Z", "", "5.0", "", "", "", "True"]]


def test_a_numeric_order_id_is_written_as_javascript_writes_it():
    order = event("Order Completed", order_id=1234567, products=[{"product_id": "p1"}])
    assert row_of(translate_event(order)[0], order)[1][0] == "1234567"


def test_purchases_without_an_order_id_are_grouped_by_user_and_time():
    order = event("Order Completed", products=[{"product_id": "p1"}, {"product_id": "p2"}])
    groups = {row_of(r, order)[1][0] for r in translate_event(order)}
    assert groups == {"alice@2024-05-02T10:10:00.123Z"}


def test_an_order_id_longer_than_256_characters_drops_the_entry():
    order = event("Order Completed", order_id="o" * 300, products=[{"product_id": "p1"}])
    with pytest.raises(Refused, match="InteractionGroupingId is longer than 256"):
        FORMAT.row(translate_event(order)[0], lambda: order)


def test_cart_additions_are_grouped_by_user_with_the_line_price():
    added = event("Product Added", product_id="p1", quantity=3, price=2.5)
    table, row = row_of(translate_event(added)[0], added)
    assert table == "cartadditions"
    assert row == ["alice", "p1", "", "alice", "Transaction", "2024-05-02T10:10:00.123Z", "", "7.5", "", "", "",
                   "True"]


def test_a_cart_removal_is_a_negative_cart_addition_at_the_events_time():
    removed = event("Product Removed", product_id="p1")
    [request] = translate_event(removed)
    assert request["method"] == "DELETE" and "timestamp" not in request["params"]
    table, row = row_of(request, removed)
    assert table == "cartadditions"
    assert row == ["alice", "p1", "", "alice", "Transaction", "2024-05-02T10:10:00.123Z", "", "", "", "", "",
                   "False"]


def test_a_deletion_with_its_own_timestamp_uses_it():
    removed = event("Product Removed", product_id="p1", timestamp="2024-01-01T00:00:00Z")
    assert row_of(translate_event(removed)[0], removed)[1][5] == "2024-01-01T00:00:00.000Z"


def test_a_deletion_with_no_time_anywhere_drops_the_entry_instead_of_writing_1970():
    request = {"method": "DELETE", "path": "/bookmarks/", "params": {"userId": "u", "itemId": "i"}}
    with pytest.raises(Refused, match="TimeStamp is missing"):
        FORMAT.row(request, lambda: {"type": "track", "userId": "u"})


def test_detail_views_keep_the_duration_and_the_recomm_id():
    request = {"method": "POST", "path": "/detailviews/",
               "params": {"userId": "u1", "itemId": "p1", "timestamp": 1714644000, "duration": 12,
                          "recommId": "rec-1", "cascadeCreate": True}}
    assert row_of(request) == ("detailviews", ["u1", "p1", "", "u1", "Transaction", "2024-05-02T10:00:00.000Z",
                                               "rec-1", "12.0", "", "", "", "True"])


def test_bookmarks_and_their_deletions():
    added = event("Product Added to Wishlist", product_id="p1")
    removed = event("Product Removed from Wishlist", product_id="p1", timestamp="2024-05-02T10:10:00.123Z")
    assert row_of(translate_event(added)[0], added)[0] == "bookmarks"
    assert row_of(translate_event(added)[0], added)[1][11] == "True"
    table, row = row_of(translate_event(removed)[0], removed)
    assert table == "bookmarks" and row[11] == "False" and row[5] == "2024-05-02T10:10:00.123Z"


@pytest.mark.parametrize("rating, strength, positive", [(1, "5.0", "True"), (0.5, "4.0", "True"),
                                                         (0, "3.0", "True"), (-0.5, "2.0", "False"),
                                                         (-1, "1.0", "False")])
def test_ratings_strength_is_the_rating_on_the_contracts_1_to_5_scale(tmp_path, rating, strength, positive):
    config = tmp_path / "rated.toml"
    config.write_text('[replay]\npresets = false\n[[mappings]]\nname = "Rated"\naction = "addRating"\n'
                      'trigger = \'type = "track" and event = "Product Rated"\'\n')
    rated = event("Product Rated", product_id="p1", rating=rating)
    table, row = row_of(translate_event(rated, str(config))[0], rated)
    assert table == "ratings"
    assert (row[COL["Double Attribute"]], row[COL["Strength"]], row[COL["IsPositive"]]) == \
        (format_double(rating), strength, positive)


def test_view_portions_keep_the_portion_and_the_session():
    played = event("Video Content Playing", content_asset_id="v1", position=30, total_length=120, session="s-9")
    table, row = row_of(translate_event(played)[0], played)
    assert table == "viewportions"
    assert row == ["alice", "v1", "", "alice", "Transaction", "2024-05-02T10:10:00.123Z", "s-9", "0.25", "", "", "",
                   "True"]


@pytest.mark.parametrize("request_, name", [
    ({"method": "PUT", "path": "/users/u2/merge/u1", "params": {"cascadeCreate": True}}, "mergeUsers"),
    ({"method": "DELETE", "path": "/users/u1", "params": {}}, "deleteUser"),
    ({"method": "POST", "path": "/users/u1", "params": {"plan": "pro"}}, "setUserValues"),
])
def test_merges_and_user_deletions_are_not_representable(request_, name):
    with pytest.raises(NotRepresentable, match=f"not representable in Reco_Interactions: {name}$"):
        FORMAT.row(request_, lambda: None)


# ---------------------------------------------------------------------------------------------
# The sink and the pipeline's accounting

def _presets() -> Translator:
    return Translator(compile_config(load_config(None)))


def test_the_sink_answers_written_refused_and_not_representable(tmp_path):
    sink = ExportSink(FORMAT, FileExporter(str(tmp_path / "out"), FORMAT))
    order = event("Order Completed", order_id="O1",
                  products=[{"product_id": "p1"}, {"product_id": "8418b06692c484000f2382a3"}])
    merge = {"method": "PUT", "path": "/users/a/merge/b", "params": {"cascadeCreate": True}}
    ticket = Ticket(Line("x", 1, 0, b""), order, translate_event(order) + [merge])
    sink.submit(ticket)
    assert ticket.codes == [200, REFUSED, NOT_REPRESENTABLE]
    assert ticket.messages[1] == "Reco_Interactions drops the entry: ItemId is longer than 16 characters (24)"
    assert ticket.messages[2] == "not representable in Reco_Interactions: mergeUsers"
    assert sink.close() == [ticket]
    assert (tmp_path / "out" / "purchases" / E / "part-00000.csv").read_text().startswith("O1,p1,")


def test_outcomes_of_an_export_add_up_and_only_invalid_events_are_rejected(tmp_path):
    from recombee_cli.record.rejects import RejectsWriter

    events = tmp_path / "events.ndjson"
    lines = [event("Product Viewed", product_id="p1"),
             event("Product Viewed", product_id="8418b06692c484000f2382a3"),
             {"type": "alias", "userId": "new", "previousId": "old", "timestamp": "2024-01-01T00:00:00Z"},
             {"type": "track", "event": "Something Else", "userId": "u"},
             event("Order Completed", order_id="O1",
                   products=[{"product_id": "p1"}, {"product_id": "8418b06692c484000f2382a3"}])]
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    rejects = RejectsWriter(str(tmp_path / "rejects.ndjson"))
    files = FileExporter(str(tmp_path / "out"), FORMAT)
    report = run(expand_inputs([str(events)]), _presets(), ExportSink(FORMAT, files),
                 recorder=Recorder(RunReport(), rejects))
    rejects.close()
    assert sum(report.outcomes.values()) == report.events == 5
    assert (report.outcomes["sent"], report.outcomes["invalid"], report.outcomes["filtered"],
            report.outcomes["unmatched"]) == (1, 2, 1, 1)
    assert report.requests["sent"] == 2 and report.requests["invalid"] == 2 and report.requests["filtered"] == 1
    assert report.filtered_reasons == {"not representable in Reco_Interactions: mergeUsers": 1}
    assert report.invalid_reasons == {
        "Reco_Interactions drops the entry: ItemId is longer than 16 characters (24)": 2}
    records = ndjson((tmp_path / "rejects.ndjson").read_text())
    assert [r["line"] for r in records] == [2, 5] and all(r["outcome"] == "invalid" for r in records)
    assert records[1]["event"]["properties"]["order_id"] == "O1"   # the original event, replayable
    # the order's valid product is written all the same (the contract drops entries, not orders)
    assert (tmp_path / "out" / "purchases" / E / "part-00000.csv").read_text().splitlines() == \
        ["O1,p1,,alice,Transaction,2024-05-02T10:10:00.123Z,,,,,,True"]


# ---------------------------------------------------------------------------------------------
# Writing files: parts, gzip, temporary names, the marker

def _write(exporter: FileExporter, table: str, n: int) -> None:
    for i in range(n):
        exporter.write(table, FORMAT.encode({**GOOD, "ItemId": f"i{i}"}))


def test_parts_hold_at_most_part_rows_rows_and_are_numbered(tmp_path):
    exporter = FileExporter(str(tmp_path), FORMAT, part_rows=3)
    _write(exporter, "detailviews", 7)
    manifest = exporter.commit()
    folder = tmp_path / "detailviews" / E
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    assert [len((folder / f"part-0000{i}.csv").read_text().splitlines()) for i in range(3)] == [3, 3, 1]
    assert manifest["tables"]["detailviews"] == {"rows": 7, "files": [f"detailviews/{E}/part-0000{i}.csv"
                                                                      for i in range(3)],
                                                 "root_files": ["detailviews/model.json"]}
    assert [f["rows"] for f in manifest["files"]] == [3, 3, 1]
    assert (tmp_path / SUCCESS).read_bytes() == b""
    assert json.loads((tmp_path / MANIFEST).read_text()) == manifest


def test_gzip_parts_hold_the_same_rows(tmp_path):
    plain, zipped = FileExporter(str(tmp_path / "a"), FORMAT), FileExporter(str(tmp_path / "b"), FORMAT, gzip=True)
    for exporter in (plain, zipped):
        _write(exporter, "bookmarks", 5000)
        exporter.commit()
    data = (tmp_path / "b" / "bookmarks" / E / "part-00000.csv.gz").read_bytes()
    assert data[:2] == b"\x1f\x8b"
    assert gzip.decompress(data) == (tmp_path / "a" / "bookmarks" / E / "part-00000.csv").read_bytes()
    assert json.loads((tmp_path / "b" / MANIFEST).read_text())["compression"] == "gzip"


def test_until_commit_parts_have_temporary_names_and_there_is_no_marker(tmp_path):
    exporter = FileExporter(str(tmp_path), FORMAT, part_rows=2)
    _write(exporter, "purchases", 5)   # two full parts closed, one open: as after a kill -9
    names = sorted(p.name for p in (tmp_path / "purchases" / E).iterdir())
    assert names == [".part-00000.csv.tmp", ".part-00001.csv.tmp", ".part-00002.csv.tmp"]
    assert not (tmp_path / SUCCESS).exists() and not (tmp_path / MANIFEST).exists()


def test_an_aborted_export_removes_what_it_wrote(tmp_path):
    out = tmp_path / "out"
    exporter = FileExporter(str(out), FORMAT, part_rows=2)
    _write(exporter, "purchases", 5)
    ExportSink(FORMAT, exporter).drain()   # what the pipeline calls after an error or Ctrl-C
    assert list(out.iterdir()) == []


def test_a_non_empty_folder_is_refused_and_overwrite_replaces_only_an_earlier_export(tmp_path):
    first = FileExporter(str(tmp_path), FORMAT, part_rows=2)
    _write(first, "purchases", 5)
    first.commit()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        FileExporter(str(tmp_path), FORMAT)
    second = FileExporter(str(tmp_path), FORMAT, overwrite=True)
    _write(second, "purchases", 1)
    second.commit()
    assert sorted(p.name for p in (tmp_path / "purchases" / E).iterdir()) == ["part-00000.csv"]
    assert sorted(p.name for p in (tmp_path / "purchases").iterdir()) == [E, "model.json"]
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / MANIFEST).read_text())["rows"] == 1


# ---------------------------------------------------------------------------------------------
# The command

def _rows(out: Path, table: str) -> list[list[str]]:
    rows = []
    for part in sorted((out / table / E).glob("part-*")):
        data = part.read_bytes()
        text = (gzip.decompress(data) if part.name.endswith(".gz") else data).decode("utf-8")
        rows += list(csv.reader(io.StringIO(text)))
    return rows


def test_export_command_on_the_samples(tmp_path):
    out, report_path, rejects = tmp_path / "out", tmp_path / "report.json", tmp_path / "rejects.ndjson"
    result = invoke(["export", "--format", "reco-interactions", "--output", str(out), "--report", str(report_path),
                     "--rejects", str(rejects), str(MISTAKES)])
    assert result.exit_code == 1, result.stderr   # the samples hold bad lines, and 24-character item ids
    assert result.stdout == ""
    assert "'sent' = written" in result.stderr and "written to" in result.stderr
    report = json.loads(report_path.read_text())
    assert sum(report["outcomes"].values()) == report["events"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert (out / SUCCESS).exists()
    counts = {t: len(_rows(out, t)) if (out / t).exists() else 0 for t in TABLES}
    assert counts == {t: manifest["tables"][t]["rows"] for t in TABLES} == report["export"]["rows"]
    # (detail views: pages and screens whose names are no Recombee IDs are rows all the same:
    # the contract has no such rule)
    assert counts == {"purchases": 10, "cartadditions": 5, "detailviews": 21, "bookmarks": 8, "ratings": 0,
                      "viewportions": 15}
    assert report["requests"]["sent"] == report["rows_written"] == sum(counts.values())
    assert report["filtered_reasons"] == {"not representable in Reco_Interactions: mergeUsers": 3}
    reasons = Counter(r["reason"] for r in ndjson(rejects.read_text()))
    assert reasons["Reco_Interactions drops the entry: ItemId is longer than 16 characters (24)"] == 12
    assert sum(reasons.values()) == report["outcomes"]["invalid"]
    # the hand-written order, both products, grouped by its order id
    assert [r for r in _rows(out, "purchases") if r[0] == "o-77"] == [
        ["o-77", "sku-1001", "", "alice@example.com", "Transaction", "2024-05-02T10:10:00.000Z", "", "39.98", "", "",
         "", "True"],
        ["o-77", "sku-2002", "", "alice@example.com", "Transaction", "2024-05-02T10:10:00.000Z", "", "5.0", "", "",
         "", "True"]]


def test_export_refuses_a_non_empty_output_folder_with_exit_2(tmp_path):
    (tmp_path / "old.csv").write_text("x")
    result = invoke(["export", "-o", str(tmp_path), str(MISTAKES / "hand-written.ndjson")])
    assert result.exit_code == 2 and "not empty" in result.stderr and "--overwrite" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]
    again = invoke(["export", "-o", str(tmp_path), "--overwrite", "--quiet", str(MISTAKES / "hand-written.ndjson")])
    assert again.exit_code == 1 and (tmp_path / SUCCESS).exists() and (tmp_path / "old.csv").exists()


def test_export_gzip_and_part_rows(tmp_path):
    out = tmp_path / "out"
    result = invoke(["export", "-o", str(out), "--gzip", "--part-rows", "4", "--quiet", str(MISTAKES)])
    assert result.exit_code == 1
    names = sorted(p.name for p in (out / "detailviews" / E).iterdir())
    assert names == [f"part-0000{n}.csv.gz" for n in range(6)]
    assert len(_rows(out, "detailviews")) == 21


def test_export_with_workers_writes_the_same_files(tmp_path):
    one = invoke(["export", "-o", str(tmp_path / "one"), "--quiet", str(MISTAKES)])
    two = invoke(["export", "-o", str(tmp_path / "two"), "--quiet", "--workers", "2", str(MISTAKES)])
    assert one.exit_code == two.exit_code == 1
    for table in ("purchases", "cartadditions", "detailviews", "bookmarks", "viewportions"):
        assert (tmp_path / "one" / table / E / "part-00000.csv").read_bytes() == \
            (tmp_path / "two" / table / E / "part-00000.csv").read_bytes()


def test_an_interrupted_export_leaves_no_file_that_looks_complete(tmp_path, monkeypatch):
    written = FileExporter.write

    def interrupt_after_a_few(self, table, line):
        if sum(self.rows.values()) == 20:
            raise KeyboardInterrupt   # Ctrl-C in the middle of the run
        written(self, table, line)

    monkeypatch.setattr(FileExporter, "write", interrupt_after_a_few)
    out = tmp_path / "out"
    result = invoke(["export", "-o", str(out), "--part-rows", "3", str(MISTAKES)])
    assert result.exit_code == 130 and "nothing was exported" in result.stderr
    assert [p for p in out.rglob("*")] == []


def test_sigterm_stops_an_export_with_143_and_leaves_nothing(tmp_path):
    """cron's timeout, systemd, kill: exit 143 (the README's table), not Ctrl-C's 130."""
    fifo = tmp_path / "events"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "recombee_cli", "export", "-o", str(out), str(fifo)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    writer = None
    try:
        writer = open_fifo_when_read(fifo, proc)
        assert writer is not None, "the export never read its input"
        os.write(writer, (MISTAKES / "hand-written.ndjson").read_bytes())
        proc.send_signal(signal.SIGTERM)   # the producer stays open: it never ends by itself
        _, err = proc.communicate(timeout=120)
    finally:
        if writer is not None:
            os.close(writer)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "terminated" in err and "nothing was exported" in err and "Traceback" not in err
    assert [p for p in out.rglob("*") if p.is_file()] == []
    assert "143" in invoke(["export", "--help"]).stdout


def test_a_write_failure_exits_3_and_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "detailviews").write_text("a file where the folder should go")
    result = invoke(["export", "-o", str(out), "--overwrite", str(MISTAKES)])
    assert result.exit_code == 3 and "cannot write" in result.stderr and "nothing was exported" in result.stderr
    assert sorted(p.name for p in out.rglob("*")) == ["detailviews"]


# ---------------------------------------------------------------------------------------------
# Committing (the 20k export against the contract is in test_export_ir.py)

def test_a_failure_while_committing_leaves_no_file_that_looks_complete(tmp_path, monkeypatch):
    """Stopped between the renames and _SUCCESS (here: writing the marker fails), the export
    removes its parts and its manifest; the folder never holds a manifest without _SUCCESS."""
    exporter = FileExporter(str(tmp_path), FORMAT, part_rows=2)
    _write(exporter, "purchases", 5)
    written = FileExporter._write_small

    def no_marker(self, name, data):
        if name == SUCCESS:
            raise OSError(28, "No space left on device")
        written(self, name, data)

    monkeypatch.setattr(FileExporter, "_write_small", no_marker)
    sink = ExportSink(FORMAT, exporter)
    with pytest.raises(ExportError, match="No space left on device"):
        sink.close()
    sink.drain()
    assert [p.name for p in tmp_path.rglob("*")] == []
