"""The asyncio host: one asyncio event loop on a dedicated thread, driven from Trio.

Trio code submits coroutines to the host and awaits their results without
holding a Trio worker thread: a submission is one ``call_soon_threadsafe`` on
the asyncio side and the answer is one ``TrioToken.run_sync_soon`` back. The
same two primitives carry cancellation both ways:

* cancelling the Trio caller cancels the asyncio task and waits for it to
  finish, so nothing is left running on the loop;
* asyncio code can call *into* Trio (:meth:`AioHost.call_trio`) for tools,
  hooks and policy handlers; cancelling the asyncio side cancels the Trio call.

If the host thread dies, every pending and future call fails with
:class:`~agy_trio.errors.ChannelClosed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import outcome
import trio

from agy_trio.adapters.host_base import AsyncioHost, HostBase, HostCall, HostStatistics
from agy_trio.core.commands import WorkCancelled
from agy_trio.errors import ChannelClosed, OperationTimeout

__all__ = ["AioHost", "AsyncioHost", "HostStatistics"]

log = logging.getLogger("agy_trio.aio_host")

# Most submissions the loop starts in one iteration (see AioHost._start_submitted).
_START_BATCH = 64


class AioHost(HostBase):
    """An asyncio event loop running on its own thread, reachable from Trio.

    Use it from one Trio run: :meth:`start` inside the run, :meth:`aclose` before
    the run ends. The host is thread-safe in the directions it documents: Trio
    calls :meth:`submit` and :meth:`run`, asyncio calls :meth:`call_trio`.

    Wake-ups are batched both ways: while a wake-up of the loop is already on
    its way, further submissions just join its queue, and while a wake-up of
    Trio is on its way, further results (and stream wake-ups, see
    :meth:`wake_trio`) join theirs. One caller pays one wake-up each way; many
    concurrent callers share them. Each queue has one producer thread and one
    consumer thread and takes no lock: the consumer clears the queue's
    "wake-up scheduled" flag before it drains the queue, and the producer
    appends before it looks at the flag, so no item is ever left behind.

    Args:
        name: The thread's name (shown in thread dumps and logs).
        cancel_grace: After a Trio caller is cancelled, how long to wait for the
            asyncio task to acknowledge the cancellation before giving up on it.
            Only an asyncio loop stuck in a blocking call ever needs this: the
            caller is then released (and the task reported as abandoned) rather
            than left hanging, and what the task did is unknown to it. The
            default is generous because a loaded machine can take a second or
            more to run a cancelled task's last step, and until the task has
            answered, a cancelled caller's guarantee (it gets the result, or
            the work never ran) holds.
    """

    def __init__(self, name: str = "agy-trio-aio-host", *, cancel_grace: float = 10.0) -> None:
        super().__init__(name, cancel_grace=cancel_grace)
        self._thread: threading.Thread | None = None
        self._started = trio.Event()
        self._exited = trio.Event()
        self._crash: BaseException | None = None
        self._stopping = False
        self._dead = False
        self._loop_thread: int | None = None
        # Batched hand-offs between the threads (see the class docstring).
        self._submissions: deque[HostCall] = deque()
        self._submit_scheduled = False
        self._to_trio: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._to_trio_scheduled = False

    # ------------------------------------------------------------------ life cycle

    def _check_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._dead:
            raise self._death_reason()

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the thread and wait until its loop runs.

        Args:
            nursery: Where calls from asyncio into Trio (:meth:`call_trio`) run.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self._token = trio.lowlevel.current_trio_token()
        self._nursery = nursery
        # Daemon: a thread stuck in a blocking SDK call must not keep the
        # interpreter alive after the runtime has reported it.
        self._thread = threading.Thread(target=self._thread_main, name=self.name, daemon=True)
        self._thread.start()
        await self._started.wait()
        if self._dead:
            raise self._death_reason()

    def _thread_main(self) -> None:
        # Built directly rather than through the global event-loop policy:
        # a library that installs its own policy (trio-asyncio does) must not
        # silently change what the host runs.
        loop: asyncio.AbstractEventLoop = (
            asyncio.ProactorEventLoop()  # type: ignore[attr-defined,unused-ignore]
            if sys.platform == "win32"
            else asyncio.SelectorEventLoop()
        )
        self._loop = loop
        self._loop_thread = threading.get_ident()
        token = self._token
        assert token is not None
        try:
            loop.call_soon(token.run_sync_soon, self._started.set)
            loop.run_forever()
        except BaseException as exc:  # a crash of the loop itself, e.g. SystemExit from a callback
            self._crash = exc
            log.error("%s: asyncio loop crashed: %r", self.name, exc, exc_info=exc)
        finally:
            try:
                self._finish_loop(loop)
            except BaseException as exc:  # pragma: no cover - last-ditch reporting
                log.exception("%s: error while closing the asyncio loop", self.name)
                if self._crash is None:
                    self._crash = exc
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._on_thread_exit)

    def _finish_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel what is left on the loop, let it unwind, then close the loop."""
        # From here on, submissions still queued on the loop are refused.
        self._stopping = True
        while tasks := asyncio.all_tasks(loop):
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    def _on_thread_exit(self) -> None:
        """Runs in Trio once the thread is done: fail whatever still waits."""
        self._dead = True
        self._started.set()
        self._exited.set()
        # Outcomes the loop queued but whose wake-up never ran still count.
        self._run_queued()
        self._fail_pending(self._death_reason())

    def _death_reason(self) -> ChannelClosed:
        if self._crash is not None:
            return ChannelClosed(f"{self.name}: asyncio host thread crashed: {self._crash!r}")
        return ChannelClosed(f"{self.name}: asyncio host thread has stopped")

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop the loop, cancel its tasks, and join the thread.

        Args:
            timeout: How long to wait for the thread to exit.

        Raises:
            ChannelClosed: The thread had crashed.
            OperationTimeout: The thread did not exit within ``timeout``.
        """
        if self._thread is None:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        loop = self._loop
        if loop is not None and not self._dead:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(loop.stop)
        with trio.move_on_after(timeout) as scope:
            await self._exited.wait()
        if scope.cancelled_caught:
            raise OperationTimeout(f"{self.name} thread join", timeout)
        # The thread has already left its target; this join returns at once.
        self._thread.join()
        if self._crash is not None:
            raise ChannelClosed(f"{self.name}: asyncio host thread crashed: {self._crash!r}")

    def _unexpected_cancel(self) -> BaseException:
        if self._crash is not None or self._dead:
            return self._death_reason()
        return super()._unexpected_cancel()

    # ------------------------------------------------------------------ crossing hooks

    def _launch(self, call: HostCall) -> None:
        self._submissions.append(call)
        if not self._submit_scheduled:
            self._submit_scheduled = True
            loop = self._loop
            assert loop is not None
            # A closed loop raises RuntimeError: the thread-exit handler fails the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._start_submitted)

    def _start_submitted(self) -> None:
        """Loop thread: start the queued submissions (one loop wake-up for the batch).

        At most ``_START_BATCH`` per loop iteration: the rest wait as plain
        calls, not as tasks, until the ones started have had their first step
        (short calls are then over). A burst of thousands of submissions thus
        does not create thousands of tasks at once, and the loop's other
        callbacks (stream wake-ups, cancellations) get their turn meanwhile.
        """
        self._submit_scheduled = False
        items = self._submissions
        loop = self._loop
        assert loop is not None
        run_call = self._run_call
        for _ in range(min(len(items), _START_BATCH)):
            call = items.popleft()
            if self._stopping:
                self._complete(call, outcome.Error(self._death_reason()))
            elif call.cancel_requested:
                # Cancelled before it started: never start it.
                self._complete(call, outcome.Error(WorkCancelled()))
            else:
                try:
                    call.aio_task = loop.create_task(run_call(call))
                except BaseException as exc:
                    self._complete(call, outcome.Error(exc))
        if items and not self._submit_scheduled:
            self._submit_scheduled = True
            loop.call_soon(self._start_submitted)

    def _request_cancel(self, call: HostCall) -> None:
        loop = self._loop
        if loop is not None:
            # A closed loop raises RuntimeError: the thread-exit handler fails the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_cancel_task, call)

    def _complete(self, call: HostCall, result: outcome.Outcome[Any]) -> None:
        """Loop thread: queue an outcome for Trio (one Trio wake-up per batch)."""
        self._queue_for_trio(self._deliver, (call, result))

    def wake_trio(self, fn: Callable[..., object], *args: Any) -> None:
        """Schedule a plain sync callback in the Trio thread (from any thread).

        From the host's own loop the callback joins the batch of outcomes on
        their way to Trio, so that many wake-ups (of stream readers, say) cost
        one. Does nothing once the Trio run is over.
        """
        if threading.get_ident() == self._loop_thread:
            # At once, for now: deferred to the end of the loop's step
            # (at_once=False) stream readers fetch bigger batches, but a
            # queued chat cancelled by agent.cancel() then hung.
            self._queue_for_trio(fn, args)
        else:
            super().wake_trio(fn, *args)

    def _queue_for_trio(
        self, fn: Callable[..., object], args: tuple[Any, ...], *, at_once: bool = True
    ) -> None:
        """Loop thread only (the queue's one producer).

        ``at_once=False`` (stream readers' wake-ups): the wake-up of Trio
        waits for the end of the loop's current step, so that what the step
        goes on to queue (a producer streaming many chunks in one go) travels
        with it; woken at once, Trio would take the GIL at the wake-up's
        socket write and fetch a batch of one. Outcomes of calls go at once
        (a caller waits for each).
        """
        self._to_trio.append((fn, args))
        if not self._to_trio_scheduled:
            self._to_trio_scheduled = True
            if at_once:
                self._wake_for_queued()
            else:
                loop = self._loop
                assert loop is not None
                loop.call_soon(self._wake_for_queued)

    def _wake_for_queued(self) -> None:
        """Loop thread: wake Trio for what the loop's last steps queued."""
        token = self._token
        assert token is not None
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(self._run_queued)

    def _run_queued(self) -> None:
        """Trio thread: run every callback queued by the loop thread since the last wake-up."""
        self._to_trio_scheduled = False
        items = self._to_trio
        while items:
            fn, args = items.popleft()
            fn(*args)

    def _to_loop(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any
    ) -> None:
        loop.call_soon_threadsafe(fn, *args)

    def _in_trio(self, fn: Callable[[], object]) -> None:
        token = self._token
        assert token is not None
        try:
            token.run_sync_soon(fn)
        except trio.RunFinishedError:
            raise ChannelClosed("the Trio run has finished") from None


def _cancel_task(call: HostCall) -> None:  # loop thread
    if call.aio_task is not None:
        call.aio_task.cancel()
