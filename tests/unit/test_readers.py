"""Dataset readers on tiny local fixtures built exactly in the documented layouts."""

from __future__ import annotations

import logging
import os

import pytest

from lxn import storage
from lxn.data import readers
from lxn.data.readers import NO_LOGO, Sample
from tests import dataset_layouts as layouts


class _LogRecords(logging.Handler):
    """Warnings of the readers' logger (caplog is unavailable under `-p no:logging`)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        logging.getLogger("lxn.data.readers").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("lxn.data.readers").removeHandler(self)

    @property
    def text(self) -> str:
        return "\n".join(self.messages)


def _rel(samples, root):
    return [(storage.relpath(s.uri, root), s.label) for s in samples]


def test_imagefolder(tmp_path):
    root = str(tmp_path / "ds")
    layouts.make_imagefolder(root)
    with _LogRecords() as caplog:
        samples = list(readers.read_imagefolder(root))
    assert _rel(samples, root) == [
        ("cocacola/a.jpg", "cocacola"),
        ("cocacola/night/b.PNG", "cocacola"),
        ("pepsi/c.jpeg", "pepsi"),
    ]
    assert all(s.official_split is None and s.extra == {} for s in samples)
    assert "1 images that are not inside a class folder" in caplog.text


def test_imagefolder_keeps_class_case_and_missing_root_is_an_error(tmp_path):
    storage.write_bytes(str(tmp_path / "ds" / "Coca Cola" / "x.jpg"), layouts.image_bytes())
    assert [s.label for s in readers.read_imagefolder(str(tmp_path / "ds"))] == ["Coca Cola"]
    with pytest.raises(FileNotFoundError, match="no such directory"):
        list(readers.read_imagefolder(str(tmp_path / "missing")))


def test_weblogo2m_merges_parts_and_skips_xml(tmp_path):
    roots = layouts.make_weblogo2m(str(tmp_path))
    samples = list(readers.read_weblogo2m(roots))
    assert [(storage.relpath(s.uri, tmp_path), s.label) for s in samples] == [
        ("part_1/3m/0001.jpg", "3m"),
        ("part_1/adidas/0001.jpg", "adidas"),
        ("part_2/adidas/more/0002.JPG", "adidas"),
        ("part_2/zara/z.jpg", "zara"),
    ]
    assert [s.label for s in readers.read_weblogo2m(roots[1])] == ["adidas", "zara"]  # one root as str


def test_weblogo2m_lowercases_and_rejects_bad_roots(tmp_path):
    storage.write_bytes(str(tmp_path / "p1" / "Adidas" / "1.jpg"), layouts.image_bytes())
    storage.write_bytes(str(tmp_path / "p2" / "adidas" / "2.jpg"), layouts.image_bytes())
    assert {s.label for s in readers.read_weblogo2m([str(tmp_path / "p1"), str(tmp_path / "p2")])} == {"adidas"}
    with pytest.raises(ValueError, match="more than once"):
        list(readers.read_weblogo2m([str(tmp_path / "p1"), str(tmp_path / "p1") + "/"]))
    with pytest.raises(ValueError, match="at least one part"):
        list(readers.read_weblogo2m([]))


def _flickr(tmp_path, **kw):
    root = str(tmp_path / "FlickrLogos-v2")
    layouts.make_flickrlogos32(root)
    return root, list(readers.read_flickrlogos32(root, **kw))


def test_flickrlogos32_all_with_official_partition(tmp_path):
    root, samples = _flickr(tmp_path)
    got = [(storage.relpath(s.uri, root), s.label, s.official_split) for s in samples]
    assert got == [
        ("classes/jpg/adidas/1001.jpg", "adidas", "train"),
        ("classes/jpg/adidas/1002.jpg", "adidas", "val"),
        ("classes/jpg/HP/2001.jpg", "hp", "train"),  # HP folder, hp label
        ("classes/jpg/HP/2002.jpg", "hp", "test"),
        ("classes/jpg/no-logo/9001.jpg", NO_LOGO, "val"),
        ("classes/jpg/no-logo/9002.jpg", NO_LOGO, "test"),
    ]  # the repeated "adidas,1001.jpg" line of all.txt is not a second sample
    for s in samples:
        assert os.path.isfile(s.uri)
        if s.label == NO_LOGO:
            assert s.extra == {}
        else:  # masks live under the lower-case brand: classes/masks/hp/...
            assert storage.relpath(s.extra["bboxes_uri"], root).startswith(f"classes/masks/{s.label}/")
            assert storage.read_text(s.extra["bboxes_uri"]).startswith("x y width height")


@pytest.mark.parametrize(
    "split, expected",
    [
        ("train", [("adidas", "1001.jpg"), ("hp", "2001.jpg")]),
        ("trainset", [("adidas", "1001.jpg"), ("hp", "2001.jpg")]),
        ("valset.txt", [("adidas", "1002.jpg"), (NO_LOGO, "9001.jpg")]),
        ("test", [("hp", "2002.jpg"), (NO_LOGO, "9002.jpg")]),
        ("trainval", [("adidas", "1001.jpg"), ("hp", "2001.jpg"), ("adidas", "1002.jpg"), (NO_LOGO, "9001.jpg")]),
    ],
)
def test_flickrlogos32_single_lists(tmp_path, split, expected):
    _, samples = _flickr(tmp_path, split=split)
    assert [(s.label, os.path.basename(s.uri)) for s in samples] == expected
    official = readers._flickr_split_name(split)
    assert {s.official_split for s in samples} == {official}


def test_flickrlogos32_without_partition_lists(tmp_path):
    root = str(tmp_path / "FlickrLogos-v2")
    layouts.make_flickrlogos32(root)
    for name in ["trainset.txt", "valset.txt", "testset.txt"]:
        storage.delete(storage.join(root, name))
    samples = list(readers.read_flickrlogos32(root))
    assert len(samples) == 6 and {s.official_split for s in samples} == {None}


def test_flickrlogos32_errors(tmp_path):
    root = str(tmp_path / "FlickrLogos-v2")
    layouts.make_flickrlogos32(root)
    with pytest.raises(ValueError, match="unknown FlickrLogos-32 split 'dev'"):
        list(readers.read_flickrlogos32(root, split="dev"))
    with pytest.raises(FileNotFoundError, match="must be the FlickrLogos-v2 folder"):
        list(readers.read_flickrlogos32(str(tmp_path)))
    storage.write_text(storage.join(root, "testset.txt"), "nvidia,1.jpg\n")
    with pytest.raises(ValueError, match="brand 'nvidia'.*has no folder"):
        list(readers.read_flickrlogos32(root, split="test"))
    storage.write_text(storage.join(root, "testset.txt"), "adidas 1001.jpg\n")
    with pytest.raises(ValueError, match=r"testset.txt:1: expected 'brand,filename'"):
        list(readers.read_flickrlogos32(root, split="test"))
    storage.write_text(storage.join(root, "testset.txt"), "adidas,../../etc/passwd\n")
    with pytest.raises(ValueError, match="not a plain file name"):
        list(readers.read_flickrlogos32(root, split="test"))


def test_belgalogos(tmp_path):
    root = str(tmp_path / "BelgaLogos")
    layouts.make_belgalogos(root)
    with _LogRecords() as caplog:
        samples = {os.path.basename(s.uri): s for s in readers.read_belgalogos(root)}
    assert sorted(samples) == ["junk.jpg", "multi.jpg", "plain.jpg", "solo.jpg", "tie.jpg"]
    assert {n: s.label for n, s in samples.items()} == {
        "solo.jpg": "Adidas",
        "multi.jpg": "Nike",  # 2 boxes of 40 beat one of 60; the junk Puma box (2500) does not count
        "junk.jpg": NO_LOGO,  # only a state-0 box
        "tie.jpg": "Base",  # equal areas: alphabetical
        "plain.jpg": NO_LOGO,  # no box at all
    }
    multi = samples["multi.jpg"].extra
    assert multi["labels"] == ["Adidas", "Nike"] and multi["junk_labels"] == ["Puma"]
    assert [(b["logo"], b["state"]) for b in multi["annotations"]] == [("Nike", 1), ("Nike", 1), ("Adidas", 1), ("Puma", 0)]
    box = {"instance_id": "3", "logo": "Nike", "type": "logo", "state": 1, "box": [10.0, 10.0, 14.0, 20.0]}
    assert multi["annotations"][1] == box
    # the boxes prepare keeps: state 1 only, in lxn's form
    assert multi["boxes"][1] == {"label": "Nike", "box": [10.0, 10.0, 14.0, 20.0]}
    assert [b["label"] for b in multi["boxes"]] == ["Nike", "Nike", "Adidas"]
    assert samples["junk.jpg"].extra["junk_labels"] == ["Shell"] and samples["junk.jpg"].extra["labels"] == []
    assert samples["tie.jpg"].extra["annotations"][1]["box"] == [0.0, 0.0, 5.0, 5.0]  # corners put in order
    assert samples["plain.jpg"].extra == {"labels": [], "junk_labels": [], "annotations": [], "boxes": []}
    assert "1 annotated images are not in" in caplog.text and "gone.jpg" in caplog.text


@pytest.mark.parametrize(
    "line, message",
    [
        ("1\tAdidas\tx.jpg\tlogo\t1\t0\t0\t10\n", "expected 9 fields"),
        ("1\tAdidas\tx.jpg\tlogo\tOK\t0\t0\t10\t10\n", "state must be 1"),
        ("1\tAdidas\tx.jpg\tlogo\t1\t0\t0\tten\t10\n", "must be numbers"),
        ("1\tAdidas\t../x.jpg\tlogo\t1\t0\t0\t10\t10\n", "not a plain file name"),
    ],
)
def test_belgalogos_bad_ground_truth(tmp_path, line, message):
    root = str(tmp_path / "BelgaLogos")
    layouts.make_belgalogos(root)
    storage.write_text(storage.join(root, layouts.BELGA_GT_NAME), layouts.BELGA_GT + line)
    with pytest.raises(ValueError, match=rf"qset3_internal_and_local.gt:11: .*{message}"):
        list(readers.read_belgalogos(root))


def test_belgalogos_missing_ground_truth(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="qset3_internal_and_local.gt not found"):
        list(readers.read_belgalogos(str(tmp_path)))


def test_iter_samples_dispatch(tmp_path):
    assert set(readers.READERS) == {"imagefolder", "weblogo2m", "flickrlogos32", "belgalogos", "coco"}
    layouts.make_imagefolder(str(tmp_path / "if"))
    direct = list(readers.read_imagefolder(str(tmp_path / "if")))
    assert list(readers.iter_samples("imagefolder", str(tmp_path / "if"))) == direct
    assert list(readers.iter_samples("imagefolder", [str(tmp_path / "if")])) == direct
    roots = layouts.make_weblogo2m(str(tmp_path / "wl"))
    assert len(list(readers.iter_samples("weblogo2m", roots))) == 4
    layouts.make_flickrlogos32(str(tmp_path / "fl"))
    assert len(list(readers.iter_samples("flickrlogos32", str(tmp_path / "fl"), split="test"))) == 2
    with pytest.raises(ValueError, match="reads one dataset root, got 2"):
        readers.iter_samples("belgalogos", ["a", "b"])
    with pytest.raises(ValueError, match="unknown dataset format 'voc'"):
        readers.iter_samples("voc", "x")


def test_sample_is_hashable_and_frozen():
    a = Sample("s3://b1c/x.jpg", "nike", None, {"labels": ["nike"]})
    assert a in {a} and a == Sample("s3://b1c/x.jpg", "nike", None, {"labels": ["nike"]})
    with pytest.raises(AttributeError):
        a.label = "adidas"


def test_readers_stream_the_listing(tmp_path, monkeypatch):
    # The first sample arrives before the listing is exhausted: readers never collect it.
    layouts.make_imagefolder(str(tmp_path / "ds"))
    consumed = []
    real = storage.iter_objects

    def counting(*args, **kwargs):
        for info in real(*args, **kwargs):
            consumed.append(info.uri)
            yield info

    monkeypatch.setattr(storage, "iter_objects", counting)
    first = next(readers.read_imagefolder(str(tmp_path / "ds")))
    assert first.label == "cocacola"
    # ".cache/x.jpg" (hidden, skipped) then "cocacola/a.jpg": 2 of the 8 objects were listed
    assert [storage.relpath(u, tmp_path / "ds") for u in consumed] == [".cache/x.jpg", "cocacola/a.jpg"]
