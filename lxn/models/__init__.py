"""The LogoXpertNet model family, its baseline and its detectors: `create_model(name, num_classes=...,
**kwargs)`, `list_models(task)`, `model_task(name)`."""

from lxn.models._registry import check_task, create_model, list_models, model_task, register_model
from lxn.models.baselines import TorchvisionMobileNetV3
from lxn.models.detector import LogoXpertDet, select_detections
from lxn.models.logoxpertnet import MIN_INPUT_SIZE, LogoXpertNet, load_backbone_weights

__all__ = ["create_model", "list_models", "model_task", "check_task", "register_model", "LogoXpertNet",
           "TorchvisionMobileNetV3", "LogoXpertDet", "select_detections", "load_backbone_weights", "MIN_INPUT_SIZE"]
