"""Damaged archives: every complete line before the damage is read, then one error naming where
the damage is; trailing garbage after gzip data is a warning; an I/O error leaves the file pending."""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import random
import zlib
from itertools import accumulate

import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import recombee_cli.sources.decompress as decompress
from recombee_cli.sources.blocks import starting_at
from recombee_cli.sources.reader import Block, Source, read_blocks, read_lines


def _source(data: bytes, name: str = "mem", seekable: bool = True) -> Source:
    return Source(name, lambda: io.BytesIO(data) if seekable else _Unseekable(data), len(data))


class _Unseekable(io.BytesIO):
    """A pipe's bytes: cannot go back."""

    def seekable(self) -> bool:
        return False

    def seek(self, *args):
        raise io.UnsupportedOperation("seek")


@pytest.fixture
def small_reads(monkeypatch):
    """Reads of a few bytes: member, frame and block boundaries fall inside reads and between them.
    (Constants only: sharing them between hypothesis' examples is harmless.)"""
    monkeypatch.setattr(decompress, "CHUNK_SIZE", 64)
    monkeypatch.setattr(decompress, "_IN_SIZE", 16)


def _events(n: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return b"".join(b'{"n":%d,"type":"%s","pad":"%s"}\n'
                    % (i, rng.choice([b"page", b"track"]), rng.randbytes(rng.randrange(40)).hex().encode())
                    for i in range(n))


def _zstd(data: bytes, **kw) -> bytes:
    return zstandard.ZstdCompressor(**kw).compress(data)


def _decodable_prefix(kind: str, packed: bytes) -> bytes:
    """What the plain library decodes from a cut-off file, fed in one go: the reference."""
    if kind == "gzip":
        out, d = [], zlib.decompressobj(31)
        while packed:
            out.append(d.decompress(packed))
            if not d.eof:
                break
            packed = d.unused_data   # the next member
            d = zlib.decompressobj(31)
        return b"".join(out)
    if kind == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(packed)
    return bz2.BZ2Decompressor().decompress(packed)


def _complete_lines(decoded: bytes) -> list[bytes]:
    return decoded[:decoded.rfind(b"\n") + 1].split(b"\n")[:-1]


COMPRESS = {"gzip": gzip.compress, "zstd": lambda b: _zstd(b, write_checksum=True), "bz2": bz2.compress}
MAGIC = {"gzip": 2, "zstd": 4, "bz2": 3}


def _check_truncation(kind: str, data: bytes, cut_at: float) -> None:
    packed = COMPRESS[kind](data)
    cut = max(MAGIC[kind], int(len(packed) * cut_at))
    if cut >= len(packed):
        cut = len(packed) - 1
    damaged = packed[:cut]
    lines = list(read_blocks(_source(damaged)))
    got = [line for block in lines for line in block.lines if not block.errors]
    expected = _complete_lines(_decodable_prefix(kind, damaged))
    assert got == expected
    errors = [block for block in lines if block.errors]
    assert len(errors) == 1 and errors[0] is lines[-1], "one error entry, last"
    error = errors[0]
    assert error.errors == {0: f"{kind} stream is truncated at byte {cut} of the file (compressed)"}
    assert error.number == len(expected) + 1 and error.offset == sum(len(x) + 1 for x in expected)
    assert not error.unreadable


@pytest.mark.parametrize("kind", ["gzip", "zstd", "bz2"])
@pytest.mark.parametrize("cut_at", [0.0, 0.02, 0.3, 0.5, 0.77, 0.99, 1.0])
def test_a_truncated_file_keeps_every_complete_line_before_the_cut(kind, cut_at):
    # 2.5 MB of events: the cut falls after more than one 1 MiB read, where the old reader lost a read
    _check_truncation(kind, _events(25_000), cut_at)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["gzip", "zstd", "bz2"]), n=st.integers(0, 120), seed=st.integers(0, 1000),
       cut_at=st.floats(0, 1))
@example(kind="gzip", n=30, seed=1, cut_at=0.5)
@example(kind="bz2", n=6, seed=0, cut_at=0.96875)   # bz2 held a block's output back at the cut
def test_truncated_anywhere_the_lines_read_are_exactly_the_complete_lines_before_the_cut(
        small_reads, kind, n, seed, cut_at):
    _check_truncation(kind, _events(n, seed), cut_at)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.integers(0, 40), min_size=2, max_size=4), seed=st.integers(0, 1000),
       cut_at=st.floats(0.5, 1))
@example(parts=[0, 0, 0], seed=0, cut_at=0.6875)   # the cut leaves one byte of the next member's magic
@example(parts=[1, 28, 0], seed=28, cut_at=0.982421875)   # a cut inside an empty last member
@example(parts=[39, 39], seed=39, cut_at=0.5)
def test_a_member_cut_off_after_complete_members(small_reads, parts, seed, cut_at):
    """Several gzip members (as `cat a.gz b.gz` makes): the complete ones are all read."""
    data = _events(sum(parts), seed)
    pieces, start = [], 0
    for count in parts:
        end = start
        for _ in range(count):
            end = data.index(b"\n", end) + 1
        pieces.append(gzip.compress(data[start:end]))
        start = end
    packed = b"".join(pieces)
    cut = max(2, int(len(packed) * cut_at))
    if cut >= len(packed):
        cut = len(packed) - 1
    damaged = packed[:cut]
    lines = list(read_lines(_source(damaged)))
    if cut in accumulate(map(len, pieces)):   # cut between members: nothing is missing
        assert [line.data for line in lines] == _decodable_prefix("gzip", damaged).split(b"\n")[:-1]
        return
    assert [line.data for line in lines[:-1]] == _complete_lines(_decodable_prefix("gzip", damaged))
    assert lines[-1].error == f"gzip stream is truncated at byte {cut} of the file (compressed)"


def test_a_file_cut_inside_the_next_members_magic_is_truncated_not_garbage():
    """`cat a.gz b.gz` cut one byte into b.gz: b's events are lost, which must not pass as a warning."""
    data = _events(2_000)
    packed = gzip.compress(data[:1000]) + gzip.compress(data[1000:])
    first = len(gzip.compress(data[:1000]))
    lines = list(read_lines(_source(packed[:first + 1]), warn=lambda message: None))
    assert lines[-1].error == f"gzip stream is truncated at byte {first + 1} of the file (compressed)"


def test_a_line_cut_by_the_damage_is_part_of_it():
    data = b'{"a":1}\n{"b":2}\n{"c":"' + random.Random(0).randbytes(5000).hex().encode() + b'"}\n'
    damaged = gzip.compress(data)[:-60]   # inside the third line
    lines = list(read_lines(_source(damaged)))
    assert [(line.number, line.offset, line.data, line.error is None) for line in lines[:2]] == \
        [(1, 0, b'{"a":1}', True), (2, 8, b'{"b":2}', True)]
    assert (lines[2].number, lines[2].offset, lines[2].data) == (3, 16, b"")
    assert "truncated at byte" in lines[2].error and len(lines) == 3


@pytest.mark.parametrize("garbage", [b"garbage!", b"\x1e", b"\0\0\0junk", b"\n" * 3])
def test_trailing_garbage_after_gzip_is_a_warning_and_nothing_is_lost(garbage):
    data = _events(25_000)
    packed = gzip.compress(data[:1000]) + gzip.compress(data[1000:])
    warnings: list[str] = []
    lines = list(read_lines(_source(packed + garbage, name="day/part-0.gz"), warn=warnings.append))
    assert [line.data for line in lines] == data.split(b"\n")[:-1]
    assert all(line.error is None for line in lines)
    assert len(warnings) == 1
    assert warnings[0].startswith("day/part-0.gz: decompression OK, trailing garbage ignored")
    where = len(packed) + len(garbage) - len(garbage.lstrip(b"\0"))
    assert f"byte {where} of the file" in warnings[0]


def test_zero_padding_after_gzip_is_ignored_silently():
    data = _events(100)
    warnings: list[str] = []
    lines = list(read_lines(_source(gzip.compress(data) + b"\0" * 1000), warn=warnings.append))
    assert len(lines) == 100 and not any(line.error for line in lines) and warnings == []


def _gzip_broken_at(data: bytes, good: int) -> tuple[bytes, int]:
    """gzip of `data` whose deflate stream is broken right after `good` bytes of it: a full flush
    there starts a block on a byte boundary, and that block gets the reserved type 3."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    head = packer.compress(data[:good]) + packer.flush(zlib.Z_FULL_FLUSH)
    packed = bytearray(head + packer.compress(data[good:]) + packer.flush())
    packed[len(head)] |= 0b110   # BTYPE=11: "invalid block type"
    return bytes(packed), len(head)


@pytest.mark.parametrize("good", [0, 1, 700_000, 1_048_576, 2_000_000, 2_500_001])
def test_corrupt_gzip_keeps_every_complete_line_before_the_damage(good):
    data = _events(25_000)
    packed, bad = _gzip_broken_at(data, min(good, len(data)))
    lines = list(read_lines(_source(packed)))
    assert [line.data for line in lines[:-1]] == _complete_lines(data[:good])
    assert lines[-1].error.startswith(f"gzip data is corrupt at byte {bad} of the file (compressed): ")
    assert lines[-1].number == len(lines)


def test_corrupt_gzip_from_a_pipe_is_placed_within_the_read_that_failed():
    """A pipe cannot be read again to place the damage: it is named within the failed read."""
    data = _events(25_000)
    packed, bad = _gzip_broken_at(data, 2_000_000)
    lines = list(read_lines(_source(packed, seekable=False)))
    good = [line.data for line in lines[:-1]]
    assert good == data.split(b"\n")[:len(good)] and len(good) > 15_000
    error = lines[-1].error
    assert error.startswith("gzip data is corrupt between bytes ")
    first, last = map(int, error.split("between bytes ")[1].split(" of")[0].split(" and "))
    assert first <= bad < last


def _zstd_blocks(frame: bytes) -> list[int]:
    """Offsets of a zstd frame's block headers."""
    flags = frame[4]
    pos = 5 + (not flags >> 5 & 1) + (0, 1, 2, 4)[flags & 3] + (flags >> 5 & 1, 2, 4, 8)[flags >> 6]
    starts = []
    while True:
        starts.append(pos)
        header = int.from_bytes(frame[pos:pos + 3], "little")
        pos += 3 + (1 if header >> 1 & 3 == 1 else header >> 3)
        if header & 1:
            return starts


def test_a_corrupt_zstd_block_keeps_every_block_before_it():
    data = _events(25_000)
    frame = bytearray(_zstd(data))
    starts = _zstd_blocks(bytes(frame))
    bad = starts[len(starts) // 2]
    frame[bad] |= 0b110   # block type 3: reserved, never valid
    lines = list(read_lines(_source(bytes(frame))))
    decoded = zstandard.ZstdDecompressor().decompressobj().decompress(bytes(frame[:bad]))
    assert [line.data for line in lines[:-1]] == _complete_lines(decoded)
    assert lines[-1].error.startswith(f"zstd data is corrupt at byte {bad} of the file (compressed)")


def test_zstd_frames_then_something_else():
    data = _events(3000)
    packed = _zstd(data[:50_000]) + _zstd(data[50_000:]) + b"not zstd"
    lines = list(read_lines(_source(packed)))
    assert [line.data for line in lines[:-1]] == data.split(b"\n")[:-1]
    assert lines[-1].error == f"not zstd data at byte {len(packed) - 8} of the file (compressed)"


def test_skippable_zstd_frames_are_skipped(small_reads):
    skippable = (0x184D2A5E).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"hello"
    packed = skippable + _zstd(b'{"a":1}\n') + skippable + _zstd(b'{"b":2}\n')
    assert [line.data for line in read_lines(_source(packed))] == [b'{"a":1}', b'{"b":2}']


def test_corrupt_bz2_is_an_error_after_the_lines_before_it():
    """(bz2 checks a block's CRC after giving its bytes, as `bzip2 -d` does: the lines of the
    damaged block itself may come out mangled before the error; those before it are intact.)"""
    data = _events(60_000)
    cut = data.index(b"\n", len(data) // 2) + 1
    first = bz2.compress(data[:cut])
    second = bytearray(bz2.compress(data[cut:]))
    second[len(second) // 2] ^= 0x55
    lines = list(read_lines(_source(first + bytes(second))))
    good = [line.data for line in lines[:-1]]
    assert good[:data.count(b"\n", 0, cut)] == data[:cut].split(b"\n")[:-1]
    assert lines[-1].error.startswith("bz2 data is corrupt at byte ")
    assert lines[-1].number == len(lines)


def test_highly_compressed_data_is_read_in_bounded_pieces():
    """A member that inflates 1000:1 is not inflated in one piece (memory stays flat): a guard
    for the incremental decoder, which the stdlib's GzipFile used to bound."""
    line = b'{"type":"track","pad":"' + b"a" * 100_000 + b'"}\n'
    packed = gzip.compress(line * 300)   # 30 MB from about 30 KB
    sizes = [len(block.raw()) for block in read_blocks(_source(packed))]
    assert sum(sizes) + len(sizes) == len(line) * 300
    assert max(sizes) <= decompress.CHUNK_SIZE + len(line)   # a read, and the line it began in


# --- I/O errors: the machine's fault, not the data's ------------------------------------------


class _FailingRead(io.RawIOBase):
    """A file whose reads fail with EIO after `good` bytes, as a failing disk or a dropped remote
    read does."""

    def __init__(self, data: bytes, good: int):
        self._data, self._pos, self._good = data, 0, good

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._pos >= self._good:
            raise OSError(errno.EIO, "Input/output error")
        n = min(len(buf), self._good - self._pos)
        buf[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress], ids=["plain", "gzip"])
def test_an_io_error_while_reading_makes_an_unreadable_block(small_reads, compress):
    data = _events(200)
    packed = compress(data)
    good = len(packed) // 2
    source = Source("disk", lambda: _FailingRead(packed, good), None)
    blocks = list(read_blocks(source))
    *ok, last = blocks
    assert all(not block.errors and not block.unreadable for block in ok)
    assert last.unreadable and last is blocks[-1]
    assert last.errors == {0: f"cannot read at byte {good} of the file: Input/output error"}
    lines = [line for block in ok for line in block.lines]
    assert lines == data.split(b"\n")[:len(lines)] and len(lines) > 20


def test_damage_is_not_unreadable():
    (block,) = [b for b in read_blocks(_source(gzip.compress(b"x" * 100)[:20])) if b.errors]
    assert not block.unreadable


def test_cannot_open_is_unreadable(tmp_path):
    (block,) = read_blocks(Source("gone", lambda: open(tmp_path / "gone", "rb")))
    assert block.unreadable and block.errors[0].startswith("cannot open:")


def test_slices_and_resumed_blocks_keep_the_unreadable_flag():
    block = Block("f", 5, 100, lines=[b"a", b"bb", b""], errors={2: "cannot read at byte 105 of the file: EIO"})
    block.unreadable = True
    assert block.slice(1, 3).unreadable and block.slice(1, 3).errors == {1: block.errors[2]}
    resumed = starting_at(block, 102)
    assert resumed is not None and resumed.unreadable and resumed.number == 6


def test_an_io_error_before_the_resume_point_is_still_reported():
    """Resuming at a checkpoint past the point where the read now fails: the file must not pass
    for done."""
    data = _events(200)
    source = Source("disk", lambda: _FailingRead(data, 1000), None)
    blocks = list(read_blocks(source, start_offset=len(data) - 10))
    assert [block.unreadable for block in blocks] == [True]
