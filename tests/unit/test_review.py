"""The review loop without a labelling server: a night exported as the tools' documented formats
(Label Studio tasks with percent rectangles, COCO), the tools' exports read back (fixtures from
their documentation, and the export itself edited as a person would), and every import that
does not fit refused with nothing written."""

from __future__ import annotations

import copy
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lxn.data.boxes import BoxError
from lxn.data.coco import read_coco
from lxn.jobs.review import main as review_main
from lxn.review.export import ExportConfig, export
from lxn.review.folder import ExportFolder
from lxn.review.ingest import ImportConfig, ingest, outcomes
from lxn.review.labelstudio import ReviewError
from tests.staged_scans import Row, commit_rows

FIXTURES = Path(__file__).parent.parent / "fixtures" / "review"
NIGHT = "2026-11-30"


def jpeg(path: Path, width=320, height=240, seed=0) -> str:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(path, quality=90)
    return str(path)


def mark(brand, box, confidence=0.9, source="classifier"):
    return {"brand": brand, "confidence": confidence, "source": source,
            "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3]}


@pytest.fixture
def night(tmp_path):
    """A committed night: doubtful rows either side of the threshold, an unknown mark, a prototype
    hit, 20 confident hits, a confident no-logo, an error and a doubtful image deleted since."""
    media = tmp_path / "media"
    media.mkdir()
    img = lambda name, seed: jpeg(media / f"{name}.jpg", seed=seed)  # noqa: E731
    rows = [
        Row(img("q-above", 1), "acme", 0.55, detections=[mark("acme", (10, 20, 110, 90), 0.55)]),
        Row(img("q-below", 2), None, 0.42, top_brands=["globex", "acme", "umbrella"], detections=[]),
        Row(img("q-globex", 3), "globex", 0.6, detections=[mark("globex", (200, 100, 300, 200), 0.6),
                                                            mark("acme", (20, 150, 80, 230), 0.51)]),
        Row(img("unknown", 4), None, 0.3, source="unknown", top_brands=["acme"], detections=[]),
        Row(img("prototype", 5), "hooli", 0.8, source="prototype", detections=[mark("hooli", (0, 0, 64, 64), 0.8, "prototype")]),
        Row(img("sure-nothing", 6), None, 0.97, top_brands=["no-logo"], detections=[]),
        Row(str(media / "broken.jpg"), error_kind="truncated"),
        Row(img("deleted", 7), "acme", 0.5, detections=[mark("acme", (0, 0, 50, 50), 0.5)]),
    ]
    rows += [Row(img(f"sure-{i}", 100 + i), "acme", 0.9 + i / 1000, detections=[mark("acme", (i, i, 100 + i, 80 + i))])
             for i in range(20)]
    for r in rows:
        if r.error_kind is None:
            r.width, r.height = 320, 240
    commit_rows(tmp_path / "reports", "scan-1", NIGHT, rows, threshold=0.5)
    (media / "deleted.jpg").unlink()
    return tmp_path


def _export(night: Path, name="export", **kwargs) -> tuple[dict, dict]:
    result = export(ExportConfig(scans=str(night / "reports"), out=str(night / name), audit=5, **kwargs))
    return result, ExportFolder(result["export"]).read_manifest()


def test_export_writes_the_doubtful_unknown_prototype_and_an_audit_sample_in_the_tools_formats(night):
    result, manifest = _export(night)
    by_name = {Path(i["uri"]).stem: i for i in manifest["items"]}
    assert result["night"] == NIGHT and manifest["night"] == NIGHT  # the latest night, by default
    assert {n: i["reason"] for n, i in by_name.items() if not n.startswith("sure-")} == {
        "q-above": "queue", "q-below": "queue", "q-globex": "queue", "unknown": "unknown", "prototype": "prototype"}
    assert sum(n.startswith("sure-") and i["reason"] == "audit" for n, i in by_name.items()) == 5
    assert result["by_reason"] == {"queue": 3, "unknown": 1, "prototype": 1, "audit": 5}
    assert [g["uri"] for g in manifest["not_exported"]] == [str(night / "media" / "deleted.jpg")]
    assert "missing" in manifest["not_exported"][0]["why"]
    # nearest the threshold first; a row the threshold turned down keeps its best guess
    assert [Path(i["uri"]).stem for i in manifest["items"][:3]] == ["q-above", "q-below", "q-globex"]
    assert by_name["q-below"]["brand"] == "globex" and by_name["q-below"]["predicted"] == []
    assert by_name["q-globex"]["predicted"] == [{"label": "globex", "box": [200, 100, 300, 200], "confidence": 0.6},
                                                {"label": "acme", "box": [20, 150, 80, 230], "confidence": 0.51}]

    folder = ExportFolder(result["export"])
    for item in manifest["items"]:  # the pixels the boxes refer to
        assert Image.open(folder.image(item["file_name"])).size == (item["width"], item["height"]) == (320, 240)

    tasks = json.loads(Path(folder.tasks).read_text())
    assert [t["data"]["lxn_file"] for t in tasks] == [i["file_name"] for i in manifest["items"]]
    globex = next(t for t in tasks if t["data"]["lxn_uri"] == by_name["q-globex"]["uri"])
    assert globex["data"]["image"] == by_name["q-globex"]["uri"]
    [prediction] = globex["predictions"]
    first = prediction["result"][0]
    assert first["type"] == "rectanglelabels" and first["from_name"] == "label" and first["to_name"] == "image"
    assert (first["original_width"], first["original_height"]) == (320, 240)
    value = dict(first["value"])
    assert value.pop("rectanglelabels") == ["globex"]
    assert value == pytest.approx({"x": 62.5, "y": 100 / 2.4, "width": 31.25, "height": 100 / 2.4, "rotation": 0})
    ids = [r["id"] for t in tasks for p in t["predictions"] for r in p["result"]]
    assert len(ids) == len(set(ids))  # Label Studio wants every result id distinct

    config = ET.fromstring(Path(folder.label_config).read_text())
    labels = [label.get("value") for label in config.iter("Label")]
    assert labels == ["acme", "globex", "hooli", "umbrella"]  # every brand the night names, if only in a top-k
    assert config.find("RectangleLabels").get("toName") == config.find("Image").get("name") == "image"
    assert config.find("Image").get("value") == "$image"

    # the export is itself a COCO folder of the model's boxes (what CVAT imports)
    coco = {Path(s.uri).name: s for s in read_coco(folder.root)}
    assert sorted(coco) == sorted(by_name[n]["file_name"] for n in by_name)
    assert coco[by_name["q-globex"]["file_name"]].extra["boxes"] == [
        {"label": "globex", "box": [200, 100, 300, 200]}, {"label": "acme", "box": [20, 150, 80, 230]}]


def test_the_audit_sample_follows_the_seed_and_never_takes_a_doubtful_row(night):
    _, one = _export(night, "a", seed=1)
    _, again = _export(night, "b", seed=1)
    _, other = _export(night, "c", seed=2)
    audit = lambda m: [i["uri"] for i in m["items"] if i["reason"] == "audit"]  # noqa: E731
    assert audit(one) == audit(again) and audit(one) != audit(other)
    assert all(i["confidence"] >= 0.5 + 0.15 for i in one["items"] if i["reason"] == "audit")


def test_tasks_can_name_the_exported_copies_and_a_second_export_into_one_folder_is_refused(night):
    result, manifest = _export(night, image_root="/data/local-files/?d=review")
    tasks = json.loads(Path(ExportFolder(result["export"]).tasks).read_text())
    assert tasks[0]["data"]["image"] == f"/data/local-files/?d=review/{manifest['items'][0]['file_name']}"
    before = sorted(p.name for p in (night / "export").iterdir())
    with pytest.raises(FileExistsError, match="already holds files"):
        _export(night)
    assert sorted(p.name for p in (night / "export").iterdir()) == before
    with pytest.raises(ValueError, match="credentials"):
        ExportConfig(image_root="https://user:secret@labels.example.com/img")


def _as_reviewed(tasks: list[dict]) -> list[dict]:
    """What Label Studio exports once a person submitted each task starting from its pre-annotations."""
    done = copy.deepcopy(tasks)
    for n, t in enumerate(done, start=1):
        t["id"] = n
        t["annotations"] = [{"id": 100 + n, "result": copy.deepcopy(t["predictions"][0]["result"]), "was_cancelled": False,
                             "ground_truth": False, "created_at": "2026-12-01T09:00:00Z",
                             "updated_at": "2026-12-01T09:00:00Z", "task": n}]
    return done


def test_a_label_studio_round_trip_keeps_each_decision(night):
    result, manifest = _export(night)
    items = {Path(i["uri"]).stem: i for i in manifest["items"]}
    tasks = _as_reviewed(json.loads(Path(ExportFolder(result["export"]).tasks).read_text()))
    task = {Path(t["data"]["lxn_uri"]).stem: t for t in tasks}

    answer = lambda name: task[name]["annotations"][0]["result"]  # noqa: E731
    answer("q-above")[0]["value"]["x"] += 10             # moved: 32 px to the right (IoU 0.52)
    answer("q-globex")[1]["value"]["rectanglelabels"] = ["initech"]  # relabelled, a brand the model does not know
    answer("q-below").append({"id": "new-1", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                              "original_width": 320, "original_height": 240, "image_rotation": 0,
                              "value": {"x": 50, "y": 50, "width": 25, "height": 25, "rotation": 0,
                                        "rectanglelabels": ["globex"]}})  # added: the model's guess had no box
    answer("prototype").clear()                          # rejected: nothing there, a negative
    rotated = {"id": "rot", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
               "original_width": 640, "original_height": 480,  # the tool showed a 2x copy: same picture
               "value": {"x": 50, "y": 10, "width": 10, "height": 5, "rotation": 90, "rectanglelabels": ["acme"]}}
    answer("unknown").append(rotated)
    task["unknown"]["annotations"].insert(0, {"id": 1, "result": [], "was_cancelled": False,
                                              "updated_at": "2026-11-01T00:00:00Z"})  # an older answer: the later wins
    skipped = next(n for n in task if n.startswith("sure-") and items[n]["reason"] == "audit")
    task[skipped]["annotations"][0]["was_cancelled"] = True  # skipped in the tool: not reviewed
    labels = night / "project-1-at-2026-12-01.json"
    labels.write_text(json.dumps(tasks))

    got = ingest(ImportConfig(export=result["export"], labels=str(labels), out=str(night / "reviewed")))
    assert got["format"] == "label-studio" and got["reviewed"] == len(tasks) - 1 and got["unreviewed"] == 1
    assert got["outcomes"] == {"confirmed": 4 + 1, "moved": 1, "relabelled": 1, "rejected": 1, "added": 2}
    assert got["by_reason"]["prototype"] == {"confirmed": 0, "moved": 0, "relabelled": 0, "rejected": 1, "added": 0}
    assert got["new_brands"] == ["initech"] and got["negatives"] == 1

    samples = {s.uri.rsplit("/", 1)[1]: s for s in read_coco(str(night / "reviewed"))}
    assert items[skipped]["file_name"] not in samples and len(samples) == len(tasks) - 1
    box = lambda name: [b["box"] for b in samples[items[name]["file_name"]].extra["boxes"]]  # noqa: E731
    assert box("q-above") == [pytest.approx([42.0, 20.0, 142.0, 90.0])]
    assert box("q-below") == [pytest.approx([160.0, 120.0, 240.0, 180.0])]
    # 90 degrees clockwise about its top-left corner (160, 24): 32 px wide, 12 high, now 12 wide going left
    assert box("unknown") == [pytest.approx([148.0, 24.0, 160.0, 56.0])]
    assert samples[items["prototype"]["file_name"]].label == "no-logo"
    assert [b["label"] for b in samples[items["q-globex"]["file_name"]].extra["boxes"]] == ["globex", "initech"]
    for sample in samples.values():  # the images travel with the boxes, the pixels they refer to
        assert Image.open(sample.uri).size == (320, 240)
    assert json.loads((night / "reviewed" / "review.json").read_text())["outcomes"] == got["outcomes"]


def _fixture_export(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    (root / "images").mkdir(parents=True)
    shutil.copy(FIXTURES / "review.json", root / "review.json")
    jpeg(root / "images" / "00000-sample.jpg", 600, 403)
    return root


@pytest.mark.parametrize("fixture, kind", [("label-studio-export.json", "label-studio"), ("cvat-coco.json", "coco")])
def test_the_documented_exports_read_back_as_the_same_boxes(tmp_path, fixture, kind):
    root = _fixture_export(tmp_path)
    got = ingest(ImportConfig(export=str(root), labels=str(FIXTURES / fixture), out=str(tmp_path / "out")))
    assert got["format"] == kind and got["reviewed"] == 1 and got["unreviewed"] == 0
    assert got["outcomes"] == {"confirmed": 1, "moved": 0, "relabelled": 1, "rejected": 0, "added": 0}
    [sample] = read_coco(str(tmp_path / "out"))
    assert [(b["label"], b["box"]) for b in sample.extra["boxes"]] == [
        ("Airplane", pytest.approx([29.88, 51.66, 225.0, 232.65], abs=0.01)),
        ("Car", pytest.approx([452.82, 331.79, 487.26, 361.61], abs=0.01))]


def _edit_export(document, how):
    broken = copy.deepcopy(document)
    how(broken)
    return broken


def _result(d, n=0):
    return next(a for a in d[0]["annotations"] if not a["was_cancelled"])["result"][n]


BAD = {
    "not JSON": ("{'this': is not json", "is not JSON"),
    "JSON-MIN": ([{"image": "s3://media/x.jpg", "label": [{"x": 1, "y": 1, "width": 2, "height": 2}]}], "JSON-MIN"),
    "another export": (lambda d: d[0]["data"].update(lxn_file="00042-elsewhere.jpg"), "not from this export"),
    "a task twice": (lambda d: d.append(copy.deepcopy(d[0])), "import the tasks once"),
    "another picture": (lambda d: _result(d).update(original_width=403, original_height=600), "the tool showed a 403x600"),
    "two labels": (lambda d: _result(d)["value"].update(rectanglelabels=["Airplane", "Car"]), "exactly one brand"),
    "no label": (lambda d: _result(d).update(type="rectangle", value={"x": 1, "y": 1, "width": 5, "height": 5}),
                 "exactly one brand"),
    "not a number": (lambda d: _result(d)["value"].update(x="12%"), "must be numbers"),
    "off the image": (lambda d: _result(d, 1)["value"].update(x=90, width=30), "outside"),
    "nothing reviewed": (lambda d: d[0]["annotations"][1].update(was_cancelled=True), "no reviewed task"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_an_import_that_does_not_fit_is_refused_and_writes_nothing(tmp_path, case):
    root = _fixture_export(tmp_path)
    content, message = BAD[case]
    labels = tmp_path / "labels.json"
    if callable(content):
        content = _edit_export(json.loads((FIXTURES / "label-studio-export.json").read_text()), content)
    labels.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises((ReviewError, BoxError, ValueError), match=message):
        ingest(ImportConfig(export=str(root), labels=str(labels), out=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_the_import_job_refuses_an_unfinished_export_or_a_used_folder_in_one_line(tmp_path, capsys):
    root = _fixture_export(tmp_path)
    labels = str(FIXTURES / "label-studio-export.json")
    (root / "review.json").rename(root / "review.json.partial")
    assert review_main(["import", "--export", str(root), "--labels", labels, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not a finished `jobs/review.py export`" in err and "Traceback" not in err
    (root / "review.json.partial").rename(root / "review.json")
    (root / "images" / "00000-sample.jpg").unlink()
    assert review_main(["import", "--export", str(root), "--labels", labels, "--out", str(tmp_path / "out")]) == 2
    assert "missing from the export" in capsys.readouterr().err and not (tmp_path / "out").exists()
    jpeg(root / "images" / "00000-sample.jpg", 600, 403)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "annotations.json").write_text("{}")
    assert review_main(["import", "--export", str(root), "--labels", labels, "--out", str(tmp_path / "used")]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert review_main(["import", "--export", str(root), "--labels", labels, "--out", str(tmp_path / "out")]) == 0
    assert json.loads(capsys.readouterr().out)["reviewed"] == 1


def test_outcomes_pair_each_box_once_by_overlap():
    model = [{"label": "a", "box": [0, 0, 10, 10]}, {"label": "a", "box": [1, 0, 11, 10]}, {"label": "b", "box": [50, 50, 60, 60]}]
    person = [{"label": "a", "box": [0, 0, 10, 10]}, {"label": "c", "box": [80, 80, 90, 90]}]
    assert outcomes(model, person) == {"confirmed": 1, "moved": 0, "relabelled": 0, "rejected": 2, "added": 1}
    assert outcomes([], []) == dict.fromkeys(["confirmed", "moved", "relabelled", "rejected", "added"], 0)
