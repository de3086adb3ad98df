"""The README's one-machine submission, as a user types it: a head started with the virtual
environment's tools first on PATH (`source .venv/bin/activate && ray start --head`: the
`ray_head` fixture), then `ray job submit --working-dir . -- python jobs/...`. The job's `python`
is the one the daemons found, so the job imports the project's stack."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_a_job_submitted_as_the_readme_writes_it_runs_with_the_venvs_stack(ray_head, tmp_path):
    _, dashboard, env = ray_head
    ray = str(Path(sys.executable).parent / "ray")
    submission = f"readme-{uuid.uuid4().hex[:6]}"
    # --check of a night that never ran: the job imports the scan's code and storage, and its
    # exit status (1: missing) reaches `ray job submit` (which exits 1 when the job fails).
    done = subprocess.run([ray, "job", "submit", "--address", dashboard, "--working-dir", ".",
                           "--submission-id", submission, "--", "python", "jobs/scan.py", "--check", "2026-12-01",
                           "--out", str(tmp_path / "reports")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    logs = subprocess.run([ray, "job", "logs", "--address", dashboard, submission], capture_output=True, text=True,
                          timeout=120, env=env).stdout
    assert "No module named" not in logs, logs[-2000:]
    assert f"lxn scan report MISSING under {tmp_path / 'reports'} for 2026-12-01" in logs, logs[-2000:]
    assert done.returncode == 1, (done.stdout + done.stderr)[-2000:]
