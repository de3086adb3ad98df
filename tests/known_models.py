"""Stand-in classifiers with a known answer, registered like any lxn model, for scan tests."""

from __future__ import annotations

import torch
from torch import nn

from lxn.presets import Preset

__all__ = ["RedSpotter", "BlueSpotter", "TwoSpotter", "SlowTwoSpotter", "REDSPOT_CLASSES", "REDSPOT_PRESET",
           "register_redspot", "register_spotter", "CARD_PRESET", "CARD_COLOURS", "CARD_CLASSES", "colour_card",
           "checkerboard", "card_classifier", "register_card_classifier", "RedBoxer", "REDBOX_PRESET",
           "register_redboxer"]

REDSPOT_CLASSES = ["acme", "globex", "no-logo"]
REDSPOT_PRESET = Preset(image_size=64, mean=(0.5,) * 3, std=(0.5,) * 3, denoise_sigma=0)


class RedSpotter(nn.Module):
    """A classifier with a known answer: 'acme' in proportion to the red area, else 'no-logo'.

    Classes (acme, globex, no-logo). Input is normalised with mean = std = 0.5, so in [-1, 1].
    With a red fraction f the logits are (40 f, 0, 2): no red -> no-logo (p 0.79); 1/9 of the
    frame red -> acme (p 0.91); 1/36 of the frame -> no-logo still (p 0.65).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        red = torch.sigmoid(20 * (r - 0.5)) * torch.sigmoid(20 * (-0.5 - g)) * torch.sigmoid(20 * (-0.5 - b))
        fraction = red.mean(dim=(1, 2))
        return torch.stack([40 * fraction, torch.zeros_like(fraction), torch.full_like(fraction, 2.0)], dim=1)


def _blue_fraction(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    blue = torch.sigmoid(20 * (-0.5 - r)) * torch.sigmoid(20 * (-0.5 - g)) * torch.sigmoid(20 * (b - 0.5))
    return blue.mean(dim=(1, 2))


class BlueSpotter(nn.Module):
    """Like RedSpotter, for blue and 'globex': it never says 'acme'."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fraction = _blue_fraction(x)
        return torch.stack([torch.zeros_like(fraction), 40 * fraction, torch.full_like(fraction, 2.0)], dim=1)


class TwoSpotter(nn.Module):
    """Red -> 'acme' and blue -> 'globex': RedSpotter's answers, plus globex."""

    def __init__(self) -> None:
        super().__init__()
        self.red = RedSpotter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = self.red(x)
        return torch.stack([red[:, 0], 40 * _blue_fraction(x), red[:, 2]], dim=1)


class SlowTwoSpotter(TwoSpotter):
    """TwoSpotter's answers at a much higher cost: a stack of convolutions whose output is
    scaled by zero (a constructed latency growth)."""

    def __init__(self) -> None:
        super().__init__()
        self.burden = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1),
                                    *[nn.Conv2d(64, 64, 3, padding=1) for _ in range(6)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 0.0 * self.burden(x).mean(dim=(1, 2, 3)).unsqueeze(1)


def register_spotter(tracker, module: nn.Module, name: str, alias: str | None = None, tags: dict | None = None):
    """Log and register any of the spotters (classes REDSPOT_CLASSES) under `name`; returns its ModelRef."""
    from lxn.tracking import log_model

    return log_model(tracker, module.eval(), preset=REDSPOT_PRESET, class_names=REDSPOT_CLASSES,
                     model_config={"name": type(module).__name__.lower()}, registered_model=name, alias=alias,
                     tags=tags)


def register_redspot(tracker, name: str = "redspot", alias: str = "champion"):
    """Log and register a RedSpotter under `name@alias` in `tracker`'s store; returns its ModelRef."""
    from lxn.tracking import log_model

    return log_model(tracker, RedSpotter().eval(), preset=REDSPOT_PRESET, class_names=REDSPOT_CLASSES,
                     model_config={"name": "redspotter"}, registered_model=name, alias=alias)


# ------------------------------------------------------------------ a detector

REDBOX_PRESET = Preset(image_size=128, mean=(0.5,) * 3, std=(0.5,) * 3, denoise_sigma=0)


class RedBoxer(nn.Module):
    """A detector with a known answer: one candidate an image, the box around its red pixels
    (in model pixels, x1/y1 exclusive) as 'acme' with score 0.9, or score 0 when there are none.
    Classes (acme, globex); input normalised with mean = std = 0.5."""

    task = "detect"
    num_candidates = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = (x[:, 0] > 0.5) & (x[:, 1] < -0.5) & (x[:, 2] < -0.5)  # (B, H, W)
        cols, rows = red.any(dim=1), red.any(dim=2)
        index = torch.arange(x.shape[-1], device=x.device)
        far = torch.full_like(index, x.shape[-1] + 1)

        def span(hit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            low = torch.where(hit, index, far).min(dim=1).values
            high = torch.where(hit, index + 1, -far).max(dim=1).values
            return low, high

        (x0, x1), (y0, y1) = span(cols), span(rows)
        found = cols.any(dim=1)
        box = torch.where(found[:, None], torch.stack([x0, y0, x1, y1], dim=1), 0).float()
        score = found.float() * 0.9
        return torch.cat([box, score[:, None], torch.zeros_like(score)[:, None]], dim=1)[:, None, :]


def register_redboxer(tracker, name: str = "redbox", alias: str = "champion"):
    """Log and register a RedBoxer under `name@alias`; returns its ModelRef."""
    from lxn.tracking import log_model

    return log_model(tracker, RedBoxer().eval(), preset=REDBOX_PRESET, class_names=["acme", "globex"],
                     model_config={"name": "redboxer"}, registered_model=name, alias=alias)


# ------------------------------------------------------------------ a model with embeddings

CARD_PRESET = Preset(image_size=64)
CARD_COLOURS = {"acme": (220, 20, 20), "globex": (20, 40, 220), "initech": (20, 170, 40)}
CARD_CLASSES = ["acme", "globex", "no-logo"]


def colour_card(colour: tuple[int, int, int] | None, seed: int, size: tuple[int, int] = (64, 64)):
    """A grey card (PIL image) with a disc of `colour` over most of it (None: no disc), jittered
    by `seed`; its mark stays near the centre, so a crop of it in a bigger scene still shows it."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    w, h = size
    image = Image.new("RGB", size, tuple(int(v) for v in 128 + rng.integers(-12, 13, 3)))
    if colour is not None:
        r = int(min(w, h) * rng.uniform(0.3, 0.4))
        cx, cy = w // 2 + int(rng.integers(-w // 10, w // 10 + 1)), h // 2 + int(rng.integers(-h // 10, h // 10 + 1))
        tint = tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in colour)
        ImageDraw.Draw(image).ellipse([cx - r, cy - r, cx + r, cy + r], fill=tint)
    return image


def checkerboard(seed: int, size: tuple[int, int] = (64, 64)):
    """A mark no class or prototype resembles: a yellow and magenta checkerboard."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    cell = int(rng.integers(6, 10))
    y, x = np.mgrid[: size[1], : size[0]]
    board = ((x // cell + y // cell) % 2).astype(bool)
    pixels = np.where(board[..., None], np.array([240, 230, 20]), np.array([200, 20, 200])).astype(np.uint8)
    return Image.fromarray(pixels)


def card_classifier():
    """A LogoXpertNet (random backbone, seed 0) whose last layer is imprinted from its own
    embeddings of colour cards: acme = red disc, globex = blue disc, no-logo = plain grey. A real
    lxn architecture, so it has embeddings (unlike the spotters); it never saw green (initech)."""
    import numpy as np

    from lxn.embeddings import EmbeddingModel, normalize
    from lxn.models import create_model
    from lxn.preprocess import InferenceModel

    torch.manual_seed(0)
    model = create_model("logoxpertnet_backbone", num_classes=len(CARD_CLASSES)).eval()
    embedder = EmbeddingModel(InferenceModel(model, CARD_PRESET).eval())
    colours = [CARD_COLOURS["acme"], CARD_COLOURS["globex"], None]
    with torch.inference_mode():
        means, norms = [], []
        for colour in colours:
            cards = np.stack([np.asarray(colour_card(colour, seed)) for seed in range(8)])
            embeddings = embedder(torch.from_numpy(cards))[1].numpy()
            norms.append(np.linalg.norm(embeddings, axis=1).mean())
            means.append(normalize(normalize(embeddings).mean(axis=0)))
        layer = model.get_classifier()
        layer.weight.copy_(torch.from_numpy(np.stack(means) * (40.0 / float(np.mean(norms)))))
        layer.bias.zero_()
    return model


def register_card_classifier(tracker, name: str = "cards", alias: str = "champion"):
    from lxn.tracking import log_model

    return log_model(tracker, card_classifier(), preset=CARD_PRESET, class_names=CARD_CLASSES,
                     model_config={"name": "logoxpertnet_backbone", "num_classes": len(CARD_CLASSES)},
                     registered_model=name, alias=alias)
