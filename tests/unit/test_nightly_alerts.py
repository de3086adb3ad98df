"""Nightly failures reach a person: the --notify webhook against a real local HTTP server, and the
freshness check (`jobs/scan.py --check DATE`) on present, missing and half-written nights."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from lxn.notify import check_webhook, notify
from lxn.redact import redact_text
from lxn.scan.freshness import EXIT_STALE, check_night
from lxn.scan.report import finish_commit
from tests.conftest import free_port
from tests.staged_scans import prepare

TOKEN = "T0AAAAAAA/B0BBBBBBB/XyZsEcReTtOkEn1234567890"


@pytest.fixture()
def hook():
    """A webhook server on 127.0.0.1 that records each POST and answers `hook.status`."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            server.posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(server.status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.posts, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/services/{TOKEN}"
    yield server
    server.shutdown()


def test_the_hook_gets_the_text_and_the_record(hook):
    assert notify(check_webhook(hook.url), "scan", "ok", "lxn scan 2026-12-01: 3 objects", {"rows": 3})
    path, content_type, body = hook.posts[0]
    assert path == f"/services/{TOKEN}" and content_type == "application/json"
    assert body == {"text": "lxn scan 2026-12-01: 3 objects", "lxn": {"job": "scan", "status": "ok", "rows": 3}}


def test_a_failing_or_unreachable_hook_never_fails_the_job_and_is_logged_without_its_token(hook, caplog):
    hook.status = 500
    assert notify(check_webhook(hook.url), "scan", "failed", "boom", {}, attempts=2) is False
    assert len(hook.posts) == 2  # a server error is tried again
    hook.status, hook.posts[:] = 404, []
    assert notify(hook.url, "scan", "failed", "boom", {}, attempts=3) is False and len(hook.posts) == 1
    closed = f"http://127.0.0.1:{free_port()}/services/{TOKEN}"
    assert notify(check_webhook(closed), "scan", "failed", "boom", {}, attempts=1, timeout_s=2) is False
    assert "could not notify" in caplog.text and TOKEN.split("/")[-1] not in caplog.text


def test_a_webhook_with_credentials_or_not_http_is_refused_and_its_token_is_a_secret():
    for bad in ("https://user:pass@hooks.example.com/x", "ftp://hooks.example.com/x", "hooks.example.com/x"):
        with pytest.raises(ValueError, match="--notify"):
            check_webhook(bad)
    url = check_webhook(f"https://hooks.example.com/services/{TOKEN}")
    assert TOKEN.split("/")[-1] not in redact_text(f"posting to {url} and {TOKEN}")
    assert "services" in redact_text("ordinary services stay readable")


def test_the_check_says_ok_only_for_a_committed_night(tmp_path):
    out = tmp_path / "reports"
    assert check_night(str(out), "2025-06-01")["status"] == "missing"  # no report root at all
    layout, _ = prepare(out, "2025-06-01-aaaaaaaaaa", date="2025-06-01")
    half = check_night(str(out), "2025-06-01")  # staged and intended, not yet published
    assert (half["status"], half["unfinished"]) == ("unfinished", ["2025-06-01-aaaaaaaaaa"])
    finish_commit(layout, "2025-06-01-aaaaaaaaaa")
    night = check_night(str(out), "2025-06-01")
    assert night["status"] == "ok" and night["scans"][0]["rows"] == 14 and night["unfinished"] == []
    assert night["scans"][0]["errors_by_kind"] == {"missing": 2, "not_an_image": 2, "truncated": 2}
    assert check_night(str(out), "2025-06-02")["status"] == "missing"  # another night
    prepare(out, "nightly-custom-id", date="2025-06-03")  # a --scan-id without the date: the intent's date
    assert check_night(str(out), "2025-06-03")["status"] == "unfinished"
    with pytest.raises(ValueError, match="--check"):
        check_night(str(out), "2025-6-3")


def test_the_check_job_exits_1_for_a_missing_night_and_tells_the_hook(hook, tmp_path, capsys, monkeypatch):
    from lxn.jobs.scan import main

    monkeypatch.setenv("LXN_NOTIFY_URL", hook.url)  # the URL kept off the command line
    assert main(["--check", "2025-06-01", "--out", str(tmp_path / "reports")]) == EXIT_STALE
    out = capsys.readouterr().out
    assert "MISSING" in out and TOKEN not in out
    (_, _, body), = hook.posts
    assert body["lxn"]["status"] == "missing" and body["lxn"]["date"] == "2025-06-01" and "MISSING" in body["text"]
    layout, _ = prepare(tmp_path / "reports", "2025-06-01-bbbbbbbbbb")
    finish_commit(layout, "2025-06-01-bbbbbbbbbb")
    assert main(["--check", "2025-06-01", "--out", str(tmp_path / "reports")]) == 0
    assert len(hook.posts) == 1  # a night that landed is not news


def test_a_night_that_drifted_is_posted_as_drift(hook, tmp_path):
    import numpy as np

    from lxn.jobs.scan import notice
    from lxn.scan.pipeline import ScanResult
    from tests.staged_scans import Row, commit_rows

    rng = np.random.default_rng(0)
    out = tmp_path / "reports"
    for day in range(1, 6):
        brand = (lambda i: ("acme", None)[i % 2]) if day < 5 else (lambda i: "globex")  # night 5: another feed
        manifest = commit_rows(out, f"scan-{day}", f"2026-11-0{day}",
                               [Row(f"s3://b/{day}/{i}.jpg", brand(i), confidence=float(rng.uniform(0.6, 1)))
                                for i in range(200)])
        status, text = notice(ScanResult(manifest["scan_id"], manifest, page=f"{out}/page.html"))
        assert status == ("drift" if day == 5 else "ok")
    assert "DRIFT: brand mix PSI" in text and "page.html" in text
    assert notify(hook.url, "scan", status, text, {"summary": manifest})
    assert hook.posts[0][2]["lxn"]["status"] == "drift"
