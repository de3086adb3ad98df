"""Starting or joining Ray from a job's driver, and what the cluster it joined can offer."""

from __future__ import annotations

import dataclasses
import logging
import math
import os

__all__ = ["ClusterShape", "cluster_shape", "init_ray", "keep_local_ray_on_loopback", "ray_address", "read_parquet"]

log = logging.getLogger(__name__)

# Ray's switch for its single-node mode (named for macOS and Windows, where it is the default):
# with it off, every address Ray advertises is 127.0.0.1 instead of the machine's routable one.
_MULTI_NODE_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def keep_local_ray_on_loopback() -> None:
    """Make the Ray this process starts (or joins on this machine) advertise 127.0.0.1 only.

    A local instance serves no other node, yet Ray advertises the address it would use to reach
    the internet, and a sandboxed machine may refuse connections to that address from itself
    (our CI did: "Failed to connect to Ray cluster at 192.0.2.2"). Ray reads the switch when it is
    imported, so set both the variable (for the daemons and workers started from here) and the
    constant (for this process, which may have imported Ray already). An explicit setting wins.
    """
    if os.environ.get(_MULTI_NODE_SWITCH) is not None:
        return
    os.environ[_MULTI_NODE_SWITCH] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def init_ray(min_cpus: int = 1, address: str | None = None, object_store_mb: int | None = None) -> None:
    """Join the cluster at `address` or in RAY_ADDRESS (set by `ray job submit`), else start a
    local one on loopback.

    A local instance advertises at least `min_cpus` logical CPUs, even on a smaller machine:
    training workers each hold their CPUs for the whole run, and Ray Data's read and decode
    stages need slots of their own beside them, or the job waits forever for a free CPU.
    `object_store_mb` sizes its object store (default: Ray's, 30% of memory).
    """
    import ray

    if ray.is_initialized():
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address)
        return
    keep_local_ray_on_loopback()
    cpus = max(os.cpu_count() or 1, min_cpus)
    log.info("starting a local Ray instance with %d logical CPUs", cpus)
    ray.init(num_cpus=cpus, object_store_memory=object_store_mb * 2**20 if object_store_mb else None)


def read_parquet(paths: str | list[str], filesystem=None):
    """`ray.data.read_parquet` through Ray Data's file-based Parquet datasource (V1).

    Ray 2.60's default, DataSourceV2, lists files and samples footers through a pool of actors it
    starts for each read (32 by default): a fixed 3-6 s per read on a warm local cluster here,
    against 0.3-0.7 s with V1 (4 files of 12 rows), and a burst of idle processes (2 GB in the
    prepare benchmark). lxn reads the folders and files it wrote itself: V2's listing buys nothing;
    training reads three datasets an epoch."""
    import ray.data

    context = ray.data.DataContext.get_current()
    saved, context.use_datasource_v2 = context.use_datasource_v2, False
    try:
        return ray.data.read_parquet(paths, filesystem=filesystem)
    finally:
        context.use_datasource_v2 = saved


def ray_address(explicit: str | None = None) -> str | None:
    """The cluster a job joins: `explicit`, else RAY_ADDRESS (set by `ray job submit`), else None
    (the job starts a local, single-node Ray)."""
    return explicit or os.environ.get("RAY_ADDRESS") or None


@dataclasses.dataclass(frozen=True)
class ClusterShape:
    """The Ray cluster this process is connected to: now, and at most (with its autoscaler)."""

    nodes: int                          # alive nodes now
    max_nodes: float                    # what the autoscaler may grow it to (inf: unbounded)
    resources: dict[str, float]         # ray.cluster_resources() now
    max_resources: dict[str, float]     # the most the autoscaler's node types can add up to

    @property
    def multi_node(self) -> bool:
        """More than one node now, or an autoscaler that can start another."""
        return self.nodes > 1 or self.max_nodes > 1

    def can_provide(self, resource: str, amount: float = 1.0) -> bool:
        return max(self.resources.get(resource, 0.0), self.max_resources.get(resource, 0.0)) >= amount

    def describe(self) -> str:
        grow = "" if self.max_nodes <= self.nodes else (
            ", autoscaling to " + ("any number of nodes" if math.isinf(self.max_nodes) else f"{self.max_nodes:g} nodes"))
        return f"{self.nodes} node{'s' if self.nodes != 1 else ''}{grow}"


def cluster_shape() -> ClusterShape:
    """The shape of the connected cluster (call after `init_ray`). The autoscaler's node types
    come from the cluster config it publishes in the GCS, as Ray Train and Ray Data read it; a
    cluster without an autoscaler (plain `ray start`) is as it is now."""
    import ray
    from ray._private import state

    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    resources = {k: float(v) for k, v in ray.cluster_resources().items()}
    max_nodes: float = nodes
    max_resources: dict[str, float] = {}
    try:
        config = state.state.get_cluster_config()
        limits = state.state.get_max_resources_from_cluster_config()
    except Exception:  # noqa: BLE001 - no autoscaler config: the cluster is what it is
        config, limits = None, None
    if config is not None and config.node_group_configs:
        counts = [g.max_count for g in config.node_group_configs]
        max_nodes = math.inf if any(c == -1 for c in counts) else max(float(sum(counts)), nodes)
    if limits:
        max_resources = {k: float(v) for k, v in limits.items()}
    return ClusterShape(nodes=nodes, max_nodes=max_nodes, resources=resources, max_resources=max_resources)
