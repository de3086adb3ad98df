"""The scan benchmark's parts: generated buckets, process-tree memory, the table."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from lxn import storage
from lxn.benchmarks.memory import tree_memory
from lxn.benchmarks.scan_throughput import _bucket, _photo, markdown_table

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="reads /proc (Linux)")


HOLDER = ("import sys, time; x = bytearray(80 * 2**20); x[::4096] = b'x' * len(x[::4096]); "
          "print('ready', flush=True); time.sleep(60)")
# A parent whose only child holds 80 MiB: the tree measured is this pair alone. (Measured from the
# test process, the tree also held the suite's servers and Ray processes, whose memory moves by
# tens of MiB meanwhile: the drop once the child was gone came out 57 MiB in a full run.)
PARENT = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", {HOLDER!r}], stdout=subprocess.PIPE)
assert child.stdout.readline().strip() == b"ready"
print(child.pid, flush=True)
time.sleep(60)
"""


def test_tree_memory_counts_descendants():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    try:
        child_pid = int(parent.stdout.readline())
        own_rss, total = tree_memory(parent.pid)
        _, alone = tree_memory(child_pid)
        assert alone > 80 * 2**20 and total >= alone and own_rss > 0
        os.kill(child_pid, 9)
        deadline = time.monotonic() + 10
        while tree_memory(parent.pid)[1] >= total - 60 * 2**20:  # the child gone: its 80 MiB with it
            assert time.monotonic() < deadline, (tree_memory(parent.pid), total)
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()


def test_peak_memory_says_which_processes_held_it():
    from lxn.benchmarks.memory import PeakMemory

    probe = ("import time; x = bytearray(80 * 2**20); x[::4096] = b'x' * len(x[::4096]); "
             "print('ready', flush=True); time.sleep(30)")
    with PeakMemory(interval_s=0.05) as memory:
        # `exec -a` names the child as Ray names its workers: by argv[0].
        child = subprocess.Popen(["bash", "-c", f'exec -a lxn-probe "{sys.executable}" -c "{probe}"'],
                                 stdout=subprocess.PIPE)
        try:
            assert child.stdout.readline().strip() == b"ready"
            time.sleep(0.3)
        finally:
            child.kill()
            child.wait()
    count, mb = memory.tree_at_peak["lxn-probe"]
    assert count == 1 and mb > 80
    assert memory.tree_mb >= sum(mb for _, mb in memory.tree_at_peak.values()) - 1


def test_buckets_are_distinct_objects_sharing_a_few_photos(tmp_path):
    originals = []
    for i in range(3):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(_photo(np.random.default_rng(i), 64, 48))
        originals.append(path)
    bucket = _bucket(tmp_path, 7, originals)
    infos = list(storage.iter_objects(str(bucket)))
    assert len(infos) == 7 and len({i.uri for i in infos}) == 7
    assert sorted({i.size for i in infos}) == sorted({p.stat().st_size for p in originals})
    assert _bucket(tmp_path, 7, originals) == bucket  # made once


def test_table_shows_the_ratio_and_the_memory_runs():
    result = {
        "machine": {"cpus": 2},
        "config": {"num_classes": 195, "image_size": 224, "batch_size": 32},
        "throughput": [{"threads": 1, "model_images_per_s": 60.0, "model_before_after": [61.0, 59.0],
                        "scan_steady_images_per_s": 54.0, "ratio_steady": 0.9, "scan_pipeline_images_per_s": 40.0,
                        "scan_first_result_s": 12.0, "peak_tree_pss_mib": 3000.0, "load_average": [1.0, 1.2]}],
        "memory": [{"objects": 2000, "image_size": 96, "peak_driver_rss_mib": 990.0, "peak_tree_pss_mib": 2600.0,
                    "scan_steady_images_per_s": 200.0, "scan_wall_s": 40.0}],
    }
    table = markdown_table(result)
    assert "| 1 | 60.0 (61.0, 59.0) | 54.0 | 90% | 40.0 | 12.0 | 3000 | 1.0, 1.2 |" in table
    assert "| 2000 | 990 | 2600 | 200.0 | 40 |" in table
