"""The asyncio host thread: round trips, cancellation both ways, death, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import pytest
import trio
import trio.lowlevel
import trio.testing

from agy_trio.adapters.aio_host import AioHost
from agy_trio.errors import ChannelClosed, OperationTimeout


@pytest.fixture
async def host() -> AsyncIterator[AioHost]:
    async with trio.open_nursery() as nursery:
        h = AioHost("test-host")
        await h.start(nursery)
        try:
            yield h
        finally:
            with trio.CancelScope(shield=True):
                await h.aclose()
            nursery.cancel_scope.cancel()
    assert not any(t.name == "test-host" for t in threading.enumerate())


async def _other_tasks() -> int:
    return len(asyncio.all_tasks()) - 1


async def test_run_returns_result_from_the_host_thread(host: AioHost) -> None:
    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert await host.run(where) == "test-host"


async def test_run_propagates_exceptions(host: AioHost) -> None:
    async def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await host.run(boom)


async def test_cancelling_caller_cancels_and_awaits_the_asyncio_task(host: AioHost) -> None:
    started = trio.Event()
    unwound: list[bool] = []

    async def forever() -> None:
        host.wake_trio(started.set)
        try:
            await asyncio.Event().wait()
        finally:
            unwound.append(True)

    with trio.move_on_after(5) as scope:
        async with trio.open_nursery() as nursery:

            async def call() -> None:
                await host.run(forever)

            nursery.start_soon(call)
            await started.wait()
            nursery.cancel_scope.cancel()
    assert not scope.cancelled_caught
    # The cancellation returned only after the asyncio side unwound.
    assert unwound == [True]
    assert await host.run(_other_tasks) == 0


async def test_cancelled_before_submission_never_starts(host: AioHost) -> None:
    ran: list[bool] = []

    async def mark() -> None:
        ran.append(True)

    with trio.CancelScope() as scope:
        scope.cancel()
        await host.run(mark)
    assert scope.cancelled_caught
    assert ran == []
    assert await host.run(_other_tasks) == 0


async def test_call_trio_runs_trio_code_and_returns(host: AioHost) -> None:
    trio_thread = threading.current_thread().name

    async def in_trio(x: int) -> tuple[int, str]:
        await trio.lowlevel.checkpoint()
        return x * 2, threading.current_thread().name

    async def from_asyncio() -> tuple[int, str]:
        return await host.call_trio(in_trio, 21)

    assert await host.run(from_asyncio) == (42, trio_thread)


async def test_call_trio_propagates_errors(host: AioHost) -> None:
    async def fails() -> None:
        await trio.lowlevel.checkpoint()
        raise ValueError("no")

    async def from_asyncio() -> None:
        await host.call_trio(fails)

    with pytest.raises(ValueError, match="no"):
        await host.run(from_asyncio)


async def test_cancelling_asyncio_side_cancels_the_trio_call(host: AioHost) -> None:
    trio_cancelled = trio.Event()
    aio_started: list[asyncio.Event] = []

    async def slow() -> None:
        host.loop.call_soon_threadsafe(aio_started[0].set)
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            trio_cancelled.set()
            raise

    async def from_asyncio() -> str:
        aio_started.append(asyncio.Event())
        task = asyncio.ensure_future(host.call_trio(slow))
        await aio_started[0].wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "finished"

    assert await host.run(from_asyncio) == "cancelled"
    with trio.fail_after(5):
        await trio_cancelled.wait()


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


async def test_asyncio_side_cancel_waits_for_the_trio_call_to_unwind(host: AioHost) -> None:
    events: list[str] = []
    aio_started: list[asyncio.Event] = []

    async def tool() -> None:
        host.loop.call_soon_threadsafe(aio_started[0].set)
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                for _ in range(5):  # cleanup that takes a few scheduler rounds
                    await trio.lowlevel.checkpoint()
            events.append("trio unwound")

    async def from_asyncio() -> list[str]:
        aio_started.append(asyncio.Event())
        task = asyncio.ensure_future(host.call_trio(tool))
        await aio_started[0].wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        events.append("asyncio saw the cancellation")
        return list(events)

    assert await host.run(from_asyncio) == ["trio unwound", "asyncio saw the cancellation"]


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
