"""Before any work: refuse what the other nodes of a multi-node cluster cannot reach.

On one machine every path and sqlite file is everyone's. On a cluster each node has its own
disk: a rank-0 training worker on another node would open its own empty `mlflow.db`, scan tasks
would report every object of a local `--source` as `missing`, and the embedded demo would write
into the job's temporary working directory on one node. When the job joins a cluster of more
than one node (or one whose autoscaler can add nodes), `check_reach` refuses, with one line:

* a sqlite or file MLflow tracking URI (point every node at an `mlflow server`);
* a local path in any input or output URI setting of the job's config (use s3://, or declare
  with `--shared-filesystem` that every node mounts the path at the same place);
* the embedded demo (give the job its data and outputs as URIs).
"""

from __future__ import annotations

import logging
from typing import Any

from lxn import storage
from lxn.config import uri_settings

__all__ = ["PreflightError", "reach_problems", "check_reach"]

log = logging.getLogger(__name__)


class PreflightError(ValueError):
    """What the other nodes of the cluster could not reach; the message says what to do."""


def _local(uri: str) -> bool:
    return not storage.is_s3(uri)


def _tracking_is_local(uri: str) -> bool:
    scheme = uri.split(":", 1)[0].lower() if "://" in uri or uri.startswith("sqlite:") else ""
    return scheme in ("", "sqlite", "file")


def reach_problems(config: Any, *, demo: bool, tracking_uri: str | None, shared_filesystem: bool) -> list[str]:
    """The reasons `config` cannot run across nodes (empty: it can). `tracking_uri` is the
    resolved store the job will use, or None when the job uses none."""
    problems = []
    if demo:
        problems.append("the embedded demo writes its generated data on one node: give the job its data and "
                        "outputs as s3:// URIs")
    if tracking_uri is not None and _tracking_is_local(tracking_uri):
        from lxn.redact import redact_uri

        problems.append(f"the MLflow store {redact_uri(tracking_uri)} is a file on one node (other nodes would "
                        "log to an empty store of their own): point --tracking-uri or MLFLOW_TRACKING_URI at an "
                        "mlflow server")
    if not shared_filesystem:
        for name, kind in uri_settings(type(config)).items():
            if kind not in ("input", "output"):
                continue
            value = getattr(config, name)
            for uri in value if isinstance(value, (list, tuple)) else [value]:
                if uri and _local(uri):
                    flag = "--" + name.replace("_", "-")
                    problems.append(f"{flag} {storage.normalize_uri(uri)} is a local path other nodes do not have: "
                                    "use an s3:// URI, or --shared-filesystem if every node mounts it at that path")
    return problems


def check_reach(config: Any, *, demo: bool = False, uses_tracking: bool = True, address: str | None = None) -> None:
    """Join the cluster the job runs on (if any) and raise PreflightError when it spans nodes and
    `config` names something only this node has. A job without a cluster address starts a local,
    single-node Ray: nothing to check, and nothing is started here."""
    from lxn.ray_utils import cluster_shape, init_ray, ray_address

    address = ray_address(address or getattr(config, "ray_address", None))
    if address is None:
        return
    init_ray(address=address)
    shape = cluster_shape()
    if not shape.multi_node:
        return
    tracking = None
    if uses_tracking:
        from lxn.tracking import resolve_tracking_uri

        tracking = resolve_tracking_uri(getattr(config, "tracking_uri", None))
    problems = reach_problems(config, demo=demo, tracking_uri=tracking,
                              shared_filesystem=bool(getattr(config, "shared_filesystem", False)))
    if problems:
        raise PreflightError(f"this Ray cluster has {shape.describe()}: " + "; ".join(problems))
    log.info("preflight: the job's inputs and outputs are reachable from every node of the cluster (%s)",
             shape.describe())
