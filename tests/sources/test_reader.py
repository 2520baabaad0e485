"""Reading: inputs, compression sniffing, envelopes, origins, bad input that must not stop a run."""

from __future__ import annotations

import bz2
import gzip
import io
import os

import pytest
import zstandard
from helpers import pure_module
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from recombee_cli.errors import InputError
from recombee_cli.sources import lines as lines_built
from recombee_cli.sources.decode import decode
from recombee_cli.sources.lines import BLANK_RUN, _may_hold_run, blank_free_segments
from recombee_cli.sources.reader import Source, expand_inputs, read_lines

# The .py as it is (the pure build's cut, by bytes.find), beside the module the build runs (compiled,
# by memchr on the bytes: lines.pxd).
lines_pure = pure_module(lines_built)


def _source(data: bytes, name: str = "mem") -> Source:
    return Source(name, lambda: io.BytesIO(data), len(data))


def _lines(data: bytes, **kw):
    return list(read_lines(_source(data), **kw))


PLAIN = b'{"a":1}\n\n{"b":2}\r\n   \n{"c":3}'


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, bz2.compress,
                                      lambda b: zstandard.ZstdCompressor().compress(b)],
                         ids=["plain", "gzip", "bz2", "zstd"])
def test_compression_is_sniffed_from_content_not_name(compress):
    lines = _lines(compress(PLAIN))
    assert [(l.number, l.data) for l in lines] == [(1, b'{"a":1}'), (3, b'{"b":2}'), (5, b'{"c":3}')]
    assert [l.offset for l in lines] == [0, 9, 22]


def test_offsets_point_at_line_starts():
    lines = _lines(PLAIN)
    for line in lines:
        assert PLAIN[line.offset:].startswith(line.data)


def test_start_offset_skips_an_acknowledged_prefix_but_keeps_line_numbers():
    lines = _lines(PLAIN, start_offset=9)
    assert [(l.number, l.data) for l in lines] == [(3, b'{"b":2}'), (5, b'{"c":3}')]


def test_overlong_line_is_reported_not_buffered():
    data = b'{"a":1}\n' + b'{"x":"' + b"y" * 5_000_000 + b'"}\n{"b":2}\n'
    lines = _lines(data, max_line_bytes=1_000_000)
    assert [l.data for l in lines if not l.error] == [b'{"a":1}', b'{"b":2}']
    errors = [l for l in lines if l.error]
    assert len(errors) == 1 and errors[0].number == 2 and "longer than" in errors[0].error
    assert lines[-1].number == 3


def test_a_5mb_line_within_the_limit_is_an_event():
    big = b'{"type":"track","properties":{"blob":"' + b"z" * 5_000_000 + b'"}}'
    (line,) = _lines(big + b"\n")
    assert decode(line.data)[0]["properties"]["blob"][:3] == "zzz"


def test_truncated_gzip_reports_the_file_and_keeps_what_was_read():
    data = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, os.urandom(16).hex().encode()) for i in range(50_000))
    full = gzip.compress(data)
    lines = _lines(full[: len(full) // 2])
    assert lines[-1].error and "truncated" in lines[-1].error
    good = [l for l in lines if not l.error]
    assert 10_000 < len(good) < 50_000


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress,
                                      lambda b: zstandard.ZstdCompressor().compress(b)],
                         ids=["gzip", "bz2", "zstd"])
def test_truncation_is_reported_for_every_compression(compress):
    data = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, os.urandom(16).hex().encode()) for i in range(50_000))
    packed = compress(data)
    lines = _lines(packed[: len(packed) // 2])
    assert lines[-1].error, lines[-1]
    assert lines[-1].number == len(lines)


def test_concatenated_zstd_frames_are_one_stream():
    frames = b"".join(zstandard.ZstdCompressor().compress(b'{"n":%d}\n' % i) for i in range(3))
    assert [l.data for l in _lines(frames)] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']


def test_empty_file_has_no_lines():
    assert _lines(b"") == []
    assert _lines(gzip.compress(b"")) == []


def test_decode_reasons_are_clear():
    assert decode(b'{"type":"track"')[0].startswith("truncated JSON")
    assert decode(b'[1,2]') == ["not a JSON object (got an array)"]
    assert decode(b'"x"') == ["not a JSON object (got a string)"]
    assert decode(b'{"a":"\xff\xfe"}') == ["invalid UTF-8 at byte 6"]
    assert decode(b'\xef\xbb\xbf{"a":1}') == [{"a": 1}]


def test_batch_envelope_expands_with_outer_context_as_default():
    line = (b'{"batch":[{"type":"track","event":"A","context":{"ip":"1"}},{"type":"page"}, 5],'
            b'"context":{"ip":"0","locale":"cs"},"integrations":{"All":false}}')
    first, second, third = decode(line)
    assert first["context"] == {"ip": "1", "locale": "cs"}
    assert second["context"] == {"ip": "0", "locale": "cs"}
    assert second["integrations"] == {"All": False}
    assert third == "batch element is a number, not a JSON object"
    assert decode(b'{"batch":[]}') == ["empty batch envelope"]


def test_inputs_folders_are_recursive_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.ndjson").write_text("{}\n")
    (tmp_path / "a.ndjson").write_text("{}\n")
    (tmp_path / "b" / "1.gz").write_bytes(gzip.compress(b"{}\n"))
    (tmp_path / ".hidden").write_text("{}\n")
    names = [os.path.relpath(s.name, tmp_path) for s in expand_inputs([str(tmp_path)])]
    assert names == ["a.ndjson", os.path.join("b", "1.gz"), os.path.join("b", "2.ndjson")]
    globbed = [os.path.basename(s.name) for s in expand_inputs([str(tmp_path / "**" / "*.ndjson")])]
    assert globbed == ["a.ndjson", "2.ndjson"]


def test_missing_input_is_a_usage_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        expand_inputs([str(tmp_path / "nope.gz")])
    with pytest.raises(InputError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.gz")])


def _one_document_spanning_lines(data: bytes) -> bool:
    """The reader's rule (sources/formats/document.py): the first non-blank line starts with { or [
    and is not a JSON value by itself, and the whole input is one."""
    import orjson

    data = data.lstrip(b" \t\r\n")
    data = data[3:].lstrip(b" \t\r\n") if data.startswith(b"\xef\xbb\xbf") else data
    first = data.split(b"\n", 1)[0]
    if first.strip(b" \t\r")[:1] not in (b"{", b"["):
        return False
    try:
        orjson.loads(first)
        return False
    except orjson.JSONDecodeError:
        pass
    try:
        orjson.loads(data)
        return True
    except orjson.JSONDecodeError:
        return False


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.just(b""), st.text(alphabet='{}"ab:1 \r\t\u00e9', max_size=40)
                          .map(lambda t: t.encode("utf-8"))), max_size=60),
       st.sampled_from([1, 7, 64]), st.booleans())
def test_reading_never_loses_or_duplicates_a_line(parts, chunk, gz):
    """Whatever the chunk boundaries, every non-blank line comes out once, in order (NDJSON: the
    one documented exception, a single JSON value spanning lines, is read as a document)."""
    import recombee_cli.sources.decompress as decompress

    data = b"\n".join(parts)
    assume(not _one_document_spanning_lines(data))
    raw = gzip.compress(data) if gz else data
    old = decompress.CHUNK_SIZE
    decompress.CHUNK_SIZE = chunk
    try:
        lines = list(read_lines(_source(raw)))
    finally:
        decompress.CHUNK_SIZE = old
    expected = [(i + 1, p[:-1] if p.endswith(b"\r") else p) for i, p in enumerate(parts)
                if p and not p.isspace()]
    assert [(l.number, l.data) for l in lines] == expected


def _reference_lines(data: bytes, max_line_bytes: int, start_offset: int):
    """What reading must give, written the slow and obvious way."""
    pieces = data.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()   # the final newline ends the last line; it starts none
    out, offset = [], 0
    for number, piece in enumerate(pieces, 1):
        if offset >= start_offset:
            if len(piece) > max_line_bytes:
                out.append((number, offset, b"", True))
            elif piece and not piece.isspace():
                out.append((number, offset, piece[:-1] if piece.endswith(b"\r") else piece, False))
        offset += len(piece) + 1
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.just(b""), st.binary(max_size=3).map(lambda b: b.replace(b"\n", b"")),
                          st.integers(0, 40).map(lambda n: b"x" * n),
                          st.text(alphabet='{}"ab:1 \r\t', max_size=30).map(lambda t: t.encode())),
                max_size=40),
       st.sampled_from([1, 5, 16, 4096]), st.sampled_from([3, 8, 25, 1 << 20]), st.integers(0, 300),
       st.booleans(), st.booleans())
@example([b"abcdefghijkl", b"xy", b"z"], 5, 3, 0, True, True)      # an over-long line ends inside a read
@example([b"a", b"b" * 30, b"c", b"d"], 16, 8, 3, False, False)      # ...and resuming past it
def test_line_numbers_offsets_and_overlong_lines_whatever_the_reads(parts, chunk, max_line_bytes, start,
                                                                    final_newline, split):
    """`split`: blocks cut into lines as read (one process), or kept as bytes (for --workers)."""
    import recombee_cli.sources.decompress as decompress

    data = b"\n".join(parts) + (b"\n" if final_newline and parts else b"")
    # compression is sniffed from the first bytes (docs/behaviour.md); NDJSON never starts so
    assume(not data.startswith((decompress.GZIP_MAGIC, decompress.ZSTD_MAGIC, decompress.BZ2_MAGIC)))
    # ...and one JSON value spanning lines, within the cap, is read as a document (formats/document.py)
    assume(not (_one_document_spanning_lines(data) and len(data) <= max_line_bytes))
    old = decompress.CHUNK_SIZE
    decompress.CHUNK_SIZE = chunk
    try:
        lines = list(read_lines(_source(data), max_line_bytes=max_line_bytes, start_offset=start, split=split))
    finally:
        decompress.CHUNK_SIZE = old
    got = [(l.number, l.offset, l.data, l.error is not None) for l in lines]
    assert got == _reference_lines(data, max_line_bytes, start)


@pytest.mark.parametrize("cut", [lines_built.cut_lines, lines_pure.cut_lines], ids=["built", "pure"])
@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from([b"", b"\n", b"\r", b"\n\n", b"{}", b"x" * 40, b"\xff", b" "]), max_size=12))
@example(parts=[])
@example(parts=[b"\n"])
def test_lines_are_cut_exactly_where_bytes_split_cuts_them(cut, parts):
    """A line cut one byte off would be a broken event: the memchr cut must be split's, in the
    build and in the .py."""
    data = b"".join(parts)
    assert cut(data) == data.split(b"\n")


@pytest.mark.parametrize("count", [lines_built.count_newlines, lines_pure.count_newlines], ids=["built", "pure"])
@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from([b"", b"\n", b"\r", b"x" * 15, b"\n" * 16, b"y" * 17, b"\n" * 4081, b"\xff"]),
                      max_size=12))
@example(parts=[b"\n" * (16 * 256 + 1)])   # (a lane counts in a byte: the compiled count sums every 255 steps)
def test_a_blocks_lines_are_counted_as_bytes_count_counts_them(count, parts):
    """The main process numbers the lines of a block it reads whole for the workers by counting its
    newlines: one miscounted would shift every later line number and resume offset of the file."""
    data = b"".join(parts)
    assert count(data) == data.count(b"\n")


_RUNS = st.sampled_from([b"\n" * BLANK_RUN, b"\n" * (BLANK_RUN - 1), b"\r\n" * BLANK_RUN, b"\r\n" * (BLANK_RUN - 1),
                         b"\n" * (BLANK_RUN + 2049), b"\r" * 3000, b"\n\r" * 3000])
_TEXT = st.binary(max_size=5000).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")) | st.sampled_from(
    [b"x" * 2047, b"y" * 2048, b"z" * 4095, b"{}", b"\n", b"\r\n"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_TEXT | _RUNS, max_size=8))
def test_the_quick_look_for_blank_runs_never_misses_one(parts):
    """Most blocks are told they hold no run of blank lines by 8 bytes in 2048: a run missed would
    be cut into millions of lines (a newline bomb read line by line). Whatever the text around a
    run and wherever it falls against the blocks, the look finds every run the searches find."""
    data = b"".join(parts)
    searched = data.find(b"\n" * BLANK_RUN) >= 0 or data.find(b"\r\n" * BLANK_RUN) >= 0
    assert _may_hold_run(data) or not searched
    assert (blank_free_segments(data) is not None) == searched
