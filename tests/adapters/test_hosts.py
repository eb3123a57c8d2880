"""What every asyncio host guarantees, checked on the thread host and in guest mode alike.

Each guarantee is a body run once per host kind (:data:`HOST_RUNNERS`); the
runners check that no asyncio task and no thread outlives the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.lowlevel

from tests.adapters.hosts import HOST_RUNNERS


async def errors_cross_with_their_type(host: Any) -> None:
    async def boom() -> None:
        raise KeyError("x")

    async def slow_boom() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("later")

    with pytest.raises(KeyError):
        await host.run(boom)
    with pytest.raises(ValueError, match="later"):
        await host.run(slow_boom)


async def cancelling_the_trio_caller_cancels_and_awaits_the_asyncio_task(host: Any) -> None:
    started = trio.Event()
    unwound: list[bool] = []

    async def forever() -> None:
        host.wake_trio(started.set)
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.005)  # unwinding takes a few loop turns
            unwound.append(True)

    with trio.move_on_after(5) as guard:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(host.run, forever)
            await started.wait()
            nursery.cancel_scope.cancel()
    assert not guard.cancelled_caught
    # The cancellation returned only after the asyncio side unwound.
    assert unwound == [True]
    assert host.statistics().pending_calls == 0


async def cancelled_before_submission_never_starts(host: Any) -> None:
    ran: list[bool] = []

    async def mark() -> None:
        ran.append(True)

    async def after() -> None:
        pass

    with trio.CancelScope() as scope:
        scope.cancel()
        await host.run(mark)
    assert scope.cancelled_caught
    # Calls start in the order they are submitted: had ``mark`` been
    # submitted, it would have run by the time a later call is over.
    await host.run(after)
    assert ran == []


async def call_trio_runs_trio_code_and_returns(host: Any) -> None:
    async def in_trio(x: int) -> tuple[int, int, str | None]:
        await trio.sleep(0.001)
        return x * 2, threading.get_ident(), trio.lowlevel.current_task().name

    async def from_asyncio() -> tuple[int, int, str | None]:
        return await host.call_trio(in_trio, 21)

    value, ident, task_name = await host.run(from_asyncio)
    assert value == 42
    assert ident == threading.get_ident()  # on Trio's thread, whichever the loop's is
    assert task_name is not None and "runner" in task_name  # ran as a Trio task


async def call_trio_propagates_errors(host: Any) -> None:
    async def fails() -> None:
        await trio.lowlevel.checkpoint()
        raise ValueError("no")

    async def from_asyncio() -> None:
        await host.call_trio(fails)

    with pytest.raises(ValueError, match="no"):
        await host.run(from_asyncio)


async def cancelling_the_asyncio_side_cancels_the_trio_call_and_waits(host: Any) -> None:
    events: list[str] = []
    trio_started: list[asyncio.Event] = []  # made on the loop's side

    async def slow() -> None:
        host.loop.call_soon_threadsafe(trio_started[0].set)
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                for _ in range(5):  # cleanup that takes a few scheduler rounds
                    await trio.lowlevel.checkpoint()
            events.append("trio cancelled and unwound")
            raise

    async def from_asyncio() -> str:
        trio_started.append(asyncio.Event())
        task = asyncio.ensure_future(host.call_trio(slow))
        await trio_started[0].wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
            return "finished"
        events.append("asyncio saw the cancellation")
        return "cancelled"

    assert await host.run(from_asyncio) == "cancelled"
    assert events == ["trio cancelled and unwound", "asyncio saw the cancellation"]


GUARANTEES = [
    errors_cross_with_their_type,
    cancelling_the_trio_caller_cancels_and_awaits_the_asyncio_task,
    cancelled_before_submission_never_starts,
    call_trio_runs_trio_code_and_returns,
    call_trio_propagates_errors,
    cancelling_the_asyncio_side_cancels_the_trio_call_and_waits,
]


@pytest.mark.parametrize("kind", sorted(HOST_RUNNERS))
@pytest.mark.parametrize("guarantee", GUARANTEES, ids=lambda fn: fn.__name__)
def test_every_host_keeps(guarantee: Callable[[Any], Awaitable[None]], kind: str) -> None:
    HOST_RUNNERS[kind](guarantee)
