"""A ModelPackage (the checked bytes a driver ships to its actors) loads with torch alone, and
only with the bytes that were checked."""

from __future__ import annotations

import dataclasses
import io
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lxn.errors import UnsafeModelError
from lxn.model_package import ModelPackage, sha256_hex
from lxn.preprocess import InferenceModel
from lxn.registry import ModelRef
from tests.known_models import REDSPOT_CLASSES, REDSPOT_PRESET, RedSpotter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def package() -> ModelPackage:
    wrapped = InferenceModel(RedSpotter(), REDSPOT_PRESET).eval()
    images = torch.zeros((2, 64, 64, 3), dtype=torch.uint8)
    program = torch.export.export(wrapped, (images,), dynamic_shapes={"images": {0: torch.export.Dim("batch", max=64)}})
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    pt2 = buffer.getvalue()
    metadata = {"preset": REDSPOT_PRESET.to_dict(), "class_names": REDSPOT_CLASSES, "model_config": {"name": "redspot"}}
    return ModelPackage(pt2=pt2, sha256=sha256_hex(pt2), metadata=metadata, ref=ModelRef("redspot", "3"),
                        source="models:/redspot/3")


def test_a_package_loads_the_exported_graph_with_its_classes_and_preset(package):
    loaded = package.load()
    red = torch.zeros((1, 64, 64, 3), dtype=torch.uint8)
    red[..., 0] = 255
    assert loaded.module(red).argmax(dim=1).tolist() == [0]  # acme
    assert (loaded.class_names, loaded.preset, loaded.ref.uri, loaded.task) == (
        REDSPOT_CLASSES, REDSPOT_PRESET, "models:/redspot/3", "classify")
    assert loaded.package is package


def test_bytes_that_differ_from_the_checked_ones_are_refused(package):
    changed = bytearray(package.pt2)
    changed[len(changed) // 2] ^= 1
    with pytest.raises(UnsafeModelError, match="changed after they were checked"):
        dataclasses.replace(package, pt2=bytes(changed)).load()


def test_an_actor_loads_a_shipped_package_without_importing_mlflow(package, tmp_path):
    """What a Ray actor does with the package its driver fetched: unpickle it and load it. MLflow
    (and its client, the tracking server and the artifact store) stay out of the actor."""
    (tmp_path / "package.pkl").write_bytes(pickle.dumps(package))
    code = ("import pickle, sys; package = pickle.load(open(sys.argv[1], 'rb')); loaded = package.load(); "
            "print(len(loaded.class_names), sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "package.pkl")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3", "[]"]
