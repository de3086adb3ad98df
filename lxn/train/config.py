"""Every training setting, its default and what it means: one visible block.

Defaults follow the LogoXpertNet paper (Adam, lr 1e-3, L2 5e-4, step decay every 10 epochs,
global batch 64, 224 x 224, 150 epochs; rotation / flip / brightness each with p = 0.5; Gaussian
denoising; the dataset's own mean/std). The paper does not give the step-decay factor: 0.5
keeps the learning rate useful over 150 epochs (0.1 every 10 epochs would reach 1e-18).
`jobs/train.py` with no `--data` swaps in DEMO_DEFAULTS for settings not given on the
command line, so the embedded demo finishes in minutes on a laptop CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Literal

from lxn.config import setting, to_dict

__all__ = ["TrainConfig", "DEMO_DEFAULTS", "DEFAULT_STORAGE"]

DEFAULT_STORAGE = "lxn-local/train"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    data: str | None = setting(None, "prepared dataset (local path or s3:// URI); omitted: generate and prepare the synthetic demo dataset", uri="input")
    model: str = setting("logoxpertnet", "registered model name (see lxn.models.list_models())")
    width_mult: float = setting(1.0, "MobileNetV3 width multiplier")
    bn_momentum: float = setting(0.1, "BatchNorm running-statistics momentum (torchvision's 0.01 lags in short runs)")
    backbone_weights: str | None = setting(None, "local torchvision MobileNetV3-Large state dict to start from", uri="input")
    epochs: int = setting(150, "epochs")
    batch_size: int = setting(64, "global batch size, split evenly across workers")
    lr: float = setting(1e-3, "Adam learning rate")
    weight_decay: float = setting(5e-4, "L2 penalty (Adam weight_decay)")
    lr_step_epochs: int = setting(10, "decay the learning rate every this many epochs")
    lr_gamma: float = setting(0.5, "step-decay factor (the paper does not give it)")
    label_smoothing: float = setting(0.0, "cross-entropy label smoothing")
    image_size: int = setting(224, "square input size")
    denoise_sigma: float = setting(0.5, "Gaussian denoising sigma in pixels (0: off)")
    rotation_degrees: float = setting(15.0, "max random rotation, applied with p = augment_p")
    augment_p: float = setting(0.5, "probability of each augmentation (rotation, flip, brightness)")
    hflip: bool = setting(True, "random horizontal flips (turn off for text-heavy marks)")
    brightness: float = setting(0.2, "max relative brightness change")
    num_workers: int = setting(1, "Ray Train workers (one per GPU with --use-gpu)")
    use_gpu: bool = setting(False, "train on GPUs, one per worker")
    cpus_per_worker: int = setting(1, "CPUs reserved per training worker")
    amp: Literal["auto", "bf16", "fp16", "off"] = setting("auto", "mixed precision on GPU (auto: bf16 where supported, else fp16)")
    shuffle_buffer: int = setting(2000, "rows in each worker's local shuffle buffer")
    cache_mb: int = setting(1024, "a split whose decoded images fit in this many MB is decoded once and kept in Ray's object store; larger ones stream every epoch")
    run_name: str | None = setting(None, "Ray Train / MLflow run name; the same name resumes (default: derived from the config)")
    storage: str = setting(DEFAULT_STORAGE, "where checkpoints go (local path or s3:// URI)", uri="output")
    experiment: str = setting("lxn", "MLflow experiment")
    tracking_uri: str | None = setting(None, "MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)", uri="tracking")
    registered_model: str = setting("logoxpertnet", "MLflow registered model name")
    alias: str = setting("challenger", "alias given to the newly registered version")
    seed: int = setting(0, "seed for initialisation, shuffling and augmentation")
    max_failures: int = setting(3, "worker failures to recover from (restart from the last checkpoint)")
    demo_dir: str = setting("lxn-local", "where the embedded demo writes its generated and prepared data")
    progress_bars: bool = setting(True, "Ray Data's progress bars while the data streams in (--no-progress-bars for cron logs)")
    shared_filesystem: bool = setting(False, "local paths are on a filesystem every node mounts at the same path (NFS, EFS): allow them on a multi-node cluster")

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.num_workers < 1:
            raise ValueError("epochs, batch_size and num_workers must be positive")
        if self.batch_size % self.num_workers:
            raise ValueError(f"batch_size {self.batch_size} must divide evenly across {self.num_workers} workers")

    @property
    def resolved_run_name(self) -> str:
        """The run name, or one derived from the settings that shape the result: the same
        command resumes its own run, a different one starts a new run."""
        if self.run_name:
            return self.run_name
        shaping = {k: v for k, v in to_dict(self).items() if k not in _NOT_SHAPING}
        digest = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.model}-{digest}"


# Settings that do not change what is trained (so they do not change the derived run name).
_NOT_SHAPING = {"run_name", "storage", "tracking_uri", "experiment", "registered_model", "alias",
                "max_failures", "num_workers", "use_gpu", "cpus_per_worker", "demo_dir", "cache_mb",
                "progress_bars", "shared_filesystem"}

# The embedded demo: a small, quick configuration for a CPU (flags still override each one).
DEMO_DEFAULTS = {
    "epochs": 10,
    "image_size": 96,
    "batch_size": 32,
    "num_workers": 2,
    "lr_step_epochs": 5,
    "rotation_degrees": 10.0,
}
