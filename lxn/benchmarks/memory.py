"""Peak memory of a job and everything it starts (Ray's daemons and workers included).

Read from /proc (Linux): the RSS of the job's own process, and the PSS of its whole process
tree. PSS divides each shared page (Ray's object store, shared libraries) among the processes
that map it, so the tree's total counts it once, where a sum of RSS would count it in every
worker.
"""

from __future__ import annotations

import os
import threading

__all__ = ["tree_memory", "tree_processes", "PeakMemory"]


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


def _title(pid: int) -> str:
    """What a process is: Ray retitles its workers ("ray::MapBatches(...)", "ray::IDLE")."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "?"
    first = argv[0].decode(errors="replace")
    if first.startswith("ray::"):
        return first.split("(")[0].strip()  # one name per operator, whatever its arguments
    return os.path.basename(first.split()[0]) if first else "?"


def tree_processes(pid: int) -> list[tuple[int, str, int]]:
    """(pid, title, PSS bytes) of `pid` and all its descendants."""
    tree, pending, found = _children(), [pid], []
    while pending:
        current = pending.pop()
        found.append((current, _title(current), _kib(f"/proc/{current}/smaps_rollup", "Pss:") * 1024))
        pending.extend(tree.get(current, ()))
    return found


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS of `pid`, PSS of `pid` and all its descendants), in bytes."""
    total = sum(pss for _, _, pss in tree_processes(pid))
    return _kib(f"/proc/{pid}/status", "VmRSS:") * 1024, total


class PeakMemory:
    """Samples `tree_memory(pid)` in a background thread; after the `with` block, `driver_mb`
    is the peak RSS of `pid`, `tree_mb` the peak PSS of its process tree, and `tree_at_peak` that
    tree's PSS by process title at its peak ({title: (processes, MiB)}): what the memory is."""

    def __init__(self, pid: int | None = None, interval_s: float = 0.2) -> None:
        if not os.path.exists("/proc/self/smaps_rollup"):
            raise RuntimeError("memory figures read /proc (Linux only)")
        self.pid = pid if pid is not None else os.getpid()
        self.interval_s = interval_s
        self.driver_mb = 0.0
        self.tree_mb = 0.0
        self.tree_at_peak: dict[str, tuple[int, float]] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        processes = tree_processes(self.pid)
        self.driver_mb = max(self.driver_mb, _kib(f"/proc/{self.pid}/status", "VmRSS:") / 2**10)
        total = sum(pss for _, _, pss in processes) / 2**20
        if total > self.tree_mb:
            self.tree_mb = total
            by_title: dict[str, tuple[int, float]] = {}
            for _, title, pss in processes:
                count, mb = by_title.get(title, (0, 0.0))
                by_title[title] = (count + 1, mb + pss / 2**20)
            self.tree_at_peak = dict(sorted(by_title.items(), key=lambda kv: -kv[1][1]))

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
