"""The README's main job: ``agy-trio run`` drives the real SDK offline by default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.processes import offline_env, run_python
from tests.sdk_support import harnesses_under

pytestmark = pytest.mark.sdk


def test_main_job_runs_the_real_sdk_against_the_local_model_server(tmp_path: Path) -> None:
    # COLUMNS: keep rich from wrapping the lines checked below.
    env = offline_env(tmp_path, COLUMNS="200")
    argv = ["-m", "agy_trio", "run", "--agents", "3", "--turns", "2"]
    result = run_python(*argv, env=env, timeout=240)
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
    assert list((tmp_path / "tmp").iterdir()) == []
