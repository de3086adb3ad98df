"""A verified model as plain data: the pt2 archive's bytes, their SHA-256 and the `lxn` metadata.

`lxn.tracking.fetch_model` makes one from the registry (downloaded and checked there, MLflow's
side); `ModelPackage.load` turns it into a `LoadedModel` with torch alone. A job's driver fetches
once and ships the package to its Ray actors, so the actors need no MLflow, no access to the
tracking server or its artifact store, and a hundred actors cost one download, not a hundred.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from typing import TYPE_CHECKING, Any

from lxn.errors import UnsafeModelError
from lxn.presets import Preset
from lxn.registry import ModelRef

if TYPE_CHECKING:
    import torch

__all__ = ["ModelPackage", "LoadedModel", "sha256_hex"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class ModelPackage:
    """`pt2`: the archive's bytes, checked pickle-free and against the registry's digest when
    fetched; `sha256`: their digest, checked again by every `load` (the bytes travel through
    object stores and pickles between the check and the load)."""

    pt2: bytes = dataclasses.field(repr=False)
    sha256: str
    metadata: dict[str, Any]
    ref: ModelRef | None
    source: str

    def load(self, device: str | torch.device = "cpu") -> LoadedModel:
        """The module on `device`: on the CPU the exported graph itself; elsewhere the eager model
        rebuilt from `model_config` with the graph's weights (an exported graph cannot move across
        devices, and the eager model can use autocast and channels_last there)."""
        import torch

        if sha256_hex(self.pt2) != self.sha256:
            raise UnsafeModelError(f"{self.source}: the model's bytes changed after they were checked "
                                   f"(SHA-256 {sha256_hex(self.pt2)[:16]}..., not {self.sha256[:16]}...)")
        module = torch.export.load(io.BytesIO(self.pt2)).module()
        preset = Preset.from_dict(self.metadata["preset"])
        if torch.device(device).type != "cpu":
            from lxn.models.rebuild import rebuild_eager

            module = rebuild_eager(module, self.metadata["model_config"], preset).to(device)
        return LoadedModel(module=module, preset=preset, class_names=list(self.metadata["class_names"]),
                           model_config=dict(self.metadata["model_config"]), package=self)


@dataclasses.dataclass
class LoadedModel:
    """A registered model ready to predict: `module(uint8 (B, S, S, 3))` gives logits (B, K) for a
    classifier, (B, N, 6) candidates for a detector (`task`). `package` is what it was loaded
    from: what a driver ships to actors that load it again."""

    module: torch.nn.Module
    preset: Preset
    class_names: list[str]
    model_config: dict[str, Any]
    package: ModelPackage

    @property
    def ref(self) -> ModelRef | None:
        """The registered version, None for a model loaded from a run or a directory."""
        return self.package.ref

    @property
    def metadata(self) -> dict[str, Any]:
        """The MLmodel's `lxn` metadata: classes, preset, model config, task, prototypes."""
        return self.package.metadata

    @property
    def task(self) -> str:
        """"classify" or "detect" (lxn.models.TASKS); models logged before detectors are classifiers."""
        return self.metadata.get("task", "classify")

    @property
    def prototypes(self):
        """The brands onboarded from examples (`lxn.prototypes.PrototypeTable`)."""
        from lxn.prototypes import PrototypeTable

        return PrototypeTable.from_metadata(self.metadata)

    @property
    def predicted_classes(self) -> list[str]:
        """Every name a scan with this model can report: its classes, then its prototype brands."""
        return [*self.class_names, *self.prototypes.brands]
