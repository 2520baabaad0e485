"""Input formats (sources/formats/): the seam a new format plugs into. A format added here, in the
test alone, is sniffed from its first bytes, read through the same path as NDJSON (compressed or
not, resumed or not, by `replay --dry-run`), its rejects name its own lines, and `--workers` never
cuts it into byte ranges, since it is not NDJSON."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator

import orjson
import pytest
from helpers import invoke, ndjson

import recombee_cli.sources.decompress as decompress
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config
from recombee_cli.mapping.translate import Translator
from recombee_cli.pipeline.engines import InlineEngine, Reading
from recombee_cli.pipeline.parallel import TranslatorPool
from recombee_cli.sources import formats
from recombee_cli.sources.formats.base import InputFormat, ReadOptions, stopped
from recombee_cli.sources.reader import Block, Source, expand_inputs, plain_ranges, read_blocks

HEADER = b"type,event,userId,product_id,timestamp"


class EventsCsv:
    """A toy input format: a CSV file of events whose first line is HEADER. Each row is one event
    (one block), at its own line and byte offset (resumable: rows that start before the offset are
    left out); a row with the wrong number of fields is an error entry with its reason."""

    name = "events-csv"
    splittable = False

    def sniff(self, head: bytes, name: str) -> bool:
        return head.startswith((HEADER + b"\n", HEADER + b"\r\n"))

    def blocks(self, chunks: Iterator[bytes], options: ReadOptions) -> Iterator[Block]:
        name, pending, number, offset = options.source.name, b"", 0, 0
        while True:
            try:
                chunk = next(chunks, b"")
            except Exception as exc:  # noqa: BLE001 - damage ends the source, as it does for NDJSON
                yield stopped(name, number + 1, offset, exc)   # the row it cut off is part of it
                return
            rows = (pending + chunk).split(b"\n")
            pending = rows.pop() if chunk else b""
            for row in rows:
                number, start, offset = number + 1, offset, offset + len(row) + 1
                if number > 1 and row.strip() and start >= options.start_offset:
                    yield self._event(name, number, start, row)
            if not chunk:
                return

    @staticmethod
    def _event(name: str, number: int, start: int, row: bytes) -> Block:
        fields = row.rstrip(b"\r").decode().split(",")
        if len(fields) != 5:
            return Block(name, number, start, lines=[b""], lengths={0: len(row)},
                         errors={0: f"{len(fields)} fields where the header has 5"})
        kind, event, user, product, timestamp = fields
        data = orjson.dumps({"type": kind, "event": event, "userId": user,
                             "properties": {"product_id": product}, "timestamp": timestamp})
        return Block(name, number, start, lines=[data], lengths={0: len(row)})


EVENTS_CSV: InputFormat = EventsCsv()   # (mypy checks the interface where a format is typed so)


@pytest.fixture
def with_csv(monkeypatch):
    """EventsCsv registered first, for this test only (the workers are forked from the test, so
    they see it too)."""
    monkeypatch.setattr(formats, "FORMATS", (EVENTS_CSV, *formats.FORMATS))


ROWS = [
    HEADER,
    b"track,Product Viewed,zoe,sku-1,2024-05-02T10:00:00.000Z",
    b"",
    b"track,Product Viewed,jos\xc3\xa9,sku-2",                       # line 4: a field missing
    b"track,Product Viewed,,sku-3,2024-05-02T10:00:02.000Z",        # line 5: no user: invalid event
    b"track,Product Viewed,ann,sku-4,2024-05-02T10:00:03.000Z\r",
    b"track,Product Viewed,bob,sku-5,2024-05-02T10:00:04.000Z",
]
CSV = b"\n".join(ROWS) + b"\n"


def _source(data: bytes, name: str = "events.csv") -> Source:
    return Source(name, lambda: io.BytesIO(data), len(data))


def _events(blocks) -> list[tuple[int, int, bytes, str | None]]:
    return [(b.number, b.offset, b.lines[0], (b.errors or {}).get(0)) for b in blocks]


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress], ids=["plain", "gzip"])
def test_a_format_registered_in_a_test_is_sniffed_and_read_with_its_lines_and_offsets(with_csv, compress):
    read = _events(read_blocks(_source(compress(CSV))))
    assert [(number, offset) for number, offset, _, _ in read] == [(2, CSV.index(b"track,Product Viewed,zoe")),
                                                                   (4, CSV.index(b"track,Product Viewed,jos")),
                                                                   (5, CSV.index(b"track,Product Viewed,,")),
                                                                   (6, CSV.index(b"track,Product Viewed,ann")),
                                                                   (7, CSV.index(b"track,Product Viewed,bob"))]
    assert json.loads(read[0][2])["userId"] == "zoe" and read[1][3] == "4 fields where the header has 5"
    # NDJSON and a JSON document spanning lines are still theirs
    assert [b.lines for b in read_blocks(_source(b'{"a":1}\n{"b":2}\n', "x.csv"))] == [[b'{"a":1}', b'{"b":2}']]
    assert _events(read_blocks(_source(b'[\n {"a": 1}\n]\n')))[0][:3] == (2, 3, b'{"a":1}')


def test_without_the_registration_the_same_file_is_read_as_ndjson_lines():
    """What the registry decides: unregistered, the CSV's rows are NDJSON lines (each one invalid)."""
    (block,) = read_blocks(_source(CSV))
    assert block.number == 1 and block.count == len(ROWS) and block.lines[0] == HEADER


def test_a_resumed_read_of_the_added_format_leaves_out_exactly_the_events_before_the_offset(with_csv):
    every = list(read_blocks(_source(CSV)))
    for k, block in enumerate(every):
        for start in (block.offset, every[k - 1].end() if k else 0):
            assert _events(read_blocks(_source(CSV), start_offset=start)) == _events(every[k:])
    assert list(read_blocks(_source(CSV), start_offset=every[-1].end())) == []


def test_damage_in_the_added_format_keeps_the_rows_before_it_and_is_one_error_entry(with_csv, monkeypatch):
    monkeypatch.setattr(decompress, "CHUNK_SIZE", 64)
    rows = [HEADER] + [b"track,Product Viewed,u%d,sku-%d,2024-05-02T10:00:00.000Z" % (k, k) for k in range(2000)]
    packed = gzip.compress(b"\n".join(rows) + b"\n", mtime=0)
    *events, last = read_blocks(_source(packed[:len(packed) // 2]))
    assert last.errors and "truncated" in last.errors[0] and not last.unreadable
    assert [b.number for b in events] == list(range(2, len(events) + 2)) and last.number == len(events) + 2


def _replay(tmp_path, workers: str, inputs: list[str]):
    report, rejects = tmp_path / f"r{workers}.json", tmp_path / f"x{workers}.ndjson"
    result = invoke(["replay", "--dry-run", "--quiet", "--workers", workers, "--report", str(report),
                     "--rejects", str(rejects), *inputs])
    counts = json.loads(report.read_text())
    for key in ("elapsed_seconds", "events_per_second"):
        counts.pop(key)
    return result.exit_code, result.stdout, counts, ndjson(rejects.read_text())


def test_replay_dry_run_reads_the_added_format_and_its_rejects_name_its_lines(tmp_path, with_csv):
    path = tmp_path / "events.csv"
    path.write_bytes(CSV)
    (tmp_path / "events.csv.gz").write_bytes(gzip.compress(CSV))
    code, stdout, counts, rejects = _replay(tmp_path, "1", [str(path), str(tmp_path / "events.csv.gz")])
    assert code == 1
    assert [r["params"]["userId"] for r in ndjson(stdout)] == ["zoe", "ann", "bob"] * 2
    assert [r["params"]["itemId"] for r in ndjson(stdout)][:3] == ["sku-1", "sku-4", "sku-5"]
    assert [(r["line"], r["offset"]) for r in rejects] == [(4, CSV.index(b"track,Product Viewed,jos")),
                                                           (5, CSV.index(b"track,Product Viewed,,"))] * 2
    assert "4 fields where the header has 5" in rejects[0]["reason"]
    assert counts["lines"] == counts["events"] == 10 and counts["outcomes"]["invalid"] == 4


def test_workers_never_cut_a_format_that_is_not_splittable_into_byte_ranges(tmp_path, with_csv, monkeypatch):
    """Cut at newlines, the rows would be read as NDJSON lines (each one invalid): the file is read
    by the main process, as a JSON document spanning lines is, and the output is one process's."""
    monkeypatch.setattr(decompress, "CHUNK_SIZE", 64)   # many reads: a cut would have places to go
    rows = [HEADER] + [b"track,Product Viewed,u%d,sku-%d,2024-05-02T10:00:00.000Z" % (k, k) for k in range(300)]
    path = tmp_path / "many.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    lines = tmp_path / "many.ndjson"   # the same events as NDJSON are cut, as ever
    lines.write_bytes(b"\n".join(block.lines[0] for block in read_blocks(_source(path.read_bytes()))) + b"\n")
    assert plain_ranges(expand_inputs([str(path)])[0]) is None
    assert plain_ranges(expand_inputs([str(lines)])[0]) is not None
    one, two = _replay(tmp_path, "1", [str(path)]), _replay(tmp_path, "2", [str(path)])
    assert one == two and one[0] == 0 and len(ndjson(one[1])) == 300


def _chunks(engine, source: Source, start: int):
    reading = Reading(chunk_lines=50, max_line_bytes=1 << 24)
    [results] = [list(results) for _, results in engine.translate([(source, start)], reading)]
    return [(block.number, block.offset, block.end(), result.events) for block, result in results]


def test_a_resumed_file_of_the_added_format_starts_at_the_same_event_with_workers(tmp_path, with_csv):
    path = tmp_path / "events.csv"
    path.write_bytes(CSV)
    source = expand_inputs([str(path)])[0]
    translator = Translator(compile_config(Config()))
    pool = TranslatorPool(translator, 2)
    try:
        for start in (0, 1, CSV.index(b"track,Product Viewed,ann"), len(CSV) - 3, len(CSV)):
            alone = _chunks(InlineEngine(translator), source, start)
            assert _chunks(pool, source, start) == alone
    finally:
        pool.close()
