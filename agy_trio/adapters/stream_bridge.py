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
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import trio

from agy_trio.core.errors import ConfigError

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
        for field, value in (("high_water", high_water), ("batch_max", batch_max)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"must be an integer >= 1, got {value!r}", field=field)
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
        self._released = False
        # The last item put with put_nowait (backends use it for the final event).
        self.final: T | None = None
        self._done_callbacks: list[Callable[[BaseException | None], object]] = []

    # ----------------------------------------------------------- producer side (asyncio)

    async def put(self, item: T) -> None:
        """Append one item; waits while the consumer is ``high_water`` items behind."""
        with self._lock:
            self._items.append(item)
            consumer, self._consumer = self._consumer, None
            waiter = None
            if len(self._items) >= self._high_water and not self._released:
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
            if self._finished:
                return
            self._items.append(item)
            self.final = item
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
            self._token.run_sync_soon(self._run_done_callbacks)

    def add_done_callback(self, callback: Callable[[BaseException | None], object]) -> None:
        """Trio thread: call ``callback(error)`` in Trio once the producer has finished.

        A callback added after the end runs soon (never inside this call).
        """
        with self._lock:
            finished = self._finished
            self._done_callbacks.append(callback)
        if finished:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._run_done_callbacks)

    def _run_done_callbacks(self) -> None:
        with self._lock:
            callbacks, self._done_callbacks = self._done_callbacks, []
        for callback in callbacks:
            callback(self._error)

    def release(self) -> None:
        """Stop applying backpressure (nobody reads any more); any thread, never raises."""
        with self._lock:
            self._released = True
            waiter, self._producer_waiter = self._producer_waiter, None
            loop = self._producer_loop
        if waiter is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # producer loop closed
                loop.call_soon_threadsafe(_resolve, waiter)

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


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
