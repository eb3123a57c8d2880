"""The asyncio host thread: round trips, death, shutdown, a foreign loop policy.

What it guarantees alike with guest mode (errors, cancellation both ways,
calls into Trio) is checked in ``test_hosts.py``.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
import trio
import trio.lowlevel
import trio.testing

from agy_trio.adapters.aio_host import AioHost
from agy_trio.errors import ChannelClosed, OperationTimeout


async def _other_tasks() -> int:
    return len(asyncio.all_tasks()) - 1


async def test_run_returns_result_from_the_host_thread(host: AioHost) -> None:
    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert await host.run(where) == "test-host"


async def test_dead_host_fails_pending_and_future_calls() -> None:
    async with trio.open_nursery() as nursery:
        h = AioHost("dying-host")
        await h.start(nursery)
        started = trio.Event()

        async def forever() -> None:
            h.wake_trio(started.set)
            await asyncio.Event().wait()

        errors: list[BaseException] = []
        failed = trio.Event()

        async def call() -> None:
            try:
                await h.run(forever)
            except ChannelClosed as exc:
                errors.append(exc)
                failed.set()

        nursery.start_soon(call)
        await started.wait()

        def die() -> None:
            raise SystemExit("killed")

        h.loop.call_soon_threadsafe(die)
        with trio.fail_after(5):
            await failed.wait()
        assert "crashed" in str(errors[0])
        with pytest.raises(ChannelClosed):
            await h.run(_other_tasks)
        with pytest.raises(ChannelClosed, match="crashed"):
            await h.aclose()
    assert not any(t.name == "dying-host" for t in threading.enumerate())


async def test_aclose_reports_a_thread_that_does_not_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    release = threading.Event()
    async with trio.open_nursery() as nursery:
        h = AioHost("stuck-host")
        await h.start(nursery)

        def block() -> None:
            release.wait(30)  # a blocking call such as the SDK's harness shutdown

        h.loop.call_soon_threadsafe(block)
        with pytest.raises(OperationTimeout) as info:
            await h.aclose(timeout=10)
        assert info.value.duration == 10
        release.set()
        # Once unblocked the thread exits; wait for it in real time.
        await trio.to_thread.run_sync(h._thread.join)  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()


async def test_statistics(host: AioHost) -> None:
    stats = host.statistics()
    assert stats.alive and stats.pending_calls == 0 and stats.name == "test-host"


async def test_host_ignores_a_foreign_event_loop_policy() -> None:
    class RefusingPolicy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            raise AssertionError("the host must not build its loop through the policy")

    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(RefusingPolicy())
    try:
        async with trio.open_nursery() as nursery:
            h = AioHost("policy-host")
            await h.start(nursery)

            async def kind() -> str:
                return type(asyncio.get_running_loop()).__name__

            assert await h.run(kind) in {"_UnixSelectorEventLoop", "ProactorEventLoop"}
            await h.aclose()
    finally:
        asyncio.set_event_loop_policy(old)


async def test_many_concurrent_callers_each_get_their_own_answer(host: AioHost) -> None:
    async def echo(n: int) -> int:
        await asyncio.sleep(0)
        return n

    results: dict[int, int] = {}

    async def caller(n: int) -> None:
        for i in range(20):
            results[n * 100 + i] = await host.run(echo, n * 100 + i)

    async with trio.open_nursery() as nursery:
        for n in range(64):
            nursery.start_soon(caller, n)
    assert results == {k: k for k in results} and len(results) == 64 * 20
    assert host.statistics().pending_calls == 0
