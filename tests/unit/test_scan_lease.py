"""The report root's lease on a local disk: one holder at a time, released by death as by exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lxn.scan.layout import Layout
from lxn.scan.lease import Lease, ReportRootBusy

REPO = Path(__file__).resolve().parents[2]


def test_one_holder_at_a_time_and_the_second_is_told_who(tmp_path):
    layout = Layout(str(tmp_path / "reports"))
    with Lease(layout, "2025-06-01-first"):
        with pytest.raises(ReportRootBusy) as busy:
            Lease(layout, "2025-06-01-second").acquire()
        message = str(busy.value)
        assert "scan 2025-06-01-first" in message and f"pid {os.getpid()}" in message and "--lease-wait" in message
    with Lease(layout, "2025-06-01-second"):  # released on exit
        pass
    assert os.listdir(tmp_path / "reports") == []  # the lease file goes with its holder


def test_a_waiting_scan_gets_the_lease_when_the_holder_is_done(tmp_path):
    layout = Layout(str(tmp_path / "reports"))
    first = Lease(layout, "a").acquire()
    threading.Timer(0.5, first.release).start()
    started = time.monotonic()
    with Lease(layout, "b", wait_s=30, poll_s=0.05):
        assert time.monotonic() - started >= 0.4


def test_a_killed_holder_releases_the_lease_at_once(tmp_path):
    out = tmp_path / "reports"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lxn.scan.layout import Layout; from lxn.scan.lease import Lease; "
         "Lease(Layout(sys.argv[1]), 'killed').acquire(); print('held', flush=True); time.sleep(600)", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ReportRootBusy, match="scan killed"):
            Lease(Layout(str(out)), "next").acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with Lease(Layout(str(out)), "next"):  # no expiry to wait for
            pass
    finally:
        holder.kill()


def test_two_racing_for_a_released_lease_never_both_hold_it(tmp_path):
    """A waiter that locked the file its holder unlinked must not hold the lease beside a newcomer."""
    layout = Layout(str(tmp_path / "reports"))
    holders, errors = [], []
    lock = threading.Lock()

    def contend(name: str) -> None:
        for _ in range(30):
            try:
                lease = Lease(layout, name).acquire()
            except ReportRootBusy:
                continue
            with lock:
                holders.append(name)
                if len(holders) > 1:
                    errors.append(list(holders))
            time.sleep(0.001)
            with lock:
                holders.remove(name)
            lease.release()

    threads = [threading.Thread(target=contend, args=(f"s{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
