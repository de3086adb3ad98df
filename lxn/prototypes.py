"""Brands onboarded from a few examples: the prototype table a registered version carries, and
the classifier it extends.

A prototype is the normalised mean of the unit embeddings of a brand's example images. It joins
the classifier by weight imprinting (Qi et al., "Low-Shot Learning with Imprinted Weights",
CVPR 2018): its unit vector, scaled to the mean norm of the trained class weights and given
their mean bias, becomes one more row of the last layer. The softmax then runs over trained
classes and prototypes together, so `brand`, `confidence`, the threshold, top-k and detections
treat a prototype brand like any other; `brand_source` says which kind it was. The imprinted
row's scale is arbitrary against the trained ones, so `jobs/brands.py add --reference` shifts its
bias until it takes at most `--max-taken` of a set of typical images (`calibrate_offset`).

Open set: every class is a direction in embedding space, its weight row (no-logo and the
prototypes included). An image whose embedding's cosine similarity to every direction is below
`unknown_below` is an unknown mark: no brand, `brand_source` "unknown".

The table travels in the version's MLmodel metadata (`lxn.prototypes`), beside the class names,
as JSON: brand, unit vector (base64 float32), example count, where the examples came from and
when; nothing in it is executable.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lxn.embeddings import normalize

__all__ = ["Prototype", "PrototypeTable", "ExtendedClassifier", "SOURCES", "prototype_vector", "calibrate_offset"]

SOURCES = ("classifier", "prototype", "unknown")  # the report's brand_source values
_METADATA_KEY = "prototypes"


@dataclasses.dataclass(frozen=True)
class Prototype:
    brand: str
    vector: np.ndarray  # (D,) float32, unit length
    examples: int
    source: str
    added_at: str
    offset: float = 0.0  # added to the imprinted bias (calibrate_offset); 0: uncalibrated
    calibration: dict[str, Any] | None = None  # how the offset was chosen

    def to_dict(self) -> dict[str, Any]:
        return {"brand": self.brand, "examples": self.examples, "source": self.source, "added_at": self.added_at,
                "vector": base64.b64encode(self.vector.astype("<f4").tobytes()).decode("ascii"),
                "offset": self.offset, "calibration": self.calibration}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Prototype":
        vector = np.frombuffer(base64.b64decode(data["vector"]), dtype="<f4").astype(np.float32)
        return cls(str(data["brand"]), vector, int(data["examples"]), str(data["source"]), str(data["added_at"]),
                   float(data.get("offset", 0.0)), data.get("calibration"))


@dataclasses.dataclass(frozen=True)
class PrototypeTable:
    prototypes: tuple[Prototype, ...] = ()

    @property
    def brands(self) -> list[str]:
        return [p.brand for p in self.prototypes]

    def __len__(self) -> int:
        return len(self.prototypes)

    def vectors(self, dim: int) -> np.ndarray:
        """(P, D) unit vectors."""
        if not self.prototypes:
            return np.zeros((0, dim), dtype=np.float32)
        vectors = np.stack([p.vector for p in self.prototypes])
        if vectors.shape[1] != dim:
            raise ValueError(f"the prototypes are {vectors.shape[1]}-wide, the model's embeddings {dim}-wide")
        return vectors

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> "PrototypeTable":
        """The table of a model's `lxn` metadata (empty when it has none)."""
        entries = (metadata.get(_METADATA_KEY) or {}).get("brands") or []
        return cls(tuple(Prototype.from_dict(e) for e in entries))

    def to_metadata(self) -> dict[str, Any]:
        return {_METADATA_KEY: {"brands": [p.to_dict() for p in self.prototypes]}}

    def check_new(self, brand: str, class_names: Sequence[str]) -> None:
        """Refuse a name the model already reports (a class or a prototype, in any case)."""
        if brand.casefold() in {name.casefold() for name in [*class_names, *self.brands]}:
            raise ValueError(f"brand {brand!r} exists in this model already (a class or a prototype): "
                             "`remove` it first, or choose another name")

    def added(self, brand: str, embeddings: np.ndarray, source: str, class_names: Sequence[str], *,
              offset: float = 0.0, calibration: dict[str, Any] | None = None) -> "PrototypeTable":
        """The table plus `brand`, its prototype made from (n, D) example embeddings."""
        self.check_new(brand, class_names)
        vector = prototype_vector(embeddings)
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        return PrototypeTable((*self.prototypes, Prototype(brand, vector, len(embeddings), source, stamp,
                                                           float(offset), calibration)))

    def removed(self, brand: str) -> "PrototypeTable":
        if brand not in self.brands:
            raise ValueError(f"no prototype brand {brand!r} in this model (it has {self.brands or 'none'}); "
                             "trained classes cannot be removed")
        return PrototypeTable(tuple(p for p in self.prototypes if p.brand != brand))


def prototype_vector(embeddings: np.ndarray) -> np.ndarray:
    """A brand's prototype: the unit mean of its examples' unit embeddings."""
    if len(embeddings) == 0:
        raise ValueError("a prototype needs at least one example embedding")
    return normalize(normalize(embeddings).mean(axis=0))


def calibrate_offset(weight: np.ndarray, bias: np.ndarray, vector: np.ndarray, reference_logits: np.ndarray,
                     reference_embeddings: np.ndarray, max_taken: float) -> float:
    """The bias offset at which the imprinted `vector` out-scores every trained class on at most
    `max_taken` of the reference images (typical images of the trained brands and none): what
    the prototype may cost the trained brands, chosen rather than left to the imprinting's
    arbitrary scale (uncalibrated, a prototype can take a large share of them)."""
    if not 0.0 <= max_taken < 1.0 or not len(reference_logits):
        raise ValueError(f"calibration needs reference images and 0 <= max_taken < 1, got {max_taken}")
    row = ExtendedClassifier(weight, bias, PrototypeTable((Prototype("-", vector, 1, "-", "-"),)))
    imprinted = row.logits(reference_embeddings, reference_logits)[:, -1]
    margins = np.asarray(reference_logits, dtype=np.float64).max(axis=1) - imprinted
    # images whose margin is below the offset are taken: the max_taken quantile, just below it
    return float(np.quantile(margins, max_taken, method="lower")) - 1e-6 if max_taken > 0 else float(margins.min()) - 1e-6


class ExtendedClassifier:
    """The last layer of a model plus imprinted prototype rows: embeddings -> logits over
    K classes + P prototypes, and their nearness to the brand directions."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, table: PrototypeTable) -> None:
        weight = np.asarray(weight, dtype=np.float32)
        bias = np.asarray(bias, dtype=np.float32)
        vectors = table.vectors(weight.shape[1])
        scale = float(np.linalg.norm(weight, axis=1).mean())
        self.weight = np.concatenate([weight, scale * vectors])
        offsets = np.array([p.offset for p in table.prototypes], dtype=np.float32)
        self.bias = np.concatenate([bias, bias.mean() + offsets]).astype(np.float32)
        self.classes = weight.shape[0]
        self._directions = normalize(self.weight)

    def logits(self, embeddings: np.ndarray, classifier_logits: np.ndarray) -> np.ndarray:
        """(N, K + P): the model's own logits for its classes, imprinted ones after them."""
        extra = embeddings @ self.weight[self.classes:].T + self.bias[self.classes:]
        return np.concatenate([classifier_logits, extra], axis=1).astype(np.float32)

    def nearness(self, embeddings: np.ndarray) -> np.ndarray:
        """(N,) the largest cosine similarity of each embedding to a class direction (no-logo
        included: a plain background is near it) or a prototype."""
        return (normalize(embeddings) @ self._directions.T).max(axis=1)
