"""Trio as a guest of an asyncio loop: the host for programs that must live inside asyncio.

Some programs cannot give the main thread to Trio: an asyncio web server, a
Jupyter kernel, an application built on an asyncio-only framework. For them
Trio runs in *guest mode* (:func:`trio.lowlevel.start_guest_run`) on the
program's own asyncio loop, and the agents' asyncio code runs on that same
loop, on the same thread. :func:`run_trio_guest` starts such a run;
:class:`GuestHost` is the :class:`~agy_trio.adapters.aio_host.AsyncioHost` a
backend uses inside it::

    async def trio_main() -> str:
        backend = ScriptedBackend(host=GuestHost())
        async with agy_trio.open_runtime(backend=backend) as rt:
            agent = await rt.create_agent()
            return await (await agent.chat("hello")).text()

    answer = await run_trio_guest(trio_main)  # from asyncio code

Why crossing is cheap here: Trio's scheduler ticks are callbacks of the
asyncio loop, so Trio code and asyncio code never run at the same time and
never need a lock. A call from Trio creates its asyncio task directly, and the
task's completion reschedules the waiting Trio task directly, with no thread
hop and no self-pipe write. One detail of guest mode makes a further step
worthwhile: when no Trio task is runnable, Trio waits for I/O on a helper
thread, and waking it from there costs two thread switches. A caller whose
asyncio task is about to finish would pay them for nothing, so :meth:`GuestHost.run`
first yields to the loop a few times (``spin``); each yield lets the loop run
its ready callbacks (the task's steps) before Trio looks again. Most short
calls finish within the first one or two yields; longer ones park as usual.

Cancellation crosses both ways, as with the thread host: cancelling a Trio
caller cancels its asyncio task and waits until the task has finished;
cancelling the asyncio side of :meth:`GuestHost.call_trio` cancels the Trio call
and waits until it has unwound.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar, cast

import outcome
import trio

from agy_trio.adapters.aio_host import HostStatistics
from agy_trio.core.errors import BackendError, ChannelClosed, ConfigError, OperationTimeout

__all__ = ["GuestHost", "run_trio_guest"]

T = TypeVar("T")
log = logging.getLogger("agy_trio.guest")


# ---------------------------------------------------------------------------- the guest run


class _Cancelled:
    """Marks a guest run whose Trio side was cancelled from asyncio."""


_CANCELLED = _Cancelled()


async def run_trio_guest(trio_main: Callable[..., Awaitable[T]], *args: Any) -> T:
    """From asyncio: run ``trio_main(*args)`` in Trio, as a guest of the running loop.

    Trio's scheduler runs as callbacks of the current asyncio loop, on the same
    thread; asyncio code keeps running meanwhile. Returns once the whole Trio
    run has finished (every Trio task done).

    Cancelling the awaiting asyncio task cancels ``trio_main`` and waits for the
    Trio run to finish before :class:`asyncio.CancelledError` propagates.

    Args:
        trio_main: A Trio async function.
        *args: Its positional arguments.

    Returns:
        What ``trio_main`` returned.

    Raises:
        BaseException: Whatever ``trio_main`` raised.
        RuntimeError: Another Trio run is already active on this thread.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[outcome.Outcome[T | _Cancelled]] = loop.create_future()
    scope = trio.CancelScope()

    async def main() -> T | _Cancelled:
        with scope:
            return await trio_main(*args)
        return _CANCELLED

    def on_done(result: outcome.Outcome[T | _Cancelled]) -> None:
        if not done.done():
            done.set_result(result)

    trio.lowlevel.start_guest_run(
        main,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        run_sync_soon_not_threadsafe=loop.call_soon,
        done_callback=on_done,
        # asyncio owns the process's signal wake-up fd (add_signal_handler).
        host_uses_signal_set_wakeup_fd=True,
    )
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(done)
            break
        except asyncio.CancelledError:
            # Runs on the Trio thread between two Trio ticks: safe to touch Trio state.
            cancelled = True
            scope.cancel()
    value = result.unwrap()
    if cancelled or isinstance(value, _Cancelled):
        raise asyncio.CancelledError
    return value


# ---------------------------------------------------------------------------- the host


class _GuestCall(Generic[T]):
    """One Trio caller parked on one asyncio task."""

    __slots__ = ("cancel_requested", "delivered", "raise_cancel", "task", "trio_task")

    def __init__(self, trio_task: trio.lowlevel.Task, task: asyncio.Task[T]) -> None:
        self.trio_task = trio_task
        self.task = task
        self.cancel_requested = False
        self.delivered = False
        self.raise_cancel: Callable[[], Any] | None = None


class _CancelledByCaller(BaseException):
    """Marks an asyncio task that ended because its Trio caller was cancelled."""


class GuestHost:
    """The asyncio host for Trio running as a guest of an asyncio loop (same thread).

    It provides the :class:`~agy_trio.adapters.aio_host.AsyncioHost` protocol,
    so any backend that takes a ``host`` runs on it unchanged, for example
    ``ScriptedBackend(host=GuestHost())``. It must be started from a Trio run
    that is a guest of a running asyncio loop (see :func:`run_trio_guest`); it
    uses that loop and never owns it, so closing the host leaves the loop
    running and only cancels the background work the host itself started.

    Args:
        name: A name for logs and statistics.
        spin: How many times :meth:`run` yields to the loop, waiting for a
            short asyncio task to finish, before it parks the caller. 0
            disables spinning; each yield costs about one loop iteration. The
            default covers the scripted backend's turn start and cancel, which
            finish within four iterations.
    """

    def __init__(self, name: str = "agy-trio-guest-host", *, spin: int = 8) -> None:
        if spin < 0:
            raise ConfigError(f"must be >= 0, got {spin!r}", field="spin")
        self.name = name
        self._spin = spin
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._context: contextvars.Context | None = None
        self._closing = False
        self._pending: set[_GuestCall[Any]] = set()
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life cycle

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop Trio is a guest of (only valid after :meth:`start`)."""
        if self._loop is None:
            raise ChannelClosed(f"{self.name}: host not started")
        return self._loop

    @property
    def alive(self) -> bool:
        """Whether the host accepts work: started, not closed, its loop still running."""
        loop = self._loop
        return loop is not None and not self._closing and loop.is_running()

    async def start(self, nursery: trio.Nursery) -> None:
        """Attach to the asyncio loop this Trio run is a guest of.

        Args:
            nursery: Where calls from asyncio into Trio (:meth:`call_trio`) run.

        Raises:
            ConfigError: Trio is not running as a guest of an asyncio loop.
        """
        if self._loop is not None:
            raise RuntimeError(f"{self.name} already started")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigError(
                f"{self.name}: Trio is not running as a guest of an asyncio loop; "
                "start it with agy_trio.adapters.guest.run_trio_guest() "
                "or use the thread host (AioHost)"
            ) from None
        self._loop = loop
        self._thread_id = threading.get_ident()
        self._token = trio.lowlevel.current_trio_token()
        self._nursery = nursery
        self._context = contextvars.copy_context()
        await trio.lowlevel.checkpoint()

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop taking work; cancel the background tasks the host started and wait for them.

        The asyncio loop itself belongs to the program and keeps running.

        Args:
            timeout: How long to wait for the background tasks to finish.

        Raises:
            OperationTimeout: They did not finish within ``timeout``.
        """
        if self._loop is None or self._closing:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        tasks = [task for task in self._background if not task.done()]
        for task in tasks:
            task.cancel()
        if not tasks or self._loop.is_closed():
            await trio.lowlevel.checkpoint()
            return
        waiter = self._loop.create_task(asyncio.wait(tasks))
        with trio.move_on_after(timeout) as scope:
            await self._await_task(waiter, spin=0)
        if scope.cancelled_caught:
            raise OperationTimeout(f"{self.name} background tasks", timeout)

    def statistics(self) -> HostStatistics:
        """A snapshot of the host; safe from any thread (the task count is informational)."""
        loop = self._loop
        n_tasks = 0
        if loop is not None and not loop.is_closed():
            # From another thread a racing mutation makes all_tasks raise RuntimeError.
            with contextlib.suppress(RuntimeError):
                n_tasks = len(asyncio.all_tasks(loop))
        return HostStatistics(self.name, self.alive, len(self._pending), n_tasks)

    def _check_open(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            raise ChannelClosed(f"{self.name}: host not started")
        if self._closing:
            raise ChannelClosed(f"{self.name}: closed")
        if loop.is_closed():
            raise ChannelClosed(f"{self.name}: the asyncio loop is closed")
        return loop

    # ------------------------------------------------------------------ Trio -> asyncio

    async def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """From Trio: run ``fn(*args)`` as a task on the loop and return its result.

        Cancelling the caller cancels the asyncio task and waits until it has
        finished, so no task is left behind on the loop.

        Raises:
            ChannelClosed: The host is not running.
        """
        try:
            loop = self._check_open()
        except ChannelClosed:
            await trio.lowlevel.checkpoint()
            raise
        await trio.lowlevel.checkpoint_if_cancelled()
        # Same thread, and we are inside a Trio tick (a loop callback): creating
        # the task only schedules its first step for the loop's next iteration.
        task = loop.create_task(fn(*args))
        return await self._await_task(task, spin=self._spin)

    async def _await_task(self, task: asyncio.Task[T], *, spin: int) -> T:
        """Wait in Trio for ``task``; cancelling the caller cancels it and waits for it."""
        # A yield lets the loop run the callbacks already queued (the task's
        # next step) before the next Trio tick: no thread is involved while
        # some Trio task stays runnable.
        while spin and not task.done():
            spin -= 1
            await trio.lowlevel.cancel_shielded_checkpoint()
        if task.done():
            value: T = self._outcome(task, cancel_requested=False).unwrap()
            return value
        call: _GuestCall[T] = _GuestCall(trio.lowlevel.current_task(), task)

        def on_done(task: asyncio.Task[T]) -> None:
            # An asyncio callback: same thread, between two Trio ticks.
            self._deliver(call, self._outcome(task, cancel_requested=call.cancel_requested))

        def abort(raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
            call.raise_cancel = raise_cancel
            call.cancel_requested = True
            task.cancel()
            # The task still has to unwind; ``on_done`` wakes us.
            return trio.lowlevel.Abort.FAILED

        self._pending.add(call)
        task.add_done_callback(on_done)
        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    def _outcome(self, task: asyncio.Task[Any], *, cancel_requested: bool) -> outcome.Outcome[Any]:
        if task.cancelled():
            if cancel_requested:
                return outcome.Error(_CancelledByCaller())
            if self._closing:
                return outcome.Error(ChannelClosed(f"{self.name}: closed"))
            return outcome.Error(
                BackendError(f"{self.name}: the asyncio task was cancelled from the asyncio side")
            )
        exc = task.exception()
        if exc is None:
            return outcome.Value(task.result())
        return outcome.Error(exc)

    def _deliver(self, call: _GuestCall[Any], result: outcome.Outcome[Any]) -> None:
        """Wake a parked Trio caller exactly once (runs on the loop thread)."""
        if call.delivered:
            return
        call.delivered = True
        self._pending.discard(call)
        if isinstance(result, outcome.Error) and isinstance(result.error, _CancelledByCaller):
            assert call.raise_cancel is not None
            result = outcome.capture(call.raise_cancel)
        # Rescheduling from an asyncio callback is safe here: Trio's run state
        # belongs to this thread and no Trio tick is in progress. If Trio is
        # waiting for I/O on its helper thread, Trio itself wakes it.
        with contextlib.suppress(RuntimeError):  # the Trio run is already over
            trio.lowlevel.reschedule(call.trio_task, result)

    def run_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` on the loop without waiting; errors are logged.

        Safe from any thread; does nothing once the host is closed. :meth:`aclose`
        cancels whatever is still running.
        """
        loop = self._loop
        if loop is None or self._closing or loop.is_closed():
            return

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception:
                log.exception("%s: background call failed", self.name)

        def submit() -> None:
            if self._closing:
                return
            task = loop.create_task(guarded())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        if threading.get_ident() == self._thread_id:
            submit()
        else:
            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(submit)

    # ------------------------------------------------------------------ asyncio -> Trio

    async def call_trio(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """From the loop: run the Trio function ``fn(*args)`` and await its result.

        The loop stays free while the Trio side works. Cancelling the awaiting
        asyncio task cancels the Trio call and waits until it has unwound.

        Raises:
            ChannelClosed: The Trio side is gone.
        """
        nursery, context = self._nursery, self._context
        if nursery is None or context is None:
            raise ChannelClosed(f"{self.name}: host not started")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        finished: asyncio.Future[None] = loop.create_future()
        scope = trio.CancelScope()

        def settle(result: outcome.Outcome[T]) -> None:
            if future.done():
                return
            if isinstance(result, outcome.Value):
                future.set_result(result.value)
            else:
                future.set_exception(cast("outcome.Error", result).error)

        async def runner() -> None:  # a Trio task; futures are settled on the same thread
            result: outcome.Outcome[T]
            try:
                with scope:
                    value = await fn(*args)
                if scope.cancelled_caught:
                    result = outcome.Error(asyncio.CancelledError())
                else:
                    result = outcome.Value(value)
            except trio.Cancelled:
                # The runtime itself is shutting down: tell the caller, then unwind.
                settle(outcome.Error(ChannelClosed("the Trio side is shutting down")))
                raise
            except Exception as exc:
                result = outcome.Error(exc)
            finally:
                if not finished.done():
                    finished.set_result(None)
            settle(result)

        try:
            # Same thread, no Trio tick in progress: spawn directly, in the
            # Trio-side context captured at start (as the thread host does).
            context.copy().run(nursery.start_soon, runner)
        except (RuntimeError, AttributeError):  # nursery closed / Trio run over
            raise ChannelClosed("the Trio side is closed") from None
        try:
            return await future
        except asyncio.CancelledError:
            if not finished.done():
                scope.cancel()
                # Structured: the Trio call unwinds before our cancellation completes.
                while not finished.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.shield(finished)
            raise

    def wake_trio(self, fn: Callable[..., object], *args: Any) -> None:
        """Schedule a plain sync callback in Trio (from any thread)."""
        token = self._token
        if token is None:
            return
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(fn, *args)
