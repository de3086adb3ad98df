"""What a job loads before it has parsed its flags: `--help`, a typo and a bad path answer in a
second, without torch, Ray or MLflow (seconds of imports each, on every cron run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIGHT_JOBS = ["prepare", "train", "scan", "search", "report", "trust", "nightly", "review"]
# lxn.presets, lxn.scan.fetch and lxn.train.decode: what Ray Data's decode tasks import (a worker
# process that runs no model need not import torch).
LIGHT_MODULES = ["lxn.presets", "lxn.scan.fetch", "lxn.train.decode", "lxn.cli", "lxn.errors", "lxn.scan", "lxn.scan.config", "lxn.scan.schema", "lxn.registry", "lxn.train.config", "lxn.data.prepare",
                 "lxn.redact", "lxn.storage", "lxn.nightly.build", "lxn.scan.report",
                 "lxn.review.export", "lxn.review.ingest"]
PROBE = """
import importlib, importlib.util, sys
for target in sys.argv[1:]:
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location("job", target)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    else:
        importlib.import_module(target)
print(" ".join(name for name in ("torch", "ray", "mlflow", "torchvision") if name in sys.modules))
"""


@pytest.mark.parametrize("targets", [LIGHT_MODULES, [str(ROOT / "jobs" / f"{job}.py") for job in LIGHT_JOBS]],
                         ids=["library modules", "jobs"])
def test_jobs_and_configs_load_no_torch_ray_or_mlflow(targets):
    done = subprocess.run([sys.executable, "-c", PROBE, *targets], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, check=True)
    assert done.stdout.strip() == ""


def test_the_model_path_of_a_scan_loads_no_torchvision():
    """A scan's driver fetches and loads the exported graph; its actors load the package. Neither
    builds a model, so neither pays torchvision's import (about a second, in every process)."""
    done = subprocess.run([sys.executable, "-c", PROBE, "lxn.tracking", "lxn.model_package", "lxn.scan.pipeline",
                           "lxn.scan.predictor", "lxn.evaluation.scoring", "lxn.promote"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    assert "torch" in done.stdout.split() and "torchvision" not in done.stdout.split()


SOURCE_PROBE = """
import ast, json, pathlib, sys
out = {}
for path in pathlib.Path(sys.argv[1]).rglob("*.py"):
    imports, strings = [], []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imports.append([node.module] + [f"{node.module}.{alias.name}" for alias in node.names])
        elif isinstance(node, ast.Import):
            imports.append([alias.name for alias in node.names])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.append([node.lineno, node.value])
    out["lxn/" + path.relative_to(sys.argv[1]).as_posix()] = {"imports": imports, "strings": strings}
print(json.dumps(out))
"""


def _sources() -> dict[str, dict]:
    """lxn/<file> -> its imports and string constants, parsed in a fresh interpreter: CPython
    3.11's AST conversion keeps its recursion depth in process-wide state, so a parse here races
    any other thread of the test process that parses too ("AST constructor recursion depth
    mismatch", seen in CI)."""
    import json

    done = subprocess.run([sys.executable, "-c", SOURCE_PROBE, str(ROOT / "lxn")], capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def _import_graph() -> dict[str, set[str]]:
    """lxn module -> the lxn modules it imports, at the top or inside functions (a lazy import
    still ties the two together)."""
    sources = _sources()
    modules = {".".join(Path(path).with_suffix("").parts).removesuffix(".__init__"): path for path in sources}

    def owner(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for targets in sources[path]["imports"]:
            for target in map(owner, (t for t in targets if t.startswith("lxn"))):
                if target and target != name and not name.startswith(target + "."):  # a package's own parent
                    graph[name].add(target)
    return graph


def test_no_import_circle_and_no_arrow_from_production_into_the_benchmarks():
    graph = _import_graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            assert state.get(target) != 1, "import circle: " + " -> ".join(path[path.index(target):] + [target])
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    measuring = ("lxn.benchmarks", "lxn.jobs.benchmark")  # the benchmark job runs them: its arrow is the point
    upward = sorted((m, t) for m, targets in graph.items() for t in targets
                    if t.startswith("lxn.benchmarks") and not m.startswith(measuring))
    assert upward == []
    assert "lxn.tracking" in graph["lxn.promote"]  # the graph is real: a known edge is in it


def test_only_the_registry_module_changes_the_registry():
    """Registration, aliases, version tags, deletions and the lock go through
    lxn.registry.Registry; tracking keeps runs and packaging."""
    calls = ("registry_client(", "set_registered_model_alias(", "set_model_version_tag(", "delete_model_version(",
             "create_registered_model(", "get_model_version_by_alias(", "mlflow.register_model(", "get_model_version(",
             "search_model_versions(")
    found = sorted(f"{path.relative_to(ROOT)}: {call}" for path in (ROOT / "lxn").rglob("*.py")
                   if str(path.relative_to(ROOT)) != "lxn/registry.py"
                   for call in calls if call in path.read_text())
    assert found == []


def test_every_tag_name_is_the_registry_modules():
    """A tag name spelled outside lxn/registry.py ("lxn.<anything>" in a string) is a contract
    with two owners: the writer and the reader drift apart."""
    spelled = [f"{path}:{line}: {value}" for path, found in _sources().items() if path != "lxn/registry.py"
               for line, value in found["strings"]
               if value.startswith("lxn.") and " " not in value and not _is_module_name(value.rstrip("."))]
    assert spelled == []


def _is_module_name(text: str) -> bool:
    """`lxn.train.trainer` (a logger's or a module's name), not a tag."""
    import importlib.util

    try:
        return importlib.util.find_spec(text) is not None
    except ModuleNotFoundError:
        return False


def test_the_lxn_command_runs_each_job_and_lists_them():
    lxn = Path(sys.executable).parent / "lxn"
    assert lxn.is_file(), "the [project.scripts] entry point is not installed: run `make venv`"
    listing = subprocess.run([str(lxn), "--help"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "scan " in listing.stdout and "promote " in listing.stdout
    job = subprocess.run([str(lxn), "trust", "--help"], capture_output=True, text=True, timeout=60)
    assert job.returncode == 0 and job.stdout.startswith("usage: lxn trust")
    unknown = subprocess.run([str(lxn), "scna"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown job 'scna'" in unknown.stderr
    module = subprocess.run([sys.executable, "-m", "lxn.jobs", "trust", "--help"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert module.returncode == 0 and "models:/" in module.stdout
