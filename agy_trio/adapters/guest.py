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
asyncio task is about to finish would pay them for nothing, so after each
submission the host keeps Trio ticking for a few scheduler rounds (``spin``):
each round lets the loop run its ready callbacks (the task's steps) before
Trio looks again. Most short calls finish within the first one or two rounds;
longer ones let Trio sleep as usual.

Cancellation crosses both ways, as with the thread host: cancelling a Trio
caller cancels its asyncio task and waits until the task has finished;
cancelling the asyncio side of :meth:`GuestHost.call_trio` cancels the Trio call
and waits until it has unwound.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import outcome
import trio

from agy_trio.adapters.host_base import HostBase, HostCall
from agy_trio.errors import ChannelClosed, ConfigError, OperationTimeout

__all__ = ["GuestHost", "run_trio_guest"]

T = TypeVar("T")


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


class GuestHost(HostBase):
    """The asyncio host for Trio running as a guest of an asyncio loop (same thread).

    It provides the :class:`~agy_trio.adapters.host_base.AsyncioHost` protocol,
    so any backend that takes a ``host`` runs on it unchanged, for example
    ``ScriptedBackend(host=GuestHost())``. It must be started from a Trio run
    that is a guest of a running asyncio loop (see :func:`run_trio_guest`); it
    uses that loop and never owns it, so closing the host leaves the loop
    running and only cancels the background work the host itself started.

    Args:
        name: A name for logs and statistics.
        spin: After each submission, for how many Trio scheduler rounds the
            host keeps Trio awake while asyncio tasks it started are still
            running, so that a short task's answer does not have to wake Trio
            from its I/O thread. 0 disables spinning; each round costs about
            one loop iteration. The default covers the scripted backend's
            turn start and cancel, which finish within four iterations.

    Raises:
        ConfigError: ``spin`` is negative.
    """

    def __init__(self, name: str = "agy-trio-guest-host", *, spin: int = 8) -> None:
        if isinstance(spin, bool) or not isinstance(spin, int) or spin < 0:
            raise ConfigError(f"must be an integer >= 0, got {spin!r}", field="spin")
        # Same thread: the loop cannot be stuck while Trio runs, so no grace.
        super().__init__(name, cancel_grace=None)
        self._spin = spin
        self._spins_left = 0
        self._spinner: trio.lowlevel.Task | None = None  # parked, waiting for work
        self._thread_id: int | None = None
        self._context: contextvars.Context | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life cycle

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
        if self._spin:
            trio.lowlevel.spawn_system_task(self._keep_trio_awake, name=f"{self.name}-spin")
        await trio.lowlevel.checkpoint()

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop taking work; cancel the background tasks the host started and wait for them.

        The asyncio loop itself belongs to the program and keeps running.

        Args:
            timeout: How long to wait for the background tasks to finish.

        Raises:
            OperationTimeout: They did not finish within ``timeout``.
        """
        loop = self._loop
        if loop is None or self._closing:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        tasks = [task for task in self._background if not task.done()]
        for task in tasks:
            task.cancel()
        if not tasks or loop.is_closed():
            await trio.lowlevel.checkpoint()
            return
        with trio.move_on_after(timeout) as scope:
            await self._park_on(asyncio.wait(tasks))
        if scope.cancelled_caught:
            raise OperationTimeout(f"{self.name} background tasks", timeout)

    async def _park_on(self, awaitable: Coroutine[Any, Any, Any]) -> None:
        """Wait in Trio for a coroutine the host runs even though it is closing."""
        closing, self._closing = self._closing, False
        try:
            await self.run(_awaited, awaitable)
        finally:
            self._closing = closing

    def _check_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.is_closed() or not loop.is_running():
            raise ChannelClosed(f"{self.name}: the asyncio loop is not running")

    # ------------------------------------------------------------------ Trio -> asyncio

    async def _keep_trio_awake(self) -> None:
        """While calls run, keep a Trio task runnable for up to ``spin`` rounds per submission.

        A runnable task makes Trio's next scheduler round a plain callback of
        the loop, right after the callbacks already queued there (the asyncio
        tasks' next steps), instead of a wait for I/O on Trio's helper thread.
        """
        task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._spinner = None
            return trio.lowlevel.Abort.SUCCEEDED

        while True:
            if self._spins_left and self._pending and not self._closing:
                self._spins_left -= 1
                await trio.lowlevel.cancel_shielded_checkpoint()
            else:
                # Parked by hand rather than on a trio.Event: _launch wakes it
                # from a loop callback at every submission, and an Event would
                # need replacing after each set. Guest mode's round trip is
                # 19.9 µs against trio-asyncio's 28.4 (round_trip benchmark,
                # benchmarks/RESULTS.md) with this spinner.
                self._spinner = task
                await trio.lowlevel.wait_task_rescheduled(abort)

    def _launch(self, call: HostCall) -> None:
        loop = self._loop
        assert loop is not None
        # Same thread, inside a Trio tick (a loop callback): creating the task
        # only schedules its first step for the loop's next iteration.
        call.aio_task = loop.create_task(self._run_call(call))
        self._spins_left = self._spin
        spinner = self._spinner
        if spinner is not None:
            self._spinner = None
            trio.lowlevel.reschedule(spinner)

    def _request_cancel(self, call: HostCall) -> None:
        if call.aio_task is not None:
            call.aio_task.cancel()

    def _complete(self, call: HostCall, result: outcome.Outcome[Any]) -> None:
        # An asyncio step on the Trio thread, between two Trio ticks: Trio's
        # run state belongs to this thread and no tick is in progress, so the
        # outcome is delivered directly. If Trio waits for I/O on its helper
        # thread, rescheduling a task wakes it.
        with contextlib.suppress(RuntimeError):  # the Trio run is already over
            self._deliver(call, result)

    def _to_loop(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any
    ) -> None:
        if threading.get_ident() == self._thread_id:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _in_trio(self, fn: Callable[[], object]) -> None:
        context = self._context
        if context is None:
            raise ChannelClosed(f"{self.name}: host not started")
        try:
            # Same thread, no Trio tick in progress: run it now, in the
            # Trio-side context captured at start.
            context.copy().run(fn)
        except (RuntimeError, AttributeError):  # the Trio run is over
            raise ChannelClosed("the Trio side is closed") from None

    def wake_trio(self, fn: Callable[..., object], *args: Any) -> None:
        """Run a plain sync callback in Trio (from any thread).

        From the loop's own thread Trio is never in the middle of a scheduler
        round that this could disturb, so the callback runs at once, in the
        Trio side's context, instead of going round Trio's wake-up socket (and,
        while Trio waits for I/O, its helper thread). Does nothing once the
        Trio run is over.
        """
        context = self._context
        if context is not None and threading.get_ident() == self._thread_id:
            with contextlib.suppress(RuntimeError):  # the Trio run is already over
                context.copy().run(fn, *args)
            return
        super().wake_trio(fn, *args)

    def _track_background(self, task: asyncio.Task[None]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _awaited(awaitable: Coroutine[Any, Any, Any]) -> Any:
    return await awaitable
