"""Preprocessing: one definition, the same numbers in training, evaluation and the exported model."""

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from lxn.models import create_model
from lxn.presets import Preset
from lxn.preprocess import InferenceModel, Preprocess, augment, to_float_nchw


def test_resize_to_square_uint8():
    preset = Preset(image_size=96)
    out = preset.resize(np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8))
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8


def test_preprocess_matches_torchvision_reference():
    preset = Preset(image_size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), denoise_sigma=0.8)
    images = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    got = Preprocess(preset)(images)
    x = images.permute(0, 3, 1, 2).float() / 255
    x = TF.gaussian_blur(x, kernel_size=[5, 5], sigma=[0.8, 0.8])  # radius ceil(2 sigma) = 2
    expected = TF.normalize(x, mean=list(preset.mean), std=list(preset.std))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_no_denoise_is_plain_normalisation():
    preset = Preset(image_size=32, denoise_sigma=0)
    images = torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8)
    expected = (to_float_nchw(images) - torch.tensor(preset.mean).view(1, 3, 1, 1)) / torch.tensor(preset.std).view(1, 3, 1, 1)
    torch.testing.assert_close(Preprocess(preset)(images), expected)


def test_round_trips_through_dict():
    preset = Preset(image_size=128, mean=(0.1, 0.2, 0.3))
    assert Preset.from_dict(preset.to_dict()) == preset
    with pytest.raises(ValueError, match="unknown preset field"):
        Preset.from_dict({**preset.to_dict(), "gamma": 2.2})


def test_invalid_presets_are_rejected():
    with pytest.raises(ValueError, match="image_size"):
        Preset(image_size=8)
    with pytest.raises(ValueError, match="std"):
        Preset(std=(0.2, 0.0, 0.2))


def test_augment_is_seeded_and_per_image():
    preset = Preset(image_size=32, rotation_p=1.0, hflip_p=0.5, brightness_p=1.0)
    x = torch.rand(8, 3, 32, 32)
    a = augment(x, preset, torch.Generator().manual_seed(1))
    b = augment(x, preset, torch.Generator().manual_seed(1))
    c = augment(x, preset, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert a.min() >= 0 and a.max() <= 1
    # different images in one batch get different transforms
    same = augment(x[:1].expand(8, -1, -1, -1).clone(), preset, torch.Generator().manual_seed(3))
    assert not torch.allclose(same[0], same[1])


def test_augment_off_is_identity():
    preset = Preset(image_size=32, rotation_p=0, hflip_p=0, brightness_p=0)
    x = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(augment(x, preset, torch.Generator().manual_seed(0)), x)


def test_inference_model_exports_with_preprocessing_inside(tmp_path):
    preset = Preset(image_size=96)
    model = InferenceModel(create_model("logoxpertnet", num_classes=3), preset).eval()
    example = torch.randint(0, 256, (2, 96, 96, 3), dtype=torch.uint8)
    program = torch.export.export(model, (example,), dynamic_shapes={"images": {0: torch.export.Dim.AUTO}})
    torch.export.save(program, tmp_path / "m.pt2")
    loaded = torch.export.load(tmp_path / "m.pt2").module()
    x = torch.randint(0, 256, (4, 96, 96, 3), dtype=torch.uint8)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-6, rtol=1e-6)


class _Pixels(torch.nn.Module):
    """A 'model' that returns its (preprocessed) input: the exported graph then shows the pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_exported_model_sees_the_pixels_training_sees(tmp_path):
    """The scan feeds the exported, eval-mode graph; training normalises with a training-mode
    Preprocess. For the same image (augmentation aside) both must give the same pixels, denoising
    included: a step that ran in one mode only would be a silent train/scan skew."""
    preset = Preset(image_size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), denoise_sigma=0.8)
    images = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    training = Preprocess(preset).train()
    train_pixels = training.normalize(to_float_nchw(images))
    program = torch.export.export(InferenceModel(_Pixels(), preset).eval(), (images,))
    torch.export.save(program, tmp_path / "pixels.pt2")
    exported = torch.export.load(tmp_path / "pixels.pt2").module()
    with torch.inference_mode():
        scan_pixels = exported(images)
    torch.testing.assert_close(scan_pixels, train_pixels, atol=1e-6, rtol=1e-6)
    # and the denoising is really in there (this preset's blur changes these pixels)
    plain = (to_float_nchw(images) - training.mean) / training.std
    assert (scan_pixels - plain).abs().max() > 0.05
