"""Onboarding brands from a few examples: `add`, `remove` and `list` over registered versions.

`add` embeds the example images through the scan's own fetch and decode path and the model's
pre-logits layer, makes the brand's prototype (lxn.prototypes) and registers a new version of
the same registered model: the same weights, the source version's threshold and open-set tags,
and the grown prototype table in its metadata. The alias the command named (`--model
models:/NAME@ALIAS`, or `--alias`) then moves to the new version, under the registry lock that
promotion takes, after checking that it still points at the source version; moving `champion`
keeps the old one as `previous-champion` (so `jobs/promote.py --rollback` undoes it). `remove`
does the same with the brand left out. Bad input (no decodable example, a name the model knows,
a model without embeddings) fails before anything is registered.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

import numpy as np

from lxn import registry, storage
from lxn.config import setting
from lxn.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from lxn.prototypes import prototype_vector

__all__ = ["BrandsConfig", "BrandChange", "add", "remove", "listing"]

log = logging.getLogger(__name__)

_EXAMPLE_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff")
_BRAND_RE = re.compile(r"^[\w][\w .&'+\-]{0,99}$")
# tags the new version inherits: what its classifier part was measured and tuned to
_INHERITED_TAGS = (registry.THRESHOLD, registry.THRESHOLD_TARGET, registry.THRESHOLD_SOURCE, registry.UNKNOWN_BELOW,
                   registry.DATASET, registry.RUN_NAME)


@dataclasses.dataclass(frozen=True)
class BrandsConfig:
    model: str = setting("models:/logoxpertnet@champion", "models:/<name>@<alias> or models:/<name>/<version>: the version to extend")
    brand: str | None = setting(None, "the brand to add or remove")
    examples: str | None = setting(None, "folder or prefix (local or s3://) of the brand's example images (add)", uri="input")
    reference: str | None = setting(None, "folder or prefix of typical images (trained brands, no logo; e.g. a sample of last night's bucket) to calibrate the new prototype on: it may take at most --max-taken of them from the trained brands (without it the prototype is uncalibrated)", uri="input")
    max_taken: float = setting(0.01, "with --reference: the share of reference images the new brand may take")
    reference_max: int = setting(500, "use at most this many reference images (at least 20 must decode)")
    alias: str | None = setting(None, "alias to move to the new version (default: the alias --model names; none for a version number)")
    min_examples: int = setting(1, "refuse fewer decodable examples than this")
    max_examples: int = setting(50, "use at most this many examples (the first, in key order)")
    tracking_uri: str | None = setting(None, "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)", uri="tracking")
    experiment: str = setting("lxn-brands", "MLflow experiment of the runs that log the new versions")
    max_bytes: int = setting(DEFAULT_MAX_BYTES, "example objects larger than this are skipped")
    max_pixels: int = setting(DEFAULT_MAX_PIXELS, "decompression-bomb cap per example")

    def __post_init__(self) -> None:
        if self.brand is not None and not _BRAND_RE.match(self.brand):
            raise ValueError(f"--brand {self.brand!r}: use 1-100 letters, digits, spaces or . & ' + - _ "
                             "(it becomes a report value and a tag)")
        if not 1 <= self.min_examples <= self.max_examples:
            raise ValueError("need 1 <= --min-examples <= --max-examples")
        if not 0.0 <= self.max_taken < 1.0 or self.reference_max < 1:
            raise ValueError("need 0 <= --max-taken < 1 and --reference-max >= 1")


@dataclasses.dataclass
class BrandChange:
    source: str                 # models:/name/version the change started from
    version: str                # the new version
    alias: str | None           # the alias moved to it
    brands: list[str]           # the new version's prototype brands
    examples: int = 0           # embedded examples (add)
    calibration: dict[str, Any] | None = None  # add with --reference
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)  # examples not decoded, by error kind
    run_id: str | None = None


def _images(uri: str, preset, config: BrandsConfig, *, limit: int, need: int, what: str
            ) -> tuple[np.ndarray, list[str], dict[str, int]]:
    """The decodable images under `uri` (the first `limit` in key order) as (n, S, S, 3) pixels,
    their URIs, and the skipped ones by error kind; raises when fewer than `need` decode."""
    from lxn.scan.fetch import fetch_and_decode

    found = sorted(storage.iter_objects(uri, extensions=_EXAMPLE_EXTENSIONS), key=lambda i: i.uri)
    if not found:
        raise ValueError(f"no image files ({', '.join(_EXAMPLE_EXTENSIONS)}) under {what} {uri}")
    found = found[:limit]
    n = len(found)
    batch = {"uri": np.array([i.uri for i in found], dtype=object), "size": np.array([i.size for i in found])}
    decoded = fetch_and_decode(batch, preset=preset.to_dict(), max_bytes=config.max_bytes, max_pixels=config.max_pixels)
    ok = decoded["status"] == "ok"
    skipped: dict[str, int] = {}
    for kind in decoded["error_kind"][~ok]:
        skipped[kind] = skipped.get(kind, 0) + 1
    if ok.sum() < need:
        raise ValueError(f"only {int(ok.sum())} of {n} files under {what} {uri} decode "
                         f"(need {need}; not decoded: {skipped or 'none'}); nothing was registered")
    return decoded["pixels"][ok, 0], [str(u) for u in decoded["uri"][ok]], skipped


def _calibration(config: BrandsConfig, loaded, model, vector: np.ndarray, examples: tuple[np.ndarray, np.ndarray]
                 ) -> tuple[float, dict[str, Any] | None]:
    from lxn.prototypes import ExtendedClassifier, Prototype, PrototypeTable, calibrate_offset

    if not config.reference:
        log.warning("no --reference: the prototype of %r is uncalibrated and may take many images of the trained "
                    "brands (see the README's onboarding figures)", config.brand)
        return 0.0, None
    pixels, uris, _ = _images(config.reference, loaded.preset, config, limit=config.reference_max, need=20,
                              what="--reference")
    logits, embeddings = model.run(pixels)
    weight, bias = model.classifier_weights()
    offset = calibrate_offset(weight, bias, vector, logits, embeddings, config.max_taken)
    # how many of the brand's own examples the calibrated prototype still wins
    own_logits, own_embeddings = examples
    row = ExtendedClassifier(weight, bias, PrototypeTable((Prototype(config.brand, vector, 1, "", "", offset),)))
    won = float(np.mean(row.logits(own_embeddings, own_logits).argmax(axis=1) == len(bias)))
    return offset, {"reference": storage.normalize_uri(config.reference), "images": len(uris),
                    "max_taken": config.max_taken, "examples_won": round(won, 4)}


def _target_alias(config: BrandsConfig) -> str | None:
    if config.alias:
        return config.alias
    _, _, alias = config.model.partition("@")
    return alias or None


def _load(config: BrandsConfig):
    from lxn.embeddings import embedding_model
    from lxn.tracking import check_tracking, load_model

    tracking_uri = check_tracking(config.tracking_uri)
    ref = registry.Registry(tracking_uri).resolve(config.model)
    loaded = load_model(ref.uri, tracking_uri)
    return tracking_uri, ref, loaded, embedding_model(loaded)  # NoEmbeddings (a ValueError) before any work


def _need(config: BrandsConfig, command: str) -> None:
    if not config.brand:
        raise ValueError(f"`{command}` needs --brand NAME")
    if command == "add" and not config.examples:
        raise ValueError("`add` needs --examples URI (a folder or prefix of 5-20 images of the brand)")


def add(config: BrandsConfig) -> BrandChange:
    _need(config, "add")
    tracking_uri, ref, loaded, model = _load(config)
    table = loaded.prototypes
    table.check_new(config.brand, loaded.class_names)  # before any example is read
    pixels, uris, skipped = _images(config.examples, loaded.preset, config, limit=config.max_examples,
                                    need=config.min_examples, what="--examples")
    logits, embeddings = model.run(pixels)
    offset, calibration = _calibration(config, loaded, model, prototype_vector(embeddings), (logits, embeddings))
    grown = table.added(config.brand, embeddings, storage.normalize_uri(config.examples), loaded.class_names,
                        offset=offset, calibration=calibration)
    log.info("%s: prototype of %r from %d examples (%d skipped), %s", ref.uri, config.brand, len(uris),
             sum(skipped.values()), f"calibrated: {calibration}" if calibration else "uncalibrated")
    change = _register(config, tracking_uri, ref, loaded, model, grown,
                       {"action": "add", "brand": config.brand, "examples": len(uris), "examples_uri": config.examples})
    change.examples, change.skipped, change.calibration = len(uris), skipped, calibration
    return change


def remove(config: BrandsConfig) -> BrandChange:
    _need(config, "remove")
    tracking_uri, ref, loaded, model = _load(config)
    shrunk = loaded.prototypes.removed(config.brand)
    return _register(config, tracking_uri, ref, loaded, model, shrunk, {"action": "remove", "brand": config.brand})


def listing(config: BrandsConfig) -> dict[str, Any]:
    """The version's brands: trained classes and prototypes (with their example counts)."""
    from lxn.tracking import check_tracking, load_model

    tracking_uri = check_tracking(config.tracking_uri)
    ref = registry.Registry(tracking_uri).resolve(config.model)
    loaded = load_model(ref.uri, tracking_uri)
    return {"model": ref.uri, "classes": loaded.class_names,
            "prototypes": [{"brand": p.brand, "examples": p.examples, "source": p.source, "added_at": p.added_at}
                           for p in loaded.prototypes.prototypes]}


def _register(config: BrandsConfig, tracking_uri: str, ref, loaded, model, table, params: dict) -> BrandChange:
    from lxn.tracking import RunTracker, log_model

    alias = _target_alias(config)
    models = registry.Registry(tracking_uri)
    if alias:
        pointed = models.alias_version(ref.name, alias)
        if pointed is not None and pointed != ref.version:
            raise ValueError(f"alias {alias!r} points at v{pointed}, not at the source v{ref.version}: "
                             f"name the version to move it from with --model models:/{ref.name}@{alias}")
    source_tags = models.tags(ref)
    tags = {k: source_tags[k] for k in _INHERITED_TAGS if k in source_tags}
    tags[registry.DERIVED_FROM] = ref.uri
    tags[registry.PROTOTYPE_BRANDS] = ",".join(table.brands)
    tracker = RunTracker.start(config.experiment, f"{params['action']}-{config.brand}", tracking_uri)
    try:
        tracker.set_tags({registry.KIND: "brands", "source_model": ref.uri})
        tracker.log_params({**params, "source_model": ref.uri, "prototype_brands": ",".join(table.brands) or "-"})
        new = log_model(tracker, model.model.eval(), preset=loaded.preset, class_names=loaded.class_names,
                        model_config=loaded.model_config, registered_model=ref.name, alias=None, tags=tags,
                        recipe=loaded.metadata.get("recipe"), extra_metadata=table.to_metadata())
        if alias:
            try:
                _move_alias(models, ref, new, alias)
            except Exception:
                models.delete_version(new.name, new.version)  # nothing half-done stays registered
                raise
        tracker.set_tags({"new_model": new.uri})
        tracker.finish()
    except BaseException:
        tracker.finish("FAILED")
        raise
    log.info("registered %s (%s): prototypes %s%s", new.uri, params["action"], table.brands or "none",
             f", alias {alias} moved from v{ref.version}" if alias else "")
    return BrandChange(ref.uri, new.version, alias, table.brands, run_id=tracker.run_id)


def _move_alias(models: "registry.Registry", ref, new, alias: str) -> None:
    from lxn.errors import PromotionConflict

    with models.lock(ref.name):
        pointed = models.alias_version(ref.name, alias)
        if pointed is not None and pointed != ref.version:
            raise PromotionConflict(f"alias {alias!r} moved to v{pointed} while the brand was being added "
                                    f"(a promotion?); the new version was not kept: run the command again")
        models.point(ref.name, alias, new.version,
                     previous=pointed if alias == registry.CHAMPION and pointed is not None else None)
        models.set_tags(ref.name, new.version, {registry.ALIAS_MOVED_FROM: f"{alias}={pointed or '-'}"})
