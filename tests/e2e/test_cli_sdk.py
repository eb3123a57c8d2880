"""The README's main job: ``agy-trio run`` drives the real SDK offline by default."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdk_support import harnesses_under

pytestmark = pytest.mark.sdk


def test_main_job_runs_the_real_sdk_against_the_local_model_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"}
    env["HOME"] = str(tmp_path)
    # The backend's per-runtime folder (the harnesses' HOME) goes under here.
    temp = tmp_path / "tmp"
    temp.mkdir()
    env["TMPDIR"] = str(temp)
    env["COLUMNS"] = "200"  # keep rich from wrapping the lines checked below
    result = subprocess.run(
        [sys.executable, "-m", "agy_trio", "run", "--agents", "3", "--turns", "2"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "real SDK -> local model server at http://127.0.0.1:" in out
    assert "(offline default)" in out
    summary = re.search(r"3 agents, (\d+) commands ok, (\d+) failed", out)
    assert summary is not None, out
    assert summary.group(2) == "0"
    for n in (1, 2, 3):
        assert f"You said: Hello from agent-{n}, turn 2" in out
    # Every harness the run started is gone with it, and so is its folder.
    assert harnesses_under(tmp_path) == []
    assert list(temp.iterdir()) == []
