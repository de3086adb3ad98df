"""Evaluation's rows keep one type per column across Ray Data's blocks, whatever a block holds."""

import numpy as np
from ray.data._internal.arrow_ops import transform_pyarrow
from ray.data.block import BlockAccessor

from lxn.evaluation.scoring import _labels, _passed, _prepared_rows


def _through_a_block(batch):
    """A stage's numpy output -> the numpy batch the next stage receives (Ray Data's own round trip)."""
    return BlockAccessor.for_block(BlockAccessor.batch_to_block(batch)).to_batch_format("numpy")


def _decoded(labels, kinds):
    n = len(labels)
    return {"uri": np.array([f"s3://b/{i}.jpg" for i in range(n)], dtype=object), "label": np.array(labels),
            "size": np.full(n, 10), "status": np.array(["ok" if k is None else "error" for k in kinds], dtype=object),
            "error_kind": np.array(kinds, dtype=object), "error": np.array(kinds, dtype=object),
            "pixels": np.zeros((n, 1, 4, 4, 3), dtype=np.uint8)}


def test_a_block_of_only_no_logo_decoded_images_concatenates_with_one_that_has_brands_and_errors():
    clean = _through_a_block(_decoded([-1, -1], [None, None]))  # its error strings arrive as NaN
    mixed = _through_a_block(_decoded([0, 1], [None, "missing"]))
    blocks = [BlockAccessor.batch_to_block(_passed(b, {"pixels"})) for b in (clean, mixed)]
    joined = transform_pyarrow.concat(blocks)
    assert joined["label"].to_pylist() == [-1, -1, 0, 1]
    assert joined["error_kind"].to_pylist() == [None, None, None, "missing"]
    assert "pixels" not in joined.column_names


def test_true_brands_cross_the_pipeline_as_indices_never_as_nullable_strings():
    names = ["acme", "globex"]
    assert _labels([None, "globex", "acme"], names).tolist() == [-1, 1, 0]
    rows = _prepared_rows({"class_name": np.array(["no-logo", "no-logo"], dtype=object),
                           "source_uri": np.array(["a", "b"], dtype=object),
                           "image": np.array([b"x", b"y"], dtype=object)}, names=names)
    assert rows["label"].dtype == np.int64 and rows["label"].tolist() == [-1, -1]
    assert BlockAccessor.batch_to_block(rows).schema.field("label").type == "int64"
