"""Training throughput on CPU: Ray Train against a plain PyTorch loop, in the same run.

* plain: one process, one thread, the prepared train split decoded into memory once, the same
  model, optimizer, preprocessing and augmentation (`lxn.train.loop.train_one_epoch`); and the
  same with two threads, which shows what a second core buys on this machine at all;
* ray-1 / ray-2: `lxn.train.trainer.run` with 1 and 2 workers of 1 CPU each, the split decoded
  once into Ray's object store (the trainer's cache) and streamed to the workers.

Throughput is training images per second, timed inside the epoch (evaluation excluded) and taken
as the median over epochs after the first (which includes warm-up). "Per worker" divides by the
number of workers; the Ray overhead is 1 - ray-1 / plain.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
from pathlib import Path

from lxn.config import setting

__all__ = ["TrainBenchConfig", "run", "markdown_table"]


@dataclasses.dataclass(frozen=True)
class TrainBenchConfig:
    out: Path = setting(Path("bench-out"), "directory for the dataset and train_throughput.json")
    images_per_brand: int = setting(60, "synthetic images per brand (8 brands + no-logo)")
    image_size: int = setting(128, "training input size")
    batch_size: int = setting(32, "batch per worker")
    epochs: int = setting(4, "epochs per measurement (the first is warm-up)")
    model: str = setting("logoxpertnet", "model to train")


def _dataset(config: TrainBenchConfig, root: Path) -> str:
    from lxn.data.prepare import PrepareConfig
    from lxn.data.prepare import run as prepare
    from lxn.data.synthetic import SyntheticConfig, write_imagefolder

    images, prepared = root / f"train-images-{config.images_per_brand}", root / f"train-prepared-{config.images_per_brand}"
    if not (images / "synthetic.json").exists():
        write_imagefolder(SyntheticConfig(num_brands=8, images_per_brand=config.images_per_brand,
                                          no_logo_images=config.images_per_brand, image_size=160), images)
    if not (prepared / "manifest.json").exists():
        prepare(PrepareConfig(source=[str(images)], out=str(prepared)))
    return str(prepared)


def _plain(config: TrainBenchConfig, data: str, threads: int = 1) -> float:
    """images/s of the same recipe in one process with `threads` threads, data in memory."""
    import numpy as np
    import pyarrow.dataset as pads
    import torch

    from lxn import storage
    from lxn.data.prepared import read_manifest, split_uri
    from lxn.models import create_model
    from lxn.preprocess import Preprocess
    from lxn.train.config import TrainConfig
    from lxn.train.loop import train_one_epoch
    from lxn.train.loop import ModelEma
    from lxn.train.trainer import decode_batch, make_optimizer, preset_for

    manifest = read_manifest(data)
    train = TrainConfig(data=data, image_size=config.image_size, model=config.model)
    preset = preset_for(train, manifest)
    filesystem, path = storage.arrow_filesystem(split_uri(data, "train"))
    table = pads.dataset(path, filesystem=filesystem, format="parquet").to_table(columns=["image", "label"])
    decoded = decode_batch({"image": np.array(table["image"].to_pylist(), dtype=object),
                            "label": table["label"].to_numpy()}, preset)
    images, labels = torch.from_numpy(decoded["image"]), torch.from_numpy(decoded["label"])
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = create_model(config.model, num_classes=manifest.num_classes, bn_momentum=train.bn_momentum)
        model = model.to(memory_format=torch.channels_last)
        recipe = train.resolved_recipe
        optimizer = make_optimizer(model, recipe)  # the same optimizer, loss and weight average as the Ray Train loop
        ema = ModelEma(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
        preprocess = Preprocess(preset)
        rates = []
        for epoch in range(config.epochs):
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch))
            batches = [{"image": images[order[i:i + config.batch_size]], "label": labels[order[i:i + config.batch_size]]}
                       for i in range(0, len(order) - config.batch_size + 1, config.batch_size)]
            stats = train_one_epoch(model, batches, optimizer=optimizer, preprocess=preprocess, preset=preset,
                                    generator=torch.Generator().manual_seed(epoch), device=torch.device("cpu"),
                                    label_smoothing=recipe.label_smoothing, ema=ema)
            rates.append(stats.images_per_s)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(rates[1:])


def _ray(config: TrainBenchConfig, data: str, workers: int, scratch: Path) -> float:
    import mlflow

    from lxn.train.config import TrainConfig
    from lxn.train.trainer import run

    tracking = f"sqlite:///{scratch}/bench-{workers}.db"
    result = run(TrainConfig(
        data=data, model=config.model, image_size=config.image_size, batch_size=config.batch_size * workers,
        epochs=config.epochs, num_workers=workers, storage=str(scratch / f"ckpt-{workers}"), tracking_uri=tracking,
        experiment="lxn-bench", registered_model="lxn-bench", run_name=f"bench-{workers}",
    ))
    history = mlflow.MlflowClient(tracking_uri=tracking).get_metric_history(result.run_id, "images_per_s")
    rates = [m.value for m in sorted(history, key=lambda m: m.step)]
    return statistics.median(rates[1:])


def run(config: TrainBenchConfig) -> list[dict]:
    from lxn.ray_utils import init_ray

    out = Path(config.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    init_ray(min_cpus=4)
    data = _dataset(config, out)
    plain = _plain(config, data)
    # What this machine's second core buys a single process: the ceiling for 2 workers vs 1.
    plain2 = _plain(config, data, threads=2)
    rows = [{"setup": "plain PyTorch, 1 process, 1 thread", "workers": 1, "images_per_s": plain,
             "per_worker": plain, "vs_plain": 1.0},
            {"setup": "plain PyTorch, 1 process, 2 threads", "workers": 1, "images_per_s": plain2,
             "per_worker": plain2, "vs_plain": plain2 / plain}]
    with tempfile.TemporaryDirectory(prefix="lxn-bench-") as scratch:
        for workers in (1, 2):
            rate = _ray(config, data, workers, Path(scratch))
            rows.append({"setup": f"Ray Train, {workers} worker(s) x 1 CPU", "workers": workers, "images_per_s": rate,
                         "per_worker": rate / workers, "vs_plain": rate / workers / plain})
    for row in rows:
        for key in ("images_per_s", "per_worker", "vs_plain"):
            row[key] = round(row[key], 3 if key == "vs_plain" else 1)
    meta = {"image_size": config.image_size, "batch_per_worker": config.batch_size, "epochs": config.epochs,
            "model": config.model, "rows": rows}
    (out / "train_throughput.json").write_text(json.dumps(meta, indent=2) + "\n")
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| setup | images/s | per worker | per worker vs plain |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['setup']} | {r['images_per_s']} | {r['per_worker']} | {r['vs_plain']:.2f}x |")
    return "\n".join(lines)
