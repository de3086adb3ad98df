"""Faults on real components, each followed by the run that must repair it: exactly one copy of
every row afterwards, and nothing left behind.

* SIGKILL at every publishing step of a finished scan (local disk and S3): `tests/kill_at.py`
  kills the committing process on entry to its N-th storage call, for every N; the next scan job's
  `recover` finishes the commit.
* SIGKILL of `jobs/scan.py` during its listing, then of the re-run during its scanning, at
  seeded random points; the third run completes the same scan.
* S3 faults on every kind of call (503 SlowDown, 500 InternalError, bodies cut mid-stream) from a
  proxy on the wire (`tests/faulty_s3.py`), under a whole scan: driver, Ray workers and pyarrow.
* A full disk under the local staging directory (a small tmpfs): a clear error, nothing
  published, and the re-run completes once there is room.

The training driver and a training worker are SIGKILLed in tests/integration/test_train.py.
Totals (kill points tried, rows lost, rows duplicated) are printed at the end of the module.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import mlflow
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lxn import storage
from lxn.scan.config import ScanConfig
from lxn.scan.pipeline import run
from lxn.scan.report import list_files, read_manifest, recover
from lxn.tracking import RunTracker
from tests.faulty_s3 import FaultyS3
from tests.known_models import register_redspot
from tests.staged_scans import prepare

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DATE = "2025-08-01"
OBJECTS = 48
TOTALS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_totals():
    yield
    print(f"\nfault suite: {TOTALS['kills']} kills tried, {TOTALS['rows_lost']} rows lost, "
          f"{TOTALS['rows_duplicated']} rows duplicated, {TOTALS['s3_faults']} S3 faults injected")


def _account(expected: list[str], found: list[str]) -> None:
    """Count (and then assert) rows lost and duplicated against the objects that should be there."""
    counts = Counter(found)
    TOTALS["rows_lost"] += len(set(expected) - set(counts))
    TOTALS["rows_duplicated"] += sum(c - 1 for c in counts.values() if c > 1)
    assert sorted(found) == sorted(expected)


def _report_uris(out: str) -> list[str]:
    uris = []
    for uri in list_files(out):
        if "/dt=" in uri and uri.endswith(".parquet"):
            uris += pq.read_table(io.BytesIO(storage.read_bytes(uri)), columns=["uri"])["uri"].to_pylist()
    return uris


def _kill_at(n: int, functions: list[str], *command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tests/kill_at.py", str(n), *functions, "--", *command], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, capture_output=True, text=True,
                          timeout=600)


def _no_debris(out: str) -> None:
    leftovers = [u for u in list_files(out, suffix="") if u.endswith(".tmp") or "/_staging/" in u]
    assert leftovers == []
    if not storage.is_s3(out):
        assert not os.path.exists(os.path.join(out, "_staging"))
        assert [d for d, subdirs, files in os.walk(out) if not subdirs and not files] == []  # no empty folder


# ------------------------------------------------------------------------- publishing, every step


COMMIT = "from lxn.scan.report import Layout, finish_commit; import sys; finish_commit(Layout(sys.argv[1]), sys.argv[2])"
PUBLISH_STEPS = ["lxn.scan.report:_merge", "arrow:move", "lxn.storage:write_bytes", "lxn.storage:delete_prefix", "os:replace"]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_kill_at_any_publishing_step_is_finished_by_the_next_job(where, tmp_path, s3_bucket):
    def root(i: int) -> str:
        return str(tmp_path / f"reports-{i}") if where == "local" else f"s3://{s3_bucket}/reports-{i}"

    layout, listing = prepare(root(0), "dry")
    dry = _kill_at(0, PUBLISH_STEPS, "-c", COMMIT, layout.out, "dry")
    assert dry.returncode == 0, dry.stderr[-2000:]
    steps = int(dry.stdout.split("CALLS ")[1])
    assert steps >= 5  # merge, move, summary, covered set, _SUCCESS (+ renames on a local disk)
    for n in range(1, steps + 1):
        layout, listing = prepare(root(n), f"scan-{n}")
        killed = _kill_at(n, PUBLISH_STEPS, "-c", COMMIT, layout.out, f"scan-{n}")
        assert killed.returncode == -9, (n, killed.stderr[-2000:])
        TOTALS["kills"] += 1
        recovered = recover(layout)  # what the next scan job on this report root does first
        manifest = read_manifest(layout, f"scan-{n}")
        assert manifest is not None and manifest["report"]["rows"] == listing.num_rows, n
        assert [m["scan_id"] for m in recovered] in ([], [f"scan-{n}"])
        _account(listing["uri"].to_pylist(), _report_uris(layout.out))
        _no_debris(layout.out)


# ------------------------------------------------------------------------- a real scan job, killed twice


def _jpeg(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 36), ((i * 53) % 256, (i * 97) % 256, 120)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def media(s3_endpoint, tmp_path_factory):
    """A bucket of OBJECTS small images under media/, and a sqlite store with redspot@champion."""
    bucket = f"lxn-faults-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=bucket)
    keys = [f"media/{i:03d}.jpg" for i in range(OBJECTS)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=bucket, Key=keys[i], Body=_jpeg(i)), range(OBJECTS)))
    store = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    register_redspot(RunTracker.start("lxn-test", "register", store))
    return bucket, [f"s3://{bucket}/{k}" for k in keys], store


def test_scan_killed_while_listing_then_while_scanning_is_finished_by_the_third_run(media, ray_head):
    bucket, uris, store = media
    out = f"s3://{bucket}/killed"
    flags = ["jobs/scan.py", "--source", f"s3://{bucket}/media", "--out", out, "--model", "models:/redspot@champion",
             "--tracking-uri", store, "--date", DATE, "--batch-size", "8", "--fetch-threads", "4",
             "--listing-chunk", "12", "--checkpoint-rows", "8"]
    env = {"RAY_ADDRESS": ray_head[0]}
    rng = random.Random(12)
    chunk = rng.randint(2, OBJECTS // 12)            # dies writing this listing chunk (1-based)
    part = rng.randint(2, OBJECTS // 8 - 1)          # dies staging this result part
    listing = _kill_at(chunk, ["lxn.scan.listing:_chunk_uri"], *flags, env=env)
    assert listing.returncode == -9, listing.stderr[-3000:]
    assert list_files(f"{out}/_scans", suffix="_SUCCESS") == []
    scanning = _kill_at(part, ["lxn.scan.report:StagedResults.flush"], *flags, env=env)
    assert scanning.returncode == -9, scanning.stderr[-3000:]
    staged = [u for u in list_files(f"{out}/_staging") if "/results/" in u]
    assert len(staged) == part - 1  # the parts before the kill are kept for the re-run
    staged_rows = sum(pq.read_metadata(io.BytesIO(storage.read_bytes(u))).num_rows for u in staged)
    TOTALS["kills"] += 2
    final = subprocess.run([sys.executable, *flags], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env},
                           capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    assert f"{staged_rows} rows from an earlier attempt" in final.stdout  # resumed, not redone
    _account(uris, _report_uris(out))
    _no_debris(out)
    client = mlflow.MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("lxn-scans").experiment_id],
                              filter_string=f"params.out = '{out}'")
    assert [r.info.status for r in runs] == ["FINISHED"]  # the killed attempts' run was continued, not doubled


# ------------------------------------------------------------------------- S3 faults on every call


@pytest.fixture
def faulty_cluster(media, ray_head, s3_endpoint, monkeypatch):
    """This process and its Ray workers talk to S3 through the faulty proxy."""
    import ray

    with FaultyS3(s3_endpoint, every=3) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        storage.clear_client_cache()
        ray.init(address=ray_head[0], log_to_driver=False,
                 runtime_env={"env_vars": {"AWS_ENDPOINT_URL": proxy.url}})
        try:
            yield proxy
        finally:
            ray.shutdown()
            storage.clear_client_cache()


def test_a_scan_through_s3_faults_on_every_kind_of_call_loses_nothing(media, faulty_cluster):
    bucket, uris, store = media
    out = f"s3://{bucket}/faulty"
    result = run(ScanConfig(source=[f"s3://{bucket}/media"], out=out, model="models:/redspot@champion",
                            tracking_uri=store, date=DATE, batch_size=8, fetch_threads=4, checkpoint_rows=16))
    assert result.manifest["counts"]["ok"] == OBJECTS  # every fault was retried: no row is an error
    _account(uris, _report_uris(out))
    kinds = faulty_cluster.faulted_kinds()
    assert {"ListObjects", "GetObject", "HeadObject", "PutObject", "CopyObject", "DeleteObjects"} <= kinds
    assert {fault for _, fault in faulty_cluster.faults} == {"slow_down", "internal", "cut"}
    TOTALS["s3_faults"] += sum(faulty_cluster.faults.values())


# ------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (needs root, as CI has); yields its path."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_staging_disk_fails_clearly_publishes_nothing_and_the_rerun_completes(media, ray_cluster, small_disk):
    bucket, uris, store = media
    out = small_disk / "reports"
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # leave room for the listing, not for the results
        f.write(b"\0" * (4 * 2**20 - 16 * 2**10))
    settings = dict(source=[f"s3://{bucket}/media"], out=str(out), model="models:/redspot@champion", tracking_uri=store,
                    date=DATE, batch_size=8, fetch_threads=4, checkpoint_rows=8)
    with pytest.raises(OSError, match="No space left on device"):
        run(ScanConfig(**settings))
    assert _report_uris(str(out)) == [] and list_files(str(out / "_scans")) == []  # nothing published
    filler.unlink()
    result = run(ScanConfig(**settings))
    assert result.manifest["counts"]["scanned"] == OBJECTS
    _account(uris, _report_uris(str(out)))
    _no_debris(str(out))
    shutil.rmtree(out)


# ------------------------------------------------------------------------- one writer per report root


def test_two_scans_started_together_on_one_root_give_one_report(media, ray_head, tmp_path):
    """Both reach the lease at a barrier: one scans, the other exits at once (--lease-wait 0) or
    waits and then finds the scan committed; every row once either way."""
    bucket, uris, store = media
    out = f"s3://{bucket}/overlap"
    flags = ["jobs/scan.py", "--source", f"s3://{bucket}/media", "--out", out, "--model", "models:/redspot@champion",
             "--tracking-uri", store, "--date", DATE, "--batch-size", "8", "--fetch-threads", "4"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ray_head[0]}
    barrier = tmp_path / "barrier"
    jobs = [subprocess.Popen([sys.executable, "tests/meet_at.py", str(barrier), "2", "lxn.scan.pipeline:Lease", "--",
                              *flags, "--lease-wait", wait], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for wait in ("0", "300")]
    (quick_out, quick_err), (patient_out, patient_err) = [job.communicate(timeout=600) for job in jobs]
    quick, patient = jobs
    if quick.returncode == 0:  # the quick one won; the patient one waited and found the scan done
        assert patient.returncode == 0 and "was already committed" in patient_out, patient_err[-2000:]
    else:  # the patient one won; the quick one was told who holds the root
        assert quick.returncode == 2 and patient.returncode == 0, (quick_err[-2000:], patient_err[-2000:])
        assert "holds its lease" in quick_err and "Traceback" not in quick_err
    _account(uris, _report_uris(out))
    _no_debris(out)
    assert not storage.exists(f"{out}/_lease.json")


def test_damaged_and_planted_staging_is_quarantined_and_the_scan_goes_on(media, ray_cluster):
    from lxn.scan.report import StagedResults
    from tests.staged_scans import staged

    bucket, uris, store = media
    out = f"s3://{bucket}/planted"
    prepare(out, "evil", date="../../../victim")  # its recovery would have published to s3://<bucket>/victim/
    layout, listing = prepare(out, "twice")  # what two overlapping runs of one scan could leave: a row twice
    writer = StagedResults(layout.results("twice"), checkpoint_rows=100, checkpoint_seconds=3600)
    writer.add(staged(listing.slice(0, 1), "twice"))
    writer.flush()
    settings = ScanConfig(source=[f"s3://{bucket}/media"], out=out, model="models:/redspot@champion",
                          tracking_uri=store, date=DATE, batch_size=8, fetch_threads=4)
    assert run(settings).manifest["counts"]["ok"] == OBJECTS  # the damage blocks nothing
    assert list(storage.iter_objects(f"s3://{bucket}/victim")) == []  # nothing written outside --out
    quarantined = sorted(storage.basename(p).rsplit("-", 1)[0] for p in storage.iter_prefixes(f"{out}/_quarantine"))
    assert quarantined == ["evil", "twice"]
    _account(uris, _report_uris(out))
    _no_debris(out)
    assert run(settings).already_committed  # and the next night's recovery finds nothing left to fail on
