"""CPU cost of turning bytes into model pixels, per core: what sizes a cluster's decode CPUs.

Each case is one image's path on one thread, timed interleaved with the others (median of
`rounds`): the scan's (`safe_decode` with JPEG DCT downscaling to what the preset needs, then
the preset's resize) on photo-like JPEG originals of several sizes, and training's (the stored,
re-encoded copy of prepare -> `decode_batch`'s per-image work). The images are synthetic logo
scenes with sensor-like noise, so they compress like photographs, not like flat drawings.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from lxn.timing import interleaved_medians
from lxn.config import setting

__all__ = ["DecodeBenchConfig", "run", "markdown_table", "photo_jpeg"]


@dataclasses.dataclass(frozen=True)
class DecodeBenchConfig:
    out: Path = setting(Path("bench-out"), "directory for decode_throughput.json and .md")
    image_size: int = setting(224, "the model's input size")
    sizes: list[str] = setting(["640x480", "1920x1080", "4032x3024"], "original sizes (WxH) on the scan path")
    stored_side: int = setting(256, "shorter side of the copy prepare stores (its --store-side)")
    rounds: int = setting(30, "timed decodes per case")
    warmup: int = setting(3, "untimed decodes per case")


def photo_jpeg(width: int, height: int, seed: int = 0, quality: int = 90) -> bytes:
    """A JPEG that compresses like a photograph: a logo scene, upscaled, plus sensor noise."""
    from lxn.data.synthetic import SyntheticConfig, class_names, generate_image

    config = SyntheticConfig(num_brands=4, image_size=512, seed=seed)
    scene = generate_image(config, class_names(config)[1], seed)
    image = Image.open(io.BytesIO(scene)).convert("RGB") if isinstance(scene, (bytes, bytearray)) else scene
    pixels = np.asarray(image.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    noise = np.random.default_rng(seed).normal(0, 6, pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def run(config: DecodeBenchConfig) -> dict:
    import torch

    from lxn.images import safe_decode
    from lxn.presets import Preset, decode, store_copy
    from lxn.train.trainer import decode_batch

    torch.set_num_threads(1)
    preset = Preset(image_size=config.image_size)
    cases, sizes = {}, {}
    for text in config.sizes:
        width, height = (int(v) for v in text.lower().split("x"))
        data = photo_jpeg(width, height)
        sizes[f"scan {text}"] = len(data)

        def scan(data=data):
            image, kind, reason = decode(data, preset.image_size)
            return preset.resize(image.pixels)

        cases[f"scan {text}"] = scan
    original = safe_decode(photo_jpeg(1920, 1080), target_size=None)[0].pixels
    stored = store_copy(original, config.stored_side)
    sizes["train (stored copy)"] = len(stored)
    batch = {"image": np.array([stored], dtype=object), "label": np.zeros(1, dtype=np.int64)}
    cases["train (stored copy)"] = lambda: decode_batch(batch, preset)
    medians = interleaved_medians(cases, rounds=config.rounds, warmup=config.warmup)
    rows = [{"case": name, "bytes": sizes[name], "ms_per_image": round(seconds * 1000, 2),
             "images_per_s_per_core": round(1 / seconds, 1)} for name, seconds in medians.items()]
    result = {"image_size": config.image_size, "stored_side": config.stored_side, "rows": rows,
              "cpu_count": os.cpu_count()}
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "decode_throughput.json").write_text(json.dumps(result, indent=2))
    (config.out / "decode_throughput.md").write_text(markdown_table(result))
    return result


def markdown_table(result: dict) -> str:
    lines = [f"| path (model input {result['image_size']} px) | JPEG bytes | ms per image (1 core) | images/s per core |",
             "|---|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['case']} | {row['bytes']:,} | {row['ms_per_image']} | {row['images_per_s_per_core']} |")
    return "\n".join(lines) + "\n"
