"""Peak memory of a job and everything it starts (Ray's daemons and workers included)."""

from __future__ import annotations

import threading
import time

__all__ = ["PeakMemory"]


class PeakMemory:
    """Samples, in a background thread, the resident memory of this process and of every other
    process whose command line mentions `marker` (e.g. the Ray session directory), and keeps
    the peaks: `driver_mb` (this process) and `total_mb` (the sum over all of them at once).

    RSS counts pages shared between processes (Ray's object store) in each of them, so the
    total overstates; it is the trend between two sizes of the same job that matters.
    """

    def __init__(self, interval_s: float = 0.25, marker: str | None = None) -> None:
        self.interval_s = interval_s
        self.marker = marker
        self.driver_mb = 0.0
        self.total_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import os

        import psutil

        me = psutil.Process(os.getpid())
        driver = me.memory_info().rss
        total = driver
        for process in psutil.process_iter(["pid", "cmdline"]):
            try:
                if process.info["pid"] == me.pid:
                    continue
                cmdline = " ".join(process.info["cmdline"] or [])
                if (self.marker and self.marker in cmdline) or cmdline.startswith("ray::"):
                    total += process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self.driver_mb = max(self.driver_mb, driver / 2**20)
        self.total_mb = max(self.total_mb, total / 2**20)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
