"""Promotion's gates on constructed figures: each trips exactly where its flag says."""

import math

import pytest

from lxn.promote import PromoteConfig, judge


def _figures(top1=0.9, f1=0.85):
    return {"top1": top1, "f1_macro": f1}


def _comparison(wins=30, losses=10, p=0.002, changes=()):
    return {"mcnemar": {"wins": wins, "losses": losses, "p_value": p}, "per_class_changes": list(changes)}


def _change(name, before, after, support):
    return {"class": name, "support": support, "reference": before, "accuracy": after, "change": after - before}


CONFIG = PromoteConfig(max_class_drop=0.10, class_min_support=20, max_latency_growth=0.25, max_p=0.05)
FAST = {"champion": 10.0, "candidate": 10.0}


def test_a_better_candidate_passes():
    assert judge(CONFIG, _figures(), _figures(0.8), _comparison(), FAST) == []


def test_absolute_floors():
    config = PromoteConfig(min_top1=0.95, min_f1=0.9)
    reasons = judge(config, _figures(0.94, 0.89), None, None, None)
    assert len(reasons) == 2 and "top-1 0.9400 is below the floor 0.9500" in reasons[0] and "macro F1" in reasons[1]
    assert judge(PromoteConfig(min_top1=0.94, min_f1=0.89), _figures(0.94, 0.89), None, None, None) == []


def test_a_single_class_drop_counts_only_with_enough_support():
    drop = _change("acme", 0.90, 0.79, 20)   # 11 points, 20 images: trips
    small = _change("globex", 0.90, 0.10, 19)  # 80 points but 19 images: too few to judge
    edge = _change("initech", 0.90, 0.80, 50)  # exactly 10 points: allowed
    reasons = judge(CONFIG, _figures(), _figures(), _comparison(changes=[drop, small, edge]), FAST)
    assert reasons == ["1 class(es) lose more than 10.0 points of accuracy: acme 90.0% -> 79.0% (n=20)"]


def test_latency_growth_limit_and_inf():
    assert judge(CONFIG, _figures(), _figures(), _comparison(), {"champion": 10.0, "candidate": 12.5}) == []
    reasons = judge(CONFIG, _figures(), _figures(), _comparison(), {"champion": 10.0, "candidate": 12.6})
    assert len(reasons) == 1 and "latency grows 26%" in reasons[0]
    unlimited = PromoteConfig(max_latency_growth=math.inf)
    assert judge(unlimited, _figures(), _figures(), _comparison(), {"champion": 1.0, "candidate": 100.0}) == []


@pytest.mark.parametrize("wins, losses, p, max_p, passes", [
    (30, 10, 0.002, 0.05, True),
    (30, 10, 0.06, 0.05, False),   # more wins, not significant
    (10, 10, 1.0, 1.0, False),     # a tie is not better, even with --max-p 1
    (11, 10, 1.0, 1.0, True),      # --max-p 1: more wins than losses suffices
    (10, 30, 0.002, 0.05, False),  # significantly worse is not better
])
def test_better_means_the_paired_test_says_so(wins, losses, p, max_p, passes):
    config = PromoteConfig(max_p=max_p)
    reasons = judge(config, _figures(), _figures(), _comparison(wins, losses, p), FAST)
    assert (reasons == []) is passes, reasons


def test_settings_are_checked():
    for bad in ({"max_p": 0}, {"max_class_drop": 1.5}, {"max_latency_growth": -0.1}, {"rollback": True, "candidate": "x"}):
        with pytest.raises(ValueError):
            PromoteConfig(**bad)
