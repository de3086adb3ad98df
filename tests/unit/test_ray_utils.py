"""Local Ray stays on loopback, even where the machine's routable address refuses connections."""

import os
import subprocess
import sys

PROBE = """
import os, ray
from ray._private import services
from lxn.ray_utils import keep_local_ray_on_loopback
keep_local_ray_on_loopback()   # after `import ray`: the constant must be patched, not only the variable
print(os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"], services.get_node_ip_address(),
      services.resolve_ip_for_localhost("127.0.0.1"))
"""


def _probe(**env):
    base = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True,
                          check=True, timeout=120)
    return done.stdout.split()


def test_local_ray_advertises_loopback_only():
    assert _probe() == ["0", "127.0.0.1", "127.0.0.1"]


def test_an_explicit_setting_wins():
    switch, _, _ = _probe(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1")
    assert switch == "1"


def test_a_local_instance_is_on_loopback_with_the_cpus_asked_and_reads_parquet_without_actors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for i in range(3):
        pq.write_table(pa.table({"x": [i, i + 10]}), tmp_path / f"part-{i}.parquet")
    probe = f"""
import ray
from lxn.ray_utils import init_ray, read_parquet
init_ray(min_cpus=3)
rows = sorted(r["x"] for r in read_parquet({str(tmp_path)!r}).take_all())
from ray.util.state import list_actors
print(ray.util.get_node_ip_address(), int(ray.cluster_resources()["CPU"]), len(list_actors(address=ray.get_runtime_context().gcs_address)), rows)
ray.shutdown()
"""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ip, cpus, actors, rows = done.stdout.strip().splitlines()[-1].split(" ", 3)
    assert ip == "127.0.0.1" and int(cpus) == max(3, os.cpu_count())
    assert rows == "[0, 1, 2, 10, 11, 12]"
    # Ray Data's own stats/coordinator actors may exist; the footer-reading pool (a few per CPU) must not
    assert int(actors) <= 3, done.stdout
