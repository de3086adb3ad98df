"""MLflow runs, metrics and artifacts, and model packaging: export, verify and load. The registry's
operations and every tag name are lxn.registry's.

* Tracking URI: an explicit argument, else MLFLOW_TRACKING_URI, else the embedded default
  `sqlite:///mlflow.db` (MLflow 3 refuses the old `./mlruns` file store). On a cluster point
  it at an `mlflow server`, whose artifacts may live in S3 (MLFLOW_S3_ENDPOINT_URL for
  S3-compatible stores); with the server proxying artifacts, workers need no S3 credentials.
* Nothing secret is logged: params go through `safe_params`, everything else through
  `lxn.redact`. Credentials in an http(s) tracking URI (`http://user:password@host`) never reach
  a host name: every client gets the URI without them and the credentials through MLflow's
  MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (the probe: an Authorization header).
* A registered model is an `InferenceModel` (uint8 images at the preset size -> logits) exported
  with torch.export (MLflow's `pt2` format), and it never travels without its class names,
  preprocessing preset and model config, which ride in the MLmodel metadata under the `lxn` key.
* Loading runs no code from the artifact store (`verify_model_dir`): the artifact may hold only
  the files an lxn pt2 model has, a registered version's `data/model.pt2` must match the SHA-256
  the registry recorded when it was registered (a version without one is refused:
  `jobs/trust.py` records it after checking), and MLflow's check that the archive holds no
  pickled payload runs on every load, whatever the environment says (`_pickle_guard_on`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

import numpy as np
import torch

import lxn
from lxn import registry
from lxn.errors import TrackingError, UnsafeModelError
from lxn.model_package import LoadedModel, ModelPackage, sha256_hex
from lxn.presets import Preset
from lxn.preprocess import InferenceModel
from lxn.registry import ModelRef, Registry
from lxn.tracking_uri import DEFAULT_TRACKING_URI, _client, _client_uri, fluent, resolve_tracking_uri
from lxn.redact import is_secret_key, redact, redact_text, redact_uri

__all__ = [
    "DEFAULT_TRACKING_URI",
    "tagged_runs",
    "run_json",
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
    "fetch_model",
    "ModelPackage",
    "classes_digest",
    "verify_model_dir",
    "UnsafeModelError",
    "artifact_sha256",
]

log = logging.getLogger(__name__)

_PICKLE_SWITCH = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
# Settings under which MLflow skips its pickle check when loading (mlflow.pytorch's
# `_is_pickle_deserialization_allowed`: it trusts a Databricks runtime or model-serving container).
_PICKLE_GUARD_OFF = ("DATABRICKS_RUNTIME_VERSION", "DATABRICKS_ENV_VERSION", "IS_IN_DB_MODEL_SERVING_ENV")


def _auth_headers() -> dict[str, str]:
    """The Authorization header MLflow's REST client would send, from its variables."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user or password:
        basic = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    return {}


def safe_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Flattened string params (nested mappings as `a.b`), secret-looking keys dropped and every
    value redacted (`lxn.redact`: URIs lose credentials and queries, known secrets are masked)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        if is_secret_key(key):
            continue
        if isinstance(value, Mapping):
            flat.update({f"{key}.{k}": v for k, v in safe_params(value).items()})
            continue
        value = redact(value)
        text = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
        flat[key] = text[:6000]  # MLflow's param value limit
    return flat


def classes_digest(class_names: Sequence[str]) -> str:
    """A short fingerprint of a class list, to tell whether two models predict the same brands."""
    import hashlib

    return hashlib.sha256(json.dumps(list(class_names)).encode()).hexdigest()[:16]


def _probe(request: urllib.request.Request, attempts: int = 3, timeout: float = 10.0) -> None:
    """GET `request`; a server that is slow to answer (a busy single-worker server) gets
    `attempts` tries, a refused or unresolvable host fails at once."""
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return
        except (TimeoutError, urllib.error.URLError) as exc:
            timed_out = isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)
            if not timed_out or attempt == attempts:
                raise
            log.info("the MLflow server did not answer within %.0f s (try %d of %d)", timeout, attempt, attempts)


def check_tracking(uri: str | None = None) -> str:
    """Fail fast, before any training starts, if the tracking server cannot be reached."""
    uri = resolve_tracking_uri(uri)
    try:
        if urlsplit(uri).scheme in ("http", "https"):
            # One quick probe instead of the client's minutes of retries against a dead host;
            # credentials go in a header, as the REST client sends them, never in the host name.
            probe = urllib.request.Request(_client_uri(uri).rstrip("/") + "/health", headers=_auth_headers())
            _probe(probe)
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


def _experiment_id(client, uri: str, experiment: str) -> str:
    """The experiment's id, creating it if needed. Jobs started together (a grid's drivers, two
    scans) may both find it missing: the loser of the create finds the winner's."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(experiment)
    if found:
        return found.experiment_id
    try:
        return client.create_experiment(experiment, artifact_location=_local_artifact_location(uri, experiment))
    except MlflowException as exc:
        found = client.get_experiment_by_name(experiment) if exc.error_code == "RESOURCE_ALREADY_EXISTS" else None
        if found is None:
            raise
        return found.experiment_id


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
        experiment_id = _experiment_id(client, uri, experiment)
        previous = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{registry.RESUME_NAME}` = '{run_name}' and attributes.status != 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if previous:
            run_id = previous[0].info.run_id
            client.update_run(run_id, status="RUNNING")
            log.info("resuming MLflow run %s (%s)", run_id, run_name)
        else:
            run_id = client.create_run(experiment_id, run_name=run_name, tags={registry.RESUME_NAME: run_name}).info.run_id
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
            filter_string=f"tags.`{registry.RESUME_NAME}` = '{run_name}' and attributes.status = 'FINISHED'",
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
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        self.client.log_batch(self.run_id, metrics=batch)

    def logged_steps(self, key: str) -> set[int]:
        """Steps at which metric `key` has been logged in this run."""
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, redact(data), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def publish(self, paths: Sequence[Path], out: str | None = None) -> list[str]:
        """Log each local file to the run, and copy it under `out` (a local or s3:// prefix)
        when given; returns the copies' URIs."""
        from lxn import storage

        copies = []
        for path in paths:
            self.log_artifact(path)
            if out:
                copies.append(storage.join(out, Path(path).name))
                storage.write_bytes(copies[-1], Path(path).read_bytes())
        return copies

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in redact(dict(tags)).items():
            self.client.set_tag(self.run_id, key, str(value))

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    def url(self) -> str:
        """Where to look at the run: its page on a tracking server, or how to open a local store."""
        experiment = self.client.get_run(self.run_id).info.experiment_id
        if urlsplit(self.uri).scheme in ("http", "https"):
            return f"{redact_uri(self.uri).rstrip('/')}/#/experiments/{experiment}/runs/{self.run_id}"
        return f"run {self.run_id} (open it with: mlflow ui --backend-store-uri {redact_uri(self.uri)})"

    @contextlib.contextmanager
    def system_metrics(self, node: str | None = None, interval_s: float = 10.0) -> Iterator[None]:
        """Log this machine's CPU, memory, disk, network (and GPU, with nvidia-ml-py) utilisation
        to the run every `interval_s` seconds while the block runs, as `system/<node>/...`."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(self.run_id, sampling_interval=interval_s, resume_logging=True, node_id=node,
                                       tracking_uri=_client_uri(self.uri))
        monitor.start()
        try:
            yield
        finally:
            monitor.finish()


def _signature(image_size: int, output_shape: tuple[int, ...]):
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    # Unnamed tensor specs, so pyfunc passes a plain ndarray through (named ones become dicts).
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, image_size, image_size, 3))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *output_shape))]),
    )


# What each task's exported graph takes and gives (the MLmodel's `lxn.input`).
_IO = {
    "classify": "uint8 RGB images (B, S, S, 3) at the preset's image_size; output: logits (B, K)",
    "detect": "uint8 RGB images (B, S, S, 3) at the preset's image_size; output: candidates (B, N, 6) of "
              "x0, y0, x1, y1 (input pixels), score, label; lxn.models.select_detections thresholds and suppresses them",
}


def log_model(
    tracker: RunTracker,
    model: torch.nn.Module,
    *,
    preset: Preset,
    class_names: Sequence[str],
    model_config: Mapping[str, Any],
    registered_model: str | None = None,
    alias: str | None = registry.CHALLENGER,
    tags: Mapping[str, Any] | None = None,
    recipe: Mapping[str, Any] | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> ModelRef | None:
    """Export `model` with its preprocessing, log it to the run, and register it with `alias`.

    Registration (`Registry.register`) happens only after the model and its metadata are fully
    logged, with the archive's digest among the version's tags.
    """
    import mlflow

    task = getattr(model, "task", "classify")  # detectors say so; any other module gives logits
    output_shape = (len(class_names),) if task == "classify" else (model.num_candidates, 6)
    wrapped = InferenceModel(model, preset).eval().cpu()
    example = np.random.default_rng(0).integers(0, 256, (2, preset.image_size, preset.image_size, 3), dtype=np.uint8)
    metadata = {
        "lxn": {
            "class_names": list(class_names),
            "preset": preset.to_dict(),
            "model_config": dict(model_config),
            "recipe": dict(recipe) if recipe is not None else None,
            "lxn_version": lxn.__version__,
            "serialization": "pt2",
            "task": task,
            "input": _IO[task],
            **dict(extra_metadata or {}),  # e.g. lxn.prototypes' table
        }
    }
    with fluent(tracker.uri), mlflow.start_run(run_id=tracker.run_id):
        info = mlflow.pytorch.log_model(
            wrapped,
            name="model",
            signature=_signature(preset.image_size, output_shape),
            input_example=example,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            metadata=metadata,
            # MLflow's own check loads the archive back and runs the example through it, only to
            # warn if that fails: 40% of logging a LogoXpertNet. The archive is checked where it
            # matters, by load_model (digest, pt2 only) and by the export round-trip tests.
            validate_serving_input=False,
        )
    if registered_model is None:
        return None
    with fluent(tracker.uri):  # artifact URIs (mlflow-artifacts:/ on a server) resolve against it
        digest = _logged_pt2_sha256(tracker.client, info.model_id)
    version_tags = {registry.PT2_SHA256: digest, registry.RUN_ID: tracker.run_id,
                    registry.CLASSES_SHA: classes_digest(class_names), **redact(dict(tags or {}))}
    return Registry(tracker.uri).register(info.model_uri, registered_model, version_tags, alias)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _logged_pt2_sha256(client, model_id: str) -> str:
    """The SHA-256 of a logged model's data/model.pt2, as the artifact store holds it."""
    import mlflow

    location = client.get_logged_model(model_id).artifact_location
    with tempfile.TemporaryDirectory(prefix="lxn-digest-") as tmp:
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"{location}/data/model.pt2", dst_path=tmp)
        return _sha256(Path(path))


# What an lxn model's artifact holds (MLflow's pt2 layout; `registered_model_meta` is added when
# it is downloaded as models:/name/version). Anything else, a pickled data/model.pth first, is refused.
_MODEL_FILES = frozenset({"MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json",
                          "serving_input_example.json", "registered_model_meta", "data/model.pt2"})


def verify_model_dir(local: Path, expected_sha256: str | None) -> dict[str, Any]:
    """Check a downloaded model artifact before anything in it is loaded; returns its `lxn`
    metadata. Refused (UnsafeModelError): unknown files or links, no data/model.pt2, flavors
    other than MLflow's pytorch + python_function, a code directory, and a model.pt2 whose
    SHA-256 differs from `expected_sha256` (the registry's record)."""
    import yaml

    local = Path(local)
    found = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if not p.is_dir() or p.is_symlink())
    links = [name for name in found if (local / name).is_symlink()]
    unknown = [name for name in found if name not in _MODEL_FILES]
    if links or unknown:
        raise UnsafeModelError(f"the model artifact holds files an lxn pt2 model never has: {(links or unknown)[:5]} "
                               "(a pickled model.pth would run code when loaded); refusing to load it")
    if "data/model.pt2" not in found or "MLmodel" not in found:
        raise UnsafeModelError(f"the model artifact has no data/model.pt2 or MLmodel (it holds {found}); not an lxn model")
    mlmodel = yaml.safe_load((local / "MLmodel").read_text()) or {}
    flavors = mlmodel.get("flavors") or {}
    pytorch, pyfunc = flavors.get("pytorch") or {}, flavors.get("python_function") or {}
    if set(flavors) != {"pytorch", "python_function"} or pytorch.get("model_data") != "data" or pytorch.get("code") \
            or pyfunc.get("loader_module") != "mlflow.pytorch" or pyfunc.get("code"):
        raise UnsafeModelError(f"the MLmodel declares flavors {sorted(flavors)} with code or data other than an lxn pt2 "
                               "model's; refusing to load it")
    metadata = (mlmodel.get("metadata") or {}).get("lxn")
    if not metadata:
        raise ValueError("its MLmodel has no `lxn` metadata: not an lxn model")
    if metadata.get("serialization", "pt2") != "pt2":
        raise UnsafeModelError(f"the model is serialized as {metadata.get('serialization')!r}; lxn loads pt2 only")
    if expected_sha256 is not None:
        actual = _sha256(local / "data/model.pt2")
        if actual != expected_sha256:
            raise UnsafeModelError(f"data/model.pt2 has SHA-256 {actual[:16]}..., not the {expected_sha256[:16]}... "
                                   "recorded in the registry: the artifact was changed after registration")
    _check_pickle_free(local / "data/model.pt2")
    return metadata


def _check_pickle_free(archive: Path) -> None:
    """MLflow's own check that a pt2 archive holds nothing but tensors and JSON (torch.export.load
    unpickles its records with weights_only=False), called here so that no setting can skip it."""
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    check = getattr(mlflow.pytorch, "_validate_pt2_archive_is_pickle_free", None)
    if check is None:  # fail closed: an MLflow without the check cannot load a model safely
        raise UnsafeModelError(f"MLflow {mlflow.__version__} has no pt2 pickle check; lxn will not load models with it")
    try:
        check(str(archive))
    except MlflowException as exc:
        raise UnsafeModelError(f"data/model.pt2 holds a pickled payload (MLflow: {str(exc).split('. ')[0]}); "
                               "refusing to load it") from None


@contextlib.contextmanager
def _mlflow_refusal(source: str) -> Iterator[None]:
    """What MLflow refuses while fetching or loading a model, as a one-line reason (a ValueError),
    not a traceback."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise ValueError(f"cannot load {source}: {redact_text(exc.message)}") from None


def _pickle_guard_on() -> None:
    """Keep MLflow's pickle check on in this process and any it starts: pickle deserialization
    off, and the Databricks settings that would turn the check off removed."""
    os.environ[_PICKLE_SWITCH] = "false"
    for name in _PICKLE_GUARD_OFF:
        if os.environ.pop(name, None) is not None:
            log.warning("%s is set: removed for this process, since MLflow would load pickled models under it", name)


def artifact_sha256(ref: ModelRef, tracking_uri: str | None = None, expected: str | None = None) -> str:
    """The SHA-256 of a registered version's data/model.pt2, after the same checks a load makes
    (only an lxn pt2 model's files, the digest `expected` if given, no pickled payload); nothing
    of it is loaded."""
    import mlflow

    _pickle_guard_on()
    tracking_uri = resolve_tracking_uri(tracking_uri)
    with fluent(tracking_uri), tempfile.TemporaryDirectory(prefix="lxn-trust-") as tmp, _mlflow_refusal(ref.uri):
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=tmp))
        try:
            verify_model_dir(local, expected)
        except UnsafeModelError as exc:
            raise UnsafeModelError(f"{ref.uri}: {exc}") from None
        return _sha256(local / "data/model.pt2")


def fetch_model(uri: str, tracking_uri: str | None = None, task: str | None = "classify") -> ModelPackage:
    """A logged or registered model (`models:/...`, `runs:/...` or a local directory) of `task`
    ("classify", "detect"; None: either), downloaded and checked, as a `ModelPackage` to load here
    or to ship to actors. A model of another task is refused with the reason: every caller reads
    its outputs as that task's.

    Nothing from the artifact runs: `verify_model_dir` checks it first (against the SHA-256 the
    registry recorded, for a registered version), including MLflow's check that the pt2 archive
    holds no pickle; the package carries the checked bytes and their digest.
    """
    import mlflow

    _pickle_guard_on()
    tracking_uri = resolve_tracking_uri(tracking_uri)
    versions = Registry(tracking_uri) if uri.startswith("models:/") else None
    ref = versions.resolve(uri) if versions else None
    source = ref.uri if ref else uri
    expected = None
    if ref is not None:
        expected = versions.tags(ref).get(registry.PT2_SHA256)
        if not expected:
            raise UnsafeModelError(
                f"{ref.uri} has no {registry.PT2_SHA256} tag (registered by an older lxn, or the tag was removed), so its "
                f"weights cannot be checked: refusing to load it. If you trust it, record its digest with "
                f"`python jobs/trust.py {ref.uri}`, or register the model again")
    with fluent(tracking_uri), tempfile.TemporaryDirectory(prefix="lxn-model-") as tmp, _mlflow_refusal(source):
        local = Path(source) if Path(source).is_dir() else Path(
            mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp)
        )
        pt2 = (local / "data/model.pt2").read_bytes() if (local / "data/model.pt2").is_file() else None
        try:
            metadata = verify_model_dir(local, expected)
        except UnsafeModelError as exc:
            raise UnsafeModelError(f"{source}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{source} is not an lxn model: {exc}") from None
        # The package carries the bytes read before the checks: the file had them after, too
        # (a local directory could change while it was being checked).
        digest = sha256_hex(pt2)
        if _sha256(local / "data/model.pt2") != digest:
            raise UnsafeModelError(f"{source}: data/model.pt2 changed while it was being checked")
    found = metadata.get("task", "classify")
    if task is not None and found != task:
        kind = {"classify": "classifier", "detect": "detector"}
        raise ValueError(f"{source} is a {kind.get(found, found)} ({metadata['model_config'].get('name')}); "
                         f"this takes {kind.get(task, task)}s")
    return ModelPackage(pt2=pt2, sha256=digest, metadata=metadata, ref=ref, source=source)


def load_model(uri: str, tracking_uri: str | None = None, device: str | torch.device = "cpu",
               task: str | None = "classify") -> LoadedModel:
    """`fetch_model`, then `ModelPackage.load` on `device`: on the CPU the module is the exported
    graph itself, elsewhere the eager model rebuilt with the graph's weights."""
    return fetch_model(uri, tracking_uri, task).load(device)


def tagged_runs(experiment: str, tags: Mapping[str, str], uri: str | None = None) -> list[Any]:
    """The FINISHED runs of `experiment` carrying every tag in `tags`, oldest first."""
    client = _client(resolve_tracking_uri(uri))
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    condition = " and ".join([f"tags.`{k}` = '{v}'" for k, v in tags.items()] + ["attributes.status = 'FINISHED'"])
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], filter_string=condition, order_by=["attributes.start_time ASC"],
                                  max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def run_json(run_id: str, artifact_path: str, uri: str | None = None) -> Any:
    """A JSON artifact of a run (e.g. the test report training logs under `test/`)."""
    import mlflow

    with fluent(resolve_tracking_uri(uri)), tempfile.TemporaryDirectory(prefix="lxn-artifact-") as tmp:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=tmp)
        return json.loads(Path(local).read_text())
