"""The commands stopped by a signal clean up: no harness, no temporary folder left.

SIGTERM (and SIGHUP) cancel the program; its runtime shuts down, which stops
every harness and removes the backend's temporary folder with the
conversation databases. SIGKILL cannot be caught: the harnesses still die
with Python, the folder stays (see docs/reliability.md).

Ctrl-C in a terminal sends SIGINT to the whole foreground process group. The
harnesses live in sessions of their own, so only Python gets it and shuts
them down in order: ``run``, ``chat`` and ``serve`` exit 130 with the one line
``interrupted``, every time (``worker``: tests/temporal/test_worker_signals.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from tests.processes import offline_env
from tests.sdk_support import (
    hang_the_next_model_call,
    harnesses_under,
    model_server_process,
    wait_until_the_model_call_hangs,
)

pytestmark = pytest.mark.sdk


ROOT = Path(__file__).resolve().parents[2]
RUN_FOREVER = ["run", "--agents", "2", "--turns", "100000"]


def _env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    return offline_env(tmp_path), tmp_path / "tmp"


def _start(
    tmp_path: Path, argv: list[str] = RUN_FOREVER, *, stdout: int = subprocess.DEVNULL
) -> tuple[subprocess.Popen[str], Path]:
    env, temp = _env(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "agy_trio", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
        # A process group of its own, as a shell gives a job in a terminal:
        # the test's Ctrl-C goes to that whole group.
        start_new_session=True,
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


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with model_server_process(tmp_path_factory.mktemp("model-server")) as root:
        yield root


@contextmanager
def _under_way(kind: str, home: Path, root: str) -> Iterator[subprocess.Popen[str]]:
    """The command ``kind``, once its agent is mid-turn on a harness; killed if still alive."""
    endpoint = ["--base-url", f"{root}/v1", "--model", "local"]
    with ExitStack() as stack:
        if kind == "run":
            process, temp = _start(home)
        else:
            hang_the_next_model_call(root)
            argv = ["chat", *endpoint, "hello"] if kind == "chat" else ["serve", *endpoint]
            process, temp = _start(home, argv + ["--port", "0"] * (kind == "serve"), stdout=-1)

        @stack.callback
        def _kill() -> None:
            if process.poll() is None:
                process.kill()
                process.communicate()

        if kind == "run":
            _wait_for_conversations(process, temp)
        elif kind == "serve":
            assert process.stdout is not None
            url = process.stdout.readline().removeprefix("Serving on ").strip()
            client = stack.enter_context(httpx.Client(base_url=url, timeout=60))
            agent = client.post("/v1/agents", json={"name": "signals"}).json()["id"]
            # A chat that waits on the model: its stream stays open until the signal.
            stack.enter_context(
                client.stream("POST", f"/v1/agents/{agent}/chat", json={"prompt": "hello"})
            )
        if kind != "run":
            wait_until_the_model_call_hangs(process, root)
        yield process


def test_ctrl_c_to_the_process_group_exits_130_every_time(
    tmp_path: Path, model_server: str
) -> None:
    kinds = ["run", "chat", "serve"]
    for attempt in range(20):
        kind = kinds[attempt % len(kinds)]
        home = tmp_path / f"{attempt}-{kind}"
        home.mkdir()
        with _under_way(kind, home, model_server) as process:
            harnesses = harnesses_under(home)
            assert harnesses != []
            # In sessions of their own: the terminal's Ctrl-C reaches Python only.
            assert os.getsid(process.pid) not in {os.getsid(pid) for pid in harnesses}
            os.killpg(process.pid, signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
        assert (kind, process.returncode, stderr) == (kind, 130, "interrupted\n")
        assert harnesses_under(home) == []
        assert list((home / "tmp").iterdir()) == []
        # Nothing of the job is left in its process group either.
        assert [p for p in psutil.process_iter() if _group_of(p) == process.pid] == []


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
