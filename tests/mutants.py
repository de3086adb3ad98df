"""Plant plausible one-line bugs, one at a time, and check that the tests catch each.

    make mutants                      # or: python tests/mutants.py [--only NAME ...] [--out DIR]

Each mutant names a module's core rule (the paper's equations, the split, dedup, the scan's
decision rule, the incremental skip, the commit, redaction, model loading, URIs, the bomb cap,
metrics, preprocessing), the exact line it changes and the tests that should catch it. The
project is copied to a scratch directory (tracked and untracked files, not .venv), the line is
changed there, and those tests run against the copy: `killed` when they fail, `survived` when
they pass, which means a bug of that kind would ship. Prints a table and writes mutants.json.
Not part of `make test`: it runs the chosen tests once per mutant (a few minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    rule: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


UNIT = "tests/unit/"
MUTANTS = [
    Mutant("hse-sab-max-is-mean", "HSE-SAB pooling: GMP", "lxn/layers/hse_sab.py",
           "parts.append(x.amax(dim=(2, 3)))", "parts.append(x.mean(dim=(2, 3)))", (UNIT + "test_layers.py",)),
    Mutant("hse-sab-min-is-mean", "HSE-SAB pooling: GMinP", "lxn/layers/hse_sab.py",
           "parts.append(x.amin(dim=(2, 3)))", "parts.append(x.mean(dim=(2, 3)))", (UNIT + "test_layers.py",)),
    Mutant("hse-sab-gate-without-relu", "HSE-SAB: the paper's gate", "lxn/layers/hse_sab.py",
           "            excite = F.relu(excite)", "            excite = excite", (UNIT + "test_layers.py",)),
    Mutant("clff-max-pooled-early-path", "CLFF: the early map is averaged", "lxn/layers/clff.py",
           "            return F.adaptive_avg_pool2d(early, size)", "            return F.adaptive_max_pool2d(early, size)",
           (UNIT + "test_layers.py",)),
    Mutant("fa-cbam-imaginary-part", "FA-CBAM: Re(FFT2)", "lxn/layers/fa_cbam.py",
           '.real.to(x.dtype)', '.imag.to(x.dtype)', (UNIT + "test_layers.py",)),
    Mutant("fa-cbam-spatial-max-for-mean", "FA-CBAM: [mean_c; max_c]", "lxn/layers/fa_cbam.py",
           "torch.cat([refined.mean(dim=1, keepdim=True)", "torch.cat([refined.amax(dim=1, keepdim=True)",
           (UNIT + "test_layers.py",)),
    Mutant("split-feeds-the-fullest-split", "split: largest deficit first", "lxn/data/split.py",
           "best = np.flatnonzero(deficit == deficit.max())", "best = np.flatnonzero(deficit == deficit.min())",
           (UNIT + "test_split.py",)),
    Mutant("dedup-radius-exclusive", "dedup: Hamming distance <= radius", "lxn/data/dedup.py",
           "close = np.bitwise_count(shash[p] ^ shash[q]) <= radius", "close = np.bitwise_count(shash[p] ^ shash[q]) < radius",
           (UNIT + "test_dedup.py",)),
    Mutant("dedup-keeps-the-smallest", "dedup: the largest member represents", "lxn/data/dedup.py",
           "order = np.lexsort((cand, -size_key[cand], canon[cand]))", "order = np.lexsort((cand, size_key[cand], canon[cand]))",
           (UNIT + "test_dedup.py",)),
    Mutant("decision-threshold-halved", "scan: brand below the threshold is null", "lxn/scan/predictor.py",
           "brand[confidence < threshold] = -1", "brand[confidence < threshold / 2] = -1",
           (UNIT + "test_scan_predictor.py",)),
    Mutant("decision-no-logo-is-a-brand", "scan: the no-logo class is never a brand", "lxn/scan/predictor.py",
           "        brand[order[:, 0] == no_logo] = -1", "        pass", (UNIT + "test_scan_predictor.py",)),
    Mutant("incremental-skips-unknown-etags", "incremental: skip only known (uri, etag)", "lxn/scan/listing.py",
           "keep = ~(covered.contains(hashes) & known)", "keep = ~covered.contains(hashes)",
           (UNIT + "test_scan_listing.py",)),
    Mutant("incremental-covers-failed-fetches", "incremental: failed fetches are retried", "lxn/scan/report.py",
           'settled = pc.or_(ok, pc.fill_null(pc.is_in(table["error_kind"], pa.array(sorted(SETTLED_ERROR_KINDS))), False))',
           'settled = pc.or_(ok, pc.is_valid(table["error_kind"]))', (UNIT + "test_scan_report.py",)),
    Mutant("commit-accepts-repeats", "commit: every row exactly once", "lxn/scan/report.py",
           "if seen[ids].any() or len(np.unique(ids)) != len(ids):", "if False:", (UNIT + "test_scan_report.py",)),
    Mutant("commit-accepts-a-missing-row", "commit: no listed row missing", "lxn/scan/report.py",
           "        if missing:", "        if missing > 1:", (UNIT + "test_scan_report.py",)),
    Mutant("redaction-keeps-queries", "redaction: every query value of a URI is masked in place", "lxn/redact.py",
           '        masked += "?" + _mask_query(query)', '        masked += "?" + query', (UNIT + "test_redact.py",)),
    Mutant("redaction-misses-secret-keys", "redaction: secret-looking keys", "lxn/redact.py",
           "    return bool(_SECRET_KEY.search(key))", '    return key == "password"', (UNIT + "test_redact.py",)),
    Mutant("model-digest-unchecked", "model loading: the registry's SHA-256", "lxn/tracking.py",
           "        if actual != expected_sha256:", "        if False:",
           ("tests/integration/test_tracking.py::test_a_swapped_archive_or_code_in_the_artifact_is_refused",)),
    Mutant("model-files-unchecked", "model loading: only an lxn pt2 model's files", "lxn/tracking.py",
           "    if links or unknown:", "    if False:",
           ("tests/integration/test_tracking.py::test_a_planted_pickle_is_refused_and_never_runs",)),
    Mutant("uri-typo-is-a-local-path", "URIs: s3:/x is refused", "lxn/storage.py",
           "        typo = _TYPO_RE.match(text)", "        typo = None", (UNIT + "test_storage.py",)),
    Mutant("uri-local-escape", "URIs: '..' cannot leave a local root", "lxn/storage.py",
           "    if joined != root and not joined.startswith(root.rstrip(os.sep) + os.sep):", "    if False:",
           (UNIT + "test_storage.py",)),
    Mutant("bomb-cap-four-times", "images: the header's pixels against max_pixels", "lxn/images.py",
           "    if width * height > max_pixels:", "    if width * height > 4 * max_pixels:", (UNIT + "test_images.py",)),
    Mutant("macro-f1-over-every-class", "metrics: macro over present classes", "lxn/metrics.py",
           '"f1_macro": float(f1[present].mean()) if present.any() else 0.0,', '"f1_macro": float(f1.mean()),',
           (UNIT + "test_metrics.py",)),
    Mutant("auc-ties-first-rank", "metrics: tied scores share their average rank", "lxn/metrics.py",
           "run_rank = (starts + ends + 1) / 2.0", "run_rank = starts + 1.0", (UNIT + "test_metrics.py",)),
    Mutant("denoise-in-training-only", "preprocess: the same pixels in training and the scan", "lxn/preprocess.py",
           "        if self.blur_padding:", "        if self.blur_padding and self.training:", (UNIT + "test_presets.py",)),
    Mutant("cosine-upside-down", "recipes: warm-up then cosine down to the floor", "lxn/train/recipes.py",
           "0.5 * (1 + math.cos(math.pi * t))", "0.5 * (1 - math.cos(math.pi * t))", (UNIT + "test_recipes.py",)),
    Mutant("onecycle-peak-misplaced", "recipes: the plain recipe's one cycle peaks at 30% of the run",
           "lxn/train/recipes.py", "return _cosine(ONECYCLE_START, 1.0, epoch / peak)",
           "return _cosine(ONECYCLE_START, 1.0, epoch / epochs)", (UNIT + "test_recipes.py",)),
    Mutant("decay-on-norms", "recipes: AdamW decays weights, not BatchNorm's scales or biases",
           "lxn/train/trainer.py", "if p.requires_grad and p.ndim > 1]", "if p.requires_grad and p.ndim >= 1]",
           (UNIT + "test_recipes.py",)),
    Mutant("step-decay-overshoots", "recipes: the paper's step decay ends at its floor", "lxn/train/recipes.py",
           "    steps = max(1, math.ceil(epochs / self.lr_step_epochs) - 1)",
           "    steps = max(1, math.ceil(epochs / self.lr_step_epochs))", (UNIT + "test_recipes.py",)),
    Mutant("store-by-longer-side", "decode: stored copies keep the shorter side", "lxn/presets.py",
           "scale = min(1.0, store_side / min(width, height),", "scale = min(1.0, store_side / max(width, height),",
           (UNIT + "test_decode_parity.py",)),
    Mutant("dct-is-fft", "FA-CBAM: the exact DCT-II", "lxn/layers/fa_cbam.py",
           "    return dct2(x)", "    return real_fft2(x)", (UNIT + "test_layers.py",)),
    Mutant("eval-split-equal", "training: every val/test image scored once", "lxn/train/ingest.py",
           "streaming_split(world_size, equal=False)", "streaming_split(world_size, equal=True)",
           ("tests/integration/test_train.py::test_resumes_after_a_worker_and_then_the_driver_are_killed",)),
    Mutant("val-trained-and-scored", "training: --train-on-val scores only the validation rows not trained on",
           "lxn/train/trainer.py", 'splits["train"].union(share(True)), share(False)',
           'splits["train"].union(share(True)), splits["val"]',
           ("tests/integration/test_train.py::test_training_on_the_validation_split_moves_whole_groups_and_never_touches_test",)),
    Mutant("threshold-highest-not-lowest", "evidence: the lowest threshold reaching the precision", "lxn/evidence.py",
           'curve["threshold"][reaching[-1]]', 'curve["threshold"][reaching[0]]', (UNIT + "test_evidence.py",)),
    Mutant("mcnemar-one-sided", "evidence: McNemar's test is two-sided", "lxn/evidence.py",
           '"p_value": min(1.0, 2 * tail)', '"p_value": min(1.0, tail)', (UNIT + "test_evidence.py",)),
    Mutant("normalise-swapped", "preprocess: (x - mean) / std", "lxn/preprocess.py",
           "        return (x - self.mean) / self.std", "        return (x - self.std) / self.mean",
           (UNIT + "test_presets.py",)),
    Mutant("promotion-tie-is-better", "promotion: better means more wins than losses", "lxn/promote.py",
           'if m["wins"] <= m["losses"] or', 'if m["wins"] < m["losses"] or', (UNIT + "test_promote_gates.py",)),
    Mutant("promotion-drop-ignores-support", "promotion: a class drop counts with enough images", "lxn/promote.py",
           'if c["support"] >= config.class_min_support and', 'if c["support"] >= 0 and', (UNIT + "test_promote_gates.py",)),
    Mutant("promotion-no-recheck", "promotion: apply only if no alias moved meanwhile", "lxn/promote.py",
           "if (now_champion, now_candidate) != (was_champion, decision.candidate.version):", "if False:",
           ("tests/integration/test_promote.py::test_two_promotions_at_once_leave_one_winner",)),
    Mutant("evaluation-no-logo-is-first-class", "evaluation: a no-logo image's label is the no-logo class",
           "lxn/evaluation/labelled.py", "return [no_logo if b is None else index[b] for b in brands]",
           "return [0 if b is None else index[b] for b in brands]",
           ("tests/integration/test_evaluate.py::test_figures_are_what_the_labels_and_the_models_say",)),
    Mutant("no-logo-image-shows-a-brand", "evidence: an image without a logo shows no brand, class or not",
           "lxn/evidence.py", "    brand = labels != NO_LOGO_IMAGE", "    brand = labels != -99",
           (UNIT + "test_evidence.py",)),
    Mutant("detector-box-axes-swapped", "scan: a detector's box scales x by W / S and y by H / S", "lxn/scan/marks.py",
           "sx, sy = width / image_size, height / image_size", "sx, sy = height / image_size, width / image_size",
           (UNIT + "test_scan_marks.py",
            "tests/integration/test_scan_pipeline.py::test_a_registered_detector_scans_like_any_model_with_boxes_in_original_pixels")),
    Mutant("evaluation-first-tile", "evaluation: the scan's chosen tile decides", "lxn/scan/predictor.py",
           "    return values[np.arange(len(chosen)), chosen]", "    return values[:, 0]",
           (UNIT + "test_scan_predictor.py", "tests/integration/test_scan_pipeline.py::test_tiles_find_a_small_logo_the_whole_image_misses")),
    Mutant("detection-merges-across-brands", "detections: only one brand's tiles are one logo", "lxn/scan/tiling.py",
           "if cls == top[t] and _overlap(seed, box)", "if _overlap(seed, box)", (UNIT + "test_scan_tiling.py",)),
    Mutant("detection-box-is-the-first-tile", "detections: the box is where the tiles that saw it agree",
           "lxn/scan/tiling.py", "return [(cls, p, _where(members)) for", "return [(cls, p, _where(members[:1])) for",
           (UNIT + "test_scan_tiling.py",)),
    Mutant("prototype-not-unit", "prototypes: a brand is the unit mean of unit embeddings", "lxn/prototypes.py",
           "return normalize(normalize(embeddings).mean(axis=0))", "return normalize(embeddings).mean(axis=0)",
           (UNIT + "test_prototypes.py",)),
    Mutant("imprint-unscaled", "prototypes: imprinted rows take the trained rows' norm", "lxn/prototypes.py",
           "self.weight = np.concatenate([weight, scale * vectors])", "self.weight = np.concatenate([weight, vectors])",
           (UNIT + "test_prototypes.py",)),
    Mutant("calibration-wrong-tail", "prototypes: the offset lets max_taken of the reference through", "lxn/prototypes.py",
           "np.quantile(margins, max_taken, method=\"lower\")", "np.quantile(margins, 1 - max_taken, method=\"lower\")",
           (UNIT + "test_prototypes.py",)),
    Mutant("open-set-off", "open set: far from every class is unknown", "lxn/scan/predictor.py",
           "            unknown = _pick(far, chosen)", "            unknown = _pick(far, chosen) & False",
           ("tests/integration/test_brands.py::test_the_scan_reports_the_onboarded_brand_and_unknown_marks",)),
    Mutant("detector-level-offset", "detector: a candidate's position counts from its level's start", "lxn/models/detector.py",
           'rounding_mode="floor") + start', 'rounding_mode="floor")', (UNIT + "test_detector.py",)),
    Mutant("detector-dead-box-branch", "detector: the box branch starts alive (bias 1)", "lxn/models/detector.py",
           "nn.init.constant_(head.regression_head.bbox_reg.bias, 1.0)", "nn.init.constant_(head.regression_head.bbox_reg.bias, 0.0)",
           (UNIT + "test_detector.py",)),
    Mutant("coco-xywh-read-as-xyxy", "COCO: bbox is [x, y, width, height]", "lxn/data/coco.py",
           "bbox[0] + bbox[2], bbox[1] + bbox[3]", "bbox[2], bbox[3]", (UNIT + "test_boxes.py",)),
    Mutant("scene-marks-overlap", "scenes: marks overlap at most max_overlap", "lxn/data/scenes.py",
           'if all(_shared(box, b["box"]) <= scene.max_overlap for b in boxes):', "if True:", (UNIT + "test_boxes.py",)),
    Mutant("detection-recall-ignores-brand", "detection metrics: a mark is found by a box of its own brand",
           "lxn/evaluation/detection.py", 'if not taken[k] and t["label"] == d["label"]:', "if not taken[k]:",
           (UNIT + "test_detection_metrics.py",)),
    Mutant("augmented-boxes-stay-put", "box augmentation: boxes move with the pixels", "lxn/train/box_augment.py",
           'out_targets.append({"boxes": moved["boxes"].as_subclass(torch.Tensor)',
           'out_targets.append({"boxes": target["boxes"].reshape(-1, 4).float()', (UNIT + "test_box_augment.py",)),
    Mutant("box-tolerance-ignored", "boxes: more than a pixel outside is refused", "lxn/data/boxes.py",
           "if x0 < -t or y0 < -t or x1 > width + t or y1 > height + t:", "if False:", (UNIT + "test_boxes.py",)),
    Mutant("drift-ignores-sampling-noise", "drift: a PSI above what sampling gives", "lxn/nightly/drift.py",
           "        if confidence_psi > confidence_cut:", "        if confidence_psi > PSI_CUT:",
           (UNIT + "test_nightly_drift.py",)),
    Mutant("drift-window-includes-tonight", "drift: against the nights before", "lxn/nightly/history.py",
           "(day - dt.timedelta(days=1)).isoformat())", "day.isoformat())", (UNIT + "test_nightly_drift.py",)),
    Mutant("page-brand-unescaped", "page: report text is escaped", "lxn/nightly/page.py",
           'cells = (f"<td>{_e(name)}</td>', 'cells = (f"<td>{name}</td>', (UNIT + "test_nightly_page.py",)),
    Mutant("thumb-boxes-unscaled", "thumbnails: boxes scaled with the picture", "lxn/nightly/thumbs.py",
           "box = [mark[\"x0\"] * sx, mark[\"y0\"] * sy,", "box = [mark[\"x0\"], mark[\"y0\"],",
           (UNIT + "test_nightly_page.py",)),
    Mutant("queue-highest-not-nearest", "review queue: nearest the threshold first", "lxn/nightly/picks.py",
           "key=lambda h: abs(h.margin))", "key=lambda h: -h.margin)", (UNIT + "test_nightly_page.py",)),
    Mutant("histogram-of-error-rows-too", "summary: confidences of ok images", "lxn/scan/report.py",
           'table["confidence"].filter(ok).to_numpy', 'table["confidence"].fill_null(0).to_numpy',
           (UNIT + "test_nightly_drift.py",)),
    Mutant("review-rotation-turns-left", "review: Label Studio rotates clockwise about the top-left corner",
           "lxn/review/labelstudio.py", "xs = [x, x + w * c, x + w * c - h * s, x - h * s]",
           "xs = [x, x + w * c, x + w * c + h * s, x + h * s]", (UNIT + "test_review.py",)),
    Mutant("review-first-answer-wins", "review: the latest submitted answer decides a task", "lxn/review/labelstudio.py",
           "return max(truth or live,", "return min(truth or live,", (UNIT + "test_review.py",)),
    Mutant("review-skipped-counts", "review: a skipped task is not reviewed", "lxn/review/labelstudio.py",
           'live = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]',
           "live = [a for a in annotations if isinstance(a, dict)]", (UNIT + "test_review.py",)),
    Mutant("review-percent-of-height", "review: x is percent of the width", "lxn/review/labelstudio.py",
           'return {"x": 100.0 * x0 / width,', 'return {"x": 100.0 * x0 / height,', (UNIT + "test_review.py",)),
    Mutant("review-any-picture-fits", "review: the tool's picture is the export's", "lxn/review/labelstudio.py",
           "and abs(seen_w / seen_h - width / height) > _ASPECT_TOLERANCE * width / height:",
           "and abs(seen_w / seen_h - width / height) > 1e9:", (UNIT + "test_review.py",)),
    Mutant("audit-takes-doubtful-rows", "review: the audit sample is of confident hits", "lxn/review/select.py",
           "(conf >= threshold + self.band))", "(conf >= threshold))", (UNIT + "test_review.py",)),
    Mutant("bench-best-is-worst", "accuracy benchmark: a model's best run is its highest mean top-1", "lxn/benchmarks/accuracy.py",
           'entry["top1"] > best[entry["model"]]["top1"]', 'entry["top1"] < best[entry["model"]]["top1"]',
           (UNIT + "test_accuracy_benchmark.py::test_the_tables_are_built_from_the_logged_runs",)),
    Mutant("bench-seeds-unpaired", "accuracy benchmark: answers are paired by seed and image", "lxn/benchmarks/accuracy.py",
           'a = {(r["seed"], uri): ok for r in first', 'a = {(0, uri): ok for r in first',
           (UNIT + "test_accuracy_benchmark.py::test_the_tables_are_built_from_the_logged_runs",)),
]


def _project_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.split(b"\0")
    return [name.decode() for name in listed if name and (REPO / name.decode()).is_file()]


def _scratch_copy(into: Path) -> None:
    for name in _project_files():
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)


def run_mutant(mutant: Mutant, scratch: Path, python: str, timeout: float) -> dict:
    source = scratch / mutant.path
    original = source.read_text()
    if original.count(mutant.old) != 1:
        return {"name": mutant.name, "result": "stale", "detail": f"the line is not in {mutant.path} exactly once"}
    source.write_text(original.replace(mutant.old, mutant.new))
    started = time.monotonic()
    try:
        env = {**os.environ, "PYTHONPATH": str(scratch), "PYTHONDONTWRITEBYTECODE": "1"}
        # The scratch copy must be what the tests import, not the editable install of the real tree.
        check = subprocess.run([python, "-c", "import lxn; print(lxn.__file__)"], cwd=scratch, env=env,
                               capture_output=True, text=True)
        if not check.stdout.startswith(str(scratch)):
            raise RuntimeError(f"the tests would import lxn from {check.stdout.strip()}, not the scratch copy")
        done = subprocess.run([python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests],
                              cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout)
        # pytest's 4 (a named test is not there) and 5 (no test collected) prove nothing: a renamed
        # test would otherwise count as a kill for ever.
        result = {0: "survived", 4: "stale", 5: "stale"}.get(done.returncode, "killed")
        tail = (done.stdout.strip() or done.stderr.strip()).splitlines()[-1:]
        detail = tail[0] if tail else ""
    except subprocess.TimeoutExpired:
        result, detail = "killed", f"timed out after {timeout:.0f} s"
    finally:
        source.write_text(original)
    return {"name": mutant.name, "rule": mutant.rule, "file": mutant.path, "result": result,
            "seconds": round(time.monotonic() - started, 1), "detail": detail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="mutant names to run (default: all)")
    parser.add_argument("--out", default="bench-out", help="where mutants.json goes")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    with tempfile.TemporaryDirectory(prefix="lxn-mutants-") as tmp:
        scratch = Path(tmp)
        _scratch_copy(scratch)
        results = []
        for mutant in chosen:
            results.append(run_mutant(mutant, scratch, sys.executable, args.timeout))
            r = results[-1]
            print(f"{r['result']:>8}  {mutant.name:<36} {r.get('seconds', 0):>6.1f}s  {r.get('detail', '')}", flush=True)
    killed = sum(r["result"] == "killed" for r in results)
    print(f"\n{killed}/{len(results)} killed, {sum(r['result'] == 'survived' for r in results)} survived, "
          f"{sum(r['result'] == 'stale' for r in results)} stale")
    os.makedirs(args.out, exist_ok=True)
    Path(args.out, "mutants.json").write_text(json.dumps(results, indent=1))
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
