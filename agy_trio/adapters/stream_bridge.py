"""A batched, backpressured queue from an asyncio producer to a Trio consumer.

Crossing a thread costs a wake-up (a write to a self-pipe and a scheduler
round) on the far side. Paying it once per stream chunk would make streaming
slow, so the producer appends to a shared deque and wakes the consumer only
when the consumer is parked waiting; everything produced meanwhile travels in
the same batch. When the consumer falls behind by ``high_water`` items the
producer parks until the consumer has drained half of them (backpressure).

The queue takes no lock per item. The consumer parks by putting itself in a
one-place slot and then looking at the queue again; the producer appends and
then claims whatever waits in the slot. Claiming is ``list.pop()``, a single
step under the GIL, so exactly one side gets a parked party: either the
producer (which then wakes it) or the party itself (which then does not
park). The producer parks at high water the same way. Deque appends and
pops are atomic too, so the consumer takes a batch item by item.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import trio

from agy_trio.errors import ConfigError

__all__ = ["StreamBridge"]

T = TypeVar("T")


class _Waker(Protocol):
    def wake_trio(self, fn: Callable[..., object], *args: Any) -> None: ...


class StreamBridge(Generic[T]):
    """Single-producer (asyncio thread) to single-consumer (Trio) event queue.

    Args:
        token: The Trio token used to wake the consumer.
        high_water: Items buffered before the producer has to wait.
        batch_max: Most items handed to the consumer at once.
        host: The host the producer runs on: the producer's side reaches Trio
            through its ``wake_trio``, which batches wake-ups (thread host) or
            calls directly (guest mode). Without one, ``token.run_sync_soon``.
    """

    __slots__ = (
        "_batch_max",
        "_consumer",
        "_done_callbacks",
        "_error",
        "_finished",
        "_high_water",
        "_host",
        "_items",
        "_low_water",
        "_released",
        "_room_waiter",
        "_token",
        "final",
    )

    def __init__(
        self,
        token: trio.lowlevel.TrioToken,
        *,
        high_water: int = 1024,
        batch_max: int = 256,
        host: _Waker | None = None,
    ) -> None:
        for field, value in (("high_water", high_water), ("batch_max", batch_max)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"must be an integer >= 1, got {value!r}", field=field)
        self._token = token
        self._host = host
        self._high_water = high_water
        self._low_water = high_water // 2
        self._batch_max = batch_max
        self._items: deque[T] = deque()
        self._finished = False
        self._error: BaseException | None = None
        # One-place slots (see the module's docstring): the parked consumer, and
        # the future the producer waits on at high water (made by the producer
        # the first time it has to wait: most turns never do).
        self._consumer: list[trio.lowlevel.Task] = []
        self._room_waiter: list[asyncio.Future[None]] | None = None
        self._released = False
        # The last item put with put_nowait (backends use it for the final event).
        self.final: T | None = None
        self._done_callbacks: list[Callable[[BaseException | None], object]] | None = None

    # ----------------------------------------------------------- producer side (asyncio)

    async def put(self, item: T) -> None:
        """Append one item; waits while the consumer is ``high_water`` items behind."""
        items = self._items
        items.append(item)
        if self._consumer:
            self._wake_consumer()
        if len(items) >= self._high_water and not self._released:
            await self._wait_for_room()

    async def _wait_for_room(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        slot = self._room_waiter
        if slot is None:
            slot = self._room_waiter = []
        slot.append(waiter)
        # The consumer may have drained (or released) before it could see the waiter.
        if len(self._items) <= self._low_water or self._released:
            try:
                slot.pop()
            except IndexError:
                pass  # the other side claimed it: it resolves the waiter
            else:
                return
        await waiter

    def put_nowait(self, item: T) -> None:
        """Append one item regardless of backpressure (for a final event); never waits."""
        if self._finished:
            return
        self._items.append(item)
        self.final = item
        if self._consumer:
            self._wake_consumer()

    def finish(self, error: BaseException | None = None) -> None:
        """Mark the end of the stream, normally or with ``error``; idempotent.

        Called by the producer, or from Trio once the producer is gone (its
        host died): never by both at once.
        """
        if self._finished:
            return
        self._error = error
        self._finished = True
        if self._consumer:
            self._wake_consumer()
        self._in_trio(self._run_done_callbacks)

    def add_done_callback(self, callback: Callable[[BaseException | None], object]) -> None:
        """Trio thread: call ``callback(error)`` in Trio once the producer has finished.

        A callback added after the end runs soon (never inside this call).
        """
        if self._done_callbacks is None:
            self._done_callbacks = [callback]
        else:
            self._done_callbacks.append(callback)
        if self._finished:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._run_done_callbacks)

    def _run_done_callbacks(self) -> None:
        callbacks = self._done_callbacks
        if callbacks:
            self._done_callbacks = None
            for callback in callbacks:
                callback(self._error)

    def release(self) -> None:
        """Stop applying backpressure (nobody reads any more); any thread, never raises."""
        self._released = True
        self._resolve_room_waiter()

    @property
    def finished(self) -> bool:
        """Whether the producer has finished."""
        return self._finished

    def _wake_consumer(self) -> None:
        try:
            task = self._consumer.pop()
        except IndexError:
            return  # the consumer took itself back: it does not park
        self._in_trio(trio.lowlevel.reschedule, task)

    def _in_trio(self, fn: Callable[..., object], *args: Any) -> None:
        # try/except rather than contextlib.suppress: this runs once per batch.
        try:
            if self._host is not None:
                self._host.wake_trio(fn, *args)
            else:
                self._token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            pass

    def _resolve_room_waiter(self) -> None:
        slot = self._room_waiter
        if slot is None:
            return
        try:
            waiter = slot.pop()
        except IndexError:
            return
        with contextlib.suppress(RuntimeError):  # the producer's loop is closed
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter)

    # ----------------------------------------------------------- consumer side (Trio)

    async def receive_batch(self) -> Sequence[T]:
        """Wait for items and return up to ``batch_max`` of them, oldest first.

        A checkpoint on every path.

        Raises:
            trio.EndOfChannel: The producer finished and every item was delivered.
            BaseException: The producer finished with this error (after the items).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        items = self._items
        parked = False
        while not items and not self._finished:
            # Register, then look again: the producer looks for a parked
            # consumer only after it has appended (or finished).
            slot = self._consumer
            slot.append(trio.lowlevel.current_task())
            if items or self._finished:
                try:
                    slot.pop()
                except IndexError:
                    pass  # the producer claimed us: its wake-up is on its way
                else:
                    break
            # Hand-built, not a trio.Event per wait: the producer is on another
            # loop (often another thread) and claims the parked consumer
            # itself, once. The streaming benchmark (benchmarks/RESULTS.md)
            # puts the whole Trio side, bridge included, at 2.99 µs a chunk
            # against 2.56 µs for the reader's checkpoints alone.
            await trio.lowlevel.wait_task_rescheduled(self._abort_wait)
            parked = True
        if not parked:
            # Every call is a checkpoint; and other Trio tasks run between
            # batches even when the queue never empties.
            await trio.lowlevel.cancel_shielded_checkpoint()
        if items:
            return self._take()
        if self._error is not None:
            raise self._error
        raise trio.EndOfChannel

    def _abort_wait(self, _: Any) -> trio.lowlevel.Abort:
        try:
            self._consumer.pop()
        except IndexError:
            # The producer already claimed us and a wake-up is on its way.
            return trio.lowlevel.Abort.FAILED
        return trio.lowlevel.Abort.SUCCEEDED

    def _take(self) -> list[T]:
        items = self._items
        popleft = items.popleft
        # Item by item: the producer may be appending meanwhile.
        batch = [popleft() for _ in range(min(len(items), self._batch_max))]
        if self._room_waiter and len(items) <= self._low_water:
            self._resolve_room_waiter()
        return batch


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
