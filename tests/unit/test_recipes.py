"""Training recipes: the paper's stays the paper's, ingredients resolve from flags, schedules keep
the learning rate useful to the end, the weight average and the augmentations do what they say."""

from __future__ import annotations

import math

import pytest
import torch

from lxn.presets import Preset
from lxn.preprocess import augment
from lxn.train.config import TrainConfig
from lxn.train.loop import ModelEma, train_one_epoch
from lxn.train.recipes import RECIPES


def test_the_paper_recipe_is_the_papers():
    paper = RECIPES["paper"]
    assert (paper.optimizer, paper.lr, paper.weight_decay, paper.schedule, paper.lr_step_epochs) == \
        ("adam", 1e-3, 5e-4, "step", 10)
    assert (paper.rotation_degrees, paper.augment_p, paper.hflip, paper.brightness, paper.denoise_sigma) == \
        (15.0, 0.5, True, 0.2, 0.5)
    assert (paper.crop_scale_min, paper.color_jitter, paper.label_smoothing, paper.ema_decay) == (1.0, 0.0, 0.0, 0.0)


def test_the_papers_step_decay_keeps_the_learning_rate_useful_to_the_end():
    paper = RECIPES["paper"]
    lrs = [paper.lr * paper.lr_factor(epoch, 150) for epoch in range(150)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == lrs[0] and lrs[10] < lrs[9]
    assert lrs[149] == pytest.approx(1e-5)  # 1% of the start, after 14 decays of x0.72
    assert min(lrs) >= 1e-5 * 0.999  # a x0.5 decay would be at 6e-8 from epoch 100 on
    assert paper.step_gamma(150) == pytest.approx(0.01 ** (1 / 14))


def test_warm_up_then_cosine_to_the_floor():
    lxn = RECIPES["lxn"]
    assert lxn.lr_factor(0, 30) == pytest.approx(0.01)
    assert lxn.lr_factor(lxn.warmup_epochs, 30) == pytest.approx(1.0)
    assert lxn.lr_factor(lxn.warmup_epochs / 2, 30) == pytest.approx(0.505)
    assert lxn.lr_factor(16, 30) == pytest.approx(0.01 + 0.99 * 0.5)  # half way after warm-up
    assert lxn.lr_factor(30, 30) == pytest.approx(0.01)
    factors = [lxn.lr_factor(e / 10, 30) for e in range(int(lxn.warmup_epochs * 10), 300)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))  # never rises after warm-up


def test_flags_override_single_ingredients_and_shape_the_run_name():
    base = TrainConfig(data="s3://bkt/p")
    assert base.resolved_recipe == RECIPES["lxn"]
    tuned = TrainConfig(data="s3://bkt/p", lr=5e-4, hflip=True, recipe="paper")
    recipe = tuned.resolved_recipe
    assert (recipe.name, recipe.lr, recipe.hflip, recipe.optimizer) == ("paper", 5e-4, True, "adam")
    assert TrainConfig(data="s3://bkt/p", recipe="paper").resolved_run_name != base.resolved_run_name
    same = TrainConfig(data="s3://bkt/p", lr=RECIPES["lxn"].lr, schedule="cosine")
    assert same.resolved_run_name == base.resolved_run_name  # the same training however it is spelled
    with pytest.raises(ValueError, match="crop_scale_min"):
        TrainConfig(data="s3://bkt/p", crop_scale_min=0.0)


def test_the_weight_average_follows_its_formula():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = ModelEma(model, decay=0.9)
    expected = 1.0
    for value in (3.0, -1.0, 5.0):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        d = min(0.9, (1 + ema.updates) / (10 + ema.updates))
        expected = d * expected + (1 - d) * value
    assert ema.module.weight[0, 0].item() == pytest.approx(expected)
    assert not ema.module.training and not ema.module.weight.requires_grad
    restored = ModelEma(model, decay=0.9)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 3 and restored.module.weight[0, 0].item() == pytest.approx(expected)


def test_the_schedule_is_set_on_every_step():
    model = torch.nn.Conv2d(3, 2, 1)
    head = torch.nn.Sequential(model, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    optimizer = torch.optim.SGD(head.parameters(), lr=1.0)
    preset = Preset(image_size=32, rotation_p=0, hflip_p=0, brightness_p=0, denoise_sigma=0)
    from lxn.preprocess import Preprocess

    seen = []
    batches = [{"image": torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8), "label": torch.tensor([0, 1])}] * 3

    def lr_at(step):
        seen.append(step)
        return 0.1 * (step + 1)

    ema = ModelEma(head, 0.5)
    train_one_epoch(head, batches, optimizer=optimizer, preprocess=Preprocess(preset), preset=preset,
                    generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), lr_at=lr_at, ema=ema)
    assert seen == [0, 1, 2] and optimizer.param_groups[0]["lr"] == pytest.approx(0.3) and ema.updates == 3


def test_a_random_resized_crop_zooms_in_and_stays_inside_the_image():
    preset = Preset(image_size=64, rotation_p=0, hflip_p=0, brightness_p=0, crop_scale_min=0.2)
    x = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(16, 3, 64, 64).contiguous()  # a left-right ramp
    out = augment(x, preset, torch.Generator().manual_seed(0))
    spans = out[:, 0, 32].max(dim=1).values - out[:, 0, 32].min(dim=1).values
    assert (spans < 0.999).all() and (spans > math.sqrt(0.2) * 0.74).all()  # a part of the ramp, magnified
    assert out.min() >= 0 and out.max() <= 1
    same = augment(x, preset, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, same)


def test_colour_jitter_keeps_a_grey_image_grey_and_the_hue_keeps_the_luma():
    preset = Preset(image_size=32, rotation_p=0, hflip_p=0, brightness_p=0, color_jitter=0.5, color_p=1.0)
    grey = torch.full((8, 3, 16, 16), 0.4)
    out = augment(grey, preset, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, grey, atol=1e-5, rtol=0)  # no chroma to turn, contrast of a flat image is 0
    colour = torch.rand(8, 3, 16, 16)
    jittered = augment(colour, preset, torch.Generator().manual_seed(2))
    assert not torch.allclose(jittered, colour)
    off = Preset(image_size=32, rotation_p=0, hflip_p=0, brightness_p=0, color_jitter=0.0)
    torch.testing.assert_close(augment(colour, off, torch.Generator().manual_seed(2)), colour)


def test_the_plain_recipe_is_a_plain_scripts_one_cycle():
    plain = RECIPES["plain"]
    assert (plain.optimizer, plain.lr, plain.weight_decay, plain.schedule, plain.ema_decay) == \
        ("adamw", 3e-3, 5e-4, "onecycle", 0.0)
    assert (plain.crop_scale_min, plain.color_jitter, plain.label_smoothing, plain.rotation_degrees, plain.hflip) == \
        (0.6, 0.3, 0.1, 0.0, False)
    # Step by step, the schedule is torch's own OneCycleLR with its defaults.
    epochs, steps = 30, 100
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=plain.lr)
    reference = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=plain.lr, total_steps=epochs * steps)
    for step in range(epochs * steps):
        ours = plain.lr * plain.lr_factor(step / steps, epochs)
        # within 0.2% of the peak: torch's steps end each half one step early, ours is continuous
        assert ours == pytest.approx(optimizer.param_groups[0]["lr"], rel=0, abs=2e-3 * plain.lr), step
        optimizer.step()
        reference.step()
    assert plain.lr_factor(9, 30) == pytest.approx(1.0) and plain.lr_factor(0, 30) == pytest.approx(1 / 25)


def test_the_onecycle_peak_moves_the_peak_and_names_a_new_run_only_where_it_is_used():
    late = TrainConfig(data="s3://bkt/p", recipe="plain", onecycle_peak=0.5).resolved_recipe
    assert late.lr_factor(15, 30) == pytest.approx(1.0) and late.lr_factor(9, 30) < 0.9
    base = TrainConfig(data="s3://bkt/p")
    assert TrainConfig(data="s3://bkt/p", onecycle_peak=0.5).resolved_run_name == base.resolved_run_name
    plain = TrainConfig(data="s3://bkt/p", recipe="plain")
    assert TrainConfig(data="s3://bkt/p", recipe="plain", onecycle_peak=0.5).resolved_run_name != \
        plain.resolved_run_name != base.resolved_run_name
    with pytest.raises(ValueError, match="warmup_epochs must be 0"):
        TrainConfig(data="s3://bkt/p", recipe="plain", warmup_epochs=2)


def test_weight_decay_falls_on_the_weights_and_the_flags_reach_the_optimizer_and_the_crop():
    from lxn.train.trainer import make_optimizer, preset_for

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.LazyLinear(2))
    model(torch.zeros(1, 3, 8, 8))
    config = TrainConfig(data="s3://bkt/p", recipe="plain", weight_decay=0.02, crop_scale_min=0.5)
    decayed, rest = make_optimizer(model, config.resolved_recipe).param_groups
    assert decayed["weight_decay"] == 0.02 and rest["weight_decay"] == 0.0
    assert {p.ndim for p in decayed["params"]} == {2, 4} and {p.ndim for p in rest["params"]} == {1}
    assert len(decayed["params"]) + len(rest["params"]) == len(list(model.parameters()))
    paper = make_optimizer(model, TrainConfig(data="s3://bkt/p", recipe="paper").resolved_recipe)
    assert isinstance(paper, torch.optim.Adam) and paper.param_groups[0]["weight_decay"] == 5e-4

    class _Stats:
        mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    preset = preset_for(config, _Stats())
    assert (preset.crop_scale_min, preset.color_jitter, preset.rotation_degrees, preset.hflip_p) == (0.5, 0.3, 0.0, 0.0)
    assert preset.brightness_p == preset.color_p == 1.0  # a plain script's jitter touches every image
