"""The efficiency benchmark's plumbing and its GFLOPs convention (figures come from the job)."""

import json
import subprocess
import sys
from pathlib import Path

import torchvision

from lxn.benchmarks.model_efficiency import count_gmacs

ROOT = Path(__file__).resolve().parents[2]


def test_gflops_are_multiply_adds_as_torchvision_lists_them():
    # torchvision's model card lists mobilenet_v3_large at 0.22 GFLOPS (multiply-adds).
    assert abs(count_gmacs(torchvision.models.mobilenet_v3_large().eval(), 224) - 0.22) < 0.01


def test_benchmark_job_writes_the_table(tmp_path):
    out = tmp_path / "bench"
    result = subprocess.run(
        [sys.executable, str(ROOT / "jobs/benchmark.py"), "model", "--out", str(out),
         "--models", "logoxpertnet", "shufflenet_v2_x1_0", "--image-size", "96",
         "--warmup", "1", "--rounds", "2", "--batch-rounds", "1", "--batch-size", "2"],
        capture_output=True, text=True, check=True,
    )
    rows = json.loads((out / "model_efficiency.json").read_text())
    assert [r["model"] for r in rows] == ["logoxpertnet", "shufflenet_v2_x1_0", "mobilenet_v3_large"]
    for row in rows:
        assert {"model", "params", "gflops", "cpu_b1_ms", "cpu_b32_img_s", "gpu_b1_fps"} <= set(row)
        assert row["params"] > 0 and row["gflops"] > 0 and row["cpu_b1_ms"] > 0 and row["cpu_b32_img_s"] > 0
    assert "| logoxpertnet |" in result.stdout
