"""Score labelled images with one or more registered models, through the scan's own path.

The Ray Data pipeline is the scan's (`lxn.scan.pipeline._scan`): rows -> `fetch_and_decode`
(CPU tasks: the one decode path and the model's preset) -> an actor pool whose actors hold
`lxn.scan.predictor.Predictor`s, which produce the probabilities the scan's decision rests on
(the chosen tile's, with `--tiles`). Models that share a preset share one fetch and decode;
models with different presets get a decode each (the same bytes cannot give both sizes' pixels
exactly as their scans would). Only labels, statuses and probabilities reach the driver.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Sequence

import numpy as np

from lxn import storage
from lxn.config import setting
from lxn.evaluation.labelled import LabelledSet, label_indices
from lxn.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from lxn.ray_utils import cluster_shape, init_ray, read_parquet
from lxn.scan.fetch import fetch_and_decode
from lxn.scan.pipeline import configure_data_context, decode_memory, plan_actors
from lxn.scan.schema import nullable_strings
from lxn.registry import ModelRef
from lxn.model_package import LoadedModel, ModelPackage

__all__ = ["ScoringSettings", "ModelScores", "Scored", "Scorer", "score"]

log = logging.getLogger(__name__)

# A true brand crosses the pipeline as `label`, its index in the set's sorted brand names (-1: no
# logo), never as a nullable string: Ray Data hands a block whose strings are all null to numpy as
# float NaN, and a stage that passes that on cannot be concatenated with a block of real names.
_PASSED = ("uri", "label", "status", "error_kind", "error")
_NO_LOGO_LABEL = -1


@dataclasses.dataclass(frozen=True)
class ScoringSettings:
    """How images are scored (the scan's flags of the same names): the settings evaluate's and
    promotion's configs share, by inheriting them."""

    tiles: list[int] | None = setting(None, "score as the scan does with --tiles (the most brand-like tile decides)")
    no_logo_class: str = setting("no-logo", "the models' class meaning 'no logo'")
    batch_size: int = setting(32, "images per model call (and per Ray Data batch)")
    actors: int = setting(1, "scoring actors, each loading every model once")
    actor_cpus: float = setting(1.0, "CPUs reserved per scoring actor")
    device: str = setting("auto", "auto, cpu or cuda (auto: one GPU per actor when the cluster has GPUs)")
    model_threads: int = setting(0, "torch intra-op threads per actor on the CPU (0: the actor's CPUs)")
    fetch_threads: int = setting(8, "concurrent fetches within a decode task")
    max_bytes: int = setting(DEFAULT_MAX_BYTES, "objects larger than this are not fetched (an error, left out of the figures)")
    max_pixels: int = setting(DEFAULT_MAX_PIXELS, "decompression-bomb cap on the pixels an image header declares")
    ray_address: str | None = setting(None, "Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    progress_bars: bool = setting(True, "Ray Data's progress bars")

    def scoring_problems(self) -> list[str]:
        problems = []
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.batch_size < 1 or self.actors < 1 or self.fetch_threads < 1 or self.actor_cpus <= 0:
            problems.append("--batch-size, --actors, --fetch-threads and --actor-cpus must be positive")
        return problems

    def scoring_settings(self) -> "ScoringSettings":
        """These settings alone (what travels to the scoring actors: no URIs, no credentials)."""
        return ScoringSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ScoringSettings)})

    @property
    def grids(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.tiles or ())))

    @property
    def actor_resource_amounts(self) -> dict[str, float]:  # what `plan_actors` reads
        return {}


@dataclasses.dataclass
class ModelScores:
    """One model's view of the scored images (the ok rows of `Scored`, in its order)."""

    ref: ModelRef
    class_names: list[str]
    preset: dict[str, Any]
    labels: np.ndarray   # (N,) true class indices in this model's classes (NO_LOGO_IMAGE: see lxn.evidence)
    probs: np.ndarray    # (N, K) the probabilities the scan's decision rests on
    no_logo: int | None  # the index of the no-logo class, if the model has one

    @property
    def correct(self) -> np.ndarray:
        """Per image, whether the top-1 class is the true one (an image without a logo, for a
        model with no no-logo class, never is: `correct_at` judges those by the threshold)."""
        return self.probs.argmax(axis=1) == self.labels

    def correct_at(self, threshold: float) -> np.ndarray:
        """Per image, whether the model is right: the top-1 class is the true one; an image
        without a logo, for a model with no no-logo class (NO_LOGO_IMAGE), is right when no brand
        reaches `threshold`."""
        from lxn.evidence import NO_LOGO_IMAGE

        right = self.correct
        blank = self.labels == NO_LOGO_IMAGE
        right[blank] = self.probs[blank].max(axis=1, initial=0.0) < threshold
        return right


@dataclasses.dataclass
class Scored:
    """Every image of the set: its URI, true brand and status; the ok ones scored by each model."""

    uris: np.ndarray         # (M,) every image
    brands: list[str | None]  # (M,) true brands, None: no logo
    status: np.ndarray       # (M,) "ok" or "error"
    error_kind: list[str | None]
    models: list[ModelScores]

    @property
    def ok(self) -> np.ndarray:
        return self.status == "ok"

    @property
    def errors_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kind, ok in zip(self.error_kind, self.ok):
            if not ok:
                counts[kind or "error"] = counts.get(kind or "error", 0) + 1
        return counts


class Scorer:
    """A decoded batch -> the same rows without pixels, plus `probs_<j>` (N, K_j) per model j."""

    def __init__(self, models: Sequence[ModelPackage], indices: Sequence[int], *, options: ScoringSettings,
                 device: str, drop_data: bool) -> None:
        from lxn.scan.predictor import Predictor, predictor_settings

        self.predictors = [Predictor(model, scan_id="evaluation", device=device,
                                     **predictor_settings(options, decide=False)) for model in models]
        self.indices, self.drop_data = list(indices), drop_data

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = np.asarray(batch["status"] == "ok", dtype=bool)
        dropped = {"pixels", "boxes", *(("data",) if self.drop_data else ())}
        out = _passed(batch, dropped)
        for j, predictor in zip(self.indices, self.predictors):
            probs = np.zeros((len(ok), len(predictor.class_names)), dtype=np.float32)
            if ok.any():
                probs[ok] = predictor.image_probabilities(batch["pixels"][ok])[0]
            out[f"probs_{j}"] = probs
        return out


def _passed(batch: dict[str, np.ndarray], dropped: set[str]) -> dict[str, np.ndarray]:
    """The columns a scoring stage passes on, with the error strings' nulls as None: a block of
    only decoded images reaches this stage with them as float NaN (see `_PASSED`)."""
    out = {name: column for name, column in batch.items() if name not in dropped}
    for name in ("error_kind", "error"):
        if name in out:
            out[name] = np.array(nullable_strings(out[name]), dtype=object)
    return out


def _brand_names(labelled: LabelledSet) -> list[str]:
    return sorted(b for b in labelled.brands if b is not None)


def _labels(brands: Sequence[str | None], names: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    return np.array([_NO_LOGO_LABEL if b is None else index[b] for b in brands], dtype=np.int64)


def _prepared_rows(batch: dict[str, np.ndarray], *, names: list[str]) -> dict[str, np.ndarray]:
    """A prepared split's rows -> evaluation rows: the stored copy's bytes travel as `data`."""
    from lxn.data.readers import NO_LOGO

    labels = _labels([None if name == NO_LOGO else str(name) for name in batch["class_name"]], names)
    return {"uri": batch["source_uri"], "label": labels, "size": np.full(len(labels), -1, dtype=np.int64),
            "data": batch["image"]}


def _dataset(labelled: LabelledSet, names: list[str], batch_size: int):
    import pyarrow as pa
    import ray.data

    if labelled.prepared is not None:
        filesystem, path = storage.arrow_filesystem(labelled.prepared)
        return read_parquet(path, filesystem=filesystem).select_columns(["image", "class_name", "source_uri"]) \
            .map_batches(_prepared_rows, batch_format="numpy", batch_size=batch_size, fn_kwargs={"names": names}) \
            .repartition(target_num_rows_per_block=batch_size, strict=True)
    rows = labelled.rows
    labels = _labels(rows["brand"].to_pylist(), names)
    rows = rows.drop_columns(["brand"]).append_column("label", pa.array(labels, pa.int64()))
    return ray.data.from_arrow(rows).repartition(target_num_rows_per_block=batch_size, strict=True)


def score(labelled: LabelledSet, models: Sequence[LoadedModel],
          options: ScoringSettings) -> Scored:
    """Every image of `labelled`, scored by every model (`models` resolved to versions)."""
    import ray.data

    for model in models:  # a brand a model cannot predict fails here, before any image is read
        label_indices(list(labelled.brands), model.predicted_classes, options.no_logo_class)
    init_ray(address=options.ray_address)
    configure_data_context(options.progress_bars)
    use_gpu = plan_actors(options, cluster_shape())["use_gpu"]

    groups: dict[str, list[int]] = {}
    for j, model in enumerate(models):
        groups.setdefault(json.dumps(model.preset.to_dict(), sort_keys=True), []).append(j)
    names = _brand_names(labelled)
    dataset = _dataset(labelled, names, options.batch_size)
    for g, (preset_json, indices) in enumerate(groups.items()):
        preset = json.loads(preset_json)
        dataset = dataset.map_batches(
            fetch_and_decode, batch_size=options.batch_size, batch_format="numpy",
            fn_kwargs={"preset": preset, "grids": options.grids, "max_bytes": options.max_bytes,
                       "max_pixels": options.max_pixels, "threads": options.fetch_threads},
            num_cpus=1,
            memory=decode_memory(options.batch_size, options.grids, options.fetch_threads, preset["image_size"]),
        ).map_batches(
            Scorer,
            fn_constructor_args=([models[j].package for j in indices], indices),
            fn_constructor_kwargs={"options": options,
                                   "device": "cuda" if use_gpu else "cpu", "drop_data": g == len(groups) - 1},
            batch_size=options.batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(min_size=options.actors, max_size=options.actors),
            num_cpus=1 if use_gpu else options.actor_cpus, num_gpus=1 if use_gpu else 0,
        )

    columns: dict[str, list] = {name: [] for name in (*_PASSED, *(f"probs_{j}" for j in range(len(models))))}
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for name in columns:
            columns[name].append(batch[name])
    joined = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in columns.items()}
    status = joined["status"].astype(object) if len(joined["status"]) else np.zeros(0, dtype=object)
    if len(status) != labelled.count:
        raise RuntimeError(f"the pipeline returned {len(status)} rows for {labelled.count} labelled images")
    brands = [None if label == _NO_LOGO_LABEL else names[label] for label in joined["label"].tolist()]
    ok = status == "ok"
    scored_brands = [b for b, good in zip(brands, ok) if good]
    per_model = [
        ModelScores(ref=model.ref, class_names=model.predicted_classes, preset=model.preset.to_dict(),
                    labels=np.asarray(label_indices(scored_brands, model.predicted_classes, options.no_logo_class),
                                      dtype=np.int64),
                    probs=np.asarray(joined[f"probs_{j}"], dtype=np.float32)[ok],
                    no_logo=model.predicted_classes.index(options.no_logo_class)
                    if options.no_logo_class in model.predicted_classes else None)
        for j, model in enumerate(models)
    ]
    kinds = nullable_strings(joined["error_kind"])
    scored = Scored(uris=joined["uri"].astype(object), brands=brands, status=status, error_kind=kinds, models=per_model)
    if not ok.all():
        log.warning("%d of %d images could not be read or decoded and are left out of the figures: %s",
                    int((~ok).sum()), len(ok), ", ".join(f"{k} {v}" for k, v in scored.errors_by_kind.items()))
    return scored
