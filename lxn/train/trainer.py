"""Ray Train wiring: datasets in, DDP workers, checkpoints every epoch, resume, registration.

    driver:  preflight (dataset, MLflow, storage) -> MLflow run -> TorchTrainer.fit() ->
             register the best weights as an MLflow model with the `challenger` alias
    workers: per epoch, train on their shard of the streamed train split, validate, report a
             checkpoint (rank 0 writes it and logs to MLflow); at the end, test the best weights

The loop body is `lxn.train.loop`; this module only adds what distribution needs. A worker
failure restarts the workers from the last checkpoint (FailureConfig); a new driver with the
same run name and storage finds the same checkpoints (Ray Train V2 restores a run by
`RunConfig(name, storage_path)`), so no finished epoch is trained twice.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lxn import registry, storage
from lxn.config import to_dict
from lxn.data.prepared import Manifest, moves_to_train, read_manifest, split_uri, val_share
from lxn.logs import configure_logging
from lxn.models import create_model, model_task
from lxn.presets import Preset
from lxn.preprocess import Preprocess
from lxn.ray_utils import read_parquet
from lxn.registry import ModelRef
from lxn.tracking import RunTracker, check_tracking, log_model
from lxn.train.config import TrainConfig
from lxn.train.decode import decode_batch
from lxn.train.loop import ModelEma, autocast_dtype
from lxn.train.tasks import Worker, choose_threshold, epoch_line, gather, task_for

__all__ = ["TrainResult", "run", "preset_for", "model_config_for", "decode_batch", "choose_threshold", "epoch_line"]

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"          # model, optimizer, scheduler, scaler, epoch, best, history
BEST_FILE = "best_model.pt"      # the best weights so far (what gets registered)
INFO_FILE = "train_state.json"   # config, class names, preset, epoch, test report: human-readable


@dataclasses.dataclass
class TrainResult:
    run_name: str
    run_id: str
    model: ModelRef | None
    test_report: dict[str, Any]
    best_epoch: int
    checkpoint_path: str
    already_finished: bool = False


def preset_for(config: TrainConfig, manifest: Manifest) -> Preset:
    """The model's preprocessing (the dataset's mean/std) and the recipe's augmentations."""
    recipe = config.resolved_recipe
    p = recipe.augment_p
    return Preset(
        image_size=config.image_size,
        mean=tuple(manifest.mean),
        std=tuple(manifest.std),
        denoise_sigma=recipe.denoise_sigma,
        rotation_degrees=recipe.rotation_degrees,
        rotation_p=p,
        hflip_p=p if recipe.hflip else 0.0,
        brightness=recipe.brightness,
        brightness_p=p,
        crop_scale_min=recipe.crop_scale_min,
        color_jitter=recipe.color_jitter,
        color_p=p,
    )


# The LogoXpertNet settings a registered model needs to be rebuilt exactly (its baseline has none).
ARCHITECTURE = ("hse_gate", "clff_mode", "early_stride", "clff_early", "spectrum")


def model_config_for(config: TrainConfig, num_classes: int) -> dict[str, Any]:
    """What `create_model(**model_config)` rebuilds the trained network from."""
    model_config = {"name": config.model, "num_classes": num_classes, "width_mult": config.width_mult}
    if config.model.startswith("logoxpertnet"):
        model_config.update({name: getattr(config, name) for name in ARCHITECTURE})
    if model_task(config.model) == "detect":
        model_config["image_size"] = config.image_size  # a detector's candidates are fixed for its input side
    return model_config


def make_optimizer(model: torch.nn.Module, recipe) -> torch.optim.Optimizer:
    """Adam with an L2 penalty on every weight (the paper), or AdamW with decoupled decay on
    weights only: BatchNorm's scales and the biases are not decayed."""
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=recipe.lr)


# ---------------------------------------------------------------------------- data


def _read_split(root: str, split: str, columns) -> Any:
    filesystem, path = storage.arrow_filesystem(split_uri(root, split))
    return read_parquet(path, filesystem=filesystem).select_columns(list(columns))


def fit_splits(root: str, columns, train_on_val: float) -> dict[str, Any]:
    """The rows each split of a run reads: the prepared splits, or, with `train_on_val`, train
    and that share of the validation split (`moves_to_train`), val the rest. Test never changes."""
    splits = {split: _read_split(root, split, columns) for split in ("train", "val", "test")}
    if train_on_val:
        val = _read_split(root, "val", (*columns, "group"))
        share = lambda moved: val.map_batches(val_share, fn_kwargs={"fraction": train_on_val, "moved": moved},  # noqa: E731
                                              batch_format="pyarrow", zero_copy_batch=True)
        splits["train"], splits["val"] = splits["train"].union(share(True)), share(False)
    return splits


def val_moved(root: str, train_on_val: float) -> int:
    """How many validation rows `fit_splits` moves into training (read from the `group` column)."""
    if not train_on_val:
        return 0
    import pyarrow.dataset as pds

    filesystem, path = storage.arrow_filesystem(split_uri(root, "val"))
    groups = pds.dataset(path, filesystem=filesystem, format="parquet").to_table(columns=["group"])["group"]
    return int(moves_to_train(groups.to_numpy(zero_copy_only=False), train_on_val).sum())


def _datasets(root: str, manifest: Manifest, preset: Preset, config: TrainConfig, task, moved: int) -> dict:
    """Streaming datasets of decoded uint8 images (and the task's labels or boxes) per split.

    Decoding runs in Ray Data's CPU tasks, next to (not inside) the training workers. A split
    small enough to fit `cache_mb` once decoded is materialised in the object store, so later
    epochs skip the read and decode; a large one (WebLogo-2M) streams every epoch.
    """

    datasets = {}
    sizes = {"train": manifest.split_size("train") + moved, "val": manifest.split_size("val") - moved,
             "test": manifest.split_size("test")}
    for split, ds in fit_splits(root, task.columns, config.train_on_val).items():
        if split == "train":
            ds = ds.randomize_block_order(seed=config.seed)
        decode, fn_kwargs = task.decode()
        ds = ds.map_batches(decode, fn_kwargs=fn_kwargs, batch_format="numpy", batch_size=64)
        decoded_mb = sizes[split] * preset.image_size**2 * 3 / 2**20
        datasets[split] = ds.materialize() if decoded_mb <= config.cache_mb else ds
    return datasets


# ---------------------------------------------------------------------------- worker


def _save(obj: Any, path: Path) -> None:
    torch.save(obj, path)


def _load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    configure_logging(worker=True)  # this worker's INFO lines reach `ray job logs`
    config = TrainConfig(**loop_config["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    node = ray.get_runtime_context().get_node_id()
    log.info("training worker: rank %d of %d on node %s, %s", rank, world, node, device)
    # One system-metrics logger per node (its lowest rank), to the run the driver created. Nodes
    # are told apart by Ray node id: Ray Train's local ranks go by IP, which nodes may share.
    by_rank = gather(node)
    nodes, first_on_node = list(dict.fromkeys(by_rank)), by_rank.index(node) == rank
    monitor = RunTracker(loop_config["tracking_uri"], loop_config["run_id"]).system_metrics(
        node=f"node{nodes.index(node)}") if first_on_node else contextlib.nullcontext()
    with monitor:
        _train_and_test(config, loop_config, _worker(config, loop_config, rank, world, device))


def _worker(config: TrainConfig, loop_config: dict[str, Any], rank: int, world: int, device: torch.device) -> Worker:
    import ray.train

    preset = Preset.from_dict(loop_config["preset"])
    per_worker_batch = config.batch_size // world

    def shard(name: str, epoch: int, train: bool):
        return ray.train.get_dataset_shard(name).iter_torch_batches(
            batch_size=per_worker_batch,
            local_shuffle_buffer_size=config.shuffle_buffer if train else None,
            local_shuffle_seed=config.seed * 1000 + epoch if train else None,
            drop_last=train,  # a last batch of one image would break BatchNorm
        )

    return Worker(rank=rank, world=world, device=device, amp_dtype=autocast_dtype(config.amp, device),
                  preprocess=Preprocess(preset).to(device), shard=shard)


@dataclasses.dataclass
class _Run:
    """What a worker trains and checkpoints: the model (DDP-wrapped across workers), its
    optimizer, loss scaler and weight average, and where training stands."""

    raw: torch.nn.Module
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    ema: ModelEma | None
    state: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"epoch": -1, "best_val": -1.0, "best_epoch": -1, "history": []})
    best_weights: dict[str, torch.Tensor] | None = None

    @property
    def scored(self) -> torch.nn.Module:
        """The weights that are validated, tested and registered: the average, when there is one.
        Never the DDP wrapper: its every forward is a collective (buffer broadcast), and the
        evaluation splits are unequal, so ranks run different numbers of forwards."""
        return self.ema.module if self.ema is not None else self.raw

    def scored_weights(self) -> dict[str, torch.Tensor]:
        return copy.deepcopy({k: v.detach().cpu() for k, v in self.scored.state_dict().items()})

    def end_epoch(self, metrics: dict[str, Any], best: str) -> None:
        """Record a finished epoch; keep its weights when `metrics[best]` is the best so far."""
        if metrics[best] > self.state["best_val"]:
            self.state.update(best_val=metrics[best], best_epoch=metrics["epoch"])
            self.best_weights = self.scored_weights()
        self.state["epoch"] = metrics["epoch"]
        self.state["history"].append(metrics)

    def checkpoint(self) -> dict[str, Any]:
        return {"model": self.raw.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "ema": self.ema.state_dict() if self.ema is not None else None, **self.state}

    def restore(self, saved: dict[str, Any], best: dict[str, torch.Tensor]) -> None:
        self.raw.load_state_dict(saved.pop("model"))
        self.optimizer.load_state_dict(saved.pop("optimizer"))
        scaler, ema = saved.pop("scaler", None), saved.pop("ema", None)
        saved.pop("scheduler", None)  # checkpoints of lxn < 0.2 kept a StepLR; the schedule is now a function
        if "best_val_acc" in saved:  # checkpoints written before detectors named the best figure the classifier's way
            saved["best_val"] = saved.pop("best_val_acc")
        if self.scaler is not None and scaler:
            self.scaler.load_state_dict(scaler)
        if self.ema is not None and ema:
            self.ema.load_state_dict(ema)
        self.state, self.best_weights = saved, best


def _build_run(config: TrainConfig, worker: Worker, num_classes: int) -> _Run:
    """The model (identically initialised on every rank), SyncBN and DDP where asked, optimizer,
    loss scaler and weight average."""
    import ray.train.torch

    recipe = config.resolved_recipe
    torch.manual_seed(config.seed)  # identical initial weights everywhere (DDP also broadcasts)
    architecture = {k: v for k, v in model_config_for(config, num_classes).items() if k != "name"}
    raw = create_model(config.model, **architecture, backbone_weights=config.backbone_weights,
                       bn_momentum=config.bn_momentum)
    synced = config.sync_batchnorm and worker.world > 1 and worker.device.type == "cuda"
    if synced:
        raw = torch.nn.SyncBatchNorm.convert_sync_batchnorm(raw)
    if worker.rank == 0 and worker.world > 1:
        log.info("per-worker batch %d: BatchNorm statistics are %s", config.batch_size // worker.world,
                 "synchronised across workers" if synced else "each worker's own (--sync-batchnorm synchronises them on GPUs)")
    raw = raw.to(device=worker.device, memory_format=torch.channels_last)
    return _Run(raw=raw, model=ray.train.torch.prepare_model(raw), optimizer=make_optimizer(raw, recipe),
                scaler=torch.amp.GradScaler("cuda") if worker.amp_dtype == torch.float16 else None,
                ema=ModelEma(raw, recipe.ema_decay) if recipe.ema_decay > 0 else None)


def _restore(run: _Run, rank: int) -> bool:
    """Continue from Ray Train's latest checkpoint, if there is one (a restarted worker group,
    or a new driver of the same run); returns whether it did."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return False
    with checkpoint.as_directory() as directory:
        run.restore(_load(Path(directory) / STATE_FILE), _load(Path(directory) / BEST_FILE))
    log.info("rank %d resumed after epoch %d", rank, run.state["epoch"])
    return True


def _backfill(tracker: RunTracker, run: _Run) -> None:
    """A failure between a checkpoint's commit and its MLflow log would lose that epoch's
    metrics: log them now if so. Then mark, visibly, that this attempt resumed."""
    logged = tracker.logged_steps("train_loss")
    for past in run.state["history"]:
        if past["epoch"] not in logged:
            tracker.log_metrics(past, step=past["epoch"])
    tracker.log_metrics({"resumed_after_epoch": run.state["epoch"]}, step=run.state["epoch"] + 1)


def _train_and_test(config: TrainConfig, loop_config: dict[str, Any], worker: Worker) -> None:
    """The recipe: build, restore, train and validate every epoch (checkpointing each), then
    test the best weights and choose the threshold on the validation split."""
    import ray.train

    recipe = config.resolved_recipe
    preset = Preset.from_dict(loop_config["preset"])
    task = task_for(config, preset, loop_config["class_names"])
    run = _build_run(config, worker, len(task.model_classes))
    resumed = _restore(run, worker.rank)
    tracker = RunTracker(loop_config["tracking_uri"], loop_config["run_id"]) if worker.rank == 0 else None
    if tracker is not None and resumed:
        _backfill(tracker, run)

    # The schedule is a function of fractional epoch: steps per epoch from the equal split's size.
    steps = max(1, (loop_config["train_images"] // worker.world) // (config.batch_size // worker.world))
    first_epoch, started = run.state["epoch"] + 1, time.monotonic()
    for epoch in range(first_epoch, config.epochs):
        lr = recipe.lr * recipe.lr_factor(epoch, config.epochs)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch * 1009 + worker.rank)
        fit = task.fit(run.model, worker.shard("train", epoch, True), worker, optimizer=run.optimizer,
                       generator=generator, scaler=run.scaler, ema=run.ema,
                       lr_at=lambda i, e=epoch: recipe.lr * recipe.lr_factor(e + i / steps, config.epochs))
        fit = fit.total(worker.device)
        metrics = {"epoch": epoch, **task.epoch_metrics(fit, run.scored, worker.shard("val", epoch, False), worker),
                   "lr": lr, "images_per_s": fit.count / fit.seconds if fit.seconds else 0.0}
        run.end_epoch(metrics, task.best)
        _report(metrics, worker.rank, run, loop_config)
        if tracker is not None:
            # Log an epoch once, when it is finished: after Ray Train has registered its
            # checkpoint (a worker lost before that retrains the epoch, which then is logged once).
            ray.train.get_all_reported_checkpoints()
            tracker.log_metrics(metrics, step=epoch)
            per_epoch = (time.monotonic() - started) / (epoch - first_epoch + 1)
            log.info(epoch_line(metrics, config.epochs, eta_s=per_epoch * (config.epochs - epoch - 1)))

    # Test the best weights once; every rank scores its share.
    run.scored.load_state_dict(run.best_weights)
    report = task.test(run.scored, worker.shard("test", config.epochs, False),
                       worker.shard("val", config.epochs, False), worker)
    if tracker is not None:
        task.log_test(tracker, report, run.state)
    headline = task.test_figures[0]
    final = {"epoch": config.epochs, "final": 1, **({f"test_{headline}": report[headline]} if tracker else {})}
    _report(final, worker.rank, run, loop_config, test_report=report if tracker else None)


def _report(metrics, rank: int, run: _Run, loop_config: dict[str, Any], test_report=None) -> None:
    """Every rank reports (it is a barrier); rank 0 attaches the checkpoint."""
    import ray.train

    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="lxn-ckpt-") as directory:
        path = Path(directory)
        _save(run.checkpoint(), path / STATE_FILE)
        _save(run.best_weights, path / BEST_FILE)
        info = {
            "config": loop_config["config"],
            "recipe": loop_config["recipe"],
            "class_names": loop_config["class_names"],
            "preset": loop_config["preset"],
            "epoch": run.state["epoch"],
            "best_epoch": run.state["best_epoch"],
            "best_val": run.state["best_val"],
            "test_report": test_report,
        }
        (path / INFO_FILE).write_text(json.dumps(info, indent=2))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


# ---------------------------------------------------------------------------- driver


def _check_detector_data(config: TrainConfig, manifest: Manifest) -> None:
    """A detector needs boxes and an input side its pyramid divides: refused before anything runs."""
    from lxn.models.detector import DETECTOR_STRIDES

    if not manifest.has_boxes:
        raise ValueError(f"--model {config.model} is a detector and {config.data} has no boxes: prepare a "
                         "box-labelled source (--format coco or belgalogos) or train a classifier")
    if config.image_size % DETECTOR_STRIDES[-1]:
        raise ValueError(f"--image-size {config.image_size}: a detector's input side must be a multiple of "
                         f"{DETECTOR_STRIDES[-1]} (its coarsest pyramid level), e.g. 512 or 640")


def run(config: TrainConfig) -> TrainResult:
    """Train, test and register; returns what was registered. Safe to re-run: it resumes."""
    import ray
    import ray.data
    import ray.train
    from ray.train.torch import TorchTrainer

    from lxn.train.ingest import ExactOnceEvaluation

    if config.data is None:
        raise ValueError("TrainConfig.data is required here; jobs/train.py prepares the demo dataset when it is omitted")
    data = storage.location(config.data)
    manifest = read_manifest(data)
    task_kind = model_task(config.model)
    if task_kind == "detect":
        _check_detector_data(config, manifest)
    manifest.check_trainable(task_kind)
    manifest.check_image_size(config.image_size)
    # Checked before MLflow and Ray: a wrong bucket fails in seconds, leaving no run behind.
    checkpoint_root = storage.check_writable(config.storage, "checkpoints")
    tracking_uri = check_tracking(config.tracking_uri)

    run_name = config.resolved_run_name
    done = RunTracker.find_finished(config.experiment, run_name, tracking_uri)
    if done is not None:
        version = done.data.tags.get(registry.REGISTERED_VERSION)
        log.info("run %s already finished (MLflow run %s); use another --run-name to train again", run_name, done.info.run_id)
        return TrainResult(
            run_name, done.info.run_id, ModelRef(config.registered_model, version) if version else None,
            {k[len("test_"):]: v for k, v in done.data.metrics.items() if k.startswith("test_")},
            best_epoch=-1, checkpoint_path="", already_finished=True,
        )

    from lxn.ray_utils import init_ray

    # Only now, with every input checked, start (or join) Ray: bad input fails in seconds.
    init_ray(min_cpus=config.num_workers * config.cpus_per_worker + 2)
    preset = preset_for(config, manifest)
    task = task_for(config, preset, manifest.classes)
    recipe = config.resolved_recipe.to_dict()
    moved = val_moved(data, config.train_on_val)
    train_images = manifest.split_size("train") + moved
    threshold_source = (f"val split of {data}" if not moved else
                        f"the {manifest.split_size('val') - moved} of {manifest.split_size('val')} val images of {data} "
                        "not trained on (--train-on-val)")
    tracker = RunTracker.start(config.experiment, run_name, tracking_uri)
    log.info("MLflow: %s", tracker.url())
    try:
        tracker.set_tags({registry.RUN_DATASET: data, registry.RUN_MODEL: config.model, registry.RUN_RECIPE: config.recipe,
                          registry.RUN_SEED: config.seed, **({registry.GRID: config.grid} if config.grid else {})})
        tracker.log_params({**to_dict(config), "data": data, "num_classes": manifest.num_classes,
                            "train_images": train_images, "val_trained_on": moved, "run_name": run_name,
                            "resolved_recipe": recipe})
        tracker.log_dict(json.loads(manifest.to_json()), "dataset/manifest.json")
        tracker.log_dict(recipe, "recipe.json")
        loop_config = {
            "config": to_dict(config) | {"data": data, "storage": checkpoint_root, "run_name": run_name},
            "recipe": recipe,
            "preset": preset.to_dict(),
            "class_names": manifest.classes,
            "train_images": train_images,
            "tracking_uri": tracking_uri,
            "run_id": tracker.run_id,
        }
        ray.data.DataContext.get_current().enable_progress_bars = config.progress_bars
        filesystem, storage_path = storage.arrow_filesystem(checkpoint_root)
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config=loop_config,
            scaling_config=ray.train.ScalingConfig(
                num_workers=config.num_workers, use_gpu=config.use_gpu,
                resources_per_worker={"CPU": config.cpus_per_worker, **({"GPU": 1} if config.use_gpu else {})},
            ),
            run_config=ray.train.RunConfig(
                name=run_name,
                storage_path=storage_path,
                storage_filesystem=filesystem,
                failure_config=ray.train.FailureConfig(max_failures=config.max_failures),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            ),
            datasets=_datasets(data, manifest, preset, config, task, moved),
            dataset_config=ExactOnceEvaluation(),  # every validation and test image scored once
        )
        result = trainer.fit()
        with result.checkpoint.as_directory() as directory:
            info = json.loads((Path(directory) / INFO_FILE).read_text())
            best = _load(Path(directory) / BEST_FILE)
        model_config = model_config_for(config, len(task.model_classes))
        model = create_model(**model_config)
        model.load_state_dict(best)
        report = info["test_report"]
        ref = log_model(
            tracker, model.eval(), preset=preset, class_names=task.model_classes,
            model_config=model_config, recipe=recipe,
            registered_model=config.registered_model or None, alias=config.alias or None,
            tags={**task.version_tags(report), registry.DATASET: data, registry.RUN_NAME: run_name,
                  **registry.threshold_tags(report.get("threshold"), config.threshold_precision,
                                            threshold_source)},
        )
        tracker.set_tags({registry.REGISTERED_VERSION: ref.version if ref else ""})
        tracker.finish("FINISHED")
    except BaseException:
        tracker.finish("FAILED")
        raise
    return TrainResult(run_name, tracker.run_id, ref, report, info["best_epoch"], result.checkpoint.path)
