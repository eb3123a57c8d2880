"""A runtime used from other threads and other Trio runs.

A runtime belongs to the Trio run that opened it. A command from anywhere else
fails at once with WrongThread and leaves the runtime untouched;
``Runtime.from_thread`` is the supported way in for other threads, and
``AgentHandle.try_shutdown`` keeps its promise from any thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.lowlevel

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig, StopReason
from agy_trio.adapters.scripted import Hang, Say, ScriptedBackend, Turn
from agy_trio.errors import AgyError, RuntimeClosed, WrongThread
from tests.conversations import user_prompts
from tests.reliability.fault_machine import until_gone

FAST = RuntimeConfig(inter_agent_delay=0, chat_timeout=30)

# A bound for work that takes milliseconds; only a hang can reach it.
HANG = 20


@pytest.fixture
async def rt() -> AsyncIterator[agy_trio.Runtime]:
    backend = ScriptedBackend()
    with trio.fail_after(HANG):  # leaving the runtime must not hang either
        async with agy_trio.open_runtime(FAST, backend=backend) as runtime:
            yield runtime
    assert not any(t.name == backend.host.name for t in threading.enumerate())


async def _still_works(rt: agy_trio.Runtime, agent: agy_trio.AgentHandle) -> None:
    with trio.fail_after(HANG):
        assert await (await agent.chat("still there?")).text() == "You said: still there?"
        assert (await user_prompts(agent))[-1] == "still there?"
        other = await rt.create_agent(AgentConfig(name="other"))
        await other.shutdown()
    stats = rt.statistics()
    assert stats.in_flight == 0
    assert stats.queued == 0


async def test_a_command_from_another_trio_run_fails_at_once(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    await (await agent.chat("before")).text()

    def foreign_run() -> list[BaseException]:
        caught: list[BaseException] = []

        async def main() -> None:
            for call in (agent.history, lambda: agent.chat("from elsewhere"), rt.create_agent):
                # The foreign run's own time limit must hold: nothing parks here.
                with trio.fail_after(HANG):
                    try:
                        await call()
                    except AgyError as exc:
                        caught.append(exc)

        trio.run(main)
        return caught

    caught = await trio.to_thread.run_sync(foreign_run)
    assert [type(e) for e in caught] == [WrongThread] * 3
    assert "Runtime.from_thread" in str(caught[0])
    # Nothing the foreign run asked for happened.
    assert await user_prompts(agent) == ["before"]
    assert len(rt.agents) == 1
    await _still_works(rt, agent)


async def test_a_command_from_an_asyncio_loop_on_another_thread_fails_at_once(
    rt: agy_trio.Runtime,
) -> None:
    agent = await rt.create_agent()

    def foreign_loop() -> BaseException | None:
        async def main() -> None:
            await agent.history()

        try:
            asyncio.run(main())
        except AgyError as exc:
            return exc
        return None

    error = await trio.to_thread.run_sync(foreign_loop)
    assert isinstance(error, WrongThread)
    await _still_works(rt, agent)


async def test_from_thread_serves_a_worker_thread(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()

    def worker() -> tuple[str, list[tuple[str, str]], int]:
        response = rt.from_thread(agent.chat, "from a worker")
        text = rt.from_thread(response.text)
        history = rt.from_thread(agent.history)
        turns = rt.from_thread(agent.turn_count)
        return text, [(m.role, m.text) for m in history], turns

    with trio.fail_after(HANG):
        text, history, turns = await trio.to_thread.run_sync(worker)
    assert text == "You said: from a worker"
    assert history == [("user", "from a worker"), ("assistant", "You said: from a worker")]
    assert turns == 1
    await _still_works(rt, agent)


async def test_from_thread_serves_many_threads_at_once(rt: agy_trio.Runtime) -> None:
    agents = [await rt.create_agent(AgentConfig(name=f"a{i}")) for i in range(4)]

    def worker(agent: agy_trio.AgentHandle) -> list[str]:
        answers = []
        for turn in range(5):
            response = rt.from_thread(agent.chat, f"{agent.agent_id} turn {turn}")
            answers.append(rt.from_thread(response.text))
        return answers

    results: dict[str, list[str]] = {}

    async def run(agent: agy_trio.AgentHandle) -> None:
        results[agent.agent_id] = await trio.to_thread.run_sync(worker, agent)

    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            for agent in agents:
                nursery.start_soon(run, agent)
    for agent in agents:
        expected = [f"You said: {agent.agent_id} turn {t}" for t in range(5)]
        assert results[agent.agent_id] == expected
        assert await agent.turn_count() == 5


async def test_from_thread_on_the_runtimes_own_thread_is_refused(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    with pytest.raises(WrongThread, match="await the call"):
        rt.from_thread(agent.history)
    await _still_works(rt, agent)


async def test_from_thread_after_the_run_finished_raises_runtime_closed() -> None:
    box: dict[str, Any] = {}
    async with agy_trio.open_runtime(FAST, backend=ScriptedBackend()) as rt:
        box["rt"], box["agent"] = rt, await rt.create_agent()

    def later() -> BaseException | None:
        try:
            box["rt"].from_thread(box["agent"].history)
        except AgyError as exc:
            return exc
        return None

    # The runtime is closed but its Trio run still runs: the command is refused.
    assert isinstance(await trio.to_thread.run_sync(later), RuntimeClosed)


def test_from_thread_after_the_trio_run_ended_raises_runtime_closed() -> None:
    box: dict[str, Any] = {}

    async def main() -> None:
        async with agy_trio.open_runtime(FAST, backend=ScriptedBackend()) as rt:
            box["rt"], box["agent"] = rt, await rt.create_agent()

    trio.run(main)
    with pytest.raises(RuntimeClosed):
        box["rt"].from_thread(box["agent"].history)


async def test_try_shutdown_from_a_worker_thread_removes_the_agent(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    await (await agent.chat("hello")).text()
    keeper = await rt.create_agent(AgentConfig(name="keeper"))

    await trio.to_thread.run_sync(agent.try_shutdown)
    with trio.fail_after(HANG):
        await until_gone(agent)
    assert rt.agents == [keeper]
    await _still_works(rt, keeper)
    # Leaving the runtime (the fixture, under its time limit) does not hang.


async def test_try_shutdown_from_a_worker_thread_never_raises_or_blocks(
    rt: agy_trio.Runtime,
) -> None:
    agents = [await rt.create_agent(AgentConfig(name=f"a{i}")) for i in range(3)]

    def storm() -> None:
        # Twice each, and once more after the runtime is gone (below): no error ever.
        for agent in agents:
            agent.try_shutdown()
            agent.try_shutdown()

    await trio.to_thread.run_sync(storm)
    with trio.fail_after(HANG):
        for agent in agents:
            await until_gone(agent)
    assert rt.agents == []


async def test_try_shutdown_from_a_worker_thread_mid_turn() -> None:
    def script(agent_id: str, prompt: str, index: int) -> Turn:
        return Turn([Say("partial", chunks=1), Hang()])

    with trio.fail_after(HANG):
        async with agy_trio.open_runtime(FAST, backend=ScriptedBackend(script)) as rt:
            agent = await rt.create_agent()
            response = await agent.chat("hang here")
            assert await response.__anext__() == "partial"

            await trio.to_thread.run_sync(agent.try_shutdown)
            await until_gone(agent)
            # The reader learns the turn is over instead of waiting forever.
            assert [delta async for delta in response] == []
            assert response.stop_reason is StopReason.CANCELLED
            assert rt.statistics().active_turns == 0


async def test_try_shutdown_after_the_trio_run_ended_does_not_raise() -> None:
    box: dict[str, Any] = {}

    async def main() -> None:
        async with agy_trio.open_runtime(FAST, backend=ScriptedBackend()) as rt:
            box["agent"] = await rt.create_agent()

    await trio.to_thread.run_sync(trio.run, main)
    await trio.to_thread.run_sync(box["agent"].try_shutdown)
    box["agent"].try_shutdown()


async def test_from_thread_in_asyncio_code_hosting_the_run_is_refused() -> None:
    from agy_trio.adapters.guest import GuestHost, run_trio_guest

    outcome: list[BaseException] = []

    async def trio_main() -> None:
        backend = ScriptedBackend(host=GuestHost())
        async with agy_trio.open_runtime(FAST, backend=backend) as rt:
            agent = await rt.create_agent()
            done = trio.Event()
            token = trio.lowlevel.current_trio_token()

            def from_the_loop() -> None:
                # Plain asyncio code on the thread of the guest run: blocking
                # here would stop the run for good.
                try:
                    rt.from_thread(agent.history)
                except AgyError as exc:
                    outcome.append(exc)
                token.run_sync_soon(done.set)

            asyncio.get_running_loop().call_soon(from_the_loop)
            with trio.fail_after(HANG):
                await done.wait()
            await _still_works(rt, agent)

    await trio.to_thread.run_sync(asyncio.run, run_trio_guest(trio_main))
    assert [type(e) for e in outcome] == [WrongThread]
