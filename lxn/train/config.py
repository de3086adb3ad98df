"""Every training setting, its default and what it means: one visible block.

How a model is trained is a recipe (`lxn.train.recipes`): `--recipe paper` is the LogoXpertNet
paper's (Adam, step decay, rotation / flip / brightness, Gaussian denoising), `--recipe lxn` (the
default) the one measured to win on real brand marks. Every ingredient is also a flag of its own
(`--lr`, `--schedule`, `--crop-scale-min`, ...): unset, it takes the recipe's value. The
architecture's open choices (`--hse-gate`, `--clff-mode`, `--early-stride`, `--spectrum`,
`--clff-early`) are flags too, recorded in the model config so a registered model rebuilds
exactly. `jobs/train.py` with no `--data` swaps in DEMO_DEFAULTS for settings not given on the
command line, so the embedded demo finishes in minutes on a laptop CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Literal

from lxn.config import setting, to_dict

__all__ = ["TrainConfig", "DEMO_DEFAULTS", "DETECTOR_DEMO_DEFAULTS", "DEFAULT_STORAGE"]

DEFAULT_STORAGE = "lxn-local/train"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    data: str | None = setting(None, "prepared dataset (local path or s3:// URI); omitted: generate and prepare the synthetic demo dataset", uri="input")
    model: str = setting("logoxpertnet", "model to train (see lxn.models.list_models(); also torchvision's mobilenet_v3_large as a baseline)")
    width_mult: float = setting(1.0, "MobileNetV3 width multiplier")
    hse_gate: Literal["paper", "sigmoid"] = setting("paper", "HSE-SAB channel gate: the paper's sigmoid after ReLU (never below 0.5) or the usual SE sigmoid")
    clff_mode: Literal["concat", "add"] = setting("concat", "CLFF fusion of the early and deep maps")
    early_stride: int = setting(8, "output stride of CLFF's early map (2, 4, 8 or 16)")
    clff_early: Literal["avgpool", "space_to_depth", "conv"] = setting("avgpool", "how CLFF brings the early map to the deep one's size: average pooling, space-to-depth (keeps every pixel as channels) or a learned strided conv")
    spectrum: Literal["real_fft", "centred_fft", "dct"] = setting("real_fft", "FA-CBAM's frequency map: the paper's Re(FFT2), the same with DC in the centre, or an exact DCT-II")
    bn_momentum: float = setting(0.1, "BatchNorm running-statistics momentum (torchvision's 0.01 lags in short runs)")
    backbone_weights: str | None = setting(None, "local torchvision MobileNetV3-Large state dict to start from", uri="input")
    epochs: int = setting(150, "epochs")
    batch_size: int = setting(64, "global batch size, split evenly across workers")
    image_size: int = setting(224, "square input size (at most the prepared data's store side)")
    recipe: Literal["lxn", "paper", "plain"] = setting("lxn", "training recipe (lxn.train.recipes): every ingredient below left unset takes its value")
    optimizer: Literal["adam", "adamw"] | None = setting(None, "optimizer (paper: adam; lxn: adamw)")
    lr: float | None = setting(None, "peak learning rate (paper: 1e-3; lxn: 2e-3)")
    weight_decay: float | None = setting(None, "weight decay: Adam's L2 penalty or AdamW's decoupled decay (paper: 5e-4; lxn: 0.05)")
    schedule: Literal["step", "cosine", "onecycle"] | None = setting(None, "learning-rate schedule (paper: step; lxn: cosine; plain: onecycle)")
    warmup_epochs: float | None = setting(None, "linear warm-up epochs (paper: 0; lxn: 2)")
    onecycle_peak: float | None = setting(None, "onecycle schedule: where the peak is, as a fraction of the run (0.3)")
    lr_step_epochs: int | None = setting(None, "step schedule: decay every this many epochs (10)")
    lr_final_fraction: float | None = setting(None, "the learning rate at the end as a fraction of the peak; sets the step factor (0.01)")
    label_smoothing: float | None = setting(None, "cross-entropy label smoothing (paper: 0; lxn: 0.1)")
    ema_decay: float | None = setting(None, "exponential moving average of the weights, evaluated and registered (paper: 0, off; lxn: 0.998)")
    rotation_degrees: float | None = setting(None, "max random rotation (paper: 15; lxn: 10)")
    augment_p: float | None = setting(None, "probability of each of rotation, flip and brightness (0.5)")
    hflip: bool | None = setting(None, "random horizontal flips (paper: on; lxn: off, marks with text are not mirror images)")
    brightness: float | None = setting(None, "max relative brightness change (paper: 0.2; lxn: 0.3)")
    crop_scale_min: float | None = setting(None, "random resized crop: the smallest area kept, 1 for none (paper: 1; lxn: 0.35)")
    color_jitter: float | None = setting(None, "contrast and saturation jitter, hue a tenth of it (paper: 0; lxn: 0.3)")
    denoise_sigma: float | None = setting(None, "Gaussian denoising sigma in pixels, at training and inference (paper: 0.5; lxn: 0)")
    train_on_val: float = setting(0.0, "also train on this share of the validation split (0 to 0.9, by duplicate group), once the recipe and epochs are fixed: the rest still scores every epoch and chooses the threshold; the test split is never trained on")
    threshold_precision: float = setting(0.95, "target precision of brand hits: the lowest no-logo threshold reaching it on the validation split is tagged on the registered version, and the scan uses it by default")
    sync_batchnorm: bool = setting(False, "SyncBatchNorm across workers (GPU runs with small per-worker batches); otherwise each worker normalises its own batch of batch_size / num_workers")
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
    registered_model: str = setting("logoxpertnet", "MLflow registered model name (empty: log the model, register nothing)")
    alias: str = setting("challenger", "alias given to the newly registered version (empty: none)")
    grid: str | None = setting(None, "the grid this run belongs to (set by jobs/train.py for --model/--seed lists; jobs/report.py reads it)")
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
        from lxn.models import MIN_INPUT_SIZE
        from lxn.train.recipes import resolve

        if not 0 <= self.train_on_val <= 0.9:
            raise ValueError(f"--train-on-val {self.train_on_val}: give the share of the validation split to train on, "
                             "0 to 0.9 (the rest chooses the threshold)")
        if not 0 < self.threshold_precision <= 1:
            raise ValueError(f"--threshold-precision must be within (0, 1], got {self.threshold_precision}")
        if self.image_size < MIN_INPUT_SIZE:
            raise ValueError(f"--image-size {self.image_size}: the models need at least {MIN_INPUT_SIZE} px (below it "
                             "the deep map is 2 x 2 and the attention modules see padding)")
        resolve(self)  # an impossible ingredient fails here, before anything runs

    @property
    def resolved_recipe(self):
        """The recipe with every ingredient this config sets (`lxn.train.recipes.resolve`)."""
        from lxn.train.recipes import resolve

        return resolve(self)

    @property
    def resolved_run_name(self) -> str:
        """The run name, or one derived from the settings that shape the result: the same
        command resumes its own run, a different one starts a new run."""
        if self.run_name:
            return self.run_name
        from lxn.train.recipes import INGREDIENTS

        # The recipe counts as resolved: the same training, however its flags spelled it.
        shaping = {k: v for k, v in to_dict(self).items() if k not in _NOT_SHAPING and k not in INGREDIENTS}
        shaping["recipe"] = self.resolved_recipe.shaping()
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
}
# ... and a detector's (`--model logoxpertnet_det` without --data): generated scenes with boxes,
# an input side its pyramid divides, its own registered name beside the classifier's.
DETECTOR_DEMO_DEFAULTS = {**DEMO_DEFAULTS, "image_size": 128, "epochs": 12, "batch_size": 16,
                          "registered_model": "logoxpertnet-det"}
