"""Peak memory of a job and everything it starts (Ray's daemons and workers included).

Read from /proc (Linux): the RSS of the job's own process, and the PSS of its whole process
tree. PSS divides each shared page (Ray's object store, shared libraries) among the processes
that map it, so the tree's total counts it once, where a sum of RSS would count it in every
worker.
"""

from __future__ import annotations

import os
import threading

__all__ = ["tree_memory", "PeakMemory"]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _kib(path: str, field: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS of `pid`, PSS of `pid` and all its descendants), in bytes."""
    tree, pending, total = _children(), [pid], 0
    while pending:
        current = pending.pop()
        total += _kib(f"/proc/{current}/smaps_rollup", "Pss:")
        pending.extend(tree.get(current, ()))
    return _kib(f"/proc/{pid}/status", "VmRSS:") * 1024, total * 1024


class PeakMemory:
    """Samples `tree_memory(pid)` in a background thread; after the `with` block, `driver_mb`
    is the peak RSS of `pid` and `tree_mb` the peak PSS of its process tree."""

    def __init__(self, pid: int | None = None, interval_s: float = 0.2) -> None:
        if not os.path.exists("/proc/self/smaps_rollup"):
            raise RuntimeError("memory figures read /proc (Linux only)")
        self.pid = pid if pid is not None else os.getpid()
        self.interval_s = interval_s
        self.driver_mb = 0.0
        self.tree_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        rss, pss = tree_memory(self.pid)
        self.driver_mb = max(self.driver_mb, rss / 2**20)
        self.tree_mb = max(self.tree_mb, pss / 2**20)

    def _run(self) -> None:
        while not self._done.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
