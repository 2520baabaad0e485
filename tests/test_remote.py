"""Remote archives through fsspec, against a real S3-protocol server on 127.0.0.1 (moto's server mode)."""

from __future__ import annotations

import gzip
import json
import os
import sys

import boto3
import orjson
import pytest
from moto.server import ThreadedMotoServer

from helpers import ROOT, invoke, ndjson
from recombee_cli.emulator import Emulator

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
