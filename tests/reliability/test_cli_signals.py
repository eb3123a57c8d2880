"""``agy-trio run`` stopped by a signal cleans up: no harness, no temporary folder left.

SIGTERM (and SIGHUP) cancel the program; its runtime shuts down, which stops
every harness and removes the backend's temporary folder with the
conversation databases. SIGKILL cannot be caught: the harnesses still die
with Python, the folder stays (see docs/reliability.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sdk_support import harnesses_under

pytestmark = pytest.mark.sdk


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    env = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"}
    env["HOME"] = str(tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env["TMPDIR"] = str(temp)
    process = subprocess.Popen(
        [sys.executable, "-m", "agy_trio", "run", "--agents", "2", "--turns", "100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    return process, temp


def _wait_for_conversations(process: subprocess.Popen[str], temp: Path) -> None:
    """Return once both agents have their conversation database (the run is under way)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        if len(list(temp.glob("agy-trio-antigravity-*/conversations/*.db"))) >= 2:
            return
        time.sleep(0.05)  # polling another process's progress; no event to wait on
    pytest.fail("the run did not start its agents")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_cleans_everything_up(tmp_path: Path, signum: int) -> None:
    process, temp = _start(tmp_path)
    try:
        _wait_for_conversations(process, temp)
        assert harnesses_under(tmp_path) != []
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signum, stderr
    assert f"stopped by {signal.Signals(signum).name}" in stderr
    assert "Traceback" not in stderr
    assert harnesses_under(tmp_path) == []
    assert list(temp.iterdir()) == []


def test_sigkill_leaves_the_folder_but_no_harness(tmp_path: Path) -> None:
    process, temp = _start(tmp_path)
    try:
        _wait_for_conversations(process, temp)
        process.kill()
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # The kernel ends the harnesses with their parent; poll for them to be reaped.
    deadline = time.monotonic() + 30
    while harnesses_under(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert harnesses_under(tmp_path) == []
    # What SIGKILL leaves, as documented: the backend's folder and its databases.
    (left,) = temp.iterdir()
    assert left.name.startswith("agy-trio-antigravity-")
    assert list(left.glob("conversations/*.db"))
