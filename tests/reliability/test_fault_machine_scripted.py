"""The fault state machine on the scripted backend, with many examples."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

from hypothesis import settings

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig
from agy_trio.adapters.scripted import Fail, Hang, Say, ScriptedBackend, Turn, default_turn

from .fault_machine import FaultMachine, World, settled

LONG = "".join(f"{i:03d}." for i in range(200))


def script(agent_id: str, prompt: str, index: int) -> Turn:
    kind = prompt.split()[0]
    if kind == "long":
        return Turn([Say(LONG, chunks=200)])
    if kind == "quota":
        return Turn([Say("partial", chunks=1), Fail("quota", retry_after=0.001)])
    if kind == "server":
        return Turn([Fail("server", status=503)])
    if kind == "cut":
        return Turn([Say("partial", chunks=1), Fail("connection", message="stream cut")])
    if kind == "hang":
        return Turn([Say("partial", chunks=1), Hang()])
    return default_turn(prompt)


class ScriptedWorld(World):
    def __init__(self) -> None:
        # A small buffer: an unread answer of 200 chunks would hold its agent.
        self.backend = ScriptedBackend(script, stream_high_water=4, stream_batch_max=2)

    def open(self) -> AbstractAsyncContextManager[agy_trio.Runtime]:
        config = RuntimeConfig(inter_agent_delay=0, chat_timeout=60, operation_timeout=60)
        return agy_trio.open_runtime(config, backend=self.backend)

    def agent_config(self, name: str) -> AgentConfig:
        # "hang" turns time out; an abandoned answer (milliseconds) ends well before.
        return AgentConfig(name=name, chat_timeout=0.5)

    def answer(self, kind: str, prompt: str) -> str:
        return LONG if kind == "long" else f"You said: {prompt}"

    async def check_running(self, rt: agy_trio.Runtime, live_agents: int) -> None:
        host = self.backend.host

        async def others() -> int:
            return len(asyncio.all_tasks()) - 1  # this one aside

        async def no_task_left() -> bool:
            return await host.run(others) == 0 and host.statistics().pending_calls == 0

        await settled(no_task_left, "asyncio tasks on the host loop")

    def check_closed(self) -> None:
        assert not self.backend.host.alive


class ScriptedFaultMachine(FaultMachine):
    world_factory = ScriptedWorld

    def allowed_thread(self, name: str) -> bool:
        host = self.world.backend.host.name  # type: ignore[attr-defined]
        return name in ("fault-machine-runtime", host)


ScriptedFaultMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=40)
test_scripted_fault_machine = ScriptedFaultMachine.TestCase
