"""Progress lines for jobs whose Ray Data progress bars are off (cron and RayJob logs): a thread
that every `every_s` seconds logs how much of a known total is done, the rate and an ETA."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

__all__ = ["Heartbeat", "progress_line"]


def progress_line(what: str, done: int, total: int, elapsed_s: float) -> str:
    """`what: done/total (pct), rate/s, ETA h:mm:ss` (no ETA before anything is done)."""
    done = min(done, total)
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    line = f"{what}: {done:,}/{total:,} ({100 * done / max(total, 1):.0f}%), {rate:,.1f}/s"
    if 0 < done < total and rate > 0:
        eta = int((total - done) / rate)
        line += f", ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}"
    return line


class Heartbeat:
    """`with Heartbeat(log, "loaded images", total, count, every_s=30):` logs `progress_line` of
    `count()` every `every_s` seconds while the block runs (a failing count is skipped, never
    raised: progress must not fail the job), and once more when it ends."""

    def __init__(self, log: logging.Logger, what: str, total: int, count: Callable[[], int], *,
                 every_s: float = 30.0) -> None:
        self.log, self.what, self.total, self.count, self.every_s = log, what, total, count, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress: {what}", daemon=True)

    def _line(self) -> None:
        try:
            done = int(self.count())
        except Exception as exc:  # noqa: BLE001 - a listing that failed once: the next one may not
            self.log.debug("progress of %s unknown: %s", self.what, exc)
            return
        self.log.info(progress_line(self.what, done, self.total, time.monotonic() - self._started))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._line()

    def __enter__(self) -> "Heartbeat":
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        if exc_info[0] is None:
            self._line()
