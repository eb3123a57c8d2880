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
:class:`~agy_trio.core.errors.ChannelClosed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

import attrs
import outcome
import trio

from agy_trio.core.errors import BackendError, ChannelClosed, OperationTimeout

__all__ = ["AioHost", "AsyncioHost", "HostStatistics"]

T = TypeVar("T")
log = logging.getLogger("agy_trio.aio_host")


@attrs.frozen
class HostStatistics:
    """A snapshot of one host thread.

    Attributes:
        name: The thread's name.
        alive: Whether the thread is running its loop.
        pending_calls: Trio callers waiting for an asyncio result.
        asyncio_tasks: Tasks currently alive on the host loop.
    """

    name: str
    alive: bool
    pending_calls: int
    asyncio_tasks: int


class AsyncioHost(Protocol):
    """What a backend needs from the place its asyncio code runs.

    :class:`AioHost` (a dedicated thread) and
    :class:`agy_trio.adapters.guest.GuestHost` (Trio as a guest inside an
    asyncio loop, same thread) both provide it.
    """

    name: str

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop the host runs."""

    @property
    def alive(self) -> bool:
        """Whether the host accepts work."""

    async def start(self, nursery: trio.Nursery) -> None:
        """Bring the host up; calls into Trio run in ``nursery``."""

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop the host; report a crash or a hang."""

    async def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """From Trio: run ``fn(*args)`` on the asyncio loop and return its result."""

    def run_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """From anywhere: start ``fn(*args)`` on the loop without waiting."""

    async def call_trio(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """From asyncio: run the Trio function ``fn(*args)`` and return its result."""

    def wake_trio(self, fn: Callable[..., object], *args: Any) -> None:
        """From anywhere: run a sync callback in Trio."""

    def statistics(self) -> HostStatistics:
        """A snapshot of the host."""


class _Call(Generic[T]):
    """One Trio caller waiting for one asyncio task."""

    __slots__ = (
        "aio_task",
        "cancel_requested",
        "delivered",
        "delivered_event",
        "raise_cancel",
        "trio_task",
    )

    def __init__(self, trio_task: trio.lowlevel.Task) -> None:
        self.trio_task = trio_task
        self.aio_task: asyncio.Task[T] | None = None
        self.cancel_requested = False
        self.delivered = False
        self.delivered_event: trio.Event | None = None
        self.raise_cancel: Callable[[], Any] | None = None


class AioHost:
    """An asyncio event loop running on its own thread, reachable from Trio.

    Use it from one Trio run: :meth:`start` inside the run, :meth:`aclose` before
    the run ends. The host is thread-safe in the directions it documents: Trio
    calls :meth:`run`, asyncio calls :meth:`call_trio`.

    Args:
        name: The thread's name (shown in thread dumps and logs).
        cancel_grace: After a Trio caller is cancelled, how long to wait for the
            asyncio task to acknowledge the cancellation before giving up on it.
            Only an asyncio loop stuck in a blocking call ever needs this: the
            caller is then released (and the task reported as abandoned) rather
            than left hanging.
    """

    def __init__(self, name: str = "agy-trio-aio-host", *, cancel_grace: float = 1.0) -> None:
        self.name = name
        self.cancel_grace = cancel_grace
        self.abandoned_calls = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._started = trio.Event()
        self._exited = trio.Event()
        self._crash: BaseException | None = None
        self._closing = False
        self._stopping = False
        self._dead = False
        self._pending: set[_Call[Any]] = set()
        # Batched hand-offs between the threads (see run()).
        self._lock = threading.Lock()
        self._submissions: deque[tuple[_Call[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._submit_scheduled = False
        self._completions: deque[tuple[_Call[Any], outcome.Outcome[Any]]] = deque()
        self._deliver_scheduled = False

    # ------------------------------------------------------------------ life cycle

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The host's asyncio loop (only valid after :meth:`start`)."""
        if self._loop is None:
            raise ChannelClosed(f"{self.name}: host not started")
        return self._loop

    @property
    def alive(self) -> bool:
        """Whether the host thread is running and accepting work."""
        return self._loop is not None and not self._dead and not self._closing

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
        reason = self._death_reason()
        for call in list(self._pending):
            self._deliver(call, outcome.Error(reason))

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

    def statistics(self) -> HostStatistics:
        """A snapshot of the host, safe to call from Trio at any time."""
        loop = self._loop
        n_tasks = 0
        if loop is not None and not loop.is_closed():
            # all_tasks is read from another thread here; a racing mutation makes
            # it raise RuntimeError, and the count is only informational.
            with contextlib.suppress(RuntimeError):
                n_tasks = len(asyncio.all_tasks(loop))
        return HostStatistics(self.name, self.alive, len(self._pending), n_tasks)

    # ------------------------------------------------------------------ Trio -> asyncio

    async def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``fn(*args)`` as a task on the host loop and return its result.

        Cancelling the caller cancels the asyncio task and waits until it has
        finished, so no task is left behind on the loop.

        Wake-ups are batched both ways: while a wake-up of the loop is already
        on its way, further submissions just join its queue, and while a
        wake-up of Trio is on its way, further results join theirs. One caller
        pays one wake-up each way; many concurrent callers share them.

        Raises:
            ChannelClosed: The host is not running, or died during the call.
        """
        loop = self._loop
        if loop is None or self._dead or self._closing:
            await trio.lowlevel.checkpoint()
            raise self._death_reason() if self._dead else ChannelClosed(f"{self.name}: closed")
        await trio.lowlevel.checkpoint_if_cancelled()
        call: _Call[T] = _Call(trio.lowlevel.current_task())
        self._pending.add(call)
        with self._lock:
            self._submissions.append((call, fn, args))
            wake = not self._submit_scheduled
            self._submit_scheduled = True
        if wake:
            try:
                loop.call_soon_threadsafe(self._start_submitted)
            except RuntimeError:  # the loop is closed
                self._pending.discard(call)
                await trio.lowlevel.checkpoint()
                raise self._death_reason() from None

        def abort(raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
            call.raise_cancel = raise_cancel
            call.cancel_requested = True
            # Created only on cancellation: the common path pays nothing for it.
            call.delivered_event = trio.Event()
            trio.lowlevel.spawn_system_task(
                self._abandon_if_stuck, call, name="agy-trio-cancel-grace"
            )
            # A closed loop raises RuntimeError: the thread-exit handler fails the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_cancel_task, call)
            # The asyncio task still has to unwind; its wrapper delivers the outcome.
            return trio.lowlevel.Abort.FAILED

        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    # -- asyncio thread

    def _start_submitted(self) -> None:
        """Start every queued submission as a task (one loop wake-up for the batch)."""
        with self._lock:
            items = list(self._submissions)
            self._submissions.clear()
            self._submit_scheduled = False
        loop = self._loop
        assert loop is not None
        for call, fn, args in items:
            if self._stopping:
                self._complete(call, outcome.Error(self._death_reason()))
            elif call.cancel_requested:
                # Cancelled before it started: never start it.
                self._complete(call, outcome.Error(_CancelledByCaller()))
            else:
                try:
                    call.aio_task = loop.create_task(self._run_call(call, fn, args))
                except BaseException as exc:
                    self._complete(call, outcome.Error(exc))

    async def _run_call(
        self, call: _Call[Any], fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]
    ) -> None:
        """The asyncio task of one call: run it, then hand its outcome to Trio."""
        result: outcome.Outcome[Any]
        try:
            result = outcome.Value(await fn(*args))
        except asyncio.CancelledError:
            if call.cancel_requested:
                result = outcome.Error(_CancelledByCaller())
            else:
                result = outcome.Error(self._unexpected_cancel())
        except Exception as exc:
            result = outcome.Error(exc)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: tell the caller, then crash
            self._complete(call, outcome.Error(exc))
            raise
        self._complete(call, result)

    def _complete(self, call: _Call[Any], result: outcome.Outcome[Any]) -> None:
        """Queue an outcome for Trio (one Trio wake-up per batch); any thread."""
        with self._lock:
            self._completions.append((call, result))
            wake = not self._deliver_scheduled
            self._deliver_scheduled = True
        if wake:
            token = self._token
            assert token is not None
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._deliver_completed)

    # -- Trio thread

    def _deliver_completed(self) -> None:
        with self._lock:
            items = list(self._completions)
            self._completions.clear()
            self._deliver_scheduled = False
        for call, result in items:
            self._deliver(call, result)

    async def _abandon_if_stuck(self, call: _Call[Any]) -> None:
        """Release a cancelled caller whose asyncio task never acknowledges the cancel."""
        assert call.delivered_event is not None
        with trio.move_on_after(self.cancel_grace):
            await call.delivered_event.wait()
        if not call.delivered:
            self.abandoned_calls += 1
            log.warning(
                "%s: an asyncio task ignored its cancellation for %g s; abandoning it",
                self.name,
                self.cancel_grace,
            )
            self._deliver(call, outcome.Error(_CancelledByCaller()))

    def _deliver(self, call: _Call[Any], result: outcome.Outcome[Any]) -> None:
        """Wake a Trio caller exactly once (runs in the Trio thread)."""
        if call.delivered:
            return
        call.delivered = True
        if call.delivered_event is not None:
            call.delivered_event.set()
        self._pending.discard(call)
        if isinstance(result, outcome.Error) and isinstance(result.error, _CancelledByCaller):
            assert call.raise_cancel is not None
            result = outcome.capture(call.raise_cancel)
        trio.lowlevel.reschedule(call.trio_task, result)

    def _unexpected_cancel(self) -> BaseException:
        if self._closing or self._crash is not None or self._dead:
            return self._death_reason()
        return BackendError(f"{self.name}: the asyncio task was cancelled from the asyncio side")

    def run_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` on the loop without waiting; errors are logged.

        Safe from any thread; does nothing if the host is gone. Used for
        fire-and-forget work such as a non-blocking agent shutdown.
        """
        loop = self._loop
        if loop is None or self._dead:
            return

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception:
                log.exception("%s: background call failed", self.name)

        def submit() -> None:
            if not self._stopping:
                loop.create_task(guarded())

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(submit)

    # ------------------------------------------------------------------ asyncio -> Trio

    async def call_trio(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """From the host loop, run the Trio function ``fn(*args)`` and await its result.

        The asyncio loop stays free while the Trio side works. Cancelling the
        awaiting asyncio task cancels the Trio call and waits until it has
        unwound, so a tool never keeps running after the SDK moved on.

        Raises:
            ChannelClosed: The Trio side is gone.
        """
        token, nursery = self._token, self._nursery
        if token is None or nursery is None:
            raise ChannelClosed(f"{self.name}: host not started")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        # Set once the Trio side is over, whatever happened to ``future``.
        finished: asyncio.Future[None] = loop.create_future()
        scope = trio.CancelScope()

        def settle(result: outcome.Outcome[T]) -> None:  # asyncio thread
            if not finished.done():
                finished.set_result(None)
            if future.done():
                return
            if isinstance(result, outcome.Value):
                future.set_result(result.value)
            elif isinstance(result, outcome.Error):
                future.set_exception(result.error)

        async def runner() -> None:  # Trio thread
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
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(
                        settle, outcome.Error(ChannelClosed("the Trio side is shutting down"))
                    )
                raise
            except Exception as exc:
                result = outcome.Error(exc)
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting
                loop.call_soon_threadsafe(settle, result)

        def spawn() -> None:  # Trio thread
            try:
                nursery.start_soon(runner)
            except RuntimeError:  # nursery closed
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(
                        settle, outcome.Error(ChannelClosed("the Trio side is closed"))
                    )

        try:
            token.run_sync_soon(spawn)
        except trio.RunFinishedError:
            raise ChannelClosed("the Trio run has finished") from None
        try:
            return await future
        except asyncio.CancelledError:
            trio_alive = True
            try:
                token.run_sync_soon(scope.cancel)
            except trio.RunFinishedError:
                trio_alive = False  # nothing left on the Trio side to wait for
            while trio_alive and not finished.done():
                # asyncio.wait does not cancel what it waits on, so a repeated
                # cancellation cannot cut the wait for the Trio side short.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([finished])
            raise

    def wake_trio(self, fn: Callable[..., object], *args: Any) -> None:
        """Schedule a plain sync callback in the Trio thread (from any thread)."""
        token = self._token
        if token is None:
            return
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(fn, *args)


def _cancel_task(call: _Call[Any]) -> None:  # asyncio thread
    if call.aio_task is not None:
        call.aio_task.cancel()


class _CancelledByCaller(BaseException):
    """Marks an asyncio task that ended because its Trio caller was cancelled."""
