"""Brands onboarded from k examples: few-shot top-1, what they cost the trained brands, the open set.

    python jobs/benchmark.py onboarding --model models:/accuracy-logoxpertnet-lxn/1 \
        --tracking-uri sqlite:///bench-out/accuracy/mlflow.db --out bench-out

1. Data (lxn.data.realmarks): the model's classes are the first `num_brands` marks; the next
   `held_out` marks were never classes. Examples of each held-out brand are scenes over the
   training backgrounds; test scenes of held-out and trained brands (and no-logo scenes) are
   over the test backgrounds, another seed.
2. Every image goes through the scan's fetch and decode (`fetch_and_decode`) and the model's
   one eager pass (logits and embedding, `lxn.embeddings.EmbeddingModel`).
3. For k in `shots`, each held-out brand's prototype is made from its first k examples
   (`PrototypeTable.added`, as `jobs/brands.py add` does) and all join the classifier
   (`ExtendedClassifier`), uncalibrated and calibrated (`calibrate_offset`, as `--reference
   --max-taken` does, on scenes of the trained brands over the training backgrounds, another
   seed). Reported: top-1 on the held-out brands' test scenes (argmax over trained classes +
   prototypes), top-1 on the trained brands' and no-logo scenes before and after, and how many
   of those a prototype took.
4. Open set (no prototypes): how well `nearness` (the best cosine to a class direction) tells
   scenes of never-seen brands from scenes of trained brands: ROC AUC, and at the cut that keeps
   95% of trained-brand scenes, the share of never-seen ones flagged unknown.

Writes `onboarding.json` and `.md` to `out`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from lxn.config import setting

__all__ = ["OnboardingBenchConfig", "run", "markdown_table"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class OnboardingBenchConfig:
    out: Path = setting(Path("bench-out"), "directory for onboarding.json/.md")
    model: str = setting("models:/accuracy-logoxpertnet-lxn/1", "a model trained on real marks (jobs/benchmark.py accuracy registers them)")
    tracking_uri: str = setting("sqlite:///bench-out/accuracy/mlflow.db", "the MLflow store that holds --model")
    num_brands: int = setting(20, "the real-marks classes the model was trained on (its --num-brands)")
    held_out: int = setting(10, "never-seen brands to onboard (realmarks' held-out marks)")
    shots: list[int] = setting([1, 5, 10], "examples per onboarded brand")
    test_per_brand: int = setting(15, "test scenes per brand (held out and trained)")
    test_no_logo: int = setting(40, "no-logo test scenes")
    scene_size: int = setting(256, "generated scenes' side")
    keep_known: float = setting(0.95, "open set: the cut keeps this share of trained-brand scenes")
    max_taken: list[float] = setting([0.01, 0.05], "calibrations to compare with the uncalibrated prototypes (jobs/brands.py add --reference --max-taken)")
    reference_per_brand: int = setting(10, "calibration reference: scenes per trained brand (training backgrounds, another seed)")


def _decode(images: list[bytes], preset) -> np.ndarray:
    from lxn.scan.fetch import fetch_and_decode

    batch = {"uri": np.array([f"mem://{i}" for i in range(len(images))], dtype=object),
             "size": np.array([len(b) for b in images]), "data": np.array(images, dtype=object)}
    decoded = fetch_and_decode(batch, preset=preset.to_dict(), max_bytes=1 << 30, max_pixels=1 << 30)
    if (decoded["status"] != "ok").any():
        raise RuntimeError("a generated scene did not decode")
    return decoded["pixels"][:, 0]


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties half."""
    both = np.concatenate([positive, negative])
    ranks = np.argsort(np.argsort(both, kind="stable"), kind="stable") + 1.0
    # average ranks of ties
    for value in np.unique(both):
        same = both == value
        if same.sum() > 1:
            ranks[same] = ranks[same].mean()
    return float((ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def run(config: OnboardingBenchConfig) -> dict[str, Any]:
    from lxn.data import realmarks
    from lxn.embeddings import embedding_model
    from lxn.prototypes import ExtendedClassifier, PrototypeTable, calibrate_offset, prototype_vector
    from lxn.tracking import load_model

    loaded = load_model(config.model, config.tracking_uri)
    model = embedding_model(loaded)
    classes = loaded.class_names
    wide = realmarks.RealMarksConfig(num_brands=config.num_brands + config.held_out, images_per_brand=1, no_logo_images=1,
                                     image_size=config.scene_size, backgrounds="train", seed=5000, held_out_brands=0)
    trained = [m.slug for m in realmarks.marks(dataclasses.replace(wide, num_brands=config.num_brands))]
    if trained != [c for c in classes if c != realmarks.NO_LOGO]:
        raise ValueError(f"{config.model} was not trained on the first {config.num_brands} real marks "
                         f"(its classes: {classes[:5]}...); pass the --num-brands it was trained with")
    new = [m.slug for m in realmarks.marks(wide) if m.slug not in trained]
    test = dataclasses.replace(wide, backgrounds="test", seed=6000)
    shots = max(config.shots)
    examples = {b: model.run(_decode([realmarks.generate_image(wide, b, i) for i in range(shots)], loaded.preset))[1]
                for b in new}
    test_names = new + trained + [realmarks.NO_LOGO]
    test_images, test_labels = [], []
    for name in test_names:
        count = config.test_no_logo if name == realmarks.NO_LOGO else config.test_per_brand
        test_images += [realmarks.generate_image(test, name, i) for i in range(count)]
        test_labels += [name] * count
    own_logits, embeddings = model.run(_decode(test_images, loaded.preset))
    labels = np.array(test_labels, dtype=object)
    is_new = np.isin(labels, new)
    is_trained = np.isin(labels, trained)
    weight, bias = model.classifier_weights()

    base = ExtendedClassifier(weight, bias, PrototypeTable())
    base_pred = np.array(classes, dtype=object)[own_logits.argmax(axis=1)]
    known_before = float(np.mean(base_pred[~is_new] == labels[~is_new]))
    reference = dataclasses.replace(wide, seed=7000)
    reference_images = [realmarks.generate_image(reference, name, i) for name in [*trained, realmarks.NO_LOGO]
                        for i in range(config.reference_per_brand)]
    reference_logits, reference_embeddings = model.run(_decode(reference_images, loaded.preset))
    rows = []
    for k in config.shots:
        for max_taken in [None, *config.max_taken]:
            table = PrototypeTable()
            for b in new:
                offset = 0.0 if max_taken is None else calibrate_offset(
                    weight, bias, prototype_vector(examples[b][:k]), reference_logits, reference_embeddings, max_taken)
                table = table.added(b, examples[b][:k], "benchmark", classes, offset=offset)
            head = ExtendedClassifier(weight, bias, table)
            names = np.array([*classes, *table.brands], dtype=object)
            pred = names[head.logits(embeddings, own_logits).argmax(axis=1)]
            rows.append({"k": k, "max_taken": max_taken, "few_shot_top1": float(np.mean(pred[is_new] == labels[is_new])),
                         "known_top1_before": known_before,
                         "known_top1_after": float(np.mean(pred[~is_new] == labels[~is_new])),
                         "trained_scenes_taken_by_a_prototype": int(np.isin(pred[~is_new], new).sum())})
            log.info("onboarding k=%d: %s", k, rows[-1])

    near = base.nearness(embeddings)
    cut = float(np.quantile(near[is_trained], 1 - config.keep_known))
    open_set = {"auc_never_seen_vs_trained": _auc(-near[is_new], -near[is_trained]),
                "cut": round(cut, 4), "trained_kept": float(np.mean(near[is_trained] >= cut)),
                "never_seen_flagged": float(np.mean(near[is_new] < cut)),
                "no_logo_flagged": float(np.mean(near[labels == realmarks.NO_LOGO] < cut)),
                "mean_nearness": {"trained": float(near[is_trained].mean()), "never_seen": float(near[is_new].mean())}}
    summary = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()},
               "held_out_brands": new, "test_scenes": {"never_seen": int(is_new.sum()), "trained": int(is_trained.sum()),
                                                       "no_logo": int((labels == realmarks.NO_LOGO).sum())},
               "few_shot": rows, "open_set": open_set}
    (Path(config.out) / "onboarding.json").write_text(json.dumps(summary, indent=2))
    (Path(config.out) / "onboarding.md").write_text(markdown_table(summary))
    return summary


def markdown_table(summary: dict[str, Any]) -> str:
    lines = ["| examples per new brand (k) | calibration (--max-taken per brand) | few-shot top-1 (new brands) "
             "| trained brands' top-1 before -> after | trained scenes taken by a prototype |", "|---:|---|---:|---:|---:|"]
    for r in summary["few_shot"]:
        calibration = "none" if r["max_taken"] is None else f"{100 * r['max_taken']:g}%"
        lines.append(f"| {r['k']} | {calibration} | {100 * r['few_shot_top1']:.1f}% | {100 * r['known_top1_before']:.1f}% -> "
                     f"{100 * r['known_top1_after']:.1f}% | {r['trained_scenes_taken_by_a_prototype']} |")
    o = summary["open_set"]
    lines += ["", f"Open set (no prototypes): ROC AUC {o['auc_never_seen_vs_trained']:.3f} for telling never-seen brands "
              f"from trained ones by nearness; at --unknown-below {o['cut']} (keeps {100 * o['trained_kept']:.0f}% of "
              f"trained-brand scenes) {100 * o['never_seen_flagged']:.1f}% of never-seen-brand scenes and "
              f"{100 * o['no_logo_flagged']:.1f}% of no-logo scenes are flagged unknown."]
    return "\n".join(lines) + "\n"
