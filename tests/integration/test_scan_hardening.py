"""The scan as an attacker and a careless user would try it, on real services: the S3 endpoint over
HTTP, a real `mlflow server`, the session's Ray head, and `jobs/scan.py` as a process.

* Secrets planted in every URI setting (a password in the tracking URI, presigned-URL queries in a
  source and a manifest, credentials in the report root, a token in the tracking URI) reach no output: MLflow's store and
  artifacts, every object under the report roots (Parquet and JSON), the job's logs, Ray's logs.
* Every legal S3 key (dot segments, `//`, spaces, unicode in both normal forms, `#`, `?`, `%`,
  control characters, a 1,024-byte key) is exactly one report row.
* Typos and missing buckets fail before any model is loaded or MLflow run created.
"""

from __future__ import annotations

import glob
import importlib.util
import io
import json
import os
import random
import subprocess
import sys
import unicodedata
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import mlflow
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lxn import storage
from lxn.config import uri_settings
from lxn.scan.config import ScanConfig
from lxn.nightly.history import latest_date
from lxn.scan.layout import Layout
from lxn.tracking import RunTracker
from tests.integration.conftest import run_mlflow_server
from tests.known_models import register_redspot

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DATE = "2025-07-01"
SECRETS = {name: f"{name}-{uuid.uuid4().hex}" for name in ("tracking-pw", "source-sig", "manifest-token",
                                                            "out-pw", "tracking-token", "slash-pw", "hook-token")}
# A manifest named with a presigned-URL token (a legal key) that does not exist.
MANIFEST_KEY = f"lists/missing.txt?X-Amz-Security-Token={SECRETS['manifest-token']}"


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (seed * 37 % 256, 90, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def fuzzed_keys(count: int = 60, seed: int = 7) -> list[str]:
    """Legal S3 keys that break naive code: every one must become exactly one report row."""
    rng = random.Random(seed)
    pieces = ["a", "Z9", " ", "é", "中文", "😀", "#", "?", "%", "%41", "&", "+", "=", ";", ":", "@", ",", "$", "!", "'",
              "(", ")", "*", "[", "]", "{", "}", "~", "^", "`", "|", "\\", "<", ">", '"', "\t", "\x01", "\x7f"]
    # "\n" is legal in S3 keys too, but moto's server answers 404 to any key holding one.
    keys = {"media/fuzz/a/../x.jpg", "media/fuzz/./y.jpg", "media/fuzz/../z.jpg", "media/fuzz//double.jpg",
            "media/fuzz/trailing-dot./w.jpg", "media/fuzz/..", "media/fuzz/UPPER.JPG", "media/fuzz/upper.jpg",
            "media/fuzz/" + unicodedata.normalize("NFC", "café") + ".jpg",
            "media/fuzz/" + unicodedata.normalize("NFD", "café") + ".jpg"}
    keys.discard("media/fuzz/..")  # no image extension: filtered out, tested elsewhere
    long_name = "é" * 400
    keys.add("media/fuzz/" + long_name + "k" * (1024 - len("media/fuzz/") - 800 - 4) + ".jpg")
    assert max(len(k.encode()) for k in keys) == 1024
    while len(keys) < count:
        segments = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            segments.insert(rng.randrange(len(segments)), rng.choice([".", "..", ""]))
        keys.add("media/fuzz/" + "/".join(segments) + rng.choice([".jpg", ".jpeg", ".PNG"]))
    return sorted(keys)


@pytest.fixture(scope="module")
def hook():
    """A webhook on 127.0.0.1 (as Slack's: the token in the path) recording what it is sent."""
    import http.server
    import threading

    posts = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            posts.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/{SECRETS['hook-token']}", posts
    server.shutdown()


@pytest.fixture(scope="module")
def world(tmp_path_factory, s3_endpoint, ray_head, hook):
    """A bucket of fuzzed keys, an `mlflow server` (local artifacts) with `redspot@champion`
    registered through a credentialed URI, and the scans' outputs for the tests to read."""
    tmp = tmp_path_factory.mktemp("hardening")
    bucket = f"lxn-hard-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=bucket)
    keys = fuzzed_keys()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[1], Body=_jpeg(kv[0])), enumerate(keys)))
    with run_mlflow_server(tmp, str(tmp / "artifacts")) as server:
        host = server.removeprefix("http://")
        tracking = f"http://lxn:{SECRETS['tracking-pw']}@{host}"
        register_redspot(RunTracker.start("lxn-test", "register", tracking))
        # a version as an older lxn registered it: no digest recorded
        legacy = register_redspot(RunTracker.start("lxn-test", "register-legacy", tracking), name="legacy")
        mlflow.MlflowClient(tracking_uri=server).delete_model_version_tag(legacy.name, legacy.version, "lxn.pt2_sha256")
        common = ["--model", "models:/redspot@champion", "--date", DATE, "--batch-size", "16", "--fetch-threads", "4"]
        env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ray_head[0]}
        # One scan carries the planted secrets that a scan can succeed with; the rest are refusals
        # (below). The manifest setting's redaction is the unit property test's (tests/unit/test_redact.py).
        runs = {
            "sources": [*common, "--tracking-uri", tracking, "--out", f"s3://{bucket}/reports", "--notify", hook[0],
                        "--source", f"s3://{bucket}/media", f"s3://{bucket}/extra?X-Amz-Signature={SECRETS['source-sig']}"],
        }
        done = {name: subprocess.run([sys.executable, "jobs/scan.py", *flags], cwd=REPO, env=env, capture_output=True,
                                     text=True, timeout=600) for name, flags in runs.items()}
        yield {"bucket": bucket, "keys": keys, "tmp": tmp, "server": server,
               "tracking": tracking, "runs": done}


def _scan_in_process(args, monkeypatch, capsys, tmp_path):
    """jobs/scan.py's main() in this process (for refusals: no interpreter start-up)."""
    monkeypatch.chdir(tmp_path)
    storage.clear_client_cache()
    spec = importlib.util.spec_from_file_location("scan_job", REPO / "jobs/scan.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    code = job.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _report_rows(bucket: str, root: str) -> list[dict]:
    rows = []
    for info in storage.iter_objects(f"s3://{bucket}/{root}"):
        if info.uri.endswith(".parquet") and "/dt=" in info.uri:
            rows += pq.read_table(io.BytesIO(storage.read_bytes(info.uri))).to_pylist()
    return rows


def test_the_scans_succeed_and_the_hook_hears_of_it(world, hook):
    for name, done in world["runs"].items():
        assert done.returncode == 0, (name, done.stderr[-3000:])
    (path, body), = hook[1]
    assert path == f"/services/{SECRETS['hook-token']}" and body["lxn"]["status"] == "ok"
    assert body["lxn"]["summary"]["counts"]["ok"] == len(world["keys"]) and body["text"].startswith("lxn scan ")


def test_every_legal_key_is_exactly_one_row(world):
    bucket = world["bucket"]
    rows = _report_rows(bucket, "reports")
    uris = [row["uri"] for row in rows]
    assert sorted(uris) == sorted(f"s3://{bucket}/{key}" for key in world["keys"])  # none lost, none twice
    assert {row["status"] for row in rows} == {"ok"}, [r["error"] for r in rows if r["status"] != "ok"][:3]


def test_refused_settings_fail_before_any_work(world, monkeypatch, capsys, tmp_path):
    bucket, tracking = world["bucket"], world["tracking"]
    base = ["--model", "models:/redspot@champion", "--date", DATE, "--source", f"s3://{bucket}/media"]
    client = mlflow.MlflowClient(tracking_uri=world["server"])
    runs_before = len(client.search_runs([client.get_experiment_by_name("lxn-scans").experiment_id]))
    refusals = {
        "credentials in --out": ([*base, "--tracking-uri", tracking, "--out", f"s3://key:{SECRETS['out-pw']}@{bucket}/r"],
                                 "invalid S3 URI"),
        "a token in the tracking URI": ([*base, "--out", f"s3://{bucket}/r2", "--tracking-uri",
                                         f"{world['server']}/?token={SECRETS['tracking-token']}"], "MLFLOW_TRACKING_TOKEN"),
        "a one-slash typo": ([*base, "--tracking-uri", tracking, "--out", f"s3:/{bucket}/typo"], f"write s3://{bucket}/typo"),
        "a missing manifest with a token": ([*base, "--tracking-uri", tracking, "--out", f"s3://{bucket}/r3",
                                             "--manifest", f"s3://{bucket}/{MANIFEST_KEY}"],
                                            f"no such object: s3://{bucket}/lists/missing.txt"),
        "a missing bucket": ([*base, "--tracking-uri", tracking, "--out", "s3://lxn-no-such-bucket-here/r"],
                             "cannot write the scan report to s3://lxn-no-such-bucket-here/r"),
        "the colon forgotten": ([*base, "--tracking-uri", tracking, "--out", f"s3//{bucket}/typo"],
                                f"typo for s3://{bucket}/typo; to mean the local folder, write ./s3//{bucket}/typo"),
        "a '/' in the tracking password": ([*base, "--out", f"s3://{bucket}/r4", "--tracking-uri",
                                            world["server"].replace("://", f"://lxn:{SECRETS['slash-pw']}/x@")],
                                           "unencoded '/'"),
        "a missing source folder": (["--model", "models:/redspot@champion", "--source", "/nonexistent/media",
                                     "--tracking-uri", tracking, "--out", f"s3://{bucket}/r5"],
                                    "cannot list the --source /nonexistent/media"),
        "a missing source bucket": (["--model", "models:/redspot@champion", "--source", "s3://lxn-no-such-bucket-2/m",
                                     "--tracking-uri", tracking, "--out", f"s3://{bucket}/r6"],
                                    "cannot list the --source s3://lxn-no-such-bucket-2/m"),
        "a version without a digest": (["--model", "models:/legacy@champion", "--date", DATE, "--source",
                                        f"s3://{bucket}/media", "--tracking-uri", tracking, "--out", f"s3://{bucket}/r7"],
                                       "has no lxn.pt2_sha256 tag"),
    }
    assert set(uri_settings(ScanConfig)) == {"source", "manifest", "out", "tracking_uri"}  # each is planted here or in world
    for name, (args, message) in refusals.items():
        code, out, err = _scan_in_process(args, monkeypatch, capsys, tmp_path)
        assert code == 2, (name, err)
        assert message in err and "Traceback" not in err, (name, err)
        assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, (name, err)
        assert all(secret not in out + err for secret in SECRETS.values()), (name, err)
    assert list(tmp_path.iterdir()) == []  # nothing written locally (no ./s3:/ directory)
    assert len(client.search_runs([client.get_experiment_by_name("lxn-scans").experiment_id])) == runs_before


def test_a_masked_secret_still_names_the_prefix_that_was_scanned(world):
    bucket = world["bucket"]
    masked = f"s3://{bucket}/extra?X-Amz-Signature=***"
    client = mlflow.MlflowClient(tracking_uri=world["server"])
    [run] = client.search_runs([client.get_experiment_by_name("lxn-scans").experiment_id],
                               filter_string=f"params.out = 's3://{bucket}/reports'")
    assert masked in run.data.params["source"]
    layout = Layout(f"s3://{bucket}/reports")
    [summary] = layout.summaries(latest_date(layout))
    assert masked in json.loads(storage.read_text(summary))["sources"]


def _texts_under(path: Path):
    for file in path.rglob("*"):
        if file.is_file():
            yield str(file), file.read_bytes()


def test_no_planted_secret_reaches_any_output(world):
    bucket = world["bucket"]
    outputs: list[tuple[str, bytes]] = []
    for name, done in world["runs"].items():
        outputs.append((f"{name} stdout+stderr", (done.stdout + done.stderr).encode()))
    outputs += list(_texts_under(world["tmp"]))  # server.db, artifacts, the server's log
    client = boto3.client("s3")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            if item["Key"].startswith(("reports", "_")):  # everything the scans wrote
                outputs.append((item["Key"], client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()))
    for logs in glob.glob("/tmp/lxnray-*/session_latest/logs"):
        outputs += list(_texts_under(Path(logs)))
    assert any(key.startswith("reports/_scans/") for key, _ in outputs)  # the scan outputs are really in the list
    secrets = [*SECRETS.values(), os.environ["AWS_SECRET_ACCESS_KEY"]]
    leaks = [(where, secret) for where, data in outputs for secret in secrets if secret.encode() in data]
    assert leaks == []
