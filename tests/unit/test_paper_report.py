"""The paper's tables from constructed grid runs, checked against numpy by hand."""

import numpy as np
import pytest

from lxn.train.paper_report import ABLATION, GridRun, markdown, tables
from lxn.train.grid import find_lists

CLASSES = ["acme", "globex", "no-logo"]


def _run(model, seed, top1, matrix):
    matrix = np.asarray(matrix)
    per_class = {c: matrix[k, k] / matrix[k].sum() for k, c in enumerate(CLASSES)}
    return GridRun(model=model, seed=seed, recipe="lxn", run_id=f"{model}-{seed}",
                   metrics={"top1": top1, "precision_macro": top1, "recall_macro": top1, "f1_macro": top1 - 0.1,
                            "auc_macro_ovr": 0.9}, classes=CLASSES, matrix=matrix.tolist(), per_class=per_class)


RUNS = [
    _run("logoxpertnet", 0, 0.80, [[8, 2, 0], [1, 9, 0], [0, 0, 10]]),
    _run("logoxpertnet", 1, 0.70, [[6, 3, 1], [0, 10, 0], [0, 1, 9]]),
    _run("logoxpertnet_backbone", 0, 0.60, [[5, 5, 0], [2, 8, 0], [0, 0, 10]]),
]


def test_means_standard_deviations_and_summed_confusions():
    numbers = tables(RUNS)
    full = numbers["models"]["logoxpertnet"]
    assert full["runs"] == 2 and full["seeds"] == [0, 1]
    assert full["mean"]["top1"] == pytest.approx(0.75) and full["std"]["top1"] == pytest.approx(np.std([0.8, 0.7], ddof=1))
    assert numbers["models"]["logoxpertnet_backbone"]["std"]["top1"] is None  # one seed: no spread to report
    # confusions counted over both seeds: acme->globex 2 + 3 = 5 of 20 acme images
    assert full["confusion_pairs"][0] == {"true": "acme", "predicted": "globex", "count": 5, "rate": 0.25}
    assert full["per_class"]["acme"] == pytest.approx((0.8 + 0.6) / 2)


def test_the_ablation_is_in_the_papers_order_against_the_backbone():
    numbers = tables(RUNS)
    assert [r["model"] for r in numbers["ablation"]] == ["logoxpertnet_backbone", "logoxpertnet"]
    assert [m for m in ABLATION if m in {r["model"] for r in RUNS}] == [r["model"] for r in numbers["ablation"]]
    assert numbers["ablation"][1]["top1_change"] == pytest.approx(0.15)
    text = markdown(numbers, grid="g", efficiency=None)
    assert "| logoxpertnet | 0, 1 | 75.00 +/- 7.07 |" in text and "+15.00" in text
    with pytest.raises(ValueError, match="no finished runs"):
        tables([])


def test_grid_flags_are_found_in_any_spelling():
    rest, lists, grid = find_lists(["--model", "a,b", "--seed=0,1,42", "--epochs", "3", "--grid-parallel", "2"])
    assert (rest, lists, grid) == (["--epochs", "3"], {"model": ["a", "b"], "seed": ["0", "1", "42"]},
                                   {"grid_parallel": "2"})
    assert find_lists(["--model", "a", "--seed", "1"]) == (["--model", "a", "--seed", "1"], {}, {})
    with pytest.raises(ValueError, match="only go with a grid"):
        find_lists(["--grid", "x"])
