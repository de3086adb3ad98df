"""torch.export (MLflow 3's default model format) round trip, FFT branch included."""

import torch

from lxn.models import create_model


def test_export_round_trip_gives_the_same_logits(tmp_path):
    torch.manual_seed(0)
    model = create_model("logoxpertnet", num_classes=6).eval()
    example = torch.randn(2, 3, 224, 224)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}})
    path = tmp_path / "model.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path).module()

    x = torch.randn(5, 3, 224, 224)
    with torch.inference_mode():
        expected = model(x)
        got = loaded(x)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
