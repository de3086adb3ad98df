"""Image embeddings: the model's pre-logits vector, and how a report stores it.

`EmbeddingModel` runs a registered model eagerly so one pass gives both the logits and the
embedding (`forward_head(pre_logits=True)`, whose image under `get_classifier()` is the logits).
The exported graph the scan uses otherwise returns logits only; an architecture that lxn cannot
rebuild, or that has no such head, has no embeddings (`NoEmbeddings`).

Stored embeddings are unit vectors (cosine similarity is a dot product), encoded per row as
bytes that name their own format, so a report's `embedding` column reads back the same whatever
`--embeddings` wrote it:

* `float16`: b"\\x01" + D little-endian float16 values (2 D + 1 bytes);
* `int8`:    b"\\x02" + a float32 scale + D int8 values (D + 5 bytes); value = int8 * scale,
  the scale chosen per row so the largest component is 127.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

__all__ = ["NoEmbeddings", "EmbeddingModel", "embedding_model", "normalize", "encode", "decode", "decode_column",
           "FORMATS"]

FORMATS = ("float16", "int8")
_TAGS = {"float16": 1, "int8": 2}


class NoEmbeddings(ValueError):
    """The model cannot give embeddings."""


class EmbeddingModel(nn.Module):
    """uint8 (B, S, S, 3) images -> (logits (B, K), embeddings (B, D)), one forward pass."""

    def __init__(self, inference_model: nn.Module) -> None:
        super().__init__()
        self.preprocess = inference_model.preprocess
        self.model = inference_model.model
        classifier = self.model.get_classifier()
        self.embedding_dim = int(classifier.in_features)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeddings = self.model.forward_head(self.model.forward_features(self.preprocess(images)), pre_logits=True)
        return self.model.get_classifier()(embeddings), embeddings

    def run(self, pixels: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, S, S, 3) numpy images -> (logits, embeddings) as float32 numpy, in batches."""
        logits, embeddings = [], []
        with torch.inference_mode():
            for start in range(0, len(pixels), batch_size):
                out = self(torch.from_numpy(np.ascontiguousarray(pixels[start:start + batch_size])))
                logits.append(out[0].float().cpu().numpy())
                embeddings.append(out[1].float().cpu().numpy())
        if not logits:
            return np.zeros((0, 0), np.float32), np.zeros((0, self.embedding_dim), np.float32)
        return np.concatenate(logits), np.concatenate(embeddings)

    def classifier_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The last layer's weight (K, D) and bias (K,), float32."""
        layer = self.model.get_classifier()
        return layer.weight.detach().float().cpu().numpy(), layer.bias.detach().float().cpu().numpy()


def embedding_model(loaded, device: str | torch.device = "cpu") -> EmbeddingModel:
    """The `EmbeddingModel` of a loaded registered model (`lxn.tracking.LoadedModel`)."""
    from lxn.preprocess import InferenceModel
    from lxn.models.rebuild import rebuild_eager

    name = loaded.model_config.get("name")
    module = loaded.module
    try:
        if not isinstance(module, InferenceModel):
            module = rebuild_eager(module, loaded.model_config, loaded.preset)
        model = EmbeddingModel(module)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        source = loaded.ref.uri if loaded.ref else "the model"
        raise NoEmbeddings(f"{source} (architecture {name!r}) has no embeddings: lxn needs an architecture of "
                           f"lxn.models with forward_head(pre_logits=True) and get_classifier() ({exc})") from None
    return model.to(device).eval()


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def encode(vectors: np.ndarray, fmt: Literal["float16", "int8"]) -> list[bytes]:
    """(N, D) vectors -> N self-describing byte strings of their unit vectors."""
    if fmt not in _TAGS:
        raise ValueError(f"embedding format must be one of {FORMATS}, got {fmt!r}")
    unit = normalize(vectors)
    tag = bytes([_TAGS[fmt]])
    if fmt == "float16":
        data = unit.astype("<f2")
        return [tag + row.tobytes() for row in data]
    scale = np.maximum(np.abs(unit).max(axis=1), 1e-12) / 127.0
    quantized = np.clip(np.rint(unit / scale[:, None]), -127, 127).astype(np.int8)
    return [tag + np.float32(s).astype("<f4").tobytes() + q.tobytes() for s, q in zip(scale, quantized)]


def decode(values: Sequence[bytes | None], dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stored embeddings -> float32 (N, D) unit vectors and a mask of the rows that had one
    (missing rows are zero)."""
    rows: list[np.ndarray | None] = []
    for value in values:
        if value is None:
            rows.append(None)
            continue
        if not value or value[0] not in _TAGS.values():
            raise ValueError("not an lxn embedding (unknown format byte)")
        if value[0] == 1:
            rows.append(np.frombuffer(value, dtype="<f2", offset=1).astype(np.float32))
        else:
            scale = np.frombuffer(value, dtype="<f4", count=1, offset=1)[0]
            rows.append(np.frombuffer(value, dtype=np.int8, offset=5).astype(np.float32) * scale)
    dims = {len(r) for r in rows if r is not None}
    if dim is not None:
        dims.add(dim)
    if len(dims) > 1:
        raise ValueError(f"embeddings of different sizes {sorted(dims)}: from different models")
    width = dims.pop() if dims else 0
    out = np.zeros((len(rows), width), dtype=np.float32)
    present = np.array([r is not None for r in rows], dtype=bool)
    for i, r in enumerate(rows):
        if r is not None:
            out[i] = r
    return normalize(out), present


def decode_column(column) -> tuple[np.ndarray, np.ndarray]:
    """A report's `embedding` column (a pyarrow binary array or chunk) -> `decode`'s result,
    without a Python object per row when every stored row has one format and size (a report
    written by one scan does)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    present = np.ones(len(column), dtype=bool) if column.null_count == 0 else \
        column.is_valid().to_numpy(zero_copy_only=False)
    values = column.drop_null()
    lengths = pc.binary_length(values).to_numpy(zero_copy_only=False) if len(values) else np.zeros(0, np.int64)
    if len(values) == 0 or (lengths != lengths[0]).any():
        return decode(column.to_pylist())
    width = int(lengths[0])
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset: values.offset + len(values) + 1]
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[-1]].reshape(len(values), width)
    tags = data[:, 0]
    if (tags != tags[0]).any() or tags[0] not in _TAGS.values():
        return decode(column.to_pylist())
    # torch converts float16 with the CPU's vector instructions, ~20x numpy's astype
    if tags[0] == 1:
        rows = torch.from_numpy(np.ascontiguousarray(data[:, 1:]).view(np.float16)).float()
    else:
        scale = torch.from_numpy(np.ascontiguousarray(data[:, 1:5]).view("<f4")[:, 0].copy())
        rows = torch.from_numpy(np.ascontiguousarray(data[:, 5:]).view(np.int8)).float() * scale[:, None]
    rows = torch.nn.functional.normalize(rows, dim=1).numpy()
    if present.all():
        return rows, present
    out = np.zeros((len(present), rows.shape[1]), dtype=np.float32)
    out[present] = rows
    return out, present
