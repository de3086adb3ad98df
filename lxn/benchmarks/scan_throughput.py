"""Scan throughput and memory, measured here: the whole job against the model alone.

    python jobs/benchmark.py scan --out DIR

1. A model is registered in a throw-away MLflow store (logoxpertnet, untrained: throughput
   does not depend on the weights) and buckets of 640x480 JPEGs are made as local directories
   (a few distinct photos hard-linked under many names: distinct objects to the scan, no disk
   to speak of). Fetches are local reads, so the figures are those of the pipeline itself, not
   of a network.
2. Throughput, for each thread count T: the model's own batched forward pass (uint8 batches of
   `batch_size` at the preset size, T torch threads, the exported graph the predictor runs), then
   the scan job (`jobs/scan.py --full --model-threads T` on `images` objects, in a subprocess
   with its own local Ray), then the model again; the ratio is the scan's steady throughput (from
   its first result to its last: Ray and actor start-up excluded, reported separately) over the
   mean of the two model measurements. On a shared machine the two model runs bracket the scan,
   so drift shows as a gap between them.
3. Memory: the scan job on buckets of `memory_objects` objects; the peak of the driver's RSS and
   of the whole process tree's PSS (driver, Ray's daemons and workers; PSS counts shared pages
   such as the object store once), sampled from /proc every 0.2 s (Linux).

Writes `scan_throughput.json` and `.md` to `out` and returns the figures.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from lxn.benchmarks.memory import PeakMemory
from lxn.config import setting

__all__ = ["ScanBenchConfig", "run", "markdown_table"]

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class ScanBenchConfig:
    out: Path = setting(Path("bench-out"), "directory for scan_throughput.json and .md")
    images: int = setting(2000, "objects in the throughput bucket")
    threads: list[int] = setting([1, 2], "torch threads of the predictor (and of the model-alone baseline) to measure")
    batch_size: int = setting(32, "model batch, in the scan and in the baseline")
    image_size: int = setting(224, "the model's input size (its preset)")
    num_classes: int = setting(195, "classes of the model (WebLogo-2M's 194 brands and no-logo)")
    memory_objects: list[int] = setting([2000, 20000], "bucket sizes of the peak-memory comparison")
    memory_image_size: int = setting(96, "input size of the model in the memory runs (memory per object does not depend on it; a smaller one keeps the 20k run short)")
    baseline_seconds: float = setting(15.0, "duration of each model-alone measurement")
    work_dir: Path | None = setting(None, "where buckets, stores and reports go (default: a temporary directory, removed afterwards)")


# ------------------------------------------------------------------------------------ the inputs


def _photo(rng: np.random.Generator, width: int = 640, height: int = 480) -> bytes:
    """A JPEG with photo-like statistics: shapes, gradients and sensor noise (~90 kB)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(10, width // 3)), int(rng.integers(10, height // 3))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=fill)
    noisy = np.asarray(image).astype(np.int16) + rng.integers(-12, 13, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _bucket(root: Path, count: int, originals: list[Path]) -> Path:
    directory = root / f"bucket-{count}"
    if not directory.exists():
        partial = root / f".bucket-{count}.tmp"
        for i in range(count):
            target = partial / f"{i // 1000:03d}" / f"{i:06d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(originals[i % len(originals)], target)
        partial.rename(directory)
    return directory


def _register(store: str, image_size: int, num_classes: int) -> str:
    import torch

    from lxn.models import create_model
    from lxn.presets import Preset
    from lxn.tracking import RunTracker, log_model

    torch.manual_seed(0)
    classes = [f"brand-{i:03d}" for i in range(num_classes - 1)] + ["no-logo"]
    tracker = RunTracker.start("lxn-bench", f"scan-bench-{image_size}", store)
    name = f"bench-{image_size}"
    log_model(tracker, create_model("logoxpertnet", num_classes=num_classes).eval(), preset=Preset(image_size=image_size),
              class_names=classes, model_config={"name": "logoxpertnet", "num_classes": num_classes},
              registered_model=name, alias="champion")
    tracker.finish()
    return f"models:/{name}@champion"


# ------------------------------------------------------------------------------------- measuring


def _model_throughput(model_uri: str, store: str, *, threads: int, batch_size: int, seconds: float) -> float:
    """Images/s of the registered model alone: the module the predictor runs, same batch and threads."""
    import torch

    from lxn.tracking import load_model

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        loaded = load_model(model_uri, store, "cpu")
        size = loaded.preset.image_size
        batch = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8))
        with torch.inference_mode():
            for _ in range(2):
                loaded.module(batch)
            images, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                loaded.module(batch)
                images += batch_size
            return images / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)


def _scan_job(args: list[str], work: Path, out: Path) -> dict[str, Any]:
    """Run jobs/scan.py writing to a fresh `out` in a subprocess; the peak memory of its process tree."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("RAY_ADDRESS", None)  # a fresh local Ray per run: its memory is measured with the job's
    log = open(work / "scan-job.log", "ab")
    job = subprocess.Popen([sys.executable, str(REPO / "jobs" / "scan.py"), *args], cwd=REPO, env=env,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with PeakMemory(job.pid) as memory:
            code = job.wait()
    finally:
        log.close()
    if code != 0:
        raise RuntimeError(f"the scan job failed ({code}); see {work / 'scan-job.log'}")
    return {"driver_rss": int(memory.driver_mb * 2**20), "tree_pss": int(memory.tree_mb * 2**20)}


def _summary(out: Path, scan_id: str) -> dict[str, Any]:
    return json.loads((out / "_scans" / scan_id / "_SUCCESS").read_text())


def run(config: ScanBenchConfig) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lxn-scan-bench-") as tmp:
        work = Path(config.work_dir) if config.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        return _run(config, work)


def _run(config: ScanBenchConfig, work: Path) -> dict[str, Any]:
    store = f"sqlite:///{work / 'mlflow.db'}"
    rng = np.random.default_rng(0)
    originals = []
    for i in range(64):
        path = work / "originals" / f"{i:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(_photo(rng))
        originals.append(path)
    model = _register(store, config.image_size, config.num_classes)
    common = ["--tracking-uri", store, "--full", "--batch-size", str(config.batch_size), "--date", "2025-01-01",
              "--checkpoint-rows", "5000"]

    throughput = []
    bucket = _bucket(work, config.images, originals)
    for threads in config.threads:
        load_before = os.getloadavg()[0]
        before = _model_throughput(model, store, threads=threads, batch_size=config.batch_size,
                                   seconds=config.baseline_seconds)
        out, scan_id = work / f"reports-t{threads}", f"bench-throughput-t{threads}"
        peak = _scan_job(["--source", str(bucket), "--model", model, "--out", str(out), "--scan-id", scan_id,
                          "--model-threads", str(threads), *common], work, out)
        after = _model_throughput(model, store, threads=threads, batch_size=config.batch_size,
                                  seconds=config.baseline_seconds)
        summary = _summary(out, scan_id)
        figures = summary["throughput"]
        model_alone = (before + after) / 2
        throughput.append({
            "threads": threads,
            "batch_size": config.batch_size,
            "images": summary["counts"]["scanned"],
            "model_images_per_s": round(model_alone, 2),
            "model_before_after": [round(before, 2), round(after, 2)],
            "scan_steady_images_per_s": figures["steady_images_per_s"],
            "scan_pipeline_images_per_s": figures["images_per_s"],
            "scan_first_result_s": figures["first_result_s"],
            "scan_wall_s": figures["wall_s"],
            "ratio_steady": round(figures["steady_images_per_s"] / model_alone, 3),
            "ratio_pipeline": round(figures["images_per_s"] / model_alone, 3),
            "peak_driver_rss_mib": round(peak["driver_rss"] / 2**20, 1),
            "peak_tree_pss_mib": round(peak["tree_pss"] / 2**20, 1),
            # other processes on the machine: the 1-minute load average before and after
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        })

    memory = []
    small_model = _register(store, config.memory_image_size, config.num_classes) \
        if config.memory_image_size != config.image_size else model
    for count in config.memory_objects:
        bucket = _bucket(work, count, originals)
        out, scan_id = work / f"reports-m{count}", f"bench-memory-{count}"
        peak = _scan_job(["--source", str(bucket), "--model", small_model, "--out", str(out), "--scan-id", scan_id,
                          "--model-threads", "1", *common], work, out)
        summary = _summary(out, scan_id)
        memory.append({
            "objects": summary["counts"]["scanned"],
            "image_size": config.memory_image_size,
            "peak_driver_rss_mib": round(peak["driver_rss"] / 2**20, 1),
            "peak_tree_pss_mib": round(peak["tree_pss"] / 2**20, 1),
            "scan_steady_images_per_s": summary["throughput"]["steady_images_per_s"],
            "scan_wall_s": summary["throughput"]["wall_s"],
        })

    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()},
        "throughput": throughput,
        "memory": memory,
    }
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scan_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "scan_throughput.md").write_text(markdown_table(result) + "\n")
    return result


def markdown_table(result: dict[str, Any]) -> str:
    config = result["config"]
    lines = [
        f"logoxpertnet ({config['num_classes']} classes), {config['image_size']}x{config['image_size']}, batch "
        f"{config['batch_size']}, on {result['machine']['cpus']} CPUs; 640x480 JPEGs from local disk; "
        "scan = jobs/scan.py with one predictor actor",
        "",
        "| torch threads | model alone img/s (before, after) | scan img/s (steady) | ratio | scan img/s (incl. actor start) | first result s | peak tree PSS MiB | load avg (before, after) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["throughput"]:
        b, a = r["model_before_after"]
        lines.append(f"| {r['threads']} | {r['model_images_per_s']:.1f} ({b:.1f}, {a:.1f}) | "
                     f"{r['scan_steady_images_per_s']:.1f} | {r['ratio_steady']:.0%} | "
                     f"{r['scan_pipeline_images_per_s']:.1f} | {r['scan_first_result_s']:.1f} | {r['peak_tree_pss_mib']:.0f} | "
                     f"{r['load_average'][0]:.1f}, {r['load_average'][1]:.1f} |")
    lines += ["", f"Peak memory by bucket size ({result['memory'][0]['image_size'] if result['memory'] else '-'} px model):", "",
              "| objects | peak driver RSS MiB | peak tree PSS MiB | scan img/s (steady) | wall s |",
              "|---:|---:|---:|---:|---:|"]
    for r in result["memory"]:
        lines.append(f"| {r['objects']} | {r['peak_driver_rss_mib']:.0f} | {r['peak_tree_pss_mib']:.0f} | "
                     f"{r['scan_steady_images_per_s']:.1f} | {r['scan_wall_s']:.0f} |")
    return "\n".join(lines)
