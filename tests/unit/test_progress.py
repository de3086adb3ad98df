"""Progress lines when the bars are off: counts, rate and ETA, every few seconds and at the end."""

from __future__ import annotations

import logging
import time

from lxn.progress import Heartbeat, progress_line


def test_a_line_says_how_far_how_fast_and_how_long_to_go():
    assert progress_line("loaded", 250, 1000, 10.0) == "loaded: 250/1,000 (25%), 25.0/s, ETA 0:00:30"
    assert progress_line("loaded", 0, 1000, 10.0) == "loaded: 0/1,000 (0%), 0.0/s"  # no ETA from nothing
    assert progress_line("loaded", 1200, 1000, 10.0) == "loaded: 1,000/1,000 (100%), 100.0/s"  # a partial last block
    assert progress_line("x", 1, 10_000, 1.0).endswith("ETA 2:46:39")


def test_the_heartbeat_logs_while_the_work_runs_and_once_at_the_end(caplog):
    done = {"n": 0}
    calls = iter([RuntimeError("listing failed once")])

    def count():
        error = next(calls, None)
        if error:
            raise error
        return done["n"]

    log = logging.getLogger("lxn.test.progress")
    with caplog.at_level("INFO", logger="lxn.test.progress"), Heartbeat(log, "work", 10, count, every_s=0.02):
        for _ in range(10):
            done["n"] += 1
            time.sleep(0.02)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 3 and lines[-1].startswith("work: 10/10 (100%)")  # a failed count was skipped
