"""Promotion on evidence, on a real MLflow registry (sqlite) and a local Ray cluster: both
versions are evaluated on the same labelled images, and each gate can trip.

The versions are spotters with known answers (tests/known_models.py) on the labelled set of
tests/labelled_sets.py (8 acme, 8 globex, 8 no-logo images): RedSpotter gets 6 acme and every
no-logo image right; BlueSpotter every globex and no-logo image; TwoSpotter all but 2 acme.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lxn import registry, storage
from lxn.promote import PromoteConfig, promote
from lxn.registry import Registry
from lxn.tracking import RunTracker, TrackingError, log_model
from tests.known_models import REDSPOT_CLASSES, REDSPOT_PRESET, BlueSpotter, RedSpotter, SlowTwoSpotter, TwoSpotter, \
    register_spotter
from tests.labelled_sets import labelled_objects

REPO = Path(__file__).resolve().parents[2]
RED, BLUE, TWO, SLOW, OTHER_CLASSES, TWO_AGAIN = "1", "2", "3", "4", "5", "6"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("labelled")
    for key, data in labelled_objects().items():
        storage.write_bytes(str(root / key), data)
    return str(root)


@pytest.fixture(scope="module")
def store(tmp_path_factory, labelled):
    uri = f"sqlite:///{tmp_path_factory.mktemp('registry')}/mlflow.db"
    tracker = RunTracker.start("lxn-test", "promote", uri)
    for module in (RedSpotter(), BlueSpotter(), TwoSpotter(), SlowTwoSpotter()):
        register_spotter(tracker, module, "gated")
    log_model(tracker, RedSpotter().eval(), preset=REDSPOT_PRESET, class_names=REDSPOT_CLASSES[::-1],
              model_config={"name": "reversed"}, registered_model="gated", alias=None)
    register_spotter(tracker, TwoSpotter(), "gated")
    tracker.finish()
    return uri


def _aliases(uri):
    return {alias: str(v) for alias, v in Registry(uri).client.get_registered_model("gated").aliases.items()}


def _set(uri, **aliases):
    client = Registry(uri).client
    for alias in ("champion", "previous-champion", "challenger", "cand-a", "cand-b"):
        if alias in _aliases(uri):
            client.delete_registered_model_alias("gated", alias)
    for alias, version in aliases.items():
        client.set_registered_model_alias("gated", alias.replace("_", "-"), version)


def _config(uri, labelled, **kw):
    # The spotters' batch-1 latencies are fractions of a millisecond, and a loaded machine (the
    # suite's other worker, Ray) can move their ratio several times over; the latency gate's own case is
    # SlowTwoSpotter, about 80x RedSpotter's time, measured.
    kw.setdefault("max_latency_growth", 10.0)
    return PromoteConfig(registered_model="gated", tracking_uri=uri, labelled=labelled, class_min_support=5,
                         batch_size=8, fetch_threads=4, progress_bars=False, latency_rounds=10, **kw)


def test_the_first_model_needs_the_absolute_gates_only(store, labelled, ray_cluster):
    _set(store, challenger=RED)
    dry = promote(_config(store, labelled, min_top1=0.5, min_f1=0.4, dry_run=True))
    assert dry.promote and not dry.applied and "champion" not in _aliases(store)  # it would, and changes nothing
    assert Registry(store).client.get_run(dry.decision_run).data.tags["dry_run"] == "True"
    first = promote(_config(store, labelled, min_top1=0.5, min_f1=0.4))
    assert first.applied and first.champion is None and _aliases(store)["champion"] == RED
    assert first.table[0]["top1"] == pytest.approx(14 / 24)  # 6 acme + 8 no-logo of 24 (the corrupt one left out)
    client = Registry(store).client
    run = client.get_run(first.decision_run)
    assert run.data.tags["decision"] == "promote" and run.info.experiment_id == client.get_experiment_by_name("lxn-promotions").experiment_id
    assert {a.path for a in client.list_artifacts(first.decision_run)} == {"decision.md", "decision.json"}
    tags = client.get_model_version("gated", RED).tags
    assert tags[registry.PROMOTION_RUN] == first.decision_run and float(tags[registry.EVAL_TOP1]) == pytest.approx(14 / 24)


def test_each_gate_can_trip(store, labelled, ray_cluster):
    _set(store, champion=RED, challenger=BLUE)
    blue = promote(_config(store, labelled))
    assert not blue.applied
    assert any("acme 75.0% -> 0.0% (n=8)" in r for r in blue.reasons), blue.reasons  # a per-class regression
    assert any("not better" in r and "on 8 images" in r for r in blue.reasons)       # 8 wins, 6 losses: p = 0.79
    assert blue.comparison["mcnemar"] == {"wins": 8, "losses": 6, "p_value": pytest.approx(0.790527, abs=1e-6)}

    _set(store, champion=RED, challenger=SLOW)
    slow = promote(_config(store, labelled))
    assert len(slow.reasons) == 1 and "latency grows" in slow.reasons[0], slow.reasons

    _set(store, champion=RED, challenger=OTHER_CLASSES)
    other = promote(_config(store, labelled))
    assert not other.applied and other.reasons == ["the class lists differ: a promotion would change what reported brands mean"]
    assert _aliases(store)["champion"] == RED


def test_a_significant_win_promotes_and_rollback_undoes_it(store, labelled, ray_cluster):
    _set(store, champion=RED, challenger=TWO)
    strict = promote(_config(store, labelled, max_p=0.005))
    # 8 wins, 0 losses: p = 2 * (1/2)^8 = 0.0078125 by hand, above --max-p 0.005: the only reason
    assert strict.comparison["mcnemar"] == {"wins": 8, "losses": 0, "p_value": pytest.approx(2 / 2**8)}
    assert len(strict.reasons) == 1 and "p = 0.00781" in strict.reasons[0]
    assert not strict.applied and _aliases(store)["champion"] == RED
    better = promote(_config(store, labelled))
    assert better.applied and [r["role"] for r in better.table] == ["champion", "candidate"]
    assert _aliases(store)["champion"] == TWO and _aliases(store)["previous-champion"] == RED
    back = promote(_config(store, None, rollback=True))
    assert back.applied and back.rollback
    assert (_aliases(store)["champion"], _aliases(store)["previous-champion"]) == (RED, TWO)


def test_missing_candidate_is_an_error(store, labelled):
    with pytest.raises(TrackingError, match="does not exist"):
        promote(_config(store, labelled, candidate="nobody"))


def _job_argv(store, *extra):
    return [sys.executable, str(REPO / "jobs/promote.py"), "--registered-model", "gated", "--tracking-uri", store,
            "--class-min-support", "5", "--batch-size", "8", "--no-progress-bars", "--latency-rounds", "5",
            "--max-latency-growth", "10.0", *extra]


def test_two_promotions_at_once_leave_one_winner(store, labelled, ray_head, tmp_path):
    """Both decide "promote" against champion v1; a barrier holds each at the point of applying
    until both are there. One wins; the other changes nothing and exits 4."""
    _set(store, champion=RED, cand_a=TWO, cand_b=TWO_AGAIN)
    client = Registry(store).client
    before = {v: client.get_model_version("gated", v).tags.get(registry.PROMOTED_AT) for v in (TWO, TWO_AGAIN)}
    address, _, env = ray_head
    barrier = tmp_path / "barrier"
    processes = [subprocess.Popen([sys.executable, str(REPO / "tests/meet_at.py"), str(barrier), "2", "lxn.promote:_apply",
                                   "--", *_job_argv(store, "--candidate", alias, "--labelled", labelled,
                                                    "--ray-address", address, "--max-latency-growth", "inf")[1:]],
                                  env={**env, "PYTHONPATH": str(REPO)}, cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for alias in ("cand-a", "cand-b")]
    results = [(p.wait(timeout=400), *p.communicate()) for p in processes]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 4], [(code, out[-1500:], err[-1500:]) for code, out, err in results]
    winner = TWO if results[0][0] == 0 else TWO_AGAIN
    loser_err = next(err for code, _, err in results if code == 4)
    assert "nothing was changed" in loser_err and "run the promotion again" in loser_err
    aliases = _aliases(store)
    assert (aliases["champion"], aliases["previous-champion"]) == (winner, RED)
    loser = TWO_AGAIN if winner == TWO else TWO
    assert client.get_model_version("gated", loser).tags.get(registry.PROMOTED_AT) == before[loser]  # untouched
    assert client.get_model_version("gated", winner).tags.get(registry.PROMOTED_AT) != before[winner]
    assert "gated.lxn-promotion-lock" not in {m.name for m in client.search_registered_models()}


def test_job_exit_codes(store, labelled, ray_cluster, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("promote_job", REPO / "jobs/promote.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    _set(store, champion=RED, challenger=BLUE)
    assert job.main(_job_argv(store, "--labelled", labelled)[2:]) == 3
    captured = capsys.readouterr()
    assert json.loads(captured.out)["promote"] is False and "Reasons against" in captured.err
    odd = tmp_path / "odd"
    storage.write_bytes(str(odd / "initech" / "x.jpg"), labelled_objects()["acme/01.jpg"])
    for extra, reason in [(["--candidate", "ghost"], "does not exist"),
                          (["--labelled", str(odd)], "does not know: initech"),
                          (["--rollback", "--labelled", labelled], "takes no")]:
        assert job.main(_job_argv(store, *extra)[2:]) == 2, extra
        assert reason in capsys.readouterr().err, extra
    assert _aliases(store)["champion"] == RED
