"""MLflow tracking and registry on a real sqlite store: packaging, aliases, loading, rollback."""

import numpy as np
import pytest
import torch

from lxn.models import create_model
from lxn.presets import InferenceModel, Preset
from lxn.tracking import (
    RunTracker,
    TrackingError,
    check_tracking,
    load_model,
    log_model,
    redact_uri,
    resolve_model_uri,
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
        from lxn.tracking import rebuild_eager
        eager = rebuild_eager(loaded.module, loaded.model_config, loaded.preset)
        torch.testing.assert_close(eager(images), expected, atol=1e-6, rtol=1e-6)


def test_pyfunc_flavour_serves_numpy(store, trained):
    import mlflow

    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model("models:/logos/1")
    out = model.predict(np.zeros((2, 96, 96, 3), dtype=np.uint8))
    assert out.shape == (2, 3)


def test_alias_resolves_once_to_a_version(store, trained):
    *_, tracker, ref = trained
    assert resolve_model_uri("models:/logos@challenger", store) == ref
    assert resolve_model_uri("models:/logos/7", store).version == "7"
    with pytest.raises(TrackingError, match="no-such-alias"):
        resolve_model_uri("models:/logos@no-such-alias", store)
    with pytest.raises(ValueError, match="models:/<name>@<alias>"):
        resolve_model_uri("s3://bucket/model", store)


def test_failed_alias_leaves_no_half_registered_version(store):
    import mlflow

    tracker = RunTracker.start("lxn-test", "run-b", store)
    with pytest.raises(Exception):
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
    assert params == {"lr": "0.001", "storage": "s3://bucket/path", "nested.epochs": "3"}
    assert redact_uri("http://user:pw@mlflow.internal:5000/x?token=1") == "http://mlflow.internal:5000/x"


def test_unreachable_tracking_server_is_a_clear_error():
    from tests.conftest import free_port

    with pytest.raises(TrackingError, match=r"cannot reach the MLflow tracking store at http://127\.0\.0\.1"):
        check_tracking(f"http://user:secret@127.0.0.1:{free_port()}")
    try:
        check_tracking(f"http://user:secret@127.0.0.1:{free_port()}")
    except TrackingError as exc:
        assert "secret" not in str(exc)
