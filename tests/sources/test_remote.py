"""Remote archives through fsspec, against a real S3-protocol server on 127.0.0.1 (moto's server mode)."""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import re
import socket
import sys
from datetime import UTC, datetime
from urllib.parse import unquote

import boto3
import orjson
import pytest
from helpers import ROOT, invoke, ndjson
from moto.server import ThreadedMotoServer

import recombee_cli.sources.remote as remote
from recombee_cli.errors import InputError
from recombee_cli.recombee.emulator import Emulator
from recombee_cli.sources.reader import expand_inputs, read_blocks
from recombee_cli.sources.remote import expand_remote

sys.path.insert(0, str(ROOT))
from bench.generate import events as generate  # noqa: E402

BUCKET = "acme-segment"
PREFIX = "segment-logs/SRC123"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                             "AWS_ENDPOINT_URL", "AWS_PROFILE")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
    os.environ.pop("AWS_PROFILE", None)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    local = tmp_path_factory.mktemp("local") / "segment-logs" / "SRC123"
    stream = generate(1200, seed=21)
    for day in ("1709251200000", "1709337600000"):
        for part in range(2):
            body = gzip.compress(b"".join(orjson.dumps(next(stream)) + b"\n" for _ in range(300)))
            key = f"{PREFIX}/{day}/part-{part}.gz"
            # Segment's objects carry Content-Encoding: gzip; we must still get (and sniff) the raw bytes.
            client.put_object(Bucket=BUCKET, Key=key, Body=body, ContentEncoding="gzip")
            (local / day).mkdir(parents=True, exist_ok=True)
            (local / day / f"part-{part}.gz").write_bytes(body)
    yield {"client": client, "local": local, "endpoint": endpoint}
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_s3_archive_gives_the_same_dry_run_as_local_disk(s3):
    remote = invoke(["replay", "--dry-run", "--quiet", f"s3://{BUCKET}/{PREFIX}/"])
    local = invoke(["replay", "--dry-run", "--quiet", str(s3["local"])])
    assert remote.stdout == local.stdout
    assert len(ndjson(remote.stdout)) > 500


def test_s3_glob_and_single_object(s3):
    one = invoke(["replay", "--dry-run", "--quiet", f"s3://{BUCKET}/{PREFIX}/1709251200000/part-0.gz"])
    globbed = invoke(["replay", "--dry-run", "--quiet", f"s3://{BUCKET}/{PREFIX}/*/part-0.gz"])
    local_one = invoke(["replay", "--dry-run", "--quiet", str(s3["local"] / "1709251200000" / "part-0.gz")])
    assert one.stdout == local_one.stdout
    assert len(ndjson(globbed.stdout)) > len(ndjson(one.stdout))


def test_s3_nightly_run_uses_etags_and_skips_done_objects(s3, tmp_path):
    state = tmp_path / "state.sqlite"
    report = tmp_path / "r.json"
    args = ["replay", "--base-uri", None, "--allow-http", "--database-id", "db", "--state", str(state),
            "--report", str(report), "--quiet", f"s3://{BUCKET}/{PREFIX}/"]
    with Emulator("db", "tok") as emu:
        args[2] = emu.base_uri
        invoke(args, env={"RECOMBEE_PRIVATE_TOKEN": "tok"})
        assert json.loads(report.read_text())["sources"] == 4
        s3["client"].put_object(Bucket=BUCKET, Key=f"{PREFIX}/1709424000000/part-0.gz",
                                Body=gzip.compress(b'{"type":"page","name":"home","userId":"u",'
                                                   b'"timestamp":"2024-03-03T00:00:00Z"}\n'))
        invoke(args, env={"RECOMBEE_PRIVATE_TOKEN": "tok"})
        figures = json.loads(report.read_text())
    assert figures["sources"] == 1 and figures["skipped_sources"] == 4
    assert figures["outcomes"]["sent"] == 1


def test_missing_bucket_prefix_is_a_usage_error(s3):
    result = invoke(["replay", "--dry-run", f"s3://{BUCKET}/no/such/prefix/"])
    assert result.exit_code == 2 and "no such" in result.stderr.lower() or "no objects" in result.stderr


# --- failures are one line; a read that breaks off leaves the object pending --------------------


@pytest.fixture
def refused_endpoint(s3, monkeypatch):
    """An endpoint on 127.0.0.1 that refuses connections: a bound socket that never listens
    (the port cannot be taken by anything else meanwhile)."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed.getsockname()[1]}")
    yield
    closed.close()


def _one_line_failure(result, code: int = 2) -> str:
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_an_unreachable_endpoint_is_one_line(refused_endpoint):
    with pytest.raises(InputError, match=r"^s3://acme-segment/x/: cannot reach the store: ") as caught:
        expand_remote(f"s3://{BUCKET}/x/")
    assert "\n" not in str(caught.value)
    stderr = _one_line_failure(invoke(["replay", "--dry-run", f"s3://{BUCKET}/{PREFIX}/"]))
    assert "cannot reach the store" in stderr


def test_missing_credentials_are_one_line(s3, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")   # no instance metadata on a test machine
    stderr = _one_line_failure(invoke(["replay", "--dry-run", f"s3://{BUCKET}/{PREFIX}/"]))
    assert "no credentials for the store" in stderr


@pytest.mark.parametrize("url, reason", [
    ("s3://Not_A_Bucket!/x/", "not a valid location"),
    ("s3://", "not a valid location"),
    ("s3://no-such-bucket-here/x/", "no such"),   # (a guard: this one was already one line)
])
def test_bad_locations_are_one_line(s3, url, reason):
    assert reason in _one_line_failure(invoke(["replay", "--dry-run", url]))


@pytest.fixture
def doomed_server(monkeypatch):
    """A store of its own, to be stopped in the middle of a read."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    running = [True]

    def stop() -> None:
        if running[0]:
            running[0] = False
            server.stop()

    yield boto3.client("s3", endpoint_url=f"http://{host}:{port}"), stop
    stop()


def test_a_read_that_breaks_off_is_an_unreadable_block(doomed_server, monkeypatch):
    client, stop = doomed_server
    client.create_bucket(Bucket="doomed")
    rng = random.Random(5)
    data = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, rng.randbytes(30).hex().encode()) for i in range(40_000))
    client.put_object(Bucket="doomed", Key="logs/part-0.gz", Body=gzip.compress(data))
    monkeypatch.setattr(remote, "_BLOCK_SIZE", 64 << 10)   # several ranged reads per object
    (source,) = expand_remote("s3://doomed/logs/")
    blocks = read_blocks(source)
    first = next(blocks)
    stop()   # the store goes away between two ranged reads
    *rest, last = [first, *blocks]
    assert last.unreadable and last.errors[0].startswith("cannot read at byte ")
    lines = [line for block in rest for line in block.lines]
    assert lines == data.split(b"\n")[:len(lines)] and len(lines) >= first.count


# --- --since/--until: day folders outside the window are not read ------------------------------

DAY = 86_400


def _day_ms(day: str) -> str:
    return str(int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000))


@pytest.fixture(scope="module")
def days(s3):
    client = s3["client"]
    client.create_bucket(Bucket="acme-window")
    for source in ("SRC1", "SRC2"):
        for day in ("2024-03-01", "2024-03-02", "2024-03-09", "2024-03-20"):
            client.put_object(Bucket="acme-window", Key=f"segment-logs/{source}/{_day_ms(day)}/part-0.gz",
                              Body=gzip.compress(b'{"type":"page"}\n'))
        client.put_object(Bucket="acme-window", Key=f"segment-logs/{source}/manifest.json", Body=b"{}")
    return client


@pytest.fixture
def listings(caplog):
    """The prefixes the store was asked to list (moto's server logs each request)."""
    caplog.set_level(logging.INFO, logger="werkzeug")

    def prefixes() -> list[str]:
        found = []
        for record in caplog.records:
            match = re.search(r"GET /acme-window\?[^ ]*prefix=([^& ]*)", record.getMessage())
            if match:
                found.append(unquote(match.group(1)))
        return found

    return prefixes


def test_day_folders_outside_the_window_are_pruned_before_listing(days, listings):
    window = (datetime(2024, 3, 2, 12, tzinfo=UTC).timestamp(),
              datetime(2024, 3, 5, tzinfo=UTC).timestamp())
    skipped: list[str] = []
    sources = expand_remote("s3://acme-window/segment-logs/SRC1/", window=window, skipped=skipped)
    kept = [_day_ms(day) for day in ("2024-03-02", "2024-03-09")]
    assert [s.name for s in sources] == [f"s3://acme-window/segment-logs/SRC1/{day}/part-0.gz" for day in kept] + \
        ["s3://acme-window/segment-logs/SRC1/manifest.json"]
    assert skipped == [f"s3://acme-window/segment-logs/SRC1/{_day_ms(day)}" for day in ("2024-03-01", "2024-03-20")]
    pruned = [f"segment-logs/SRC1/{_day_ms(day)}" for day in ("2024-03-01", "2024-03-20")]
    assert listings() and not [p for p in listings() if p.startswith(tuple(pruned))]


def test_day_folders_deeper_down_are_filtered_from_the_listing(days):
    window = (None, datetime(2024, 2, 23, tzinfo=UTC).timestamp())   # 03-01: late arrivals
    skipped: list[str] = []
    sources = expand_remote("s3://acme-window/segment-logs/", window=window, skipped=skipped)
    assert [s.name.split("/", 4)[4] for s in sources] == [
        f"SRC1/{_day_ms('2024-03-01')}/part-0.gz", "SRC1/manifest.json",
        f"SRC2/{_day_ms('2024-03-01')}/part-0.gz", "SRC2/manifest.json"]
    assert len(skipped) == 6 and all(s.startswith("s3://acme-window/segment-logs/SRC") for s in skipped)


def test_a_glob_skips_the_day_folders_it_matches(days):
    window = (datetime(2024, 3, 9, tzinfo=UTC).timestamp(), None)
    skipped: list[str] = []
    sources = expand_inputs(["s3://acme-window/segment-logs/*/*/part-0.gz"], window=window, skipped=skipped)
    assert [s.name.split("/", 4)[4] for s in sources] == [
        f"{source}/{_day_ms(day)}/part-0.gz" for source in ("SRC1", "SRC2") for day in ("2024-03-09", "2024-03-20")]
    assert len(skipped) == 4


def test_every_day_pruned_is_not_an_error(days):
    window = (datetime(2030, 1, 1, tzinfo=UTC).timestamp(), None)
    skipped: list[str] = []
    sources = expand_remote("s3://acme-window/segment-logs/SRC2/", window=window, skipped=skipped)
    assert [s.name for s in sources] == ["s3://acme-window/segment-logs/SRC2/manifest.json"] and len(skipped) == 4


def test_s3_archive_read_on_dask_workers_gives_the_same_dry_run(s3):
    """Cluster mode: the objects are opened and read on the workers (a LocalCluster started here
    inherits the endpoint's environment), the output is the one-machine dry run's."""
    url = f"s3://{BUCKET}/{PREFIX}/"   # the bucket as earlier tests left it: the same for both runs
    on_cluster = invoke(["replay", "--dry-run", "--quiet", "--dask", "local:1", url])
    one_machine = invoke(["replay", "--dry-run", "--quiet", url])
    assert on_cluster.exit_code == one_machine.exit_code, on_cluster.stderr
    assert on_cluster.stdout == one_machine.stdout and len(ndjson(on_cluster.stdout)) > 500


@pytest.mark.parametrize("engine", [[], ["--dask", "local:1"]], ids=["one machine", "dask"])
def test_an_object_key_never_names_an_output_file_outside_the_output_folder(s3, tmp_path, engine):
    """S3 keys are any text: `SRC/../../PWNED/evil` is an object of its own, not a path to climb.
    Each key's output stays in the --output folder, and no two keys share one."""
    prefix = f"segment-logs/EVIL{len(engine)}"
    keys = [f"{prefix}/day/part-0.ndjson", f"{prefix}/day/../../../../../../PWNED/evil", f"{prefix}/day/./dot",
            f"{prefix}/day/%2E%2E/x", f"{prefix}/day//double"]
    event = {"type": "track", "event": "Product Viewed", "userId": "u1", "properties": {"product_id": "p1"},
             "timestamp": "2024-03-01T12:00:00Z"}
    for key in keys:
        s3["client"].put_object(Bucket=BUCKET, Key=key, Body=orjson.dumps(event) + b"\n")
    out = tmp_path.joinpath(*"abcdefgh") / "out"   # deep enough that climbing out lands in tmp_path
    result = invoke(["replay", "--dry-run", "--quiet", "--output", str(out), *engine, f"s3://{BUCKET}/{prefix}/"])
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert not any(p.name.startswith("evil") and out not in p.parents for p in written)
    assert all(out in p.parents for p in written), written
    if result.exit_code == 0:
        assert len(written) == len(keys)
    else:   # two keys that cannot both have a file of their own: refused before anything is written
        assert result.exit_code == 2 and "would write the same output file" in result.stderr and not written
