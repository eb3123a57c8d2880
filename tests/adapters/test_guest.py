"""Guest mode: Trio as a guest of an asyncio loop, with the agents' asyncio code on that loop.

These tests are plain functions that drive asyncio (``asyncio.run``), because
in guest mode asyncio owns the thread and Trio runs inside it. What both hosts
guarantee alike (errors, cancellation both ways, calls into Trio) is checked in
``test_hosts.py``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, TypeVar

import pytest
import trio
import trio.lowlevel

import agy_trio
from agy_trio import RuntimeConfig
from agy_trio.adapters.guest import GuestHost, run_trio_guest
from agy_trio.adapters.scripted import CallTool, Hang, Say, ScriptedBackend, Turn
from agy_trio.errors import BackendError, ChannelClosed, ConfigError
from tests.adapters.hosts import in_guest

FAST = RuntimeConfig(inter_agent_delay=0)
T = TypeVar("T")

SPINS = pytest.mark.parametrize("spin", [0, 4])


# ---------------------------------------------------------------------------- run_trio_guest


def test_run_trio_guest_returns_the_trio_result_on_the_same_thread() -> None:
    async def trio_main(x: int) -> tuple[int, int, str]:
        await trio.sleep(0.001)
        return x + 1, threading.get_ident(), asyncio.get_running_loop().__class__.__name__

    async def main() -> None:
        value, ident, _ = await run_trio_guest(trio_main, 41)
        assert value == 42
        assert ident == threading.get_ident()

    asyncio.run(main())


def test_run_trio_guest_raises_the_trio_error() -> None:
    async def trio_main() -> None:
        await trio.lowlevel.checkpoint()
        raise KeyError("trio side")

    with pytest.raises(KeyError, match="trio side"):
        asyncio.run(run_trio_guest(trio_main))


def test_asyncio_keeps_running_while_trio_runs() -> None:
    ticks: list[int] = []
    trio_side: asyncio.Future[tuple[trio.lowlevel.TrioToken, trio.Event]]

    async def ticker() -> None:
        token, ticked = await trio_side
        for i in range(5):
            ticks.append(i)
            await asyncio.sleep(0)
        token.run_sync_soon(ticked.set)

    async def trio_main() -> int:
        ticked = trio.Event()
        trio_side.set_result((trio.lowlevel.current_trio_token(), ticked))
        # Trio waits for asyncio's ticker: it must run while Trio waits, or this never ends.
        with trio.fail_after(10):
            await ticked.wait()
        return len(ticks)

    async def main() -> int:
        nonlocal trio_side
        trio_side = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(ticker())
        seen = await run_trio_guest(trio_main)
        await task
        return seen

    assert asyncio.run(main()) == 5
    assert ticks == [0, 1, 2, 3, 4]


def test_cancelling_run_trio_guest_cancels_trio_and_waits_for_it() -> None:
    unwound: list[str] = []
    started = asyncio.Event()

    async def trio_main() -> None:
        try:
            started.set()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.01)  # unwinding takes a while; asyncio must wait
            unwound.append("trio")

    async def main() -> None:
        task = asyncio.create_task(run_trio_guest(trio_main))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert unwound == ["trio"]

    asyncio.run(main())


# ---------------------------------------------------------------------------- Trio -> asyncio


@SPINS
def test_round_trip_on_one_thread(spin: int) -> None:
    async def body(host: GuestHost) -> None:
        async def where(x: int) -> tuple[int, int]:
            await asyncio.sleep(0)
            return x * 2, threading.get_ident()

        assert await host.run(where, 21) == (42, threading.get_ident())
        # Many in a row, and concurrent callers.
        for i in range(50):
            assert (await host.run(where, i))[0] == 2 * i
        results: list[int] = []

        async def caller(i: int) -> None:
            results.append((await host.run(where, i))[0])

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(caller, i)
        assert sorted(results) == [2 * i for i in range(20)]

    in_guest(body, spin=spin)


@SPINS
def test_a_slow_task_parks_the_caller_and_wakes_it(spin: int) -> None:
    async def body(host: GuestHost) -> None:
        async def slow() -> str:
            await asyncio.sleep(0.02)
            return "done"

        with trio.fail_after(5):
            assert await host.run(slow) == "done"
        assert host.statistics().pending_calls == 0

    in_guest(body, spin=spin)


def test_a_task_cancelled_from_the_asyncio_side_is_a_backend_error() -> None:
    async def body(host: GuestHost) -> None:
        async def cancels_itself() -> None:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)

        with pytest.raises(BackendError, match="cancelled from the asyncio side"):
            await host.run(cancels_itself)

    in_guest(body)


# ---------------------------------------------------------------------------- life cycle


async def test_start_outside_guest_mode_is_a_config_error() -> None:
    host = GuestHost()
    async with trio.open_nursery() as nursery:
        with pytest.raises(ConfigError, match="guest"):
            await host.start(nursery)


def test_invalid_spin() -> None:
    with pytest.raises(ConfigError):
        GuestHost(spin=-1)


def test_closed_host_refuses_work_and_cancels_background_tasks() -> None:
    cancelled: list[bool] = []

    async def trio_main() -> None:
        host = GuestHost()
        async with trio.open_nursery() as nursery:
            with pytest.raises(ChannelClosed):
                _ = host.loop
            await host.start(nursery)
            assert host.alive
            started = trio.Event()

            async def background() -> None:
                host.wake_trio(started.set)
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    cancelled.append(True)
                    raise

            host.run_soon(background)
            await started.wait()
            stats = host.statistics()
            assert stats.alive and stats.asyncio_tasks >= 2
            await host.aclose()
            assert cancelled == [True]
            assert not host.alive

            async def anything() -> None:
                pass

            with pytest.raises(ChannelClosed):
                await host.run(anything)
            host.run_soon(anything)  # ignored once closed
            await host.aclose()  # idempotent
            nursery.cancel_scope.cancel()

    asyncio.run(run_trio_guest(trio_main))


def test_run_soon_from_another_thread_and_errors_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def trio_main() -> None:
        host = GuestHost()
        async with trio.open_nursery() as nursery:
            await host.start(nursery)
            done = trio.Event()

            async def fails() -> None:
                host.wake_trio(done.set)
                raise RuntimeError("background boom")

            await trio.to_thread.run_sync(host.run_soon, fails)
            await done.wait()
            await trio.sleep(0.01)
            await host.aclose()
            nursery.cancel_scope.cancel()

    asyncio.run(run_trio_guest(trio_main))
    assert "background call failed" in caplog.text


# ---------------------------------------------------------------------------- runtime in guest mode


def test_runtime_end_to_end_over_the_scripted_backend_on_one_thread() -> None:
    threads: set[int] = set()

    @agy_trio.tool
    async def lookup(key: str) -> str:
        """Look a key up (a Trio tool).

        Args:
            key: What to look up.
        """
        threads.add(threading.get_ident())
        await trio.lowlevel.checkpoint()
        return key.upper()

    def script(agent_id: str, prompt: str, index: int) -> Turn:
        if prompt == "hang":
            return Turn([Say("started", chunks=1), Hang()])
        if prompt == "tool":
            return Turn([CallTool("lookup", {"key": "abc"}), Say("used the tool")])
        return Turn([Say(f"You said: {prompt}", chunks=4)])

    async def trio_main() -> dict[str, Any]:
        threads.add(threading.get_ident())
        backend = ScriptedBackend(script, host=GuestHost())
        async with agy_trio.open_runtime(FAST, backend=backend) as rt:
            agent = await rt.create_agent(agy_trio.AgentConfig(tools=[lookup]))
            assert await agent.is_idle()
            text = await (await agent.chat("hello")).text()

            tool_response = await agent.chat("tool")
            await tool_response.text()
            (call,) = tool_response.tool_calls

            # Cancelling a reader of a hung turn stops the turn at the backend.
            response = await agent.chat("hang")
            with trio.move_on_after(0.05) as scope:
                async for _ in response:
                    pass
            assert scope.cancelled_caught
            assert backend.cancel_calls >= 1
            assert await agent.is_idle()
            assert await agent.turn_count() == 2
            # The agents' asyncio code runs on this same thread.
            threads.add(await backend.host.run(_thread_ident))
            many = await _many_agents(rt, 20)
            return {"text": text, "tool": call.result, "many": many}

    async def asyncio_main() -> dict[str, Any]:
        threads.add(threading.get_ident())
        before = asyncio.all_tasks()
        threads_before = {t.name for t in threading.enumerate()}
        result = await run_trio_guest(trio_main)
        assert asyncio.all_tasks() == before
        # No asyncio host thread was started.
        assert not any("aio-host" in t.name for t in threading.enumerate())
        assert {t.name for t in threading.enumerate()} - threads_before <= {
            t.name for t in threading.enumerate() if t.name.startswith("Trio")
        }
        return result

    result = asyncio.run(asyncio_main())
    assert result == {"text": "You said: hello", "tool": "ABC", "many": 20}
    assert len(threads) == 1


async def _thread_ident() -> int:
    return threading.get_ident()


async def _many_agents(rt: agy_trio.Runtime, n: int) -> int:
    answers: list[str] = []

    async def one(i: int) -> None:
        agent = await rt.create_agent()
        answers.append(await (await agent.chat(f"n{i}")).text())
        await agent.shutdown()

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    assert sorted(answers) == sorted(f"You said: n{i}" for i in range(n))
    return len(answers)
