"""Starting or joining Ray from a job's driver."""

from __future__ import annotations

import logging
import os

__all__ = ["init_ray"]

log = logging.getLogger(__name__)


def init_ray(min_cpus: int = 1) -> None:
    """Join the cluster in RAY_ADDRESS (set by `ray job submit`), else start a local one.

    A local instance advertises at least `min_cpus` logical CPUs, even on a smaller machine:
    training workers each hold their CPUs for the whole run, and Ray Data's read and decode
    stages need slots of their own beside them, or the job waits forever for a free CPU.
    """
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
        return
    cpus = max(os.cpu_count() or 1, min_cpus)
    log.info("starting a local Ray instance with %d logical CPUs", cpus)
    ray.init(num_cpus=cpus)
