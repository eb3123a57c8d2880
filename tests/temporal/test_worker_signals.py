"""``agy-trio worker`` and Ctrl-C, and with no Temporal server to talk to.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group: the
worker leaves gracefully (its harnesses, in sessions of their own, do not get
the signal) and exits 130 with the one line ``interrupted``.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

from agy_trio.adapters.temporal.dev_server import free_port
from benchmarks._child import wait_for_line
from tests.temporal.conftest import READY_TIMEOUT, REPO, Cluster, _env


def _worker(cluster: Cluster, log: Path, target: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            cluster.worker_argv(target, f"{cluster.task_queue}-signals"),
            stdout=out,
            stderr=subprocess.PIPE,
            env=_env(cluster.home),
            cwd=REPO,
            start_new_session=True,  # a job of its own, as a shell starts it
        )


def test_ctrl_c_to_the_process_group_makes_the_worker_leave_with_130(
    cluster: Cluster, tmp_path: Path
) -> None:
    for attempt in range(3):
        log = tmp_path / f"worker-{attempt}.log"
        process = _worker(cluster, log, cluster.target)
        try:
            wait_for_line(log, " ready: ", process, timeout=READY_TIMEOUT)
            family = psutil.Process(process.pid).children(recursive=True)
            os.killpg(process.pid, signal.SIGINT)
            _, stderr = process.communicate(timeout=90)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 130, stderr
        assert stderr == b"interrupted\n"
        assert " leaving" in log.read_text()
        _, alive = psutil.wait_procs(family, timeout=30)
        assert alive == []


def test_no_temporal_server_is_one_line_saying_what_to_do(cluster: Cluster, tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    process = _worker(cluster, tmp_path / "worker.log", nowhere)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert stderr.decode().splitlines() == [
        f"error: no Temporal server answers at {nowhere}: start one "
        "(`temporal server start-dev`) or point --temporal at yours"
    ]
