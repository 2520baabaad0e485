"""A format's rows apart from their encoding: `sinks.rows` decides which rows a request becomes
(the contract's columns, its rules, typed values), an encoder (`sinks.protocol.Encoder`) how they
are written, and the `FileExporter` writes whatever the encoder gives. A new encoding is one class:
here a JSON Lines one, written in this test alone, exports the same rows as the CSV, value for
value."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import orjson
from helpers import DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from recombee_cli import translate_event
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config
from recombee_cli.mapping.translate import Translator
from recombee_cli.pipeline.session import ExportSession
from recombee_cli.sinks.encoders.csv import CsvEncoder, quoted
from recombee_cli.sinks.files import MANIFEST, ExportSink, FileExporter
from recombee_cli.sinks.formats import ENCODERS, FORMATS
from recombee_cli.sinks.reco_interactions import RecoInteractions
from recombee_cli.sinks.rows import Column, Refused, RowFormat
from recombee_cli.sources.reader import expand_inputs

E = "Reco_Interactions"


class JsonLines:
    """An encoding the package does not have: one JSON object per row, in JSON's own types (a
    time as orjson writes a datetime, RFC 3339), no header, no files beside the parts."""

    suffix = "jsonl"

    def __init__(self, fmt: RowFormat):
        self.names = [c.name for c in fmt.columns]

    def header(self) -> bytes:
        return b""

    def encode(self, row) -> bytes:
        try:
            return orjson.dumps(dict(zip(self.names, row))) + b"\n"
        except orjson.JSONEncodeError as exc:
            raise Refused(f"not JSON: {exc}") from None

    def root_files(self, table: str) -> dict[str, bytes]:
        return {}

    def describe(self) -> dict:
        return {"syntax": "JSON Lines", "encoding": "utf-8"}


def _export(out, encoder=None):
    fmt = RecoInteractions()
    session = ExportSession(Translator(compile_config(Config())),
                            ExportSink(fmt, FileExporter(str(out), fmt, encoder=encoder and encoder(fmt))))
    return session.run(expand_inputs([str(DATA)]))


def _parts(folder, suffix):
    return sorted(folder.glob(f"part-*.{suffix}"))


def _as_value(kind: str, cell: str):
    """A CSV cell read back as the value it spells (the column's kind, from model.json's types)."""
    if cell == "":
        return None
    if kind == "double":
        return float(cell)
    if kind == "bool":
        return {"True": True, "False": False}[cell]
    if kind == "datetime":
        return datetime.fromisoformat(cell.replace("Z", "+00:00"))
    return cell


def test_a_new_encoding_is_one_class_and_writes_the_csv_exports_rows_value_for_value(tmp_path):
    as_csv = _export(tmp_path / "csv")
    as_jsonl = _export(tmp_path / "jsonl", JsonLines)
    assert as_jsonl.outcomes == as_csv.outcomes and as_jsonl.requests == as_csv.requests   # the same rules
    assert as_jsonl.invalid_reasons == as_csv.invalid_reasons
    manifest = json.loads((tmp_path / "jsonl" / MANIFEST).read_text())
    assert manifest["syntax"] == "JSON Lines" and manifest["rows"] == as_csv.extra["rows_written"] > 20_000
    kinds = [c.kind for c in RecoInteractions.columns]
    names = [c.name for c in RecoInteractions.columns]
    compared = 0
    for table in RecoInteractions.tables:
        csv_folder, jsonl_folder = tmp_path / "csv" / table / E, tmp_path / "jsonl" / table / E
        assert [p.stem for p in _parts(csv_folder, "csv")] == [p.stem for p in _parts(jsonl_folder, "jsonl")]
        if not csv_folder.exists():
            continue
        assert not (tmp_path / "jsonl" / table / "model.json").exists()   # the CSV's, not the rows'
        csv_rows = [row for part in _parts(csv_folder, "csv") for row in csv.reader(io.StringIO(part.read_text()))]
        jsonl_rows = [json.loads(line) for part in _parts(jsonl_folder, "jsonl")
                      for line in part.read_text().splitlines()]
        assert len(csv_rows) == len(jsonl_rows) == manifest["tables"][table]["rows"]
        for csv_row, jsonl_row in zip(csv_rows, jsonl_rows):
            assert list(jsonl_row) == names
            values = [jsonl_row[n] for n in names]
            values = [datetime.fromisoformat(v) if k == "datetime" and v else v for k, v in zip(kinds, values)]
            assert [_as_value(k, c) for k, c in zip(kinds, csv_row)] == values
            compared += 1
    assert compared == manifest["rows"]


def test_rows_hold_the_contracts_typed_values_and_only_the_encoder_spells_them():
    order = {"type": "track", "event": "Order Completed", "userId": "alice", "timestamp": "2024-05-02T10:10:00.123Z",
             "messageId": "m-1", "properties": {"order_id": "O1", "products": [{"product_id": "p1", "price": 2}]}}
    fmt = RecoInteractions()
    [request] = translate_event(order)
    table, row = fmt.values(request, lambda: order)
    assert table == "purchases"
    assert row == ("O1", "p1", None, "alice", "Transaction", datetime(2024, 5, 2, 10, 10, 0, 123000, tzinfo=UTC),
                   None, 2.0, None, None, None, True)
    assert CsvEncoder(fmt).encode(row) == b"O1,p1,,alice,Transaction,2024-05-02T10:10:00.123Z,,2.0,,,,True\n"
    assert JsonLines(fmt).encode(row).startswith(b'{"InteractionGroupingId":"O1","ItemId":"p1","ItemVariantId":null')


def test_a_format_is_written_in_its_own_encoding_unless_the_export_is_given_another(tmp_path):
    fmt = FORMATS["reco-interactions"]()
    assert fmt.encoding is ENCODERS["csv"] is CsvEncoder
    assert isinstance(FileExporter(str(tmp_path / "a"), fmt).encoder, CsvEncoder)
    other = FileExporter(str(tmp_path / "b"), fmt, encoder=JsonLines(fmt), part_rows=2)
    for i in range(3):
        other.write("bookmarks", other.encoder.encode(fmt.check({"InteractionGroupingId": "g", "ItemId": f"i{i}"})))
    other.commit()
    assert sorted(p.name for p in (tmp_path / "b" / "bookmarks" / E).iterdir()) == ["part-00000.jsonl",
                                                                                     "part-00001.jsonl"]


def test_the_exporter_starts_every_part_with_the_encoders_header_and_counts_only_rows(tmp_path):
    fmt = RecoInteractions()
    exporter = FileExporter(str(tmp_path), fmt, encoder=CsvEncoder(fmt, header=True), part_rows=3)
    for i in range(7):
        exporter.write("detailviews", exporter.encoder.encode(fmt.check({"InteractionGroupingId": "g",
                                                                          "ItemId": f"i{i}"})))
    manifest = exporter.commit()
    parts = [p.read_text().splitlines() for p in _parts(tmp_path / "detailviews" / E, "csv")]
    assert [len(p) for p in parts] == [4, 4, 2]
    assert all(p[0].startswith("InteractionGroupingId,ItemId,") and p[0].endswith(",IsPositive") for p in parts)
    assert manifest["rows"] == 7 and manifest["header"] is True
    model = json.loads((tmp_path / "detailviews" / "model.json").read_text())
    assert model["entities"][0]["description"].endswith("the column names first")


class _Strings(RowFormat):
    name, entity = "strings", "Strings"
    columns = tuple(Column(f"c{i}") for i in range(4))
    encoding = CsvEncoder


CELLS = st.one_of(st.none(), st.text(alphabet=st.sampled_from(list('ab,;"\n\r \t\x0b\x1c\x85\xa0\u2028\u3000')),
                                     max_size=6))


@settings(max_examples=400, deadline=None)
@given(st.tuples(CELLS, CELLS, CELLS, CELLS), st.sampled_from([",", ";", "|"]))
def test_csv_quotes_a_value_where_rfc_4180_needs_it_and_only_there(row, delimiter):
    line = CsvEncoder(_Strings(), delimiter=delimiter).encode(_Strings().check(dict(zip(("c0", "c1", "c2", "c3"),
                                                                                           row))))
    cells = ["" if c is None else c for c in row]
    assert line == (delimiter.join(quoted(c, delimiter) for c in cells) + "\n").encode()   # cell by cell
    assert next(csv.reader(io.StringIO(line.decode(), newline=""), delimiter=delimiter)) == cells
