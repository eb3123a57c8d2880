"""The fault state machine on the real SDK and the local model server.

A bounded number of examples (it fits in CI): faults are injected at the
model server (429, 503, a stream cut mid-way, a hang past the agent's
``chat_timeout``), and a rule of its own kills a harness process with SIGKILL
between steps. Besides the machine's invariants, no harness process may run
that the backend does not know of, none may outlive its agent, and the
backend's temporary folder must be gone at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import hypothesis.strategies as st
import psutil
import pytest
import trio
from hypothesis import event, settings
from hypothesis.stateful import precondition, rule

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig
from agy_trio.adapters.antigravity import AntigravityBackend
from agy_trio.errors import BackendError, OperationTimeout, QuotaExceeded
from agy_trio.testing import ChatRequest, Fault, Reply, open_model_server
from tests.sdk_support import harness_processes

from .fault_machine import FaultMachine, World, settled

pytestmark = [pytest.mark.sdk, pytest.mark.usefixtures("offline", "no_harness_left")]

LONG = "".join(f"{i:04d}" for i in range(600))  # 600 chunks of four characters


def _responder(request: ChatRequest) -> Reply | None:
    if request.user_request.startswith("long "):
        return Reply(LONG, chunk_size=4)
    return None


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class SdkWorld(World):
    expected: ClassVar[dict[str, tuple[type[BaseException], ...]]] = {
        "quota": (QuotaExceeded,),
        "server": (BackendError,),
        "cut": (BackendError,),
        "hang": (OperationTimeout,),
    }
    max_agents = 2

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="agy-trio-faults-"))
        self.server: Any = None
        self.backend: AntigravityBackend | None = None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[agy_trio.Runtime]:
        config = RuntimeConfig(inter_agent_delay=0, chat_timeout=60)
        async with open_model_server(_responder) as server:
            self.server = server
            # A small stream buffer: an unread answer of 600 chunks would hold its agent.
            self.backend = AntigravityBackend(
                base_dir=self.base / "backend", stream_high_water=16, stream_batch_max=8
            )
            async with agy_trio.open_runtime(config, backend=self.backend) as rt:
                yield rt

    def agent_config(self, name: str) -> AgentConfig:
        # "hang" turns time out after chat_timeout.
        return AgentConfig(
            name=name, model="agy-trio-local", base_url=self.server.url, chat_timeout=3.0
        )

    def answer(self, kind: str, prompt: str) -> str:
        return LONG if kind == "long" else f"You said: {prompt}"

    async def arrange(self, kind: str, prompt: str) -> None:
        faults = {
            "quota": Fault.rate_limit(retry_after=0, match=prompt),
            "server": Fault.http_error(503, match=prompt),
            "cut": Fault.disconnect(after_chunks=2, match=prompt),
            "hang": Fault.hang(match=prompt),
        }
        if kind in faults:
            self.server.inject_fault(faults[kind])
        await trio.lowlevel.checkpoint()

    async def settle(self) -> None:
        # A fault the turn never reached must not hit a later one.
        self.server.clear_faults()
        self.server.release_hangs()
        await trio.lowlevel.checkpoint()

    async def check_running(self, rt: agy_trio.Runtime, live_agents: int) -> None:
        backend = self.backend
        assert backend is not None

        async def harnesses_accounted_for() -> bool:
            await trio.lowlevel.checkpoint()
            running = {p.pid for p in harness_processes() if _alive(p)}
            return running <= set(backend.harness_pids()) and len(running) <= live_agents

        await settled(harnesses_accounted_for, "harness processes")

        async def stderr_readers_bounded() -> bool:
            await trio.lowlevel.checkpoint()
            readers = [t for t in threading.enumerate() if t.name == "harness-stderr"]
            return len(readers) <= live_agents

        await settled(stderr_readers_bounded, "threads reading harness stderr")

        async def tasks_bounded() -> bool:
            await trio.lowlevel.checkpoint()
            tasks = sum(host.asyncio_tasks for host, _ in backend.statistics().hosts)
            # The SDK keeps a few tasks per live agent (its WebSocket reader); no more.
            return tasks <= 4 * live_agents + 2

        await settled(tasks_bounded, "asyncio tasks on the host loops")

    def check_closed(self) -> None:
        assert [p for p in harness_processes() if _alive(p)] == []
        backend_dir = self.base / "backend"
        assert not backend_dir.exists() or list(backend_dir.iterdir()) == []
        shutil.rmtree(self.base, ignore_errors=True)


class SdkFaultMachine(FaultMachine):
    world_factory = SdkWorld

    def allowed_thread(self, name: str) -> bool:
        # The runtime's thread, the backend's host threads and their fixed
        # worker pools, and the SDK's reader of each harness's stderr (counted
        # against the live harnesses in check_running).
        return name in ("fault-machine-runtime", "harness-stderr") or name.startswith(
            ("agy-trio-", "Thread-")
        )

    @precondition(lambda self: bool(self.model))
    @rule(index=st.integers(min_value=0, max_value=7))
    def kill_a_harness(self, index: int) -> None:
        world = self.world
        assert isinstance(world, SdkWorld) and world.backend is not None
        pids = sorted(world.backend.harness_pids())
        if pids:
            # A turn still running unread (its response was dropped) dies with
            # the harness: what it had sent may or may not have been saved.
            for agent in self.model.values():
                if not self.call(agent.handle.is_idle) and agent.sent:
                    prompt = agent.sent[-1]
                    kind = prompt.split(" <")[0]
                    agent.killed_in_flight.add(prompt)
                    if kind in ("ok", "long"):
                        agent.killed_in_flight.add(world.answer(kind, prompt))
            os.kill(pids[index % len(pids)], signal.SIGKILL)
        event(f"killed a harness ({len(pids)} running)")


# Bounded for CI; AGY_FAULT_EXAMPLES=40 (or more) for a longer hunt.
SdkFaultMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("AGY_FAULT_EXAMPLES", "8")), stateful_step_count=20
)
test_sdk_fault_machine = SdkFaultMachine.TestCase
