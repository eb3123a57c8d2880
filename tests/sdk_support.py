"""What the real-SDK tests share: a runtime whose folders live under the test's, leak checks.

Everything runs offline against :mod:`agy_trio.testing.model_server` on
127.0.0.1; every folder the harness touches lives under the test's
``tmp_path``. After each test no ``localharness`` process may remain, and the
backend's temporary folder must be gone.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import trio

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig
from agy_trio.adapters.antigravity import AntigravityBackend
from agy_trio.testing import ChatRequest, Reply, Responder

FAST = RuntimeConfig(inter_agent_delay=0, chat_timeout=60)


def harnesses_under(root: Path) -> list[int]:
    """Harness processes whose HOME lies under ``root``: the ones a child process started."""
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "localharness":
            continue
        try:
            home = proc.environ().get("HOME", "")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if home.startswith(str(root)):
            found.append(proc.pid)
    return found


def harness_processes() -> list[psutil.Process]:
    """Every ``localharness`` process descending from this one."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() == "localharness":
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@asynccontextmanager
async def sdk_runtime(
    tmp_path: Path, config: RuntimeConfig = FAST, **backend_options: Any
) -> AsyncIterator[tuple[agy_trio.Runtime, AntigravityBackend]]:
    """A runtime over the real SDK whose folders live under ``tmp_path``."""
    base = tmp_path / "backend"
    backend = AntigravityBackend(base_dir=base, **backend_options)
    async with agy_trio.open_runtime(config, backend=backend) as runtime:
        yield runtime, backend
    assert list(base.iterdir()) == [], "the backend left its temporary folder behind"
    assert backend.harness_pids() == []


@asynccontextmanager
async def sdk_agent(
    tmp_path: Path, agent: AgentConfig, config: RuntimeConfig = FAST, **backend_options: Any
) -> AsyncIterator[tuple[agy_trio.AgentHandle, AntigravityBackend]]:
    """One agent made from ``agent`` on :func:`sdk_runtime`; the agent and the backend."""
    async with sdk_runtime(tmp_path, config, **backend_options) as (runtime, backend):
        yield await runtime.create_agent(agent), backend


def replies_to_marks(replies: Mapping[str, Reply]) -> Responder:
    """A model script: a prompt that contains a mark gets its reply, any other the default."""

    def respond(request: ChatRequest) -> Reply | None:
        for mark, reply in replies.items():
            if mark in request.user_request:
                return reply
        return None

    return respond


def local_agent(server: Any, **changes: Any) -> AgentConfig:
    """An agent config for the local model server."""
    return AgentConfig(model="agy-trio-local", base_url=server.url, **changes)


@contextmanager
def model_server_process(home: Path) -> Iterator[str]:
    """``agy-trio serve-model`` in a process of its own (for other processes); its root URL."""
    env = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"}
    env["HOME"] = str(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "agy_trio", "serve-model", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=home,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on" in first, first
        yield first.split("listening on ", 1)[1].split()[0].removesuffix("/v1")
    finally:
        process.terminate()
        process.communicate(timeout=30)


def hang_the_next_model_call(root: str) -> None:
    """Make the model server at ``root`` hold its next request until released."""
    httpx.post(f"{root}/control/faults", json={"kind": "hang"}).raise_for_status()


def wait_until_the_model_call_hangs(process: subprocess.Popen[Any] | Any, root: str) -> None:
    """Return once the queued hang was taken by a request (``process`` must stay alive)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.isalive() if hasattr(process, "isalive") else process.poll() is None
        if httpx.get(f"{root}/control/faults").json()["faults"] == []:
            return
        time.sleep(0.05)  # polling another process's progress; no event to wait on
    raise AssertionError("the turn never reached the model")


_KILLED_PROGRAM = """
import sys, trio, agy_trio
from agy_trio.adapters.antigravity import AntigravityBackend
from agy_trio.testing import ChatRequest, Reply, Responder
from agy_trio.testing import open_model_server

async def main():
    base_dir, agents, *per_harness = sys.argv[1:]
    options = {"agents_per_harness": int(per_harness[0])} if per_harness else {}
    async with open_model_server() as server:
        backend = AntigravityBackend(base_dir=base_dir, **options)
        async with agy_trio.open_runtime(backend=backend) as rt:
            config = agy_trio.AgentConfig(model="m", base_url=server.url)
            for _ in range(int(agents)):
                await rt.create_agent(config)
            print(*backend.harness_pids(), flush=True)
            await trio.sleep(60)

trio.run(main)
"""


def harnesses_of_a_killed_program(
    base_dir: Path, agents: int, agents_per_harness: int | None = None
) -> list[int]:
    """Start ``agents`` agents in a Python process of its own, then SIGKILL it; its harness pids.

    The kill leaves no clean-up code a chance to run: whatever ends the
    harnesses afterwards is the backend's guard against its parent's death.
    """
    argv = [str(base_dir), str(agents)]
    if agents_per_harness is not None:
        argv.append(str(agents_per_harness))
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_KILLED_PROGRAM), *argv],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"},
    ) as child:
        try:
            assert child.stdout is not None
            pids = [int(word) for word in child.stdout.readline().split()]
            assert all(psutil.Process(pid).name() == "localharness" for pid in pids)
        finally:
            child.kill()
    return pids


def assert_exit_soon(pids: list[int], seconds: float = 20) -> None:
    """Fail unless every process in ``pids`` is gone (or a zombie) within ``seconds``."""
    deadline = time.monotonic() + seconds
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)  # polling processes this test does not own; no event to wait on
        else:
            raise AssertionError(f"harness {pid} survived the crash of its Python process")


@contextmanager
def logged(text: str, logger: str = "agy_trio.antigravity") -> Iterator[trio.Event]:
    """An event set once ``logger`` logs a message that contains ``text`` (INFO or above).

    Enter it in Trio; the record may come from any thread (the SDK's logs come
    from the host thread). The logger's level is INFO while inside.
    """
    event = trio.Event()
    token = trio.lowlevel.current_trio_token()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                token.run_sync_soon(event.set)

    handler = Watch()
    watched = logging.getLogger(logger)
    level = watched.level
    watched.setLevel(logging.INFO)
    watched.addHandler(handler)
    try:
        yield event
    finally:
        watched.removeHandler(handler)
        watched.setLevel(level)
