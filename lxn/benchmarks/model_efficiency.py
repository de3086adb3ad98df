"""The paper's Table 7, measured here: parameters, GFLOPs, CPU latency and throughput, GPU FPS.

GFLOPs follow the paper's and torchvision's convention, multiply-adds (torchvision lists
mobilenet_v3_large at 0.22): torch's FlopCounterMode counts two FLOPs per multiply-add, so its
total is halved. Latency is eager FP32 in inference mode, as the paper measures it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lxn.timing import interleaved_medians
from lxn.config import setting
from lxn.models import create_model, list_models

__all__ = ["ModelBenchConfig", "run", "count_gmacs", "markdown_table", "BASELINE"]

BASELINE = "mobilenet_v3_large"
_TORCHVISION = {
    "mobilenet_v3_large": torchvision.models.mobilenet_v3_large,
    "shufflenet_v2_x1_0": torchvision.models.shufflenet_v2_x1_0,
    "efficientnet_b0": torchvision.models.efficientnet_b0,
}


@dataclasses.dataclass(frozen=True)
class ModelBenchConfig:
    out: Path = setting(Path("bench-out"), "directory for model_efficiency.json and .md")
    models: list[str] = setting([], "models to measure (default: every LogoXpertNet variant and the torchvision baselines)")
    num_classes: int = setting(194, "classes of every model's head (WebLogo-2M has 194)")
    image_size: int = setting(224, "square input size")
    warmup: int = setting(100, "untimed iterations per model before timing (the paper uses 100)")
    rounds: int = setting(100, "timed batch-1 iterations per model, interleaved across models")
    batch_rounds: int = setting(10, "timed batch-32 iterations per model")
    batch_size: int = setting(32, "batch of the throughput measurement")


def _all_models() -> list[str]:
    return list_models() + list(_TORCHVISION)


def _build(name: str, num_classes: int) -> nn.Module:
    builder = _TORCHVISION.get(name)
    model = builder(num_classes=num_classes) if builder else create_model(name, num_classes=num_classes)
    return model.eval()


def count_gmacs(model: nn.Module, image_size: int) -> float:
    """Multiply-adds of one forward pass at batch 1, in billions."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 3, image_size, image_size))
    return counter.get_total_flops() / 2 / 1e9


def _timed(models: dict[str, nn.Module], batch: torch.Tensor, rounds: int, warmup: int, sync=lambda: None):
    def call(model: nn.Module) -> Callable[[], object]:
        return lambda: model(batch)

    with torch.inference_mode():
        return interleaved_medians({n: call(m) for n, m in models.items()}, rounds, warmup, sync)


def run(config: ModelBenchConfig) -> list[dict]:
    names = config.models or _all_models()
    unknown = sorted(set(names) - set(_all_models()))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {_all_models()}")
    if BASELINE not in names:
        names = [*names, BASELINE]  # every ratio is against the baseline measured in the same run
    models = {name: _build(name, config.num_classes) for name in names}
    size = config.image_size
    rows = {
        name: {
            "model": name,
            "params": sum(p.numel() for p in model.parameters()),
            "gflops": round(count_gmacs(model, size), 4),
        }
        for name, model in models.items()
    }

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        b1 = _timed(models, torch.randn(1, 3, size, size), config.rounds, config.warmup)
    finally:
        torch.set_num_threads(threads)
    torch.set_num_threads(os.cpu_count() or threads)
    bn = _timed(models, torch.randn(config.batch_size, 3, size, size), config.batch_rounds, warmup=2)
    torch.set_num_threads(threads)

    gpu = {name: None for name in models}
    if torch.cuda.is_available():
        cuda = {n: m.to("cuda") for n, m in models.items()}
        seconds = _timed(cuda, torch.randn(1, 3, size, size, device="cuda"), config.rounds, config.warmup,
                         sync=torch.cuda.synchronize)
        gpu = {n: round(1 / s, 1) for n, s in seconds.items()}

    for name, row in rows.items():
        row["cpu_b1_ms"] = round(b1[name] * 1e3, 3)
        row["cpu_b1_vs_baseline"] = round(b1[name] / b1[BASELINE], 3)
        row["cpu_b32_img_s"] = round(config.batch_size / bn[name], 1)
        row["gpu_b1_fps"] = gpu[name]
    result = list(rows.values())
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_efficiency.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "model_efficiency.md").write_text(markdown_table(result, config) + "\n")
    return result


def markdown_table(rows: list[dict], config: ModelBenchConfig) -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    lines = [
        f"{config.num_classes} classes, {config.image_size}x{config.image_size}, FP32 eager; "
        f"CPU: {os.cpu_count()} cores, batch 1 on 1 thread (median of {config.rounds} after {config.warmup} warm-up), "
        f"batch {config.batch_size} on all threads; GPU: {device}; torch {torch.__version__}",
        "",
        "| model | params (M) | GFLOPs | CPU b1 ms (1 thread) | vs mobilenet_v3_large | CPU b32 img/s | GPU b1 FPS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        gpu = "n/a" if r["gpu_b1_fps"] is None else f"{r['gpu_b1_fps']:.0f}"
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.2f} | {r['gflops']:.3f} | {r['cpu_b1_ms']:.2f} | "
            f"{r['cpu_b1_vs_baseline']:.2f}x | {r['cpu_b32_img_s']:.0f} | {gpu} |"
        )
    return "\n".join(lines)
