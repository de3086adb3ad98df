"""A name -> builder registry, so jobs and configs choose a model by name. Each builder has a
task: "classify" (logits per image) or "detect" (boxes, scores and labels per image)."""

from __future__ import annotations

from typing import Callable, Literal

from torch import nn

__all__ = ["TASKS", "register_model", "create_model", "list_models", "model_task", "check_task"]

Task = Literal["classify", "detect"]
TASKS: tuple[str, ...] = ("classify", "detect")

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, str] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, task: Task = "classify"):
    """Register a keyword-only builder under its function name: `@register_model` for a
    classifier, `@register_model(task="detect")` for a detector."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if builder.__name__ in _BUILDERS:
            raise ValueError(f"model {builder.__name__!r} is registered twice")
        _BUILDERS[builder.__name__] = builder
        _TASKS[builder.__name__] = task
        return builder

    return register(fn) if fn is not None else register


def list_models(task: Task | None = "classify") -> list[str]:
    """Names accepted by `create_model` for `task` (None: every task), sorted."""
    return sorted(name for name in _BUILDERS if task is None or _TASKS[name] == task)


def model_task(name: str) -> str:
    """The task of a registered model; a clear error for an unknown name."""
    if name not in _TASKS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models(None))}")
    return _TASKS[name]


def check_task(name: str, task: Task, where: str) -> None:
    """Refuse `name` in a place (`where`, e.g. "--model of jobs/train.py") that takes only `task`."""
    if model_task(name) != task:
        raise ValueError(f"{where}: {name!r} is a {'detector' if task == 'classify' else 'classifier'}; "
                         f"this takes {'classifiers' if task == 'classify' else 'detectors'}: "
                         f"{', '.join(list_models(task))}")


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model: `create_model("logoxpertnet", num_classes=194, width_mult=1.0)`."""
    model_task(name)
    return _BUILDERS[name](**kwargs)
