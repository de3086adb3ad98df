"""The registered LogoXpertNet family: shapes, gradients, sizes, head API, weights, training signal."""

import math

import pytest
import torch
import torchvision

from lxn.models import LogoXpertNet, create_model, list_models, load_backbone_weights

VARIANTS = ["logoxpertnet_backbone", "logoxpertnet_clff", "logoxpertnet_clff_hsesab", "logoxpertnet"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_registry_lists_the_four_ablation_variants_and_the_baseline():
    assert list_models() == sorted(VARIANTS + ["mobilenet_v3_large"])
    with pytest.raises(ValueError, match="unknown model 'resnet50'.*logoxpertnet"):
        create_model("resnet50")


def test_detectors_are_listed_apart_and_refused_where_a_classifier_is_needed():
    from lxn.models import check_task, model_task

    assert list_models("detect") == ["logoxpertnet_backbone_det", "logoxpertnet_det"]
    assert list_models(None) == sorted(list_models("classify") + list_models("detect"))
    assert model_task("logoxpertnet_det") == "detect" and model_task("logoxpertnet") == "classify"
    with pytest.raises(ValueError, match="unknown model 'yolo'"):
        model_task("yolo")
    check_task("logoxpertnet", "classify", "--model")
    with pytest.raises(ValueError, match="--model: 'logoxpertnet_det' is a detector; this takes classifiers: logoxpertnet,"):
        check_task("logoxpertnet_det", "classify", "--model")


@pytest.mark.parametrize("name", VARIANTS + ["mobilenet_v3_large"])
def test_forward_backward_batch_2(name):
    model = create_model(name, num_classes=7)
    x = torch.randn(2, 3, 128, 128)
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("size", [96, 100, 160, 224, 320, 512])
@pytest.mark.parametrize("name", ["logoxpertnet_clff", "logoxpertnet"])
def test_input_sizes(name, size):
    model = create_model(name, num_classes=5).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, 5) and torch.isfinite(out).all()


def test_full_model_efficiency_targets():
    """Issue 2: 5.5-6.7M parameters at 194 classes (paper: 6.1M)."""
    params = sum(p.numel() for p in create_model("logoxpertnet", num_classes=194).parameters())
    assert 5.5e6 <= params <= 6.7e6


def test_backbone_variant_is_torchvision_mobilenet_v3_large():
    ours = create_model("logoxpertnet_backbone", num_classes=194)
    theirs = torchvision.models.mobilenet_v3_large(num_classes=194)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_features_head_and_embeddings():
    model = create_model("logoxpertnet", num_classes=11).eval()
    x = torch.randn(3, 3, 224, 224)
    with torch.inference_mode():
        feats = model.forward_features(x)
        emb = model.forward_head(feats, pre_logits=True)
        logits = model.forward_head(feats)
        assert feats.shape == (3, model.num_features, 7, 7)
        assert emb.shape == (3, model.embedding_dim)
        torch.testing.assert_close(logits, model(x))
        torch.testing.assert_close(model.classifier(emb), logits)


def test_reset_classifier():
    model = create_model("logoxpertnet", num_classes=11)
    model.reset_classifier(3)
    assert model(torch.randn(2, 3, 96, 96)).shape == (2, 3)
    assert model.num_classes == 3


def test_width_multiplier_scales_the_model():
    small = create_model("logoxpertnet", num_classes=10, width_mult=0.5)
    full = create_model("logoxpertnet", num_classes=10)
    assert sum(p.numel() for p in small.parameters()) < 0.5 * sum(p.numel() for p in full.parameters())
    assert small(torch.randn(2, 3, 96, 96)).shape == (2, 10)


@pytest.mark.parametrize("early_stride", [4, 16])
def test_early_tap_is_configurable(early_stride):
    model = LogoXpertNet(5, early_stride=early_stride)
    assert model(torch.randn(1, 3, 96, 96)).shape == (1, 5)
    with pytest.raises(ValueError, match="early_stride"):
        LogoXpertNet(5, early_stride=32)


def test_channels_last_matches():
    model = create_model("logoxpertnet", num_classes=9).eval()
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_compiles_without_graph_breaks():
    model = create_model("logoxpertnet", num_classes=4).eval()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)


def test_load_backbone_weights_from_a_torchvision_state_dict(tmp_path):
    reference = torchvision.models.mobilenet_v3_large(num_classes=1000).eval()
    path = tmp_path / "mobilenet_v3_large.pth"
    torch.save(reference.state_dict(), path)

    same_head = create_model("logoxpertnet_backbone", num_classes=1000, backbone_weights=path).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(same_head(x), reference(x))

    full = create_model("logoxpertnet", num_classes=194)
    report = load_backbone_weights(full, path)
    assert "classifier.weight" in report["skipped"]          # 1000 classes in the file, 194 here
    assert "pre_logits.0.weight" in report["skipped"]        # CLFF widens the head input
    # ... and so the head layer keeps its own initialisation whole: no ImageNet bias on a fresh weight
    assert "pre_logits.0.bias" in report["skipped"] and torch.all(full.pre_logits[0].bias == 0)
    assert "classifier.bias" in report["skipped"] and torch.all(full.classifier.bias == 0)
    torch.testing.assert_close(full.features[3].block[0][0].weight, reference.features[3].block[0][0].weight)


def test_load_backbone_weights_rejects_an_unrelated_file(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="no MobileNetV3-Large backbone"):
        load_backbone_weights(create_model("logoxpertnet"), path)


def test_overfits_one_batch():
    """Karpathy's check: loss at initialisation is ln(K); a few dozen steps drive it far below."""
    num_classes = 8
    model = create_model("logoxpertnet", num_classes=num_classes)
    x = torch.randn(16, 3, 96, 96)
    y = torch.arange(16) % num_classes
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert abs(losses[0] - math.log(num_classes)) < 0.05
    assert min(losses[-5:]) < 0.1 * math.log(num_classes)


def test_bn_momentum_is_configurable():
    import torch.nn as nn

    model = create_model("logoxpertnet", num_classes=3, bn_momentum=0.1)
    momenta = {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert momenta == {0.1}
    assert {m.momentum for m in create_model("logoxpertnet_backbone").modules() if isinstance(m, nn.BatchNorm2d)} == {0.01}


@pytest.mark.parametrize("settings", [
    {"spectrum": "dct"}, {"spectrum": "centred_fft"}, {"hse_gate": "sigmoid"},
    {"clff_early": "space_to_depth"}, {"clff_early": "conv"}, {"clff_mode": "add", "clff_early": "conv"},
])
@pytest.mark.parametrize("size", [96, 100, 224])
def test_architecture_variants_run_at_any_size_and_export(settings, size, tmp_path):
    model = create_model("logoxpertnet", num_classes=4, **settings).eval()
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        out = model(x)
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    if size == 100:  # not a multiple of 32: the learned early paths pool to an exact multiple first
        program = torch.export.export(model, (x,))
        torch.testing.assert_close(program.module()(x), out, atol=1e-5, rtol=1e-5)


def test_the_baseline_is_torchvisions_mobilenet_v3_large():
    model = create_model("mobilenet_v3_large", num_classes=6, bn_momentum=0.1).eval()
    reference = torchvision.models.mobilenet_v3_large(num_classes=6).eval()
    reference.load_state_dict(model.net.state_dict())
    x = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), reference(x))
        embedding = model.forward_head(model.forward_features(x), pre_logits=True)
    assert embedding.shape == (2, model.embedding_dim) == (2, 1280)
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
