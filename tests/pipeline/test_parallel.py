"""--workers: a plain local file is read by the workers themselves (by byte ranges), everything else
by the main process; either way the output, the counts, the rejects (file and line) and where a
resumed run starts are those of one process."""

from __future__ import annotations

import gzip
import json
import os
import tempfile

import pytest
from helpers import DATA, invoke
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import recombee_cli.sources.decompress as decompress
import recombee_cli.sources.reader as reader
from recombee_cli.mapping.compile import compile_config
from recombee_cli.mapping.config import Config
from recombee_cli.mapping.translate import Translator
from recombee_cli.pipeline.engines import InlineEngine, Reading
from recombee_cli.pipeline.parallel import RESULTS_PIPE, TranslatorPool
from recombee_cli.sources.reader import Source, expand_inputs, plain_ranges, read_blocks

DIRTY = DATA / "segment-export-dirty-20k.ndjson.gz"


@pytest.fixture
def small_reads(monkeypatch):
    """Reads of 64 KB, so that a test file is many blocks (the workers and the main process both
    see it: they are forked from the test)."""
    monkeypatch.setattr(decompress, "CHUNK_SIZE", 64 << 10)


def _plain_copy(tmp_path, *, tail: bytes = b"") -> str:
    """The dirty 20k export uncompressed, with Windows line ends on some lines, blank lines, and
    `tail` after its last newline."""
    lines = gzip.decompress(DIRTY.read_bytes()).split(b"\n")
    for k in range(0, len(lines), 97):
        lines[k] += b"\r"
    lines[5:5] = [b"", b"   "]
    path = tmp_path / "export.ndjson"
    path.write_bytes(b"\n".join(lines) + tail)
    return str(path)


def _replay(tmp_path, workers: str, inputs: list[str], stdin: bytes | None = None):
    report, rejects = tmp_path / f"r{workers}.json", tmp_path / f"x{workers}.ndjson"
    result = invoke(["replay", "--dry-run", "--quiet", "--workers", workers, "--report", str(report),
                     "--rejects", str(rejects), *inputs], input=stdin)
    counts = json.loads(report.read_text())
    for key in ("elapsed_seconds", "events_per_second"):
        counts.pop(key)
    return result.exit_code, result.stdout, counts, rejects.read_text()


@pytest.mark.parametrize("tail", [b"", b'{"type":"track","event":"Order Completed"'], ids=["newline", "cut"])
def test_workers_reading_a_plain_file_themselves_give_what_one_process_gives(tmp_path, small_reads, tail):
    path = _plain_copy(tmp_path, tail=tail)
    assert plain_ranges(expand_inputs([path])[0]) is not None   # the workers read it, not the main process
    one, two = _replay(tmp_path, "1", [path]), _replay(tmp_path, "2", [path])
    assert one == two
    rejects = [json.loads(line) for line in two[3].splitlines()]
    assert two[2]["outcomes"]["invalid"] > 0 and len(rejects) >= two[2]["outcomes"]["invalid"]
    # the rejects name lines far into the file, read back from it by the main process
    assert max(r["line"] for r in rejects) > 15_000


def test_workers_on_stdin_and_beside_a_gzip_file_give_what_one_process_gives(tmp_path, small_reads):
    """Stdin and compressed files are read by the main process and their bytes sent to the workers;
    a plain file between them is read by the workers: one run, in order."""
    path = _plain_copy(tmp_path)
    data = gzip.decompress(DIRTY.read_bytes())[:3_000_000]
    inputs = [str(DIRTY), path, "-"]
    assert _replay(tmp_path, "1", inputs, stdin=data) == _replay(tmp_path, "2", inputs, stdin=data)


def _chunks(engine, source: Source, start: int, chunk_lines: int):
    reading = Reading(chunk_lines=chunk_lines, max_line_bytes=1 << 24)
    [results] = [list(results) for _, results in engine.translate([(source, start)], reading)]
    return [(block.number, block.offset, block.end(), len(block), block.line(len(block) - 1), result)
            for block, result in results]


def test_a_resumed_file_starts_at_the_same_line_with_workers(tmp_path, small_reads):
    """A resumed run (the state's offset) leaves out the same lines and numbers the rest the same,
    whoever reads the file; chunks of 300 lines cut the blocks the same way too."""
    path = _plain_copy(tmp_path, tail=b'{"no": "newline"}')
    source = expand_inputs([path])[0]
    translator = Translator(compile_config(Config()))
    pool = TranslatorPool(translator, 2)
    try:
        size = os.path.getsize(path)
        for start in (0, 1, 70_000, size // 2, size - 17, size - 5, size + 10):
            alone = _chunks(InlineEngine(translator), source, start, 300)
            assert _chunks(pool, source, start, 300) == alone
            assert bool(alone) == (start <= size - 17)   # the last line starts 17 bytes before the end
    finally:
        pool.close()


def test_the_workers_sniff_the_head_the_reader_sniffs_however_far_the_first_line_ends(tmp_path, small_reads):
    """The first non-blank line ends past the first read (blank lines before it, a long first
    event): plain_ranges reads on to its end, as read_blocks does, and asks the same formats, so a
    JSON document is still left to the main process and NDJSON is still cut."""
    blank = b"\n" * (100 << 10)   # more than a read of 64 KB
    document, lines, long = tmp_path / "doc.json", tmp_path / "lines.ndjson", tmp_path / "long.ndjson"
    document.write_bytes(blank + b'[\n  {"type": "track", "event": "A"},\n  {"type": "page"}\n]\n')
    lines.write_bytes(blank + b'{"type":"track","event":"A"}\n{"type":"page"}\n')
    long.write_bytes(b'{"type":"track","event":"' + b"x" * (100 << 10) + b'"}\n{"type":"page"}\n')
    assert plain_ranges(expand_inputs([str(document)])[0]) is None
    assert plain_ranges(expand_inputs([str(lines)])[0]) is not None
    assert plain_ranges(expand_inputs([str(long)])[0]) is not None
    for path in (document, lines, long):
        one = _replay(tmp_path, "1", [str(path)])
        assert one == _replay(tmp_path, "2", [str(path)]) and one[2]["events"] == 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=40),
       st.sampled_from([1, 5, 16, 4096]), st.booleans(), st.sampled_from([reader.RANGE_TAILS, (1, 3), (2,)]))
@example([b"abcdefghijkl", b"xy", b"z"], 5, True, reader.RANGE_TAILS)
@example([b"", b"", b"x" * 20], 4, False, reader.RANGE_TAILS)
@example([b"a" * 30, b"b" * 30], 64, False, (1, 3))   # a chunk's last newline before both tails
def test_plain_ranges_are_the_blocks_the_reader_makes(parts, chunk, final_newline, tails):
    data = b"\n".join(parts) + (b"\n" if final_newline and parts else b"")
    assume(not decompress.compressed(data[:4]))
    old = decompress.CHUNK_SIZE
    decompress.CHUNK_SIZE = chunk
    old_tails = reader.RANGE_TAILS   # (short ones: a chunk's last newline found in the second, or in the chunk)
    reader.RANGE_TAILS = tails
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "f.ndjson")
        with open(path, "wb") as file:
            file.write(data)
        source = expand_inputs([path])[0]
        try:
            found = plain_ranges(source)
            blocks = [(b.offset, b.end() - 1) for b in read_blocks(source, split=False)]
        finally:
            decompress.CHUNK_SIZE = old
            reader.RANGE_TAILS = old_tails
    if found is not None:   # None: the reader reads it (it might be one JSON document)
        assert found[1] == blocks


def test_what_the_workers_do_not_read_themselves(tmp_path):
    """Compressed files, a JSON document spanning lines, lines over --max-line-bytes and streams
    are read by the main process, as in one process."""
    gz = tmp_path / "a.ndjson.gz"
    gz.write_bytes(gzip.compress(b'{"type":"track"}\n'))
    document = tmp_path / "doc.json"
    document.write_bytes(b'[\n  {"type": "track", "event": "A"}\n]\n')
    long = tmp_path / "long.ndjson"
    long.write_bytes(b'{"type":"track","event":"' + b"x" * 5000 + b'"}\n')
    plain = tmp_path / "plain.ndjson"
    plain.write_bytes(b'{"type":"track"}\n')
    assert plain_ranges(expand_inputs([str(gz)])[0]) is None
    assert plain_ranges(expand_inputs([str(document)])[0]) is None
    assert plain_ranges(expand_inputs([str(long)])[0], max_line_bytes=1000) is None
    assert plain_ranges(expand_inputs(["-"])[0]) is None
    assert plain_ranges(expand_inputs([str(plain)])[0]) == (str(plain.resolve()), [(0, 16)])


def test_lines_too_long_to_read_are_rejected_in_line_order_whatever_the_workers(tmp_path):
    """What could not be read travels in its chunk and is counted when the chunk is, so the
    rejects file is the same with one process or with workers that the main process reads ahead
    for (before, the read-ahead wrote such lines before the invalid events of earlier chunks)."""
    inputs = ["--max-line-bytes", "1024", str(DIRTY)]   # gzip: read here, translated by the workers
    one, two = _replay(tmp_path, "1", inputs), _replay(tmp_path, "2", inputs)
    rejects = [json.loads(line) for line in two[3].splitlines()]
    too_long = [r for r in rejects if r["reason"].startswith("line longer than 1024 bytes")]
    assert 0 < len(too_long) < len(rejects)   # both kinds, interleaved
    assert [r["line"] for r in too_long] == sorted(r["line"] for r in too_long)
    assert one == two


def _small_files(tmp_path) -> list[str]:
    """The dirty export cut into 40 small files: plain and gzip ones, an empty one, one of blank
    lines and one without a final newline among them."""
    lines = gzip.decompress(DIRTY.read_bytes()).split(b"\n")
    paths = []
    for n in range(40):
        data = b"\n".join(lines[n * 300:(n + 1) * 300]) + (b"" if n == 7 else b"\n")
        data = {3: b"", 11: b"\n\n\n"}.get(n, data)
        path = tmp_path / (f"part-{n:02d}.ndjson.gz" if n % 5 == 4 else f"part-{n:02d}.ndjson")
        path.write_bytes(gzip.compress(data) if n % 5 == 4 else data)
        paths.append(str(path))
    return paths


def test_many_small_files_give_what_one_process_gives_with_workers(tmp_path):
    paths = _small_files(tmp_path)
    one, two = _replay(tmp_path, "1", paths), _replay(tmp_path, "2", paths)
    assert one == two and two[2]["sources"] == 40 and two[2]["outcomes"]["invalid"] > 0


def test_the_workers_have_the_next_files_before_the_last_ones_results_are_taken(tmp_path):
    """Look-ahead crosses files: when the first file's only result is taken, the tasks of the
    files after it are already handed out (before, each file began only once the one before was
    done, and the workers waited at every file's end), and every file's results are one process's."""
    paths = _small_files(tmp_path)[:6]
    translator = Translator(compile_config(Config()))
    pulled: list[str] = []

    def sources():
        for source in expand_inputs(paths):
            pulled.append(source.name)
            yield source, 0

    reading = Reading(chunk_lines=100_000)   # a file is one task
    pool = TranslatorPool(translator, 2)
    try:
        files = pool.translate(sources(), reading)
        first, results = next(files)
        got = [(first.name, list(results))]
        assert len(pulled) >= 4   # 2 workers x 2 in flight: files 2-4 handed out already
        got += [(source.name, list(results)) for source, results in files]
    finally:
        pool.close()
    alone = [(source.name, list(results))
             for source, results in InlineEngine(translator).translate(((s, 0) for s in expand_inputs(paths)), reading)]
    assert [(name, [(b.number, b.offset, b.count, r.events, r.requests) for b, r in chunks]) for name, chunks in got] == \
           [(name, [(b.number, b.offset, b.count, r.events, r.requests) for b, r in chunks]) for name, chunks in alone]


def test_asking_for_the_next_file_before_reading_the_last_is_refused(tmp_path):
    """The Engine's contract, said plainly rather than results dropped or mixed up."""
    paths = _small_files(tmp_path)[:2]
    pool = TranslatorPool(Translator(compile_config(Config())), 2)
    try:
        files = pool.translate(((s, 0) for s in expand_inputs(paths)), Reading())
        next(files)
        with pytest.raises(ValueError, match="before the results of the last were read"):
            next(files)
    finally:
        pool.close()


def test_a_chunks_requests_longer_than_the_results_pipe_come_back_whole(tmp_path):
    """A worker writes a chunk's requests into its results pipe while the main process reads
    them (straight from the pipe, in as many reads as it takes): more than the pipe holds in one
    chunk, a gzip file's (read here) and a plain file's (read by the workers), come back byte for
    byte as one process makes them."""
    view = {"type": "track", "event": "Product Viewed", "userId": "u1", "timestamp": "2024-03-01T10:00:00Z",
            "properties": {"product_id": "p" * 600}}
    lines = [json.dumps({**view, "userId": f"u{k}"}).encode() for k in range(12_000)]
    plain = tmp_path / "big-chunk.ndjson"
    plain.write_bytes(b"\n".join(lines) + b"\n")
    packed = tmp_path / "big-chunk.ndjson.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    translator = Translator(compile_config(Config()))
    reading = Reading(chunk_lines=100_000)   # a chunk as long as a block read
    pool = TranslatorPool(translator, 2)
    try:
        got = [(source.name, [r.requests for _, r in results])
               for source, results in pool.translate(((s, 0) for s in expand_inputs([str(plain), str(packed)])),
                                                     reading)]
    finally:
        pool.close()
    alone = [(source.name, [r.requests for _, r in results])
             for source, results in InlineEngine(translator).translate(
                 ((s, 0) for s in expand_inputs([str(plain), str(packed)])), reading)]
    assert all(max(map(len, blobs)) > RESULTS_PIPE for _, blobs in got)
    assert got == alone
