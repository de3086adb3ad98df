"""Train LogoXpertNet with Ray Train, track it in MLflow, register the best weights.

    python jobs/train.py --data s3://bucket/prepared/weblogo2m --num-workers 8 --use-gpu
    ray job submit --working-dir . -- python jobs/train.py --data s3://... --num-workers 8 --use-gpu
    python jobs/train.py      # embedded demo: synthetic data, small config, local Ray, sqlite MLflow
    python jobs/train.py --model logoxpertnet_backbone,logoxpertnet --seed 0,1,42 [--grid NAME]
        [--grid-parallel N] [--grid-register NAME]   # a grid: every combination, no alias moved

Re-running the same command resumes from the last checkpoint (same run name and --storage).
A grid's runs are tagged for `python jobs/report.py --grid NAME` (the paper's tables).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from lxn.cli import print_json, run_job
from lxn.config import add_arguments, from_namespace
from lxn.preflight import check_reach
from lxn.train.config import DEMO_DEFAULTS, DETECTOR_DEMO_DEFAULTS, TrainConfig

log = logging.getLogger("lxn.train")


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """The job's flags as a TrainConfig; without --data, the demo's defaults fill the unset ones."""
    parser = add_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter), TrainConfig
    )
    args = parser.parse_args(argv)
    config = from_namespace(TrainConfig, args)
    if config.data is not None:
        return config
    from lxn.models import model_task

    demo = DETECTOR_DEMO_DEFAULTS if model_task(config.model) == "detect" else DEMO_DEFAULTS
    return from_namespace(TrainConfig, args, defaults=demo)


def _demo_data(config: TrainConfig) -> str:
    """The embedded demo's prepared data: box-labelled scenes for a detector, else the images."""
    from lxn.demo import prepare_demo_dataset, prepare_demo_scenes
    from lxn.models import model_task

    detector = model_task(config.model) == "detect"
    return (prepare_demo_scenes if detector else prepare_demo_dataset)(config.demo_dir)


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _train(sys.argv[1:] if argv is None else argv), _show)


def _train(argv: list[str]) -> dict:
    from lxn.train.grid import find_lists

    rest, lists, flags = find_lists(argv)
    if lists:
        return _grid(rest, lists, flags)
    config = parse_config(argv)
    demo = config.data is None
    check_reach(config, demo=demo)  # on a multi-node cluster: nothing only this node has
    from lxn.train.trainer import run

    if demo:
        from lxn.ray_utils import init_ray

        # The demo prepares its data with Ray Data first: start Ray sized for training.
        init_ray(min_cpus=config.num_workers * config.cpus_per_worker + 2)
        config = dataclasses.replace(config, data=_demo_data(config))
    result = run(config)
    return {
        "run_name": result.run_name,
        "mlflow_run_id": result.run_id,
        "registered_model": result.model.uri if result.model else None,
        "alias": config.alias,
        "already_finished": result.already_finished,
        "best_epoch": result.best_epoch,
        **{f"test_{k}": result.test_report[k] for k in ("top1", "precision_macro", "recall_macro", "f1_macro", "auc_macro_ovr",
                                                "map_50", "map") if k in result.test_report},
    }


def _grid(argv: list[str], lists: dict[str, list[str]], flags: dict[str, str]) -> dict:
    """Train every combination of the listed settings (see lxn/train/grid.py)."""
    from lxn.ray_utils import init_ray
    from lxn.train.grid import plan, room_for, run_grid

    config = parse_config(argv)
    demo = config.data is None
    check_reach(config, demo=demo)
    init_ray(min_cpus=config.num_workers * config.cpus_per_worker + 2)
    if demo:
        config = dataclasses.replace(config, data=_demo_data(config))
    from lxn.tracking import check_tracking

    # Once here, before the runs start together: a fresh sqlite store is created by the first
    # client that opens it, and two creating it at once fail.
    check_tracking(config.tracking_uri)
    # a grid never moves an alias: its own registered model, or none
    config = dataclasses.replace(config, registered_model=flags.get("grid_register", ""), alias="")
    name, runs = plan(config, lists, flags.get("grid"))
    parallel = int(flags["grid_parallel"]) if flags.get("grid_parallel") else room_for(config)
    if parallel < 1:
        raise ValueError(f"--grid-parallel must be at least 1, got {parallel}")
    import ray

    log.info("grid %s: %d runs, %d at a time", name, len(runs), parallel)
    results = run_grid(name, runs, parallel, ray.get_runtime_context().gcs_address)
    return {"grid": name, "runs": results, "failed": sum(1 for r in results if r["exit_status"]),
            "report": f"python jobs/report.py --grid {name}"}


def _show(result: dict) -> int:
    print_json(result)
    return 1 if result.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
