"""What the harness-process tests share: is a process alive, is the loop free, asyncio tests.

These tests start stand-in harness processes of their own and watch them from
outside, through ``/proc`` (Linux only), polling since no event reports another
process's state.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` (something another thread or process brings about)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def run_counting_loop_ticks(fn: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """``asyncio.run(fn())``, and how often a 10 ms ticker on the same loop ran meanwhile.

    A call that blocks the loop leaves the ticker next to no turns: a test
    asserts a floor to show the loop stayed free while the call waited.
    """

    async def main() -> tuple[T, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            return await fn(), ticks
        finally:
            ticker.cancel()

    return asyncio.run(main())


def on_asyncio(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test with ``asyncio.run``: the code under test is asyncio code.

    The suite's own async tests run on Trio (``trio_mode``); the harness pool
    and launcher live on the asyncio side, so their tests run on a loop of
    their own.
    """

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run
