"""The registry contract: which threshold a scan uses, and the tags a threshold choice becomes."""

from __future__ import annotations

import numpy as np
import pytest

from lxn import registry
from lxn.registry import scan_threshold, threshold_tags


def test_the_flag_wins_then_the_versions_tag_then_the_default():
    tags = threshold_tags({"threshold": 0.83, "precision": 0.96, "recall": 0.7}, 0.95, "val split of s3://b/p")
    assert scan_threshold(0.4, tags) == (0.4, "--threshold")
    assert scan_threshold(0.0, tags) == (0.0, "--threshold")  # 0 is a threshold, not "unset"
    value, why = scan_threshold(None, tags)
    assert value == 0.83 and why == "the version's lxn.threshold tag (precision 0.95 on val split of s3://b/p)"
    assert scan_threshold(None, {}) == (registry.DEFAULT_THRESHOLD, "the default (the version has no lxn.threshold tag)")


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "nan", "high"])
def test_a_tag_that_is_not_a_threshold_is_refused(bad):
    with pytest.raises(ValueError, match="fix the tag or pass --threshold"):
        scan_threshold(None, {registry.THRESHOLD: bad})


def test_no_threshold_reaching_the_target_means_no_tags():
    assert threshold_tags(None, 0.95, "val") == {}
    tags = threshold_tags({"threshold": 0.7, "precision": 0.97, "recall": 0.5}, 0.95, "val")
    assert float(tags[registry.THRESHOLD]) == 0.7 and float(tags[registry.THRESHOLD_TARGET]) == 0.95


def test_training_chooses_the_threshold_the_scan_decision_needs():
    from lxn.train.trainer import choose_threshold

    classes = ["acme", "globex", "no-logo"]
    labels = np.array([0, 1, 0, 2])
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.6, 0.1, 0.3]])
    assert choose_threshold(labels, probs, classes, 0.95)["threshold"] == 0.8
    assert choose_threshold(labels, probs, classes, 0.5)["threshold"] == 0.6
    # without a no-logo class every top-1 is a brand hit
    assert choose_threshold(labels[:3], probs[:3, :2], classes[:2], 0.6)["threshold"] == 0.7
    assert choose_threshold(np.array([0]), np.array([[0.1, 0.9, 0.0]]), classes, 0.5) is None
    assert choose_threshold(np.zeros(0, int), np.zeros((0, 3)), classes, 0.5) is None


@pytest.fixture(scope="module")
def sqlite_registry(tmp_path_factory):
    return registry.Registry(f"sqlite:///{tmp_path_factory.mktemp('registry')}/mlflow.db")


def test_the_lock_is_taken_when_its_holder_releases_it_inside_the_stores_own_lookup(sqlite_registry, monkeypatch):
    """The holder deletes the lock between the store's failed insert and its lookup of the name:
    the real store then says "not found", which means "free now", not a failed promotion."""
    client, lock = sqlite_registry.client, "race" + registry.LOCK_SUFFIX
    client.create_registered_model(lock, tags={registry.LOCK_AT: "0"})  # another promotion holds it
    store = type(client._get_registry_client().store)
    real, released = store.get_registered_model, []

    def holder_releases_first(self, name):
        if name == lock and not released:
            released.append(name)
            client.delete_registered_model(name)
        return real(self, name)

    monkeypatch.setattr(store, "get_registered_model", holder_releases_first)
    with sqlite_registry.lock("race", timeout_s=10):
        assert lock in {m.name for m in client.search_registered_models()}
    assert released and lock not in {m.name for m in client.search_registered_models()}


def test_a_busy_store_is_asked_again_when_taking_and_giving_back_the_lock(sqlite_registry, monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE  # what the store raises for "database is locked"

    client = sqlite_registry.client
    busy = {"create_registered_model": 2, "delete_registered_model": 2}
    for method in busy:
        real = getattr(client, method)

        def flaky(*args, _real=real, _method=method, **kwargs):
            if busy[_method]:
                busy[_method] -= 1
                raise MlflowException("database is locked", error_code=TEMPORARILY_UNAVAILABLE)
            return _real(*args, **kwargs)

        monkeypatch.setattr(client, method, flaky)
    with sqlite_registry.lock("busy", timeout_s=10):
        pass
    assert busy == {"create_registered_model": 0, "delete_registered_model": 0}
    assert "busy" + registry.LOCK_SUFFIX not in {m.name for m in client.search_registered_models()}


def test_a_lock_that_cannot_be_taken_says_who_holds_it(sqlite_registry):
    import time

    sqlite_registry.client.create_registered_model("held" + registry.LOCK_SUFFIX, tags={
        registry.LOCK_AT: repr(time.time()), registry.LOCK_OWNER: "host-a:42"})
    with pytest.raises(registry.PromotionConflict, match="host-a:42"), sqlite_registry.lock("held", timeout_s=0.5):
        pass
