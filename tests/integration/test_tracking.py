"""MLflow tracking and registry on a real sqlite store: packaging, aliases, loading, rollback,
tampered artifacts, credentials."""

import http.server
import time
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lxn.models import create_model
from lxn.presets import Preset
from lxn.preprocess import InferenceModel
from lxn.registry import Registry
from lxn.tracking import (
    RunTracker,
    TrackingError,
    check_tracking,
    load_model,
    log_model,
    redact_uri,
    safe_params,
)

CLASSES = ["acme", "globex", "initech"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def trained(store):
    torch.manual_seed(0)
    model = create_model("logoxpertnet", num_classes=3).eval()
    preset = Preset(image_size=96, mean=(0.4, 0.5, 0.6))
    tracker = RunTracker.start("lxn-test", "run-a", store)
    config = {"name": "logoxpertnet", "num_classes": 3}
    ref = log_model(tracker, model, preset=preset, class_names=CLASSES, model_config=config,
                    registered_model="logos", alias="challenger", tags={"test_top1": 0.5})
    return model, preset, tracker, ref


def test_registered_model_loads_by_alias_and_reproduces_logits(store, trained):
    model, preset, tracker, ref = trained
    assert ref.version == "1"
    loaded = load_model("models:/logos@challenger", store)
    assert loaded.class_names == CLASSES and loaded.preset == preset and loaded.ref == ref
    images = torch.randint(0, 256, (5, 96, 96, 3), dtype=torch.uint8)
    with torch.inference_mode():
        expected = InferenceModel(model, preset).eval()(images)
        torch.testing.assert_close(loaded.module(images), expected, atol=1e-6, rtol=1e-6)
        from lxn.models.rebuild import rebuild_eager
        eager = rebuild_eager(loaded.module, loaded.model_config, loaded.preset)
        torch.testing.assert_close(eager(images), expected, atol=1e-6, rtol=1e-6)


def test_pyfunc_flavour_serves_numpy(store, trained):
    import mlflow

    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model("models:/logos/1")
    out = model.predict(np.zeros((2, 96, 96, 3), dtype=np.uint8))
    assert out.shape == (2, 3)


def test_a_registered_detector_loads_safely_as_a_detector_and_only_as_one(store):
    """Exported with its preprocessing, SHA-256 recorded, served by pyfunc; a classifier's
    caller (the default task) is refused with the reason, not handed boxes for logits."""
    import mlflow

    from lxn.models import select_detections

    torch.manual_seed(0)
    model = create_model("logoxpertnet_det", num_classes=2, image_size=128).eval()
    preset = Preset(image_size=128)
    tracker = RunTracker.start("lxn-test", "detector", store)
    config = {"name": "logoxpertnet_det", "num_classes": 2, "image_size": 128}
    ref = log_model(tracker, model, preset=preset, class_names=["acme", "globex"], model_config=config,
                    registered_model="marks-det")
    from lxn.registry import PT2_SHA256

    assert Registry(store).tags(ref)[PT2_SHA256]
    loaded = load_model(ref.uri, store, task="detect")
    assert loaded.task == "detect" and loaded.class_names == ["acme", "globex"]
    images = torch.randint(0, 256, (3, 128, 128, 3), dtype=torch.uint8)
    with torch.inference_mode():
        expected = InferenceModel(model, preset).eval()(images)
        got = loaded.module(images)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert [len(d["boxes"]) for d in select_detections(got)] == [len(d["boxes"]) for d in select_detections(expected)]
    with pytest.raises(ValueError, match=r"is a detector \(logoxpertnet_det\); this takes classifiers"):
        load_model(ref.uri, store)
    mlflow.set_tracking_uri(store)
    served = mlflow.pyfunc.load_model(ref.uri).predict(np.zeros((2, 128, 128, 3), dtype=np.uint8))
    assert served.shape == (2, model.num_candidates, 6)


def test_alias_resolves_once_to_a_version(store, trained):
    *_, tracker, ref = trained
    assert Registry(store).resolve("models:/logos@challenger") == ref
    assert Registry(store).resolve("models:/logos/7").version == "7"
    with pytest.raises(TrackingError, match="no-such-alias"):
        Registry(store).resolve("models:/logos@no-such-alias")
    with pytest.raises(ValueError, match="models:/<name>@<alias>"):
        Registry(store).resolve("s3://bucket/model")


def test_failed_alias_leaves_no_half_registered_version(store):
    import mlflow

    tracker = RunTracker.start("lxn-test", "run-b", store)
    with pytest.raises(Exception):  # noqa: B017 - whatever the registry raises, nothing may stay registered
        log_model(tracker, create_model("logoxpertnet_backbone", num_classes=2).eval(),
                  preset=Preset(image_size=96), class_names=["a", "b"], model_config={"name": "logoxpertnet_backbone"},
                  registered_model="half", alias="not a valid alias!")
    versions = mlflow.MlflowClient(tracking_uri=store).search_model_versions("name='half'")
    assert versions == []


def test_run_is_resumed_by_name_until_finished(store):
    first = RunTracker.start("lxn-test", "nightly", store)
    first.log_metrics({"loss": 1.0}, step=0)
    again = RunTracker.start("lxn-test", "nightly", store)
    assert again.run_id == first.run_id
    again.log_params({"lr": 0.1})
    again.log_params({"lr": 0.1, "epochs": 3})  # re-logging on resume is harmless
    again.finish()
    assert RunTracker.start("lxn-test", "nightly", store).run_id != first.run_id


def test_no_secrets_in_params():
    params = safe_params({
        "lr": 0.001,
        "aws_secret_access_key": "abc",
        "mlflow_token": "xyz",
        "storage": "s3://AKIAEXAMPLE:hunter2@bucket/path?X-Amz-Signature=deadbeef",
        "nested": {"password": "p", "epochs": 3},
    })
    # masked in place: the record still names the prefix and shows that something was taken out
    assert params == {"lr": "0.001", "storage": "s3://***@bucket/path?X-Amz-Signature=***", "nested.epochs": "3"}
    assert redact_uri("http://user:pw@mlflow.internal:5000/x?token=1") == "http://***@mlflow.internal:5000/x?token=***"


def test_unreachable_tracking_server_is_a_clear_error():
    from tests.conftest import free_port

    with pytest.raises(TrackingError, match=r"cannot reach the MLflow tracking store at http://\*\*\*@127\.0\.0\.1"):
        check_tracking(f"http://user:secret@127.0.0.1:{free_port()}")
    try:
        check_tracking(f"http://user:secret@127.0.0.1:{free_port()}")
    except TrackingError as exc:
        assert "secret" not in str(exc)


def test_a_slow_server_gets_more_tries_and_a_refused_one_none(caplog):
    """A busy single-worker server that misses one probe's deadline is tried again; a closed
    port fails on the first try (no minutes of retries against a dead host)."""
    import http.server
    import threading
    import time
    import urllib.request

    from lxn.tracking import _probe
    from tests.conftest import free_port

    answered = []

    class SlowOnce(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if not answered:
                answered.append("late")
                time.sleep(1.5)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # the late answer to a probe that gave up meets a closed socket

    server = Server(("127.0.0.1", 0), SlowOnce)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        _probe(urllib.request.Request(url), attempts=2, timeout=0.5)
        assert answered == ["late"]
        answered.clear()
        with pytest.raises(TimeoutError):
            _probe(urllib.request.Request(url), attempts=1, timeout=0.5)
    finally:
        server.shutdown()
    caplog.clear()
    with caplog.at_level("INFO", logger="lxn.tracking"), pytest.raises(OSError):
        _probe(urllib.request.Request(f"http://127.0.0.1:{free_port()}/health"), attempts=3, timeout=5)
    assert not [r for r in caplog.records if "try 1 of 3" in r.getMessage()]


# ------------------------------------------------------------------ tampered artifacts


def _artifact_dir(store, name, version):
    """Where the registered version's files live in the artifact store (a local directory here)."""
    from urllib.parse import urlsplit, unquote
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=store)
    model_id = client.get_model_version(name, version).source.removeprefix("models:/")
    return Path(unquote(urlsplit(client.get_logged_model(model_id).artifact_location).path))


class _Payload:
    """Unpickling this creates `marker`: proof that the artifact ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def fresh_version(store):
    """A registered version of its own, so tampering with it spoils no other test."""
    import uuid

    tracker = RunTracker.start("lxn-test", f"tamper-{uuid.uuid4().hex[:6]}", store)
    name = f"tamper-{uuid.uuid4().hex[:6]}"
    ref = log_model(tracker, create_model("logoxpertnet_backbone", num_classes=3).eval(), preset=Preset(image_size=64),
                    class_names=CLASSES, model_config={"name": "logoxpertnet_backbone", "num_classes": 3},
                    registered_model=name, alias="champion")
    return ref, _artifact_dir(store, ref.name, ref.version)


def test_a_planted_pickle_is_refused_and_never_runs(store, fresh_version, tmp_path):
    from lxn.tracking import UnsafeModelError

    ref, artifacts = fresh_version
    marker = tmp_path / "pwned"
    torch.save(_Payload(marker), artifacts / "data" / "model.pth")
    (artifacts / "data" / "pickle_module_info.txt").write_text("pickle")
    for uri in (f"models:/{ref.name}@champion", str(artifacts)):
        with pytest.raises(UnsafeModelError, match="model.pth"):
            load_model(uri, store)
    assert not marker.exists()
    import mlflow.pytorch  # MLflow itself would have unpickled it: the planted file is real

    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    try:
        mlflow.pytorch.load_model(str(artifacts), weights_only=False)
    except Exception:  # noqa: BLE001 - what it returns is not a model; it ran the payload
        pass
    finally:
        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    assert marker.exists()


def test_a_swapped_archive_or_code_in_the_artifact_is_refused(store, fresh_version, trained):
    import shutil

    from lxn.tracking import UnsafeModelError

    ref, artifacts = fresh_version
    assert load_model(f"models:/{ref.name}/{ref.version}", store).class_names == CLASSES
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"  # every loading process
    original = (artifacts / "data" / "model.pt2").read_bytes()
    # another valid lxn pt2 (the module's other model) put in its place: digest mismatch
    other = _artifact_dir(store, trained[3].name, trained[3].version) / "data" / "model.pt2"
    shutil.copy(other, artifacts / "data" / "model.pt2")
    with pytest.raises(UnsafeModelError, match="recorded in the registry"):
        load_model(f"models:/{ref.name}/{ref.version}", store)
    (artifacts / "data" / "model.pt2").write_bytes(original)
    (artifacts / "code").mkdir()
    (artifacts / "code" / "evil.py").write_text("raise SystemExit('ran')\n")
    with pytest.raises(UnsafeModelError, match="code/evil.py"):
        load_model(f"models:/{ref.name}/{ref.version}", store)
    shutil.rmtree(artifacts / "code")
    mlmodel = (artifacts / "MLmodel").read_text()
    (artifacts / "MLmodel").write_text(mlmodel.replace("code: null", "code: code"))
    with pytest.raises(UnsafeModelError, match="flavors"):
        load_model(f"models:/{ref.name}/{ref.version}", store)
    (artifacts / "MLmodel").write_text(mlmodel)
    assert load_model(f"models:/{ref.name}/{ref.version}", store).class_names == CLASSES


# ------------------------------------------------------------------ credentials


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers MLflow's health probe and experiment search; records what the client sent."""

    seen: list = []

    def do_GET(self):
        self._answer()

    def do_POST(self):
        self._answer()

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        _Recorder.seen.append((self.path, dict(self.headers)))
        body = b"OK" if self.path.startswith("/health") else json.dumps({"experiments": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if self.path.startswith("/health") else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_credentials_in_the_tracking_uri_travel_as_a_header(monkeypatch):
    import base64
    import threading

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.seen = []
    try:
        uri = f"http://alice:s3cr%40t-pw@127.0.0.1:{server.server_address[1]}"
        assert check_tracking(uri) == uri
    finally:
        server.shutdown()
    paths = [path for path, _ in _Recorder.seen]
    assert paths[0] == "/health" and any("experiments/search" in p for p in paths)
    expected = "Basic " + base64.b64encode(b"alice:s3cr@t-pw").decode()
    for _, headers in _Recorder.seen:
        assert headers["Authorization"] == expected
        assert "s3cr" not in headers["Host"] and "@" not in headers["Host"]
    from lxn.redact import redact_text

    assert "s3cr@t-pw" not in redact_text(f"connecting with s3cr@t-pw to {uri}")  # registered as a secret
    with pytest.raises(TrackingError, match="MLFLOW_TRACKING_TOKEN"):
        check_tracking(f"http://127.0.0.1:{server.server_address[1]}/?token=abc")


def test_a_registered_model_rebuilds_with_its_architecture_settings(store):
    from lxn.models.rebuild import rebuild_eager

    settings = {"name": "logoxpertnet", "num_classes": 3, "width_mult": 1.0, "hse_gate": "sigmoid",
                "clff_mode": "add", "early_stride": 8, "clff_early": "space_to_depth", "spectrum": "dct"}
    model = create_model(**settings).eval()
    tracker = RunTracker.start("lxn-test", "variants", store)
    ref = log_model(tracker, model, preset=Preset(image_size=96), class_names=CLASSES, model_config=settings,
                    registered_model="variants", alias="challenger", recipe={"name": "lxn", "lr": 0.002})
    loaded = load_model(f"models:/{ref.name}/{ref.version}", store)
    assert loaded.model_config == settings and loaded.metadata["recipe"] == {"name": "lxn", "lr": 0.002}
    eager = rebuild_eager(loaded.module, loaded.model_config, loaded.preset)
    assert eager.model.fa_cbam.spectrum == "dct" and eager.model.clff.early == "space_to_depth"
    images = torch.randint(0, 256, (3, 96, 96, 3), dtype=torch.uint8)
    with torch.inference_mode():
        torch.testing.assert_close(eager(images), loaded.module(images), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(eager(images), InferenceModel(model, Preset(image_size=96)).eval()(images),
                                   atol=1e-5, rtol=1e-5)


def _poison_pt2(archive: Path, marker: Path) -> None:
    """Replace the archive's sample-inputs record (a torch.save pickle that torch.export.load
    unpickles with weights_only=False) by a payload that creates `marker` when unpickled."""
    import io
    import zipfile

    records = {}
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            records[info.filename] = zf.read(info)
    [name] = [n for n in records if n.endswith("data/sample_inputs/model.pt")]
    buffer = io.BytesIO()
    torch.save(_Payload(marker), buffer)
    records[name] = buffer.getvalue()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for filename, data in records.items():
            zf.writestr(filename, data)


@pytest.mark.parametrize("guard_off", ["DATABRICKS_RUNTIME_VERSION", "IS_IN_DB_MODEL_SERVING_ENV"])
def test_a_poisoned_archive_without_a_digest_is_refused_whatever_the_environment(store, fresh_version, tmp_path,
                                                                                monkeypatch, guard_off):
    import mlflow

    from lxn.registry import PT2_SHA256
    from lxn.tracking import UnsafeModelError

    ref, artifacts = fresh_version
    marker = tmp_path / "pwned"
    _poison_pt2(artifacts / "data" / "model.pt2", marker)
    mlflow.MlflowClient(tracking_uri=store).delete_model_version_tag(ref.name, ref.version, PT2_SHA256)
    monkeypatch.setenv(guard_off, "15.4" if guard_off.startswith("DATABRICKS") else "true")
    with pytest.raises(UnsafeModelError, match=f"no {PT2_SHA256} tag.*jobs/trust.py"):
        load_model(f"models:/{ref.name}/{ref.version}", store)
    with pytest.raises(UnsafeModelError, match="pickled payload"):  # a local copy has no digest to check
        load_model(str(artifacts), store)
    assert guard_off not in os.environ  # neutralised for this process and what it starts
    assert not marker.exists()


def test_a_legacy_version_is_trusted_again_only_with_its_checked_digest(store, fresh_version, capsys):
    import importlib.util
    import mlflow

    from lxn.registry import PT2_SHA256

    ref, artifacts = fresh_version
    client = mlflow.MlflowClient(tracking_uri=store)
    recorded = client.get_model_version(ref.name, ref.version).tags[PT2_SHA256]
    client.delete_model_version_tag(ref.name, ref.version, PT2_SHA256)  # as an older lxn registered it
    spec = importlib.util.spec_from_file_location("trust_job", Path(__file__).parents[2] / "jobs/trust.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    uri = f"models:/{ref.name}/{ref.version}"
    assert job.main([uri, "--tracking-uri", store]) == 2  # shows the digest, records nothing
    assert f"--sha256 {recorded}" in capsys.readouterr().out
    assert PT2_SHA256 not in client.get_model_version(ref.name, ref.version).tags
    assert job.main([uri, "--tracking-uri", store, "--sha256", "0" * 64]) == 2
    assert "nothing recorded" in capsys.readouterr().err
    assert job.main([uri, "--tracking-uri", store, "--sha256", recorded]) == 0
    assert client.get_model_version(ref.name, ref.version).tags[PT2_SHA256] == recorded
    assert load_model(uri, store).class_names == CLASSES
    (artifacts / "data" / "model.pt2").write_bytes(b"changed")  # a digest once recorded is never replaced
    assert job.main([uri, "--tracking-uri", store]) == 2
    assert "changed after registration" in capsys.readouterr().err


def _start_at(uri: str, at: float, name: str) -> str:
    while time.time() < at:  # a spin barrier: both create calls land within microseconds
        pass
    return RunTracker.start("lxn-race", name, uri).run_id


def test_jobs_started_together_both_get_the_new_experiment(tmp_path):
    """Two drivers (a grid's seeds) starting runs in an experiment that does not exist yet: both
    see it missing and both create it; the loser must use the winner's, not fail."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.starmap(time.sleep, [(0,), (0,)])  # both workers up and imported before the race
        for trial in range(4):
            uri = f"sqlite:///{tmp_path}/race-{trial}.db"
            check_tracking(uri)  # the store itself exists (the grid's driver creates it first)
            at = time.time() + 1.0
            runs = pool.starmap(_start_at, [(uri, at, "seed-0"), (uri, at, "seed-1")])
            assert len(set(runs)) == 2
