"""Everything that talks to MLflow: runs, metrics, artifacts, model packaging and the registry.

* Tracking URI: an explicit argument, else MLFLOW_TRACKING_URI, else the embedded default
  `sqlite:///mlflow.db` (MLflow 3 refuses the old `./mlruns` file store). On a cluster point
  it at an `mlflow server`, whose artifacts may live in S3 (MLFLOW_S3_ENDPOINT_URL for
  S3-compatible stores); with the server proxying artifacts, workers need no S3 credentials.
* Nothing secret is logged: params go through `safe_params`, URIs through `redact_uri`.
* A registered model is an `InferenceModel` (uint8 images at the preset size -> logits) exported
  with torch.export (MLflow's `pt2` format: loading it executes no pickled code), and it never
  travels without its class names, preprocessing preset and model config, which ride in the
  MLmodel metadata under the `lxn` key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import torch

import lxn
from lxn.presets import InferenceModel, Preset

__all__ = [
    "DEFAULT_TRACKING_URI",
    "TrackingError",
    "resolve_tracking_uri",
    "redact_uri",
    "safe_params",
    "check_tracking",
    "RunTracker",
    "ModelRef",
    "LoadedModel",
    "log_model",
    "load_model",
    "resolve_model_uri",
    "set_alias",
    "rebuild_eager",
    "registry_client",
    "classes_digest",
]

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
RUN_NAME_TAG = "lxn.run_name"
_SECRET_KEY = re.compile(r"(secret|password|passwd|token|credential|api[_-]?key|access[_-]?key|auth)", re.I)


class TrackingError(RuntimeError):
    """MLflow is unreachable or refused an operation; the message says which and what to check."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The argument, else MLFLOW_TRACKING_URI, else `sqlite:///mlflow.db`; a relative sqlite path
    is made absolute, because Ray workers that log or load models run in other directories."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def redact_uri(uri: str) -> str:
    """The URI without user:password@ and without its query string (which may carry tokens)."""
    parts = urlsplit(uri)
    if not parts.scheme or parts.scheme == "file":
        return uri
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def safe_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Flattened string params with anything secret-looking dropped and URIs redacted."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        if _SECRET_KEY.search(key):
            continue
        if isinstance(value, Mapping):
            flat.update({f"{key}.{k}": v for k, v in safe_params(value).items()})
            continue
        text = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
        if "://" in text:
            text = redact_uri(text)
        flat[key] = text[:6000]  # MLflow's param value limit
    return flat


def _client(uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def registry_client(uri: str | None = None):
    """An MlflowClient for the registry at `uri` (default: MLFLOW_TRACKING_URI, then sqlite)."""
    return _client(resolve_tracking_uri(uri))


def classes_digest(class_names: Sequence[str]) -> str:
    """A short fingerprint of a class list, to tell whether two models predict the same brands."""
    import hashlib

    return hashlib.sha256(json.dumps(list(class_names)).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _fluent(uri: str) -> Iterator[None]:
    """MLflow's model-logging API only works through its global tracking URI: set it briefly."""
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous) if previous else mlflow.set_tracking_uri(resolve_tracking_uri())


def check_tracking(uri: str | None = None) -> str:
    """Fail fast, before any training starts, if the tracking server cannot be reached."""
    uri = resolve_tracking_uri(uri)
    try:
        if urlsplit(uri).scheme in ("http", "https"):
            # One quick probe instead of the client's minutes of retries against a dead host.
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10) as response:
                response.read()
        _client(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any failure here means "cannot track"
        raise TrackingError(
            f"cannot reach the MLflow tracking store at {redact_uri(uri)} ({type(exc).__name__}); "
            "check MLFLOW_TRACKING_URI and that the server is up"
        ) from None
    return uri


def _local_artifact_location(uri: str, experiment: str) -> str | None:
    """For a local sqlite store, artifacts go beside the database (not into the current dir)."""
    if not uri.startswith("sqlite:///"):
        return None  # a tracking server chooses its own artifact store
    database = Path(uri[len("sqlite:///"):]).resolve()
    return (database.parent / "mlartifacts" / re.sub(r"[^A-Za-z0-9_.-]", "_", experiment)).as_uri()


class RunTracker:
    """One MLflow run, addressed by id (no global active run), resumable by run name.

    `RunTracker.start(experiment, run_name)` resumes the newest unfinished run tagged with the
    same run name, so a training job re-run after a crash keeps appending to the same run.
    """

    def __init__(self, uri: str, run_id: str) -> None:
        self.uri = uri
        self.run_id = run_id
        self.client = _client(uri)

    @classmethod
    def start(cls, experiment: str, run_name: str, uri: str | None = None) -> "RunTracker":
        uri = resolve_tracking_uri(uri)
        client = _client(uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(
            experiment, artifact_location=_local_artifact_location(uri, experiment)
        )
        previous = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}' and attributes.status != 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if previous:
            run_id = previous[0].info.run_id
            client.update_run(run_id, status="RUNNING")
            log.info("resuming MLflow run %s (%s)", run_id, run_name)
        else:
            run_id = client.create_run(experiment_id, run_name=run_name, tags={RUN_NAME_TAG: run_name}).info.run_id
        return cls(uri, run_id)

    @staticmethod
    def find_finished(experiment: str, run_name: str, uri: str | None = None):
        """The newest FINISHED run with this run name, or None."""
        client = _client(resolve_tracking_uri(uri))
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return None
        runs = client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        fresh = [Param(k, v) for k, v in safe_params(params).items() if k not in existing]
        for start in range(0, len(fresh), 100):
            self.client.log_batch(self.run_id, params=fresh[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric
        import time

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        self.client.log_batch(self.run_id, metrics=batch)

    def logged_steps(self, key: str) -> set[int]:
        """Steps at which metric `key` has been logged in this run."""
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_figure(self, figure, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """A registered model version: `models:/name/version`."""

    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclasses.dataclass
class LoadedModel:
    """A registered model ready to predict: `module(uint8 (B, S, S, 3)) -> logits (B, K)`."""

    module: torch.nn.Module
    preset: Preset
    class_names: list[str]
    model_config: dict[str, Any]
    ref: ModelRef | None
    metadata: dict[str, Any]


def _signature(image_size: int, num_classes: int):
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    # Unnamed tensor specs, so pyfunc passes a plain ndarray through (named ones become dicts).
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, image_size, image_size, 3))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, num_classes))]),
    )


def log_model(
    tracker: RunTracker,
    model: torch.nn.Module,
    *,
    preset: Preset,
    class_names: Sequence[str],
    model_config: Mapping[str, Any],
    registered_model: str | None = None,
    alias: str | None = "challenger",
    tags: Mapping[str, Any] | None = None,
) -> ModelRef | None:
    """Export `model` with its preprocessing, log it to the run, and register it with `alias`.

    Registration happens only after the model and its metadata are fully logged; if tagging or
    aliasing the new version fails, the version is deleted again, so a failure never leaves a
    half-registered model behind.
    """
    import mlflow

    num_classes = len(class_names)
    wrapped = InferenceModel(model, preset).eval().cpu()
    example = np.random.default_rng(0).integers(0, 256, (2, preset.image_size, preset.image_size, 3), dtype=np.uint8)
    metadata = {
        "lxn": {
            "class_names": list(class_names),
            "preset": preset.to_dict(),
            "model_config": dict(model_config),
            "lxn_version": lxn.__version__,
            "input": "uint8 RGB images (B, S, S, 3) at the preset's image_size; output: logits (B, K)",
        }
    }
    with _fluent(tracker.uri), mlflow.start_run(run_id=tracker.run_id):
        info = mlflow.pytorch.log_model(
            wrapped,
            name="model",
            signature=_signature(preset.image_size, num_classes),
            input_example=example,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            metadata=metadata,
        )
    if registered_model is None:
        return None
    client = tracker.client
    with _fluent(tracker.uri):
        version = mlflow.register_model(info.model_uri, registered_model).version
    ref = ModelRef(registered_model, str(version))
    try:
        client.set_model_version_tag(ref.name, ref.version, "run_id", tracker.run_id)
        client.set_model_version_tag(ref.name, ref.version, "classes_sha", classes_digest(class_names))
        for key, value in (tags or {}).items():
            client.set_model_version_tag(ref.name, ref.version, key, str(value))
        if alias:
            client.set_registered_model_alias(ref.name, alias, ref.version)
    except Exception:
        client.delete_model_version(ref.name, ref.version)
        raise
    return ref


def rebuild_eager(graph: torch.nn.Module, model_config: Mapping[str, Any], preset: Preset) -> InferenceModel:
    """An eager `InferenceModel` with the weights of an exported one (same parameter names)."""
    from lxn.models import create_model

    config = dict(model_config)
    eager = InferenceModel(create_model(config.pop("name"), **config), preset).eval()
    missing, unexpected = eager.load_state_dict(graph.state_dict(), strict=False)
    if missing or unexpected:
        raise ValueError(f"exported weights do not fit the model config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return eager


_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$")


def resolve_model_uri(uri: str, tracking_uri: str | None = None) -> ModelRef:
    """`models:/name@alias` or `models:/name/version` -> the concrete version, resolved once."""
    match = _MODEL_URI.match(uri)
    if not match:
        raise ValueError(f"model URI must look like models:/<name>@<alias> or models:/<name>/<version>, got {uri!r}")
    name = match["name"]
    if match["version"]:
        return ModelRef(name, match["version"])
    client = _client(resolve_tracking_uri(tracking_uri))
    try:
        return ModelRef(name, str(client.get_model_version_by_alias(name, match["alias"]).version))
    except Exception as exc:  # noqa: BLE001
        raise TrackingError(f"cannot resolve {uri}: {exc}") from None


def set_alias(ref: ModelRef, alias: str, tracking_uri: str | None = None) -> None:
    _client(resolve_tracking_uri(tracking_uri)).set_registered_model_alias(ref.name, alias, ref.version)


def load_model(uri: str, tracking_uri: str | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a logged or registered model (`models:/...`, `runs:/...` or a local directory).

    On the CPU the module is the exported graph itself. On another device the eager model is
    rebuilt from `model_config` and given the graph's weights: an exported graph cannot move
    across devices, and the eager model can use autocast and channels_last there.
    """
    import mlflow
    from mlflow.models import Model

    tracking_uri = resolve_tracking_uri(tracking_uri)
    ref = resolve_model_uri(uri, tracking_uri) if uri.startswith("models:/") else None
    source = ref.uri if ref else uri
    with _fluent(tracking_uri), tempfile.TemporaryDirectory(prefix="lxn-model-") as tmp:
        local = Path(source) if Path(source).is_dir() else Path(
            mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp)
        )
        metadata = (Model.load(str(local / "MLmodel")).metadata or {}).get("lxn")
        if not metadata:
            raise ValueError(f"{source} is not an lxn model: its MLmodel has no `lxn` metadata")
        module = mlflow.pytorch.load_model(str(local))
    preset = Preset.from_dict(metadata["preset"])
    if torch.device(device).type != "cpu":
        module = rebuild_eager(module, metadata["model_config"], preset).to(device)
    return LoadedModel(
        module=module,
        preset=preset,
        class_names=list(metadata["class_names"]),
        model_config=dict(metadata["model_config"]),
        ref=ref,
        metadata=metadata,
    )
