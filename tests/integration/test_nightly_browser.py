"""The nightly page opened in a real headless browser (Debian's Chromium, driven by Selenium;
`make browser` installs it): it renders with no console error, the counts it shows equal the
Parquet's, every thumbnail loads, and a screenshot is not blank.

Without the browser this test fails, saying how to install it; LXN_SKIP_BROWSER=1 skips it."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw

from lxn.nightly.build import write_night_page
from lxn.scan.layout import Layout
from tests.staged_scans import Row, commit_rows

CHROMIUM = os.environ.get("LXN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LXN_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser():
    if os.environ.get("LXN_SKIP_BROWSER") == "1":
        pytest.skip("LXN_SKIP_BROWSER=1")
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (shutil.which(p) or os.access(p, os.X_OK))]
    if missing:
        pytest.fail(f"no browser for the page test ({', '.join(missing)} missing): run `make browser` "
                    "(apt-get install chromium chromium-driver), or set LXN_SKIP_BROWSER=1 to skip it")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,2400"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def scene(path, seed: int) -> str:
    rng = np.random.default_rng(seed)
    picture = Image.fromarray((rng.random((240, 320, 3)) * 120 + 60).astype(np.uint8))
    ImageDraw.Draw(picture).rectangle([60, 50, 180, 130], fill=(20, 40, 200))
    picture.save(path, quality=85)
    return str(path)


def test_the_page_renders_in_a_browser_as_the_report_says(tmp_path, browser):
    images = tmp_path / "images"
    images.mkdir()
    mark = [{"brand": "acme", "confidence": 0.9, "source": "classifier", "x0": 60, "y0": 50, "x1": 180, "y1": 130}]
    out = tmp_path / "out"
    for day in range(1, 5):  # trailing nights for the chart, the comparison and the drift verdict
        rows = [Row(scene(images / f"{day}-{i}.jpg", seed=day * 100 + i), ("acme", "globex", None)[i % 3],
                    confidence=0.45 + (i % 50) / 100, width=320, height=240,
                    detections=[dict(mark[0], brand=("acme", "globex")[i % 3])] if i % 3 != 2 else [])
                for i in range(60)]
        rows += [Row(str(images / "gone.jpg"), error_kind="missing"),
                 Row(str(images / f"bad-{day}.jpg"), error_kind="truncated")]
        manifest = commit_rows(out, f"scan-{day}", f"2026-11-0{day}", rows, threshold=0.5)
    uri, _ = write_night_page(Layout(str(out)), manifest)

    browser.get("file://" + uri)
    console = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert console == []

    report = pq.read_table(manifest["report"]["uri"])
    shown = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('[data-count]')]"
        ".map(e => [e.dataset.count, Number(e.textContent.replace(/,/g, ''))]))")
    status = report["status"]
    assert shown["scanned"] == report.num_rows
    assert shown["ok"] == pc.sum(pc.equal(status, "ok")).as_py()
    assert shown["error"] == pc.sum(pc.equal(status, "error")).as_py() == 2
    assert shown["with_brand"] == report.num_rows - report["brand"].null_count
    assert shown["detections"] == pc.list_flatten(report["detections"]).length()
    brands = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('tr[data-brand]')]"
        ".map(r => [r.dataset.brand, Number(r.querySelector('[data-images]').textContent)]))")
    counted = pc.value_counts(report["brand"].drop_null()).to_pylist()
    assert brands == {c["values"]: c["counts"] for c in counted}

    loaded = browser.execute_script(
        "return [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(loaded) >= 8 and all(done and w > 0 and h > 0 for done, w, h in loaded)
    assert browser.execute_script("return document.querySelectorAll('#chart circle').length") == 4 * 2
    assert browser.find_element("id", "drift").get_attribute("data-drifted") == "false"

    screenshot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"))
    assert screenshot.std() > 20 and len(np.unique(screenshot.reshape(-1, 3), axis=0)) > 500
