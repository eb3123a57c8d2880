"""Both asyncio hosts, ready for a test: the thread host and Trio as a guest of asyncio.

Each runner starts a fresh host, runs ``body(host)`` in Trio, closes the host
and checks that nothing it started is left: no asyncio task, no thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from agy_trio.adapters.aio_host import AioHost
from agy_trio.adapters.guest import GuestHost, run_trio_guest

T = TypeVar("T")


async def _other_tasks() -> int:
    return len(asyncio.all_tasks()) - 1


@asynccontextmanager
async def thread_host(name: str = "test-host") -> AsyncIterator[AioHost]:
    """A started thread host, closed on leaving; its thread must be gone by then."""
    async with trio.open_nursery() as nursery:
        host = AioHost(name)
        await host.start(nursery)
        try:
            yield host
        finally:
            with trio.CancelScope(shield=True):
                await host.aclose()
            nursery.cancel_scope.cancel()
    assert not any(t.name == name for t in threading.enumerate())


def on_thread_host(fn: Callable[[AioHost], Awaitable[T]]) -> T:
    """Run ``fn(host)`` in a Trio run of its own with a thread host; check nothing is left."""

    async def trio_main() -> T:
        async with thread_host() as host:
            result = await fn(host)
            # No asyncio task a call started outlives it.
            assert await host.run(_other_tasks) == 0
            return result

    return trio.run(trio_main)


def in_guest(fn: Callable[[GuestHost], Awaitable[T]], *, spin: int = 4) -> T:
    """Run ``fn(host)`` in Trio as a guest of a fresh asyncio loop; check nothing is left."""

    async def trio_main() -> T:
        host = GuestHost("test-guest", spin=spin)
        async with trio.open_nursery() as nursery:
            await host.start(nursery)
            try:
                return await fn(host)
            finally:
                with trio.CancelScope(shield=True):
                    await host.aclose()
                nursery.cancel_scope.cancel()

    async def asyncio_main() -> T:
        before = asyncio.all_tasks()
        result = await run_trio_guest(trio_main)
        # No asyncio task the host started outlives the Trio run.
        assert asyncio.all_tasks() == before
        return result

    return asyncio.run(asyncio_main())


HostRunner = Callable[[Callable[[Any], Awaitable[Any]]], Any]
"""Runs ``body(host)`` on one kind of host (see :data:`HOST_RUNNERS`)."""

HOST_RUNNERS: dict[str, HostRunner] = {
    "thread": on_thread_host,
    "guest, no spin": lambda body: in_guest(body, spin=0),
    "guest, spin 4": lambda body: in_guest(body, spin=4),
}
