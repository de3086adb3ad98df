"""The LogoXpertNet model family and its baseline: `create_model(name, num_classes=..., **kwargs)`,
`list_models()`."""

from lxn.models._registry import create_model, list_models, register_model
from lxn.models.baselines import TorchvisionMobileNetV3
from lxn.models.logoxpertnet import MIN_INPUT_SIZE, LogoXpertNet, load_backbone_weights

__all__ = ["create_model", "list_models", "register_model", "LogoXpertNet", "TorchvisionMobileNetV3",
           "load_backbone_weights", "MIN_INPUT_SIZE"]
