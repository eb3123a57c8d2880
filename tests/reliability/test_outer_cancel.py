"""Cancelling the scope around ``open_runtime`` shuts everything down, and never hangs.

The work inside the block is cancelled like any Trio code; what it does on
its way out (an agent's ``async with`` shutting the agent down, a response
cancelling its turn) still runs, because the runtime keeps serving until the
block is left and the runtime has shut down.
"""

from __future__ import annotations

import threading

import pytest
import trio

import agy_trio
from agy_trio import RuntimeConfig
from agy_trio.adapters.scripted import Hang, Say, ScriptedBackend, Turn, default_turn

CONFIG = RuntimeConfig(inter_agent_delay=0, chat_timeout=600)
HANG = 20


def script(agent_id: str, prompt: str, index: int) -> Turn:
    if prompt.startswith("hang"):
        return Turn([Say("partial", chunks=1), Hang()])
    return default_turn(prompt)


@pytest.mark.parametrize("agents", [1, 5])
async def test_cancelling_the_scope_around_the_runtime_mid_turn(agents: int) -> None:
    backend = ScriptedBackend(script)
    started = trio.Event()
    seen: list[str] = []
    responses: list[agy_trio.ChatResponse] = []

    async def one(rt: agy_trio.Runtime, name: str) -> None:
        async with rt.open_agent(agy_trio.AgentConfig(name=name)) as agent:
            response = await agent.chat("hang on")
            responses.append(response)
            async for delta in response:
                seen.append(delta)
                if len(seen) == agents:
                    started.set()

    with trio.fail_after(HANG):
        with trio.CancelScope() as outer:
            async with (
                agy_trio.open_runtime(CONFIG, backend=backend) as rt,
                trio.open_nursery() as nursery,
            ):
                for i in range(agents):
                    nursery.start_soon(one, rt, f"a{i}")
                await started.wait()
                outer.cancel()  # as a signal handler or a move_on_after would
        assert outer.cancelled_caught
    assert seen == ["partial"] * agents
    # Each reader was cancelled mid-read: it stopped its turn on the way out.
    assert len(responses) == agents
    assert rt.statistics().active_turns == 0
    assert backend.cancel_calls >= agents
    assert rt.closed and rt.agents == []
    assert not any(t.name == backend.host.name for t in threading.enumerate())


async def test_a_deadline_around_the_runtime_while_commands_are_queued() -> None:
    backend = ScriptedBackend(script)
    with trio.fail_after(HANG):
        with trio.move_on_after(0.5) as outer:
            async with (
                agy_trio.open_runtime(CONFIG, backend=backend) as rt,
                trio.open_nursery() as nursery,
            ):
                for i in range(20):
                    nursery.start_soon(_chat_forever, rt, f"a{i}")
        assert outer.cancelled_caught
    assert rt.agents == []


async def _chat_forever(rt: agy_trio.Runtime, name: str) -> None:
    async with rt.open_agent(agy_trio.AgentConfig(name=name)) as agent:
        while True:
            await (await agent.chat("hello")).text()
