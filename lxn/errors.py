"""The errors jobs turn into a one-line reason and exit status 2 (lxn.cli), in a module that
imports nothing heavy: a job's `main` can catch them without loading torch, Ray or MLflow."""

from __future__ import annotations

__all__ = ["TrackingError", "UnsafeModelError", "PromotionConflict"]


class TrackingError(RuntimeError):
    """MLflow is unreachable or refused an operation; the message says which and what to check."""


class UnsafeModelError(ValueError):
    """A model artifact that holds something an lxn model does not (a pickle, unknown files,
    another flavor) or whose weights differ from what the registry recorded: it is not loaded."""


class PromotionConflict(RuntimeError):
    """Another process changed a registered model's aliases (or holds its lock) while this one
    decided; nothing was changed."""
