"""An exported model back as an eager module: for devices an exported graph cannot move to, and
for the embedding pass, which needs the layers before the classifier. No MLflow here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lxn.presets import Preset
from lxn.preprocess import InferenceModel

__all__ = ["rebuild_eager"]


def rebuild_eager(graph: torch.nn.Module, model_config: Mapping[str, Any], preset: Preset) -> InferenceModel:
    """An eager `InferenceModel` with the weights of an exported one (same parameter names)."""
    from lxn.models import create_model

    config = dict(model_config)
    eager = InferenceModel(create_model(config.pop("name"), **config), preset).eval()
    missing, unexpected = eager.load_state_dict(graph.state_dict(), strict=False)
    if missing or unexpected:
        raise ValueError(f"exported weights do not fit the model config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return eager
