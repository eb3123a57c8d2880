"""Time limits for many concurrent operations, enforced by one watchdog task.

A cancel scope with a deadline per command would cost a heap entry in Trio's
scheduler per command. Operations here share a few limits (``operation_timeout``
for every command, ``chat_timeout`` per agent), so within one limit start order
is deadline order: each limit keeps an insertion-ordered dict that the watchdog
reads from the front, and removing a finished entry is O(1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import trio

__all__ = ["Deadlines", "Limited"]


class Limited(Protocol):
    """Something with a time limit; ``limit`` is set by :meth:`Deadlines.track`."""

    limit: float


K = TypeVar("K", bound=Limited)


class Deadlines(Generic[K]):
    """Deadlines by time limit, and the watchdog that expires them.

    Args:
        expire: Called (in the watchdog task) with each item whose deadline passed.
    """

    def __init__(self, expire: Callable[[K], object]) -> None:
        self._expire = expire
        self._queues: dict[float, dict[K, float]] = {}
        self._watch_scope = trio.CancelScope()

    def track(self, item: K, limit: float, deadline: float | None = None) -> None:
        """Give ``item`` a deadline: ``limit`` seconds from now unless ``deadline`` is given."""
        item.limit = limit
        if deadline is None:
            deadline = trio.current_time() + limit
        queue = self._queues.get(limit)
        if queue is None:
            queue = self._queues[limit] = {}
        queue[item] = deadline
        if deadline < self._watch_scope.deadline:
            self._watch_scope.deadline = deadline

    def untrack(self, item: K) -> float:
        """Drop ``item``'s deadline and return it (infinity if it had none)."""
        queue = self._queues.get(item.limit)
        if queue is None:
            return math.inf
        return queue.pop(item, math.inf)

    async def watch(self) -> None:
        """Run forever, expiring items as their deadlines pass, oldest first."""
        while True:
            now = trio.current_time()
            wake = math.inf
            for limit, queue in self._queues.items():
                expired = []
                for item, at in queue.items():
                    if at > now:
                        wake = min(wake, at)
                        break
                    expired.append(item)
                for item in expired:
                    del queue[item]
                    self._expire(item)
                # Whatever joins this queue later is due no sooner than ``limit``
                # from now, so the watchdog need not wake for it before then.
                wake = min(wake, now + limit)
            self._watch_scope = trio.CancelScope(deadline=wake)
            with self._watch_scope:
                await trio.sleep_forever()
