"""The nightly page from committed scans: what it shows equals the report, what came from the
report is escaped, every list is bounded (zero rows, only errors, ten thousand rows), thumbnails
outline the marks where they are, and the range job writes the same page for several nights."""

from __future__ import annotations

import html.parser
import os
import re

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lxn.jobs.nightly import main as nightly_main
from lxn.nightly.build import night_page, write_night_page
from lxn.nightly.picks import Bounds, Picks, pick_reports
from lxn.nightly.thumbs import HIT_COLOUR, OTHER_COLOUR, thumbnail
from lxn.scan.layout import Layout
from tests.staged_scans import Row, commit_rows

PAGE_LIMIT = 2_000_000  # bytes: the bound a page keeps whatever the night's size


def jpeg(path, width=320, height=240, seed=0) -> str:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(path, quality=85)
    return str(path)


class _Tags(html.parser.HTMLParser):
    """Every tag and attribute of a page, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> _Tags:
    tags = _Tags()
    tags.feed(page)
    return tags


def counts_shown(page: str) -> dict[str, int]:
    return {k: int(v.replace(",", "")) for k, v in re.findall(r'data-count="(\w+)">([\d,]+)<', page)}


def test_the_page_shows_what_the_report_holds(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = [Row(jpeg(images / f"{i}.jpg", seed=i), ("acme", "globex", None)[i % 3], confidence=0.5 + i / 100)
            for i in range(30)]
    rows += [Row(str(images / "gone.jpg"), error_kind="missing"), Row(str(images / "bad.jpg"), error_kind="corrupt")]
    manifest = commit_rows(tmp_path / "out", "scan-1", "2026-11-01", rows, threshold=0.55)
    uri, page = write_night_page(Layout(str(tmp_path / "out")), manifest)
    assert uri.endswith("dt=2026-11-01/_scan-scan-1.html") and open(uri).read() == page

    report = pq.read_table(manifest["report"]["uri"])
    status = report["status"].to_pylist()
    shown = counts_shown(page)
    assert shown["scanned"] == report.num_rows == 32
    assert shown["ok"] == status.count("ok") and shown["error"] == status.count("error") == 2
    assert shown["with_brand"] == sum(b is not None for b in report["brand"].to_pylist())
    brand_rows = dict(re.findall(r'<tr data-brand="(\w+)"><td>\w+</td><td class="n" data-appearances>(\d+)<', page))
    assert brand_rows == {"acme": "10", "globex": "10"}
    assert 'data-error-kind="missing"' in page and 'data-error-kind="corrupt"' in page
    tags = parse(page)
    images_shown = [a["src"] for t, a in tags.tags if t == "img"]
    assert images_shown and all(src.startswith("data:image/jpeg;base64,") for src in images_shown)
    assert not [t for t, _ in tags.tags if t in ("script", "link", "iframe")]  # nothing to fetch, nothing to run
    assert "model: logos v3" in page and "0.55 (test)" in page
    # the queue: within 0.15 of the threshold, the closest first, named either side of it
    margins = [float(m) for m in re.findall(r"just (?:above|below) \(([+-][\d.]+)\)", page)]
    assert margins and margins == sorted(margins, key=abs) and max(map(abs, margins)) < 0.15


def test_what_came_from_the_report_is_escaped(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    evil = '<script>alert("brand")</script>'
    name = jpeg(images / 'x"><img src=y onerror=alert(1)>.jpg')
    rows = [Row(name, evil, confidence=0.9), Row(name + ".missing", error_kind="corrupt")]
    page = night_page(Layout(str(tmp_path / "out")), commit_rows(tmp_path / "out", "scan-1", "2026-11-01", rows))
    tags = parse(page)
    assert not [t for t, _ in tags.tags if t == "script"]
    assert not [(t, k) for t, a in tags.tags for k in a if k.startswith("on")]
    assert [a["src"][:5] for t, a in tags.tags if t == "img"] == ["data:"]
    assert evil in "".join(tags.text)  # shown as text, not run


@pytest.mark.parametrize("kind", ["zero rows", "only errors", "ten thousand rows"])
def test_a_page_stays_bounded(tmp_path, kind):
    images = tmp_path / "images"
    images.mkdir()
    pictures = [jpeg(images / f"{i}.jpg", 640, 480, seed=i) for i in range(40)]
    if kind == "zero rows":
        rows = []
    elif kind == "only errors":
        rows = [Row(f"s3://bucket/{i}.jpg", error_kind=("missing", "corrupt", "truncated")[i % 3]) for i in range(300)]
    else:
        rng = np.random.default_rng(0)
        brands = [f"brand-{b:03d}" for b in range(200)]
        rows = [Row(pictures[i % 40].replace(".jpg", f"-{i}.jpg"),
                    brands[int(rng.integers(200))] if i % 4 else None, confidence=float(rng.uniform(0.3, 1)),
                    source=("classifier", "classifier", "unknown", "prototype")[i % 4] if i % 4 else None)
                for i in range(10_000)]
        for i, row in enumerate(rows):  # each row a file of its own (a hard link): every picked image is fetched
            os.link(pictures[i % 40], row.uri)
    manifest = commit_rows(tmp_path / "out", "scan-1", "2026-11-01", rows)
    page = night_page(Layout(str(tmp_path / "out")), manifest)
    assert len(page.encode()) < PAGE_LIMIT
    shown = counts_shown(page)
    assert shown["scanned"] == len(rows) and shown["error"] == sum(r.error_kind is not None for r in rows)
    if kind == "ten thousand rows":
        tags = parse(page)
        figures = [a for t, a in tags.tags if t == "figure"]
        bounds = Bounds()
        assert len(figures) <= 12 * bounds.per_brand + bounds.queue + bounds.unknown + bounds.prototype
        assert len([t for t, _ in tags.tags if t == "img"]) == len(figures)  # every picked image loaded
        assert "and 170 more brands" in page
    else:
        assert "No brand appeared." in page


def test_picks_keep_their_bounds_and_read_in_batches_as_whole(tmp_path):
    rng = np.random.default_rng(5)
    rows = [Row(f"s3://b/{i}.jpg", ("acme", "globex", None)[i % 3], confidence=float(rng.uniform(0, 1)),
                top_brands=None if i % 3 != 2 else (["no-logo", "acme"] if i % 2 else ["acme", "no-logo"]))
            for i in range(3000)]
    manifest = commit_rows(tmp_path / "out", "scan-1", "2026-11-01", rows, threshold=0.5, chunk_rows=700)
    whole = pick_reports([(manifest["report"]["uri"], 0.5)])
    table = pq.read_table(manifest["report"]["uri"])
    halves = Picks(0.5)
    for part in (table.slice(0, 1234), table.slice(1234)):
        halves.add(part)
    for picks in (whole, halves):
        assert {b: len(h) for b, h in picks.top.items()} == {"acme": 4, "globex": 4}
        for hits in picks.top.values():
            assert [h.confidence for h in hits] == sorted((h.confidence for h in hits), reverse=True)
        assert len(picks.queue) == 16 and all(abs(h.margin) < 0.15 for h in picks.queue)
        # a row the model is sure shows no logo is no doubt; one whose best guess is a brand is
        assert all(h.brand in ("acme", "globex") for h in picks.queue)
    ok = table.filter(pc.equal(table["status"], "ok")).to_pylist()
    best_acme = max(r["confidence"] for r in ok if r["brand"] == "acme")
    assert whole.top["acme"][0].confidence == pytest.approx(best_acme)
    assert [h.uri for h in whole.queue] == [h.uri for h in halves.queue]


def test_a_thumbnail_outlines_each_mark_where_it_is(tmp_path):
    path = tmp_path / "scene.png"
    Image.new("RGB", (400, 300), "white").save(path)
    marks = [{"brand": "acme", "x0": 100, "y0": 75, "x1": 300, "y1": 225},
             {"brand": "globex", "x0": 20, "y0": 20, "x1": 60, "y1": 60}]
    thumb = thumbnail(path.read_bytes(), marks, 400, 300, brand="acme", side=192)
    import base64
    import io

    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(thumb.src.split(",", 1)[1]))).convert("RGB"))
    assert pixels.shape == (144, 192, 3)

    def near(colour, y, x):  # the colour within a pixel of (y, x), give or take JPEG's chroma blur
        patch = pixels[y - 1:y + 2, x - 1:x + 2].astype(int).reshape(-1, 3)
        return np.abs(patch - colour).max(axis=1).min() < 100

    assert near(HIT_COLOUR, 72, 48) and near(HIT_COLOUR, 36, 96)      # acme's left and top edges (scaled 0.48)
    assert near(OTHER_COLOUR, 19, 10)                                   # globex's left edge
    assert near((255, 255, 255), 72, 96) and near((255, 255, 255), 72, 30)  # inside and outside: untouched
    assert thumbnail(b"not an image", marks, 400, 300, brand="acme").error.startswith("not_an_image")


def test_the_range_job_writes_the_page_of_several_nights(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    out = tmp_path / "out"
    for day in (1, 2, 4):
        commit_rows(out, f"scan-{day}", f"2026-11-0{day}",
                    [Row(jpeg(images / f"{day}-{i}.jpg", seed=i), "acme" if i < day else None) for i in range(5)])
    assert nightly_main(["--scans", str(out), "--since", "2026-11-01", "--until", "2026-11-03"]) == 0
    page = (out / "_pages" / "nights-2026-11-01-2026-11-03.html").read_text()
    assert counts_shown(page)["scanned"] == 10 and counts_shown(page)["with_brand"] == 3
    assert re.findall(r'data-night="([\d-]+)"', page) == ["2026-11-02", "2026-11-01"]
    assert '"scans": 2' in capsys.readouterr().out
    assert nightly_main(["--scans", str(out), "--since", "2026-10-01", "--until", "2026-10-31"]) == 2
    assert "no committed scan" in capsys.readouterr().err
    assert nightly_main(["--scans", str(out), "--since", "2026-11-05", "--until", "2026-11-01"]) == 2


def test_a_page_that_cannot_be_written_leaves_the_scan_committed_and_says_how_to_write_it(tmp_path, monkeypatch,
                                                                                         caplog):
    import lxn.nightly.build as build
    from lxn.scan import pipeline
    from lxn.scan.report import read_manifest

    manifest = commit_rows(tmp_path / "out", "scan-1", "2026-11-01", [Row(str(tmp_path / "a.jpg"), "acme")])
    layout = Layout(str(tmp_path / "out"))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(build, "night_page", broken)
    assert pipeline._write_page(layout, manifest) is None
    assert read_manifest(layout, "scan-1") == manifest and not os.path.exists(layout.page("2026-11-01", "scan-1"))
    assert "disk full" in caplog.text and "jobs/nightly.py --scans" in caplog.text
    assert "DRIFT" not in pipeline.format_summary(manifest) and "drift: not judged" in pipeline.format_summary(manifest)
