"""The training recipe as plain functions: no Ray, no MLflow, testable on a few tensors.

Batches are dicts with "image" (uint8, B x S x S x 3, already resized by the preset) and
"label" (int64). `train_one_epoch` converts, augments, denoises and normalises on the model's
device, so the data pipeline moves compact uint8 and the GPU does the float work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lxn.presets import Preset
from lxn.preprocess import Preprocess, augment, to_float_nchw

__all__ = ["EpochStats", "EvalResult", "ModelEma", "autocast_dtype", "autocast", "step_optimizer", "train_one_epoch",
           "evaluate"]


@dataclasses.dataclass
class EpochStats:
    loss_sum: float = 0.0
    correct: int = 0
    count: int = 0
    seconds: float = 0.0

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.count)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.count)

    @property
    def images_per_s(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


@dataclasses.dataclass
class EvalResult(EpochStats):
    scores: np.ndarray | None = None   # (N, K) softmax probabilities, when collected
    labels: np.ndarray | None = None


class ModelEma:
    """An exponential moving average of a model's weights and BatchNorm statistics:
    e <- d e + (1 - d) w after every optimizer step, with d = min(decay, (1 + n) / (10 + n)) at
    update n, so the first steps (random weights) do not dominate a short run. `module` is a copy
    of the model, always in eval mode; integer buffers (BatchNorm's counters) are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.module.state_dict().values(), model.state_dict().values()):
            if average.dtype.is_floating_point:
                average.mul_(d).add_(current.detach().to(average.dtype), alpha=1 - d)
            else:
                average.copy_(current)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype for `amp` ("auto", "bf16", "fp16", "off") on `device`.

    Only CUDA devices use mixed precision: on CPUs bf16 autocast is slower for these convs.
    """
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.as_tensor(batch["image"]).to(device, non_blocking=True)
    labels = torch.as_tensor(batch["label"]).to(device, dtype=torch.long, non_blocking=True)
    return images, labels


def step_optimizer(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler | None, ema: ModelEma | None) -> None:
    """Backward and one optimizer step (through the fp16 loss scaler when there is one), then the
    weight average's update from the unwrapped model."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    if ema is not None:
        ema.update(getattr(model, "module", model))  # DDP wraps the model it trains


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    optimizer: torch.optim.Optimizer,
    preprocess: Preprocess,
    preset: Preset,
    generator: torch.Generator,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    label_smoothing: float = 0.0,
    lr_at: Callable[[int], float] | None = None,
    ema: ModelEma | None = None,
) -> EpochStats:
    """One pass over `batches`; returns summed loss, hits and count (this process only).

    `lr_at(i)` is the learning rate of the epoch's i-th step (the schedule, per step); `ema` is
    updated from the (unwrapped) model after every optimizer step."""
    model.train()
    stats = EpochStats()
    start = time.perf_counter()
    for step, batch in enumerate(batches):
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        images, labels = _to_device(batch, device)
        with torch.no_grad():
            x = augment(to_float_nchw(images), preset, generator)
            x = preprocess.normalize(x).contiguous(memory_format=torch.channels_last)
        with autocast(device, amp_dtype):
            logits = model(x)
            loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        step_optimizer(loss, model, optimizer, scaler, ema)
        n = labels.numel()
        stats.loss_sum += loss.item() * n
        stats.correct += int((logits.argmax(1) == labels).sum())
        stats.count += n
    stats.seconds = time.perf_counter() - start
    return stats


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    preprocess: Preprocess,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    collect_scores: bool = False,
) -> EvalResult:
    """Loss and accuracy over `batches` (this process only); optionally every softmax score."""
    model.eval()
    result = EvalResult()
    scores, labels_seen = [], []
    start = time.perf_counter()
    for batch in batches:
        images, labels = _to_device(batch, device)
        x = preprocess(images).contiguous(memory_format=torch.channels_last)
        with autocast(device, amp_dtype):
            logits = model(x).float()
        result.loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        result.correct += int((logits.argmax(1) == labels).sum())
        result.count += labels.numel()
        if collect_scores:
            scores.append(logits.softmax(1).cpu().numpy())
            labels_seen.append(labels.cpu().numpy())
    result.seconds = time.perf_counter() - start
    if collect_scores:
        result.scores = np.concatenate(scores) if scores else np.zeros((0, 0), dtype=np.float32)
        result.labels = np.concatenate(labels_seen) if labels_seen else np.zeros(0, dtype=np.int64)
    return result
