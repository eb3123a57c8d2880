"""The Trio side of the in-process contenders: agy_trio's runtime, thread host or guest mode.

Every contender that measures agy_trio itself opens one runtime through the
public API, with the settings ``agy-trio serve`` uses (chat starts are not
paced), over a backend made inside the run (a guest-mode host belongs to the
asyncio loop that hosts Trio), and runs its body there. A service that a
measurement talks to (a server, a dispatch loop) runs beside it (:func:`beside`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")


async def beside(
    service: Callable[..., Awaitable[Any]],
    measure: Callable[[], Awaitable[T]],
    *,
    started: bool = False,
) -> T:
    """``measure()`` with ``service`` running beside it, cancelled once ``measure`` is done.

    ``started``: ``service`` reports when it is ready (``task_status``), and ``measure``
    starts after that.
    """
    async with trio.open_nursery() as nursery:
        if started:
            await nursery.start(service)
        else:
            nursery.start_soon(service)
        result = await measure()
        nursery.cancel_scope.cancel()
    return result


def run_trio(main: Callable[[], Awaitable[T]], *, guest: bool = False) -> T:
    """Run ``main`` with ``trio.run``, or in guest mode: Trio as a guest of ``asyncio.run``."""
    if guest:
        from agy_trio.adapters.guest import run_trio_guest

        return asyncio.run(run_trio_guest(main))
    return trio.run(main)


@contextlib.asynccontextmanager
async def open_bench_runtime(backend: Any, **settings: Any) -> AsyncIterator[Any]:
    """``open_runtime`` over ``backend``, chat starts not paced (``settings``: any other)."""
    import agy_trio

    config = agy_trio.RuntimeConfig(inter_agent_delay=0, **settings)
    async with agy_trio.open_runtime(config, backend=backend) as rt:
        yield rt


def scripted_backend(script: Any = None, *, guest: bool = False, **options: Any) -> Any:
    """A ``ScriptedBackend`` playing ``script``; in guest mode on a ``GuestHost``."""
    from agy_trio.testing.scripted import ScriptedBackend

    if guest:
        from agy_trio.adapters.guest import GuestHost

        options["host"] = GuestHost()
    return ScriptedBackend(script, **options)


def on_runtime(
    make_backend: Callable[[], Any],
    body: Callable[[Any, Any], Awaitable[T]],
    *,
    guest: bool = False,
) -> T:
    """``body(runtime, backend)`` on a runtime over ``make_backend()``; its answer."""

    async def main() -> T:
        backend = make_backend()
        async with open_bench_runtime(backend) as rt:
            return await body(rt, backend)

    return run_trio(main, guest=guest)


def on_scripted(
    body: Callable[[Any, Any], Awaitable[T]], script: Any = None, *, guest: bool = False
) -> T:
    """``body(runtime, backend)`` on a runtime over a ``ScriptedBackend`` playing ``script``."""
    return on_runtime(lambda: scripted_backend(script, guest=guest), body, guest=guest)
