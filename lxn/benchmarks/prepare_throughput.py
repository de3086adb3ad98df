"""Prepare-job throughput and memory: N synthetic images, then 5N, in the same run.

Images are generated once per size (in parallel Ray tasks) and cached under `out/images-N`,
so repeated benchmark runs time the prepare job only.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from lxn.config import setting

__all__ = ["PrepareBenchConfig", "run"]


@dataclasses.dataclass(frozen=True)
class PrepareBenchConfig:
    out: Path = setting(Path("bench-out"), "directory for generated images, outputs and prepare_throughput.json")
    sizes: list[int] = setting([10_000, 50_000], "dataset sizes to prepare (the first is the throughput figure)")
    image_size: int = setting(256, "synthetic scene size")
    object_store_mb: int | None = setting(None, "object store of the local Ray (default: Ray's, 30% of memory); Ray Data reads ahead into up to half of it")


def _generate(n: int, image_size: int, root: Path) -> Path:
    """n synthetic images (about 10% no-logo) under root, generated once, in parallel."""
    import ray

    from lxn.data.synthetic import SyntheticConfig, iter_dataset, write_local_atomic

    images = root / f"images-{n}"
    done = images / "synthetic.json"
    if done.exists():
        return images
    brands = 24
    config = SyntheticConfig(num_brands=brands, images_per_brand=(n * 9 // 10) // brands,
                             no_logo_images=n - brands * ((n * 9 // 10) // brands), image_size=image_size)

    @ray.remote
    def shard(k: int, count: int) -> int:
        written = 0
        for cls, name, data in iter_dataset(config, shard=k, num_shards=count):
            write_local_atomic(str(images / cls / name), data)
            written += 1
        return written

    shards = max(1, int(ray.cluster_resources().get("CPU", 1)))
    total = sum(ray.get([shard.remote(k, shards) for k in range(shards)]))
    done.write_text(json.dumps({"images": total}))
    return images


def run(config: PrepareBenchConfig) -> list[dict]:
    from lxn.benchmarks.memory import PeakMemory
    from lxn.data.prepare import PrepareConfig
    from lxn.data.prepare import run as prepare
    from lxn.ray_utils import init_ray

    init_ray(object_store_mb=config.object_store_mb)  # a local Ray started by this process: its daemons and workers are in our process tree
    out = Path(config.out).resolve()
    rows = []
    for n in config.sizes:
        images = _generate(n, config.image_size, out)
        target = out / f"prepared-{n}"
        with PeakMemory() as memory:
            start = time.perf_counter()
            manifest = prepare(PrepareConfig(source=[str(images)], out=str(target)))
            seconds = time.perf_counter() - start
        listed = manifest.extra["images_listed"]
        rows.append({
            "images": listed,
            "seconds": round(seconds, 1),
            "images_per_s": round(listed / seconds, 1),
            "peak_driver_rss_mb": round(memory.driver_mb),
            "peak_tree_pss_mb": round(memory.tree_mb),
            "peak_tree_by_process": {t: {"processes": c, "pss_mb": round(mb)} for t, (c, mb) in memory.tree_at_peak.items()},
            "kept": sum(manifest.split_size(s) for s in ("train", "val", "test")),
            "duplicates_removed": manifest.duplicates.get("removed", 0),
        })
    name = "prepare_throughput.json" if config.object_store_mb is None else f"prepare_throughput_store{config.object_store_mb}.json"
    (out / name).write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| images | seconds | images/s | peak driver RSS MiB | peak process-tree PSS MiB | kept | duplicates removed |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['images']} | {r['seconds']} | {r['images_per_s']} | {r['peak_driver_rss_mb']} | "
                     f"{r['peak_tree_pss_mb']} | {r['kept']} | {r['duplicates_removed']} |")
    return "\n".join(lines)
