"""The report root's lease on S3 (moto over HTTP): conditional puts make one holder, a killed
holder's lease expires and is taken over by exactly one scan, and the old holder learns it lost."""

from __future__ import annotations

import json
import threading
import time

import pytest

from lxn import storage
from lxn.scan.layout import Layout
from lxn.scan.lease import Lease, LeaseLost, ReportRootBusy


def test_one_holder_and_the_lease_goes_with_it(s3_bucket):
    layout = Layout(f"s3://{s3_bucket}/reports")
    with Lease(layout, "first"):
        record = json.loads(storage.read_text(layout.lease()))
        assert record["scan_id"] == "first" and record["expires_at"] > time.time()
        with pytest.raises(ReportRootBusy, match="scan first .* until"):
            Lease(layout, "second").acquire()
    assert not storage.exists(layout.lease())
    with Lease(layout, "second"):
        pass


def test_a_killed_holder_expires_and_exactly_one_scan_takes_over(s3_bucket):
    layout = Layout(f"s3://{s3_bucket}/reports")
    dead = Lease(layout, "killed", ttl_s=1.0)
    dead.acquire()
    dead._stop.set()  # a killed process renews nothing and releases nothing
    with pytest.raises(ReportRootBusy):
        Lease(layout, "early").acquire()
    time.sleep(1.2)
    barrier, won, busy = threading.Barrier(4), [], []

    def take(name: str) -> None:
        lease = Lease(layout, name, ttl_s=30)
        barrier.wait()
        try:
            lease.acquire()
            won.append(lease)
        except ReportRootBusy:
            busy.append(name)

    threads = [threading.Thread(target=take, args=(f"s{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(busy) == 3
    assert json.loads(storage.read_text(layout.lease()))["scan_id"] == won[0].scan_id
    # the old holder, had it only stalled, finds out before it publishes
    dead._stop.clear()
    dead.ttl_s = 0.04
    dead._renew_loop()
    with pytest.raises(LeaseLost, match="re-run the scan"):
        dead.check()
    won[0].release()


def test_the_holder_renews_before_it_expires(s3_bucket):
    layout = Layout(f"s3://{s3_bucket}/reports")
    with Lease(layout, "long", ttl_s=0.8) as lease:
        time.sleep(1.5)  # two TTLs: alive only through renewals
        with pytest.raises(ReportRootBusy):
            Lease(layout, "other").acquire()
        lease.check()


def test_a_holder_killed_on_this_machine_is_taken_over_at_once(s3_bucket, s3_endpoint):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    out = f"s3://{s3_bucket}/reports"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lxn.scan.layout import Layout; from lxn.scan.lease import Lease; "
         "Lease(Layout(sys.argv[1]), 'killed').acquire(); print('held', flush=True); time.sleep(600)", out],
        cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ReportRootBusy, match="scan killed"):  # alive: it holds the root
            Lease(Layout(out), "next").acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with Lease(Layout(out), "next"):  # dead here: no 2-minute wait
            pass
    finally:
        holder.kill()
