"""Training grids: `jobs/train.py --model a,b --seed 0,1,42` trains every combination.

The driver resolves the settings once (the demo's defaults and its prepared data included),
writes them to a config file, and starts one `jobs/train.py` driver process per combination,
as many at a time as the cluster has room for (`--grid-parallel`, default: what its CPUs or
GPUs fit), all joined to the same Ray cluster. Every run is tagged with the grid's name (`lxn.registry.GRID`) for
`jobs/report.py`. A grid never moves an alias: it registers under `--grid-register NAME`
(without an alias) or not at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from lxn.config import to_dict

__all__ = ["find_lists", "plan", "run_grid", "room_for"]

log = logging.getLogger(__name__)

_LISTED = ("--model", "--seed")
_GRID_FLAGS = ("--grid", "--grid-parallel", "--grid-register")


def find_lists(argv: Sequence[str]) -> tuple[list[str], dict[str, list[str]], dict[str, str]]:
    """argv -> (the rest of argv, {"model": [...], "seed": [...]} for the flags given as comma
    lists, the grid's own flags). No list: an empty dict, and the job trains once."""
    rest, lists, grid = [], {}, {}
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        flag, eq, inline = item.partition("=")
        if flag in _LISTED + _GRID_FLAGS:
            value = inline if eq else (items[i + 1] if i + 1 < len(items) else "")
            i += 1 if eq else 2
            if flag in _GRID_FLAGS:
                grid[flag[2:].replace("-", "_")] = value
                continue
            values = [v.strip() for v in value.split(",") if v.strip()]
            if len(values) > 1:
                lists[flag[2:]] = values
            else:
                rest += [flag, value]
            continue
        rest.append(item)
        i += 1
    if grid and not lists:
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in grid)} only go with a grid: give --model "
                         "or --seed a comma-separated list")
    return rest, lists, grid


def plan(config, lists: dict[str, list[str]], name: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The grid's name and one settings dict per combination (models outer, seeds inner)."""
    for model in lists.get("model", []):
        from lxn.models import list_models

        if model not in list_models():
            raise ValueError(f"--model {model}: unknown model; choose from {', '.join(list_models())}")
    seeds = [int(s) for s in lists.get("seed", [str(config.seed)])]
    models = lists.get("model", [config.model])
    base = {k: v for k, v in to_dict(config).items() if k not in ("model", "seed", "run_name", "grid")}
    if name is None:
        digest = hashlib.sha256(json.dumps({**base, "models": models, "seeds": seeds}, sort_keys=True).encode())
        name = f"grid-{digest.hexdigest()[:8]}"
    return name, [{**base, "model": m, "seed": s, "grid": name} for m in models for s in seeds]


def room_for(config) -> int:
    """How many of the grid's runs the cluster fits at once (at least 1)."""
    from lxn.ray_utils import cluster_shape

    shape = cluster_shape()
    if config.use_gpu:
        gpus = max(shape.resources.get("GPU", 0), shape.max_resources.get("GPU", 0))
        return max(1, int(gpus // config.num_workers))
    cpus = max(shape.resources.get("CPU", 0), shape.max_resources.get("CPU", 0))
    # each run: its workers' CPUs plus two for Ray Data's decode tasks
    return max(1, int(cpus // (config.num_workers * config.cpus_per_worker + 2)))


def _summary(stdout: str) -> dict[str, Any] | None:
    """The JSON summary a train job prints last."""
    start = stdout.rfind("\n{")
    text = stdout[start + 1:] if start >= 0 else stdout if stdout.startswith("{") else ""
    try:  # Ray may print a line or two after it
        return json.JSONDecoder().raw_decode(text)[0]
    except ValueError:
        return None


def run_grid(name: str, runs: list[dict[str, Any]], parallel: int, address: str) -> list[dict[str, Any]]:
    """Train every run of the grid, `parallel` at a time, each `python -m lxn.jobs train` (the
    job's own process: one driver per run); one result per run, in order: its model, seed, exit
    status and the job's JSON summary (None if it failed)."""
    results: list[dict[str, Any] | None] = [None] * len(runs)
    env = {**os.environ, "RAY_ADDRESS": address}
    with tempfile.TemporaryDirectory(prefix="lxn-grid-") as tmp:
        pending = list(enumerate(runs))
        active: list[tuple[int, subprocess.Popen, Any]] = []
        while pending or active:
            while pending and len(active) < parallel:
                index, settings = pending.pop(0)
                path = Path(tmp) / f"run-{index}.json"
                path.write_text(json.dumps(settings))
                out = open(Path(tmp) / f"run-{index}.out", "w+")
                log.info("grid %s: run %d/%d: %s seed %s", name, index + 1, len(runs), settings["model"], settings["seed"])
                active.append((index, subprocess.Popen([sys.executable, "-m", "lxn.jobs", "train", "--config", str(path)],
                                                       env=env, stdout=out, text=True), out))
            time.sleep(0.5)
            for entry in list(active):
                index, process, out = entry
                if process.poll() is None:
                    continue
                active.remove(entry)
                out.seek(0)
                summary = _summary(out.read())
                out.close()
                results[index] = {"model": runs[index]["model"], "seed": runs[index]["seed"],
                                  "exit_status": process.returncode, "summary": summary}
                if process.returncode:
                    log.error("grid %s: %s seed %s failed (exit %d); the other runs go on", name,
                              runs[index]["model"], runs[index]["seed"], process.returncode)
    return [r for r in results if r is not None]
