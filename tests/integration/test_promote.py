"""Promotion gates on a real MLflow registry (sqlite)."""

import json

import pytest

from lxn.models import create_model
from lxn.presets import Preset
from lxn.promote import PromoteConfig, promote
from lxn.tracking import RunTracker, TrackingError, log_model, registry_client

CLASSES = ["acme", "globex", "no-logo"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Three registered versions of one tiny model, with different recorded test metrics."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('registry')}/mlflow.db"
    model = create_model("logoxpertnet_backbone", num_classes=3, width_mult=0.5).eval()
    tracker = RunTracker.start("lxn-test", "promote", uri)
    for top1, dataset, classes in [(0.80, "s3://d/v1", CLASSES), (0.85, "s3://d/v1", CLASSES), (0.95, "s3://d/v2", CLASSES[::-1])]:
        log_model(tracker, model, preset=Preset(image_size=96), class_names=classes,
                  model_config={"name": "logoxpertnet_backbone", "num_classes": 3, "width_mult": 0.5},
                  registered_model="gated", alias=None, tags={"test_top1": top1, "dataset": dataset})
    return uri


def _aliases(uri):
    return {alias: str(version) for alias, version in registry_client(uri).get_registered_model("gated").aliases.items()}


def _config(uri, **kw):
    return PromoteConfig(registered_model="gated", tracking_uri=uri, **kw)


def test_gates_and_promotion(registry):
    client = registry_client(registry)
    client.set_registered_model_alias("gated", "challenger", "1")
    first = promote(_config(registry, min_metric=0.5))
    assert first.promote and first.applied and first.champion is None
    assert _aliases(registry)["champion"] == "1"

    client.set_registered_model_alias("gated", "challenger", "2")
    too_little = promote(_config(registry, min_improvement=0.1))
    assert not too_little.promote and not too_little.applied
    assert any("does not beat the champion" in r for r in too_little.reasons)
    assert _aliases(registry)["champion"] == "1"

    dry = promote(_config(registry, dry_run=True))
    assert dry.promote and not dry.applied and _aliases(registry)["champion"] == "1"

    better = promote(_config(registry))
    assert better.applied and _aliases(registry) == {**_aliases(registry), "champion": "2", "previous-champion": "1"}

    client.set_registered_model_alias("gated", "challenger", "3")
    other = promote(_config(registry))
    assert not other.applied
    assert any("different datasets" in r for r in other.reasons)
    assert any("class lists differ" in r for r in other.reasons)

    rollback = promote(_config(registry, candidate="previous-champion", force=True))
    assert rollback.applied and _aliases(registry)["champion"] == "1"


def test_floor_gate(registry):
    registry_client(registry).set_registered_model_alias("gated", "challenger", "1")
    decision = promote(_config(registry, target="canary", min_metric=0.9))
    assert not decision.promote and "below the floor" in decision.reasons[0]


def test_missing_candidate_is_an_error(registry):
    with pytest.raises(TrackingError, match="does not exist"):
        promote(_config(registry, candidate="nobody"))


def test_job_exit_codes(registry, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("promote_job", Path(__file__).resolve().parents[2] / "jobs/promote.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    registry_client(registry).set_registered_model_alias("gated", "challenger", "1")
    assert job.main(["--registered-model", "gated", "--tracking-uri", registry, "--target", "gold", "--min-metric", "0.99"]) == 3
    assert json.loads(capsys.readouterr().out)["promote"] is False
    assert job.main(["--registered-model", "gated", "--tracking-uri", registry, "--target", "gold"]) == 0
    assert job.main(["--registered-model", "gated", "--tracking-uri", registry, "--candidate", "ghost"]) == 2
