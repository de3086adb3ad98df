"""Embedding storage, the prototype table and the imprinted classifier."""

import numpy as np
import pytest

from lxn.embeddings import decode, encode, normalize
from lxn.prototypes import ExtendedClassifier, PrototypeTable


@pytest.mark.parametrize("fmt, size, worst", [("float16", 2 * 48 + 1, 1e-3), ("int8", 48 + 5, 2e-2)])
def test_stored_embeddings_read_back_as_the_same_unit_vectors(fmt, size, worst):
    vectors = np.random.default_rng(0).normal(size=(20, 48)) * np.arange(1, 21)[:, None]
    stored = encode(vectors, fmt)
    assert all(len(v) == size for v in stored)
    back, present = decode([stored[0], None, *stored[1:]])
    assert present.tolist() == [True, False] + [True] * 19 and not back[1].any()
    cosine = (np.delete(back, 1, axis=0) * normalize(vectors)).sum(axis=1)
    assert (1 - cosine).max() < worst


def test_foreign_or_mixed_embeddings_are_refused():
    with pytest.raises(ValueError, match="not an lxn embedding"):
        decode([b"\x07abc"])
    with pytest.raises(ValueError, match="different sizes"):
        decode(encode(np.ones((1, 4)), "float16") + encode(np.ones((1, 5)), "int8"))
    with pytest.raises(ValueError, match="format"):
        encode(np.ones((1, 4)), "float8")


def test_the_table_travels_as_metadata_and_refuses_names_it_has():
    rng = np.random.default_rng(1)
    table = PrototypeTable().added("Initech", rng.normal(size=(5, 8)), "s3://b/initech/", ["acme", "no-logo"])
    [proto] = table.prototypes
    assert proto.examples == 5 and np.linalg.norm(proto.vector) == pytest.approx(1.0, abs=1e-6)
    again = PrototypeTable.from_metadata(table.to_metadata())
    assert again.brands == ["Initech"] and np.array_equal(again.prototypes[0].vector, proto.vector)
    for name in ("ACME", "initech"):  # a class, or a prototype, in any case
        with pytest.raises(ValueError, match="exists in this model"):
            table.added(name, rng.normal(size=(3, 8)), "x", ["acme", "no-logo"])
    with pytest.raises(ValueError, match="trained classes cannot be removed"):
        table.removed("acme")
    assert table.removed("Initech").brands == [] and PrototypeTable.from_metadata({}).brands == []


def test_imprinted_rows_extend_the_classifier_and_leave_its_logits_alone():
    rng = np.random.default_rng(2)
    weight, bias = rng.normal(size=(3, 8)), rng.normal(size=3)
    examples = rng.normal(size=(4, 8))
    table = PrototypeTable().added("initech", examples, "x", ["a", "b", "no-logo"])
    head = ExtendedClassifier(weight, bias, table)
    embeddings = rng.normal(size=(6, 8))
    own = embeddings @ weight.T + bias
    logits = head.logits(embeddings, own)
    assert logits.shape == (6, 4) and np.allclose(logits[:, :3], own)
    scale = np.linalg.norm(weight, axis=1).mean()
    assert np.allclose(logits[:, 3], embeddings @ (scale * table.prototypes[0].vector) + bias.mean(), atol=1e-5)
    # nearness: the best cosine to any row; an example's mean is nearest its own prototype
    assert head.nearness(table.prototypes[0].vector[None])[0] == pytest.approx(1.0, abs=1e-5)
    directions = normalize(np.concatenate([weight, table.prototypes[0].vector[None]]))
    assert np.allclose(head.nearness(embeddings), (normalize(embeddings) @ directions.T).max(axis=1), atol=1e-6)


def test_a_calibrated_prototype_takes_at_most_the_share_it_is_allowed():
    from lxn.prototypes import Prototype, calibrate_offset

    rng = np.random.default_rng(3)
    weight, bias = rng.normal(size=(4, 16)), rng.normal(size=4)
    reference = rng.normal(size=(400, 16))
    reference_logits = reference @ weight.T + bias
    vector = normalize(rng.normal(size=16))
    for share in (0.0, 0.01, 0.1, 0.5):
        offset = calibrate_offset(weight, bias, vector, reference_logits, reference, share)
        head = ExtendedClassifier(weight, bias, PrototypeTable((Prototype("new", vector, 1, "", "", offset),)))
        taken = np.mean(head.logits(reference, reference_logits).argmax(axis=1) == 4)
        assert share - 0.0051 <= taken <= share, (share, taken)
    again = PrototypeTable.from_metadata(PrototypeTable((Prototype("new", vector, 1, "", "", 1.5, {"images": 3}),))
                                         .to_metadata())
    assert again.prototypes[0].offset == 1.5 and again.prototypes[0].calibration == {"images": 3}


@pytest.mark.parametrize("fmt", ["float16", "int8"])
def test_a_report_column_decodes_like_its_rows(fmt):
    import pyarrow as pa

    from lxn.embeddings import decode_column

    stored = encode(np.random.default_rng(4).normal(size=(6, 12)), fmt)
    column = pa.chunked_array([pa.array([stored[0], None, stored[1]], pa.binary()),
                               pa.array([None, *stored[2:]], pa.binary())])
    fast, present = decode_column(column)
    slow, present_slow = decode(column.to_pylist())
    assert present.tolist() == present_slow.tolist() == [True, False, True, False, True, True, True, True]
    assert np.allclose(fast, slow, atol=1e-6)
    mixed = pa.array(encode(np.ones((1, 12)), "float16") + encode(np.ones((1, 12)), "int8"), pa.binary())
    assert np.allclose(decode_column(mixed)[0], decode(mixed.to_pylist())[0])  # the per-row path
