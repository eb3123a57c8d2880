"""Run one async function over many items at once, within a deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import trio

__all__ = ["each_within"]

T = TypeVar("T")


async def each_within(
    seconds: float, fn: Callable[[T], Awaitable[object]], items: Iterable[T]
) -> bool:
    """Run ``fn(item)`` for every item concurrently; stop them all after ``seconds``.

    Used to end many agents at shutdown, where one slow agent must not hold up
    the others and none may hold up the whole shutdown for longer than its grace.

    Args:
        seconds: How long they may take together.
        fn: The work for one item; it should handle its own errors (one that
            escapes cancels the others, as in any nursery).
        items: What to run it for.

    Returns:
        True if every call finished in time, False if the deadline cut them short.
    """
    with trio.move_on_after(seconds) as scope:
        async with trio.open_nursery() as nursery:
            for item in items:
                nursery.start_soon(fn, item)
    return not scope.cancelled_caught
