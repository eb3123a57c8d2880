"""What every asyncio host shares: calls from Trio, calls into Trio, cancellation both ways.

A host is a place where asyncio code runs while Trio drives it: a dedicated
thread (:class:`~agy_trio.adapters.aio_host.AioHost`) or the asyncio loop Trio
is a guest of (:class:`~agy_trio.adapters.guest.GuestHost`). They differ only in
how work crosses between the two sides and when their loop can take work,
which each supplies as small hooks (:meth:`HostBase._check_loop`,
:meth:`HostBase._launch`, :meth:`HostBase._request_cancel`,
:meth:`HostBase._complete`, :meth:`HostBase._to_loop`, :meth:`HostBase._in_trio`);
everything else is here, once.

The central primitive is :meth:`HostBase.submit`: start a coroutine on the
loop and have its outcome handed to a callback in the Trio thread, with no
Trio task involved. :meth:`HostBase.run` (await a result) is built on it, and so
is the runtime's command path, where the callback answers the caller directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import attrs
import outcome
import trio

from agy_trio.core.commands import WorkCancelled
from agy_trio.errors import BackendError, ChannelClosed

__all__ = ["AsyncioHost", "HostBase", "HostCall", "HostStatistics", "OnDone"]

T = TypeVar("T")
log = logging.getLogger("agy_trio.host")

OnDone = Callable[[Any, "outcome.Outcome[Any]"], object]
"""``on_done(arg, outcome)``: how a host hands a call's outcome back, in the Trio thread."""


@attrs.frozen
class HostStatistics:
    """A snapshot of one host.

    Attributes:
        name: The host's name.
        alive: Whether it accepts work.
        pending_calls: Calls from Trio waiting for an asyncio result.
        asyncio_tasks: Tasks currently alive on the host loop.
    """

    name: str
    alive: bool
    pending_calls: int
    asyncio_tasks: int


class AsyncioHost(Protocol):
    """What a backend needs from the place its asyncio code runs."""

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

    def submit(
        self,
        fn: Callable[..., Coroutine[Any, Any, Any]],
        args: tuple[Any, ...],
        on_done: OnDone,
        arg: Any,
    ) -> HostCall:
        """From Trio: start ``fn(*args)`` on the loop; ``on_done(arg, outcome)`` gets it."""

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


class HostCall:
    """One piece of work submitted from Trio, until its outcome is handed back."""

    __slots__ = (
        "aio_task",
        "arg",
        "args",
        "cancel_requested",
        "delivered",
        "delivered_event",
        "fn",
        "host",
        "on_done",
    )

    # Written by hand, not by attrs: one is made per command, and attrs's
    # __init__ looks each init=False default up in a dict (+50 ns, a third more).
    def __init__(
        self,
        host: HostBase,
        fn: Callable[..., Coroutine[Any, Any, Any]] | None,
        args: tuple[Any, ...],
        on_done: OnDone,
        arg: Any,
    ) -> None:
        self.host = host
        # What to run: kept until the loop starts it (no tuple per submission).
        self.fn = fn
        self.args = args
        self.on_done = on_done
        self.arg = arg
        self.aio_task: asyncio.Task[None] | None = None
        self.cancel_requested = False
        self.delivered = False
        self.delivered_event: trio.Event | None = None

    def cancel(self) -> None:
        """Cancel the asyncio task (Trio thread); its outcome still arrives, once.

        The outcome is ``WorkCancelled`` if the task stopped because of this,
        or the task's own result if it finished first.
        """
        self.host._cancel(self)

    # A call is its own canceller (see Command.set_canceller), with no bound method to build.
    __call__ = cancel


class _Waiter:
    """A Trio task waiting in :meth:`HostBase.run` (it may spin before it parks)."""

    __slots__ = ("parked", "raise_cancel", "result", "task")

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.parked = False
        self.result: outcome.Outcome[Any] | None = None
        self.raise_cancel: Callable[[], Any] | None = None

    def resume(self, result: outcome.Outcome[Any]) -> None:
        if type(result) is outcome.Error and type(result.error) is WorkCancelled:
            assert self.raise_cancel is not None
            result = outcome.capture(self.raise_cancel)
        if self.parked:
            trio.lowlevel.reschedule(self.task, result)
        else:
            self.result = result


def _resume(waiter: _Waiter, result: outcome.Outcome[Any]) -> None:
    waiter.resume(result)


class HostBase:
    """The part of a host that does not depend on where its loop runs.

    Args:
        name: A name for logs, statistics and errors.
        cancel_grace: After a call is cancelled, how long to wait for its
            asyncio task to acknowledge before the call is released anyway (and
            the task reported as abandoned). Only a loop stuck in a blocking
            call ever needs it; None disables it (a same-thread host cannot be
            stuck while Trio runs).
    """

    def __init__(self, name: str, *, cancel_grace: float | None) -> None:
        self.name = name
        self.cancel_grace = cancel_grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._pending: set[HostCall] = set()

    # ------------------------------------------------------------------ hooks

    def _check_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Raise ChannelClosed if the started host's ``loop`` can take no work (died, stopped)."""
        raise NotImplementedError

    def _launch(self, call: HostCall) -> None:
        """Trio thread: have the loop run :meth:`_run_call` for ``call`` as a task."""
        raise NotImplementedError

    def _request_cancel(self, call: HostCall) -> None:
        """Trio thread: have the loop cancel ``call.aio_task`` (or never start it)."""
        raise NotImplementedError

    def _complete(self, call: HostCall, result: outcome.Outcome[Any]) -> None:
        """Loop thread: hand ``result`` to :meth:`_deliver` in the Trio thread."""
        raise NotImplementedError

    def _to_loop(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any
    ) -> None:
        """Trio thread: run the sync callback ``fn(*args)`` on the loop."""
        raise NotImplementedError

    def _in_trio(self, fn: Callable[[], object]) -> None:
        """Loop thread: run the sync callback ``fn()`` in the Trio thread, soon.

        Raises:
            ChannelClosed: The Trio run is over.
        """
        raise NotImplementedError

    def _check_open(self) -> asyncio.AbstractEventLoop:
        """The loop, if the host accepts work; else raise ChannelClosed."""
        loop = self._loop
        if loop is None:
            raise ChannelClosed(f"{self.name}: host not started")
        self._check_loop(loop)
        if self._closing:
            raise ChannelClosed(f"{self.name}: closed")
        return loop

    def _unexpected_cancel(self) -> BaseException:
        """What a caller sees when its task was cancelled from the asyncio side."""
        if self._closing:
            return ChannelClosed(f"{self.name}: closed")
        return BackendError(f"{self.name}: the asyncio task was cancelled from the asyncio side")

    # ------------------------------------------------------------------ Trio -> asyncio

    def submit(
        self,
        fn: Callable[..., Coroutine[Any, Any, Any]],
        args: tuple[Any, ...],
        on_done: OnDone,
        arg: Any = None,
    ) -> HostCall:
        """From Trio: start ``fn(*args)`` as a task on the loop; never blocks.

        ``on_done(arg, outcome)`` runs exactly once, in the Trio thread, with the
        task's outcome (``WorkCancelled`` if :meth:`HostCall.cancel` stopped it,
        ChannelClosed if the host died). Exceptions the task raises arrive as
        they are.

        Raises:
            ChannelClosed: The host is not running (nothing was started).
        """
        self._check_open()
        call = HostCall(self, fn, args, on_done, arg)
        self._pending.add(call)
        self._launch(call)
        return call

    async def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """From Trio: run ``fn(*args)`` as a task on the loop and return its result.

        Cancelling the caller cancels the asyncio task and waits until it has
        finished, so no task is left behind on the loop.

        Raises:
            ChannelClosed: The host is not running, or died during the call.
        """
        try:
            self._check_open()
        except ChannelClosed:
            await trio.lowlevel.checkpoint()
            raise
        await trio.lowlevel.checkpoint_if_cancelled()
        waiter = _Waiter(trio.lowlevel.current_task())
        call = self.submit(fn, args, _resume, waiter)
        value: T = await self._park(waiter, call)
        return value

    async def _park(self, waiter: _Waiter, call: HostCall) -> Any:
        if waiter.result is not None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return waiter.result.unwrap()
        waiter.parked = True
        # Hand-built, not trio.Event: the answer comes from the asyncio thread
        # (through the Trio token) and a cancelled caller must keep waiting
        # until the asyncio task has unwound (Abort.FAILED), which no Trio
        # primitive offers. The round_trip benchmark (benchmarks/RESULTS.md)
        # puts AioHost.run's own work at 5.1 of 58.1 µs a call, the rest being
        # the thread crossing itself.

        def abort(raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
            waiter.raise_cancel = raise_cancel
            self._cancel(call)
            # The asyncio task still has to unwind; its outcome wakes us.
            return trio.lowlevel.Abort.FAILED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    def _cancel(self, call: HostCall) -> None:
        if call.delivered or call.cancel_requested:
            return
        call.cancel_requested = True
        if self.cancel_grace is not None:
            # Created only on cancellation: the common path pays nothing for it.
            call.delivered_event = trio.Event()
            trio.lowlevel.spawn_system_task(
                self._abandon_if_stuck, call, name="agy-trio-cancel-grace"
            )
        self._request_cancel(call)

    async def _run_call(self, call: HostCall) -> None:
        """The asyncio task of one call: run it, then hand its outcome to Trio."""
        fn, args = call.fn, call.args
        assert fn is not None
        call.fn = None
        call.args = ()
        result: outcome.Outcome[Any]
        try:
            result = outcome.Value(await fn(*args))
        except asyncio.CancelledError:
            if call.cancel_requested:
                result = outcome.Error(WorkCancelled())
            else:
                result = outcome.Error(self._unexpected_cancel())
        except Exception as exc:
            result = outcome.Error(exc)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: tell the caller, then crash
            self._complete(call, outcome.Error(exc))
            raise
        self._complete(call, result)

    def _deliver(self, call: HostCall, result: outcome.Outcome[Any]) -> None:
        """Hand a call's outcome to its callback exactly once (Trio thread)."""
        if call.delivered:
            return
        call.delivered = True
        if call.delivered_event is not None:
            call.delivered_event.set()
        self._pending.discard(call)
        call.on_done(call.arg, result)

    def _fail_pending(self, reason: BaseException) -> None:
        for call in list(self._pending):
            self._deliver(call, outcome.Error(reason))

    async def _abandon_if_stuck(self, call: HostCall) -> None:
        """Release a cancelled call whose asyncio task never acknowledges the cancel."""
        assert call.delivered_event is not None and self.cancel_grace is not None
        with trio.move_on_after(self.cancel_grace):
            await call.delivered_event.wait()
        if not call.delivered:
            log.warning(
                "%s: an asyncio task ignored its cancellation for %g s; abandoning it",
                self.name,
                self.cancel_grace,
            )
            self._deliver(call, outcome.Error(WorkCancelled()))

    def run_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` on the loop without waiting; errors are logged.

        Safe from any thread; does nothing once the host is gone. Used for
        fire-and-forget work such as a non-blocking agent shutdown.
        """
        try:
            loop = self._check_open()
        except ChannelClosed:
            return

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception:
                log.exception("%s: background call failed", self.name)

        def start() -> None:
            if not self._closing:
                self._track_background(loop.create_task(guarded()))

        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(start)

    def _track_background(self, task: asyncio.Task[None]) -> None:
        """Loop thread: note a fire-and-forget task (a host that cancels them on close)."""

    # ------------------------------------------------------------------ asyncio -> Trio

    async def call_trio(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """From the loop: run the Trio function ``fn(*args)`` and await its result.

        The loop stays free while the Trio side works. Cancelling the awaiting
        asyncio task cancels the Trio call and waits until it has unwound, so a
        tool never keeps running after the SDK moved on.

        Raises:
            ChannelClosed: The Trio side is gone.
        """
        nursery = self._nursery
        if self._token is None or nursery is None:
            raise ChannelClosed(f"{self.name}: host not started")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        # Set once the Trio side is over, whatever happened to ``future``.
        finished: asyncio.Future[None] = loop.create_future()
        scope = trio.CancelScope()

        def settle(result: outcome.Outcome[T]) -> None:  # loop thread
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
                self._settle_on_loop(
                    loop, settle, outcome.Error(ChannelClosed("the Trio side is shutting down"))
                )
                raise
            except Exception as exc:
                result = outcome.Error(exc)
            self._settle_on_loop(loop, settle, result)

        def spawn() -> None:  # Trio thread
            try:
                nursery.start_soon(runner)
            except RuntimeError:  # the nursery is closed
                self._settle_on_loop(
                    loop, settle, outcome.Error(ChannelClosed("the Trio side is closed"))
                )

        self._in_trio(spawn)
        try:
            return await future
        except asyncio.CancelledError:
            trio_alive = not finished.done()
            if trio_alive:
                try:
                    self._in_trio(scope.cancel)
                except ChannelClosed:
                    trio_alive = False  # nothing left on the Trio side to wait for
            while trio_alive and not finished.done():
                # asyncio.wait does not cancel what it waits on, so a repeated
                # cancellation cannot cut the wait for the Trio side short.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([finished])
            raise

    def _settle_on_loop(
        self,
        loop: asyncio.AbstractEventLoop,
        settle: Callable[[outcome.Outcome[Any]], None],
        result: outcome.Outcome[Any],
    ) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting
            self._to_loop(loop, settle, result)

    def wake_trio(self, fn: Callable[..., object], *args: Any) -> None:
        """Schedule a plain sync callback in the Trio thread (from any thread).

        Does nothing once the Trio run is over.
        """
        token = self._token
        if token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(fn, *args)

    # ------------------------------------------------------------------ introspection

    def statistics(self) -> HostStatistics:
        """A snapshot of the host, safe to call from Trio at any time."""
        loop = self._loop
        n_tasks = 0
        if loop is not None and not loop.is_closed():
            # all_tasks may be read from another thread here; a racing mutation
            # makes it raise RuntimeError, and the count is only informational.
            with contextlib.suppress(RuntimeError):
                n_tasks = len(asyncio.all_tasks(loop))
        return HostStatistics(self.name, self.alive, len(self._pending), n_tasks)

    @property
    def alive(self) -> bool:
        """Whether the host accepts work."""
        try:
            self._check_open()
        except ChannelClosed:
            return False
        return True

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The host's asyncio loop (only valid after ``start``)."""
        if self._loop is None:
            raise ChannelClosed(f"{self.name}: host not started")
        return self._loop
