"""Interleaved timing: every candidate runs once per round, so drift on a shared machine (another
process waking up, thermal throttling) hits all of them alike instead of whichever ran last.
The order rotates from round to round, so no candidate always runs right after the same
neighbour (and inherits its cache footprint)."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved_medians(
    calls: dict[str, Callable[[], object]], rounds: int, warmup: int, sync: Callable[[], None] = lambda: None
) -> dict[str, float]:
    """Median seconds per call of each named callable, after `warmup` untimed calls each."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn = calls[name]
            start = time.perf_counter()
            fn()
            sync()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}
