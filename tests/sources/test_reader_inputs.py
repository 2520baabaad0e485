"""Input arguments: pipes and /dev/stdin, odd file names, symbolic links in folders, and Segment's
day folders outside a --since/--until window."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime

import orjson
import pytest
from helpers import ROOT, open_fifo_when_read, wait_for

from recombee_cli.errors import InputError
from recombee_cli.sources.reader import (
    LATE_ARRIVAL_DAYS,
    display_name,
    expand_inputs,
    folder_outside_window,
    read_lines,
    received_day,
)

LINES = [b'{"type":"track","event":"A"}', b'{"type":"page","name":"home"}']
BODY = b"\n".join(LINES) + b"\n"


# --- pipes, process substitution, /dev/stdin ---------------------------------------------------


def test_a_named_pipe_is_read_as_a_stream(tmp_path):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with open(fifo, "wb") as out:   # blocks until the reader opens it
                out.write(gzip.compress(BODY))   # gzip through a pipe: sniffed without seeking
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failure.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        (source,) = expand_inputs([str(fifo)])
        assert (source.identity, source.key, source.size) == (None, None, None)   # nothing to resume
        assert [line.data for line in read_lines(source)] == LINES
    finally:
        # should reading never have started, let the writer's open() return so the thread ends
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
        writer.join(timeout=30)
    assert not writer.is_alive() and not failure


def test_a_stalled_pipe_hands_on_what_it_was_given(tmp_path):
    """`producer | recombee-cli …` with a producer that writes a few lines, then waits: those lines
    are read (and go on down the pipeline) now, not when a megabyte more has come."""
    read_end, write_end = os.pipe()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(line.data for line in read_lines(
        expand_inputs([f"/dev/fd/{read_end}"])[0])), daemon=True)
    try:
        os.write(write_end, BODY)
        reader.start()
        assert wait_for(lambda: len(got) == len(LINES), 30), "the lines written waited for more to come"
        assert got == LINES
        os.write(write_end, b'{"type":"identify"}\n')
    finally:
        os.close(write_end)   # the producer ends: the read ends
        reader.join(timeout=30)
    assert not reader.is_alive() and got == LINES + [b'{"type":"identify"}']
    os.close(read_end)


def test_sigterm_stops_a_run_whose_producer_stalls(tmp_path):
    """A stalled producer (held open, writing nothing) never holds off SIGTERM: the run stops with
    143, having printed what it was given. Before, a SIGTERM that landed just before a read of the
    pipe waited for the producer's next byte."""
    fifo = tmp_path / "events"
    os.mkfifo(fifo)
    lines = (ROOT / "sample_events" / "hand-written.ndjson").read_bytes().splitlines(keepends=True)[:3]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}   # as users' shells are
    proc = subprocess.Popen([sys.executable, "-m", "recombee_cli", "replay", "--dry-run", "--no-state", str(fifo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    printed: list[bytes] = []
    threading.Thread(target=lambda: printed.extend(proc.stdout), daemon=True).start()   # type: ignore[arg-type]
    writer = None
    try:
        writer = open_fifo_when_read(fifo, proc)
        assert writer is not None, "the run never opened its input"
        os.write(writer, b"".join(lines))
        assert wait_for(lambda: len(printed) >= 3 or proc.poll() is not None, 120), \
            "the lines written were not translated while the producer stayed open"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)   # (bounded: a hang fails here; stderr is a few lines)
        err = proc.stderr.read().decode()   # type: ignore[union-attr]
        assert code == 143, err
    finally:
        if writer is not None:
            os.close(writer)   # (only now: the producer stayed open all along)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert "terminated" in err and "Traceback" not in err
    assert [orjson.loads(line)["path"] for line in printed[:3]] == ["/detailviews/", "/bookmarks/", "/bookmarks/"]


_READ = ("import sys, json; from recombee_cli.sources.reader import expand_inputs, read_lines\n"
         "sources = expand_inputs(sys.argv[1:])\n"
         "print(json.dumps([[s.name, s.identity, s.key] for s in sources]))\n"
         "print(json.dumps([l.data.decode() for s in sources for l in read_lines(s)]))")


def _run(args: list[str], **kw) -> list:
    result = subprocess.run(args, capture_output=True, timeout=120, cwd=ROOT, **kw)
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_dev_stdin_is_read_as_a_stream(tmp_path):
    sources, lines = _run([sys.executable, "-c", _READ, "/dev/stdin"], input=gzip.compress(BODY))
    assert sources == [["/dev/stdin", None, None]]
    assert lines == [line.decode() for line in LINES]


def test_process_substitution_is_read(tmp_path):
    archive = tmp_path / "day.gz"
    archive.write_bytes(gzip.compress(BODY))
    script = f'exec "$0" -c "$1" <(cat {archive})'   # <(…) gives /dev/fd/N, a pipe
    sources, lines = _run(["bash", "-c", script, sys.executable, _READ])
    assert sources[0][0].startswith("/dev/fd/") and sources[0][1:] == [None, None]
    assert lines == [line.decode() for line in LINES]


def test_a_device_is_a_stream():
    (source,) = expand_inputs(["/dev/null"])
    assert source.key is None and list(read_lines(source)) == []


# --- file names that are not UTF-8 ----------------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="Linux file names are bytes")
def test_a_non_utf8_file_name_is_read_and_printable(tmp_path):
    folder = os.fsencode(tmp_path)
    with open(os.path.join(folder, b"caf\xe9.ndjson"), "wb") as out:
        out.write(BODY)
    os.symlink(b"nowhere-\xff", os.path.join(folder, b"dangling-\xff"))
    warnings: list[str] = []
    (source,) = expand_inputs([str(tmp_path)], warn=warnings.append)
    assert [line.data for line in read_lines(source)] == LINES
    assert display_name(source.name) == f"{tmp_path}/caf\\xe9.ndjson"
    assert warnings == [f"{tmp_path}/dangling-\\xff: a dangling symbolic link; skipped"]
    for text in warnings + [display_name(source.name)]:
        text.encode("utf-8")   # what a message writer does: must not raise
    (direct,) = expand_inputs([os.fsdecode(os.path.join(folder, b"caf\xe9.ndjson"))])
    assert direct.key == source.key == os.path.realpath(source.name)


def test_display_name_escapes_what_cannot_be_printed():
    assert display_name("plain/name.gz") == "plain/name.gz"
    assert display_name("caf\udce9.gz") == "caf\\xe9.gz"
    assert display_name("a\nb\tc") == "a\\x0ab\\x09c"   # a message stays one line
    assert display_name("lone \ud800") == "lone \\ud800"
    assert display_name("café ✓.gz") == "café ✓.gz"


# --- symbolic links inside folders ----------------------------------------------------------------


def _tree(tmp_path):
    top = tmp_path / "in"
    (top / "sub").mkdir(parents=True)
    (top / "a.ndjson").write_bytes(BODY)
    (top / "sub" / "b.ndjson").write_bytes(BODY)
    return top


def test_a_link_back_to_a_parent_folder_is_skipped_with_a_warning(tmp_path):
    top = _tree(tmp_path)
    (top / "sub" / "up").symlink_to("..")
    warnings: list[str] = []
    names = [s.name for s in expand_inputs([str(top)], warn=warnings.append)]
    assert names == [f"{top}/a.ndjson", f"{top}/sub/b.ndjson"]
    assert warnings == [f"{top}/sub/up: a symbolic link loop (back to {top}); skipped"]


def test_a_link_loop_and_a_dangling_link_are_skipped_with_a_warning(tmp_path):
    top = _tree(tmp_path)
    (top / "loop-a").symlink_to("loop-b")
    (top / "loop-b").symlink_to("loop-a")
    (top / "gone").symlink_to(tmp_path / "nowhere")
    warnings: list[str] = []
    names = [s.name for s in expand_inputs([str(top)], warn=warnings.append)]
    assert names == [f"{top}/a.ndjson", f"{top}/sub/b.ndjson"]
    assert warnings == [f"{top}/gone: a dangling symbolic link; skipped",
                        f"{top}/loop-a: a symbolic link loop; skipped",
                        f"{top}/loop-b: a symbolic link loop; skipped"]


def test_links_to_files_and_folders_are_followed_and_each_file_read_once(tmp_path):
    top = _tree(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "c.ndjson").write_bytes(BODY)
    (top / "linked").symlink_to(outside)            # a folder kept elsewhere: read
    (top / "again").symlink_to("sub")               # a second way into sub: read once
    (top / "z.ndjson").symlink_to("a.ndjson")       # a second name of a.ndjson: read once
    warnings: list[str] = []
    sources = expand_inputs([str(top)], warn=warnings.append)
    assert [s.name for s in sources] == [f"{top}/a.ndjson", f"{top}/linked/c.ndjson", f"{top}/sub/b.ndjson"]
    assert sources[1].key == str(outside / "c.ndjson")
    assert warnings == [f"{top}/again: the same folder as {top}/sub, already read; skipped",
                        f"{top}/z.ndjson: the same file as {top}/a.ndjson; read once"]


def test_a_pipe_inside_a_folder_is_not_read(tmp_path):
    top = _tree(tmp_path)
    os.mkfifo(top / "pipe")   # opening it would wait for a writer forever
    warnings: list[str] = []
    assert len(expand_inputs([str(top)], warn=warnings.append)) == 2
    assert warnings == [f"{top}/pipe: not a regular file (a pipe, socket or device); skipped"]


def test_an_argument_that_is_a_dangling_link_or_a_loop_is_a_usage_error(tmp_path):
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(InputError, match="gone: a dangling symbolic link"):
        expand_inputs([str(tmp_path / "gone")])
    with pytest.raises(InputError, match="loop: a symbolic link loop"):
        expand_inputs([str(tmp_path / "loop")])


# --- Segment's day folders and --since/--until -----------------------------------------------------


def _ms(day: str) -> str:
    return str(int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000))


def _epoch(moment: str) -> float:
    return datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp()


DAYS = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-10", "2024-03-11", "2024-03-20"]


def _segment_logs(tmp_path):
    source = tmp_path / "segment-logs" / "SRC1"
    for day in DAYS:
        folder = source / _ms(day)
        folder.mkdir(parents=True)
        (folder / "part-0.gz").write_bytes(gzip.compress(BODY))
        # were the folder listed, this would be a warning: a skipped folder must not be
        (folder / "broken-link").symlink_to(tmp_path / "nowhere")
    odd = source / str(int(_ms("2024-03-01")) + 1)   # 13 digits, not a midnight: always read
    odd.mkdir()
    (odd / "part-0.gz").write_bytes(gzip.compress(BODY))
    return source


def test_received_day_is_strict():
    assert received_day(_ms("2024-03-01")) == _epoch("2024-03-01")
    assert received_day(str(int(_ms("2024-03-01")) + 1)) is None     # not a midnight
    assert received_day("0" + _ms("2024-03-01")) is None              # 14 digits
    assert received_day("１７０９２５１２００００００") is None       # not ASCII digits
    assert received_day("part-1709251200000") is None


def test_window_edges():
    day = _ms("2024-03-10")
    end = _epoch("2024-03-11")
    assert folder_outside_window(day, (end + 3600, None))            # whole day + an hour of skew before since
    assert not folder_outside_window(day, (end + 3599, None))
    until = _epoch("2024-03-10") - LATE_ARRIVAL_DAYS * 86400
    assert not folder_outside_window(day, (None, until))              # late arrivals: still read
    assert folder_outside_window(day, (None, until - 1))
    assert not folder_outside_window(day, None)
    assert not folder_outside_window("not-a-day", (end + 10 ** 6, None))


def test_day_folders_outside_the_window_are_skipped_without_being_listed(tmp_path):
    source = _segment_logs(tmp_path)
    warnings: list[str] = []
    skipped: list[str] = []
    window = (_epoch("2024-03-03T00:59:59"), _epoch("2024-03-04"))   # 03-02 + skew; late arrivals to 03-11
    sources = expand_inputs([str(tmp_path / "segment-logs")], window=window, warn=warnings.append,
                            skipped=skipped)
    read = sorted(os.path.basename(os.path.dirname(s.name)) for s in sources)
    assert read == sorted([str(int(_ms("2024-03-01")) + 1), _ms("2024-03-02"), _ms("2024-03-03"),
                           _ms("2024-03-10"), _ms("2024-03-11")])
    assert sorted(skipped) == [str(source / _ms(day)) for day in ("2024-03-01", "2024-03-20")]
    assert [w for w in warnings if "broken-link" in w] == [f"{source}/{_ms(day)}/broken-link: a dangling "
                                                          f"symbolic link; skipped"
                                                          for day in ("2024-03-02", "2024-03-03",
                                                                      "2024-03-10", "2024-03-11")]


def test_without_a_window_every_day_folder_is_read(tmp_path):
    _segment_logs(tmp_path)
    skipped: list[str] = []
    assert len(expand_inputs([str(tmp_path)], skipped=skipped)) == len(DAYS) + 1 and skipped == []


def test_globs_skip_the_day_folders_their_wildcards_match(tmp_path):
    source = _segment_logs(tmp_path)
    window = (_epoch("2024-03-10"), None)
    skipped: list[str] = []
    files = expand_inputs([f"{source}/*/part-*.gz"], window=window, skipped=skipped)
    folders = expand_inputs([f"{source}/17*"], window=window)   # folders matched: read recursively
    odd = str(int(_ms("2024-03-01")) + 1)   # not a day folder: always read
    expected = [f"{source}/{odd}/part-0.gz"] + [f"{source}/{_ms(day)}/part-0.gz"
                                                for day in ("2024-03-10", "2024-03-11", "2024-03-20")]
    assert [s.name for s in files] == [s.name for s in folders] == expected
    assert skipped == [f"{source}/{_ms(day)}" for day in ("2024-03-01", "2024-03-02", "2024-03-03")]
