"""A batched, backpressured queue from an asyncio producer to a Trio consumer.

Crossing a thread costs a wake-up (a write to a self-pipe and a scheduler
round) on the far side. Paying it once per stream chunk would make streaming
slow, so the producer appends to a shared deque and wakes the consumer only
when the consumer is parked waiting; everything produced meanwhile travels in
the same batch. When the consumer falls behind by ``high_water`` items the
producer parks until the consumer has drained half of them (backpressure).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import trio

from agy_trio.core.errors import ChannelClosed

__all__ = ["StreamBridge"]

T = TypeVar("T")


class StreamBridge(Generic[T]):
    """Single-producer (asyncio thread) to single-consumer (Trio) event queue.

    Args:
        token: The Trio token used to wake the consumer.
        high_water: Items buffered before the producer has to wait.
        batch_max: Most items handed to the consumer at once.
    """

    def __init__(
        self, token: trio.lowlevel.TrioToken, *, high_water: int = 1024, batch_max: int = 256
    ) -> None:
        if high_water < 1 or batch_max < 1:
            raise ValueError("high_water and batch_max must be positive")
        self._token = token
        self._high_water = high_water
        self._low_water = high_water // 2
        self._batch_max = batch_max
        self._lock = threading.Lock()
        self._items: deque[T] = deque()
        self._finished = False
        self._error: BaseException | None = None
        self._consumer: trio.lowlevel.Task | None = None
        self._producer_waiter: asyncio.Future[None] | None = None
        self._producer_loop: asyncio.AbstractEventLoop | None = None
        self._consumer_gone = False
        self._finished_event = trio.Event()

    # ----------------------------------------------------------- producer side (asyncio)

    async def put(self, item: T) -> None:
        """Append one item; waits while the consumer is ``high_water`` items behind.

        Raises:
            ChannelClosed: The consumer has gone away (:meth:`abandon`).
        """
        with self._lock:
            if self._consumer_gone:
                raise ChannelClosed("the stream's reader has gone away")
            self._items.append(item)
            consumer, self._consumer = self._consumer, None
            waiter = None
            if len(self._items) >= self._high_water:
                loop = asyncio.get_running_loop()
                self._producer_loop = loop
                waiter = self._producer_waiter = loop.create_future()
        if consumer is not None:
            self._wake(consumer)
        if waiter is not None:
            await waiter

    def put_nowait(self, item: T) -> None:
        """Append one item regardless of backpressure (for a final event); never waits."""
        with self._lock:
            if self._consumer_gone or self._finished:
                return
            self._items.append(item)
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            self._wake(consumer)

    def finish(self, error: BaseException | None = None) -> None:
        """Mark the end of the stream, normally or with ``error``; idempotent, any thread."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._error = error
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            self._wake(consumer)
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._finished_event.set)

    async def wait_finished(self) -> BaseException | None:
        """Wait (in Trio) until the producer has finished; return its error, if any."""
        await self._finished_event.wait()
        return self._error

    @property
    def finished(self) -> bool:
        """Whether the producer has finished."""
        return self._finished

    def _wake(self, consumer: trio.lowlevel.Task) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(trio.lowlevel.reschedule, consumer)

    # ----------------------------------------------------------- consumer side (Trio)

    async def receive_batch(self) -> Sequence[T]:
        """Wait for items and return up to ``batch_max`` of them, oldest first.

        Raises:
            trio.EndOfChannel: The producer finished and every item was delivered.
            BaseException: The producer finished with this error (after the items).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            with self._lock:
                if self._items:
                    batch = self._take_locked()
                    break
                if self._finished:
                    if self._error is not None:
                        raise self._error
                    raise trio.EndOfChannel
                task = self._consumer = trio.lowlevel.current_task()

            def abort(_: Any, task: trio.lowlevel.Task = task) -> trio.lowlevel.Abort:
                with self._lock:
                    if self._consumer is task:
                        self._consumer = None
                        return trio.lowlevel.Abort.SUCCEEDED
                # The producer already claimed us and a wake-up is on its way.
                return trio.lowlevel.Abort.FAILED

            await trio.lowlevel.wait_task_rescheduled(abort)
        # Let other Trio tasks run between batches even when the queue never empties.
        await trio.lowlevel.cancel_shielded_checkpoint()
        return batch

    def _take_locked(self) -> list[T]:
        items = self._items
        if len(items) <= self._batch_max:
            batch = list(items)
            items.clear()
        else:
            batch = [items.popleft() for _ in range(self._batch_max)]
        waiter = self._producer_waiter
        if waiter is not None and len(items) <= self._low_water:
            self._producer_waiter = None
            loop = self._producer_loop
            assert loop is not None
            with contextlib.suppress(RuntimeError):  # producer loop closed
                loop.call_soon_threadsafe(_resolve, waiter)
        return batch

    def abandon(self) -> None:
        """Tell the producer nobody reads any more: its next :meth:`put` raises."""
        with self._lock:
            self._consumer_gone = True
            self._items.clear()
            waiter, self._producer_waiter = self._producer_waiter, None
            loop = self._producer_loop
        if waiter is not None and loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, waiter)

    @property
    def buffered(self) -> int:
        """Items produced but not yet received."""
        return len(self._items)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
