"""Visual search query time over stored embeddings (jobs/search.py's path).

    python jobs/benchmark.py search --out bench-out

A throw-away store registers an untrained LogoXpertNet (query time does not depend on the
weights); one committed report holds `rows` rows whose embeddings are random unit vectors in
each `--formats` encoding, plus a planted copy of the query's own embedding. Each search is
timed whole (reading the report, decoding, scoring, top-k) with the model loading and query
embedding reported apart; the planted row must come first.

Writes `search.json` and `.md` to `out`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lxn.config import setting

__all__ = ["SearchBenchConfig", "run", "markdown_table"]


@dataclasses.dataclass(frozen=True)
class SearchBenchConfig:
    out: Path = setting(Path("bench-out"), "directory for search.json/.md")
    rows: int = setting(100_000, "stored rows to search")
    formats: list[str] = setting(["float16", "int8"], "embedding encodings to compare")
    image_size: int = setting(128, "the model's input size")
    repeats: int = setting(3, "searches per format (the median is reported)")


def _report(path: Path, embeddings: list[bytes], model_name: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lxn.scan.report import REPORT_SCHEMA

    n = len(embeddings)
    now = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    columns = {f.name: pa.nulls(n, f.type) for f in REPORT_SCHEMA}
    columns.update({"scan_id": pa.array(["bench"] * n), "uri": pa.array([f"s3://media/{i:07d}.jpg" for i in range(n)]),
                    "status": pa.array(["ok"] * n), "model_name": pa.array([model_name] * n),
                    "model_version": pa.array(["1"] * n), "scanned_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
                    "embedding": pa.array(embeddings, pa.binary())})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=REPORT_SCHEMA), path, compression="zstd", row_group_size=128_000)


def run(config: SearchBenchConfig) -> dict[str, Any]:
    import torch

    from lxn.embeddings import embedding_model, encode
    from lxn.models import create_model
    from lxn.presets import Preset
    from lxn.search import SearchConfig, search
    from lxn.tracking import RunTracker, load_model, log_model

    results = []
    with tempfile.TemporaryDirectory(prefix="lxn-search-bench-") as tmp:
        root = Path(tmp)
        store = f"sqlite:///{root}/mlflow.db"
        torch.manual_seed(0)
        tracker = RunTracker.start("lxn-bench", "search", store)
        ref = log_model(tracker, create_model("logoxpertnet", num_classes=21).eval(), preset=Preset(image_size=config.image_size),
                        class_names=[f"b{i}" for i in range(20)] + ["no-logo"],
                        model_config={"name": "logoxpertnet", "num_classes": 21}, registered_model="search-bench", alias=None)
        tracker.finish()
        from PIL import Image

        query = root / "query.png"
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(query)
        model = embedding_model(load_model(ref.uri, store))
        from lxn.scan.fetch import fetch_and_decode

        decoded = fetch_and_decode({"uri": np.array([str(query)], dtype=object), "size": np.array([query.stat().st_size])},
                                   preset=Preset(image_size=config.image_size).to_dict(), max_bytes=1 << 30, max_pixels=1 << 30)
        own = model.run(decoded["pixels"][:, 0])[1]
        dim = own.shape[1]
        vectors = np.random.default_rng(0).normal(size=(config.rows, dim)).astype(np.float32)
        planted = config.rows // 2
        vectors[planted] = own[0]
        for fmt in config.formats:
            reports = root / f"reports-{fmt}"
            _report(reports / "dt=2026-12-01" / "scan-bench.parquet", encode(vectors, fmt), ref.name)
            runs = [search(SearchConfig(image=str(query), reports=str(reports), top=20, tracking_uri=store))
                    for _ in range(config.repeats)]
            for found in runs:
                if found["hits"][0]["uri"] != f"s3://media/{planted:07d}.jpg":
                    raise RuntimeError(f"{fmt}: the planted copy of the query is not the first hit: {found['hits'][0]}")
            total = float(np.median([r["seconds"] for r in runs]))
            embed = float(np.median([r["query_embedding_seconds"] for r in runs]))
            size = (reports / "dt=2026-12-01" / "scan-bench.parquet").stat().st_size
            results.append({"format": fmt, "rows": config.rows, "dim": dim, "report_mib": round(size / 2**20, 1),
                            "query_s": round(total, 3), "model_and_query_embedding_s": round(embed, 3),
                            "search_s": round(total - embed, 3),
                            "rows_per_s": round(config.rows / max(total - embed, 1e-9)),
                            "planted_score": runs[0]["hits"][0]["score"], "second_score": runs[0]["hits"][1]["score"]})
    summary = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()},
               "results": results}
    Path(config.out).mkdir(parents=True, exist_ok=True)
    (Path(config.out) / "search.json").write_text(json.dumps(summary, indent=2))
    (Path(config.out) / "search.md").write_text(markdown_table(summary))
    return summary


def markdown_table(summary: dict[str, Any]) -> str:
    lines = ["| format | rows | dim | report MiB | query s (whole) | of which model + query embedding s | search s | rows/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["results"]:
        lines.append(f"| {r['format']} | {r['rows']:,} | {r['dim']} | {r['report_mib']} | {r['query_s']} "
                     f"| {r['model_and_query_embedding_s']} | {r['search_s']} | {r['rows_per_s']:,} |")
    return "\n".join(lines) + "\n"
