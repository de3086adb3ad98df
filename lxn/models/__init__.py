"""The LogoXpertNet model family: `create_model(name, num_classes=..., **kwargs)`, `list_models()`."""

from lxn.models._registry import create_model, list_models, register_model
from lxn.models.logoxpertnet import LogoXpertNet, load_backbone_weights

__all__ = ["create_model", "list_models", "register_model", "LogoXpertNet", "load_backbone_weights"]
