"""Experiments that are not part of agy_trio: variants measured to guide the core's design.

:class:`BatchingAioHost` is :class:`~agy_trio.adapters.aio_host.AioHost` with
two changes to :meth:`run`:

1. the result is handed back at the end of a wrapper coroutine instead of in a
   done callback, which saves one asyncio loop iteration per call;
2. wake-ups are batched in both directions: a submission only calls
   ``loop.call_soon_threadsafe`` when no drain of the submission queue is
   already scheduled, and a completion only calls ``TrioToken.run_sync_soon``
   when no delivery of the completion queue is already scheduled. Under
   concurrency many calls then share one self-pipe write and one wake-up.

Cancellation keeps the host's semantics: cancelling the Trio caller cancels the
asyncio task and waits until it has finished.

:func:`lean_chat_response_iteration` patches ``ChatResponse.__anext__`` with a
fast path for events already received: a text delta is taken from the pending
batch and returned inline, instead of going through ``_next_event`` and
``_absorb`` (two extra Python calls per chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import outcome
import trio

from agy_trio.adapters.aio_host import AioHost, _Call, _CancelledByCaller
from agy_trio.core.errors import BackendError, ChannelClosed

T = TypeVar("T")


class BatchingAioHost(AioHost):
    """Prototype thread host: batched wake-ups, results delivered without a done callback."""

    def __init__(self, name: str = "agy-trio-batching-host") -> None:
        super().__init__(name)
        self._lock = threading.Lock()
        self._submissions: deque[tuple[_Call[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._submit_scheduled = False
        self._completions: deque[tuple[_Call[Any], outcome.Outcome[Any]]] = deque()
        self._deliver_scheduled = False

    async def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        loop = self._loop
        if loop is None or self._dead or self._closing:
            await trio.lowlevel.checkpoint()
            raise ChannelClosed(f"{self.name}: closed")
        await trio.lowlevel.checkpoint_if_cancelled()
        call: _Call[T] = _Call(trio.lowlevel.current_task())
        self._pending.add(call)
        with self._lock:
            self._submissions.append((call, fn, args))
            wake = not self._submit_scheduled
            self._submit_scheduled = True
        if wake:
            try:
                loop.call_soon_threadsafe(self._drain_submissions)
            except RuntimeError:
                self._pending.discard(call)
                await trio.lowlevel.checkpoint()
                raise ChannelClosed(f"{self.name}: closed") from None

        def cancel_aio() -> None:  # asyncio thread
            if call.aio_task is not None:
                call.aio_task.cancel()

        def abort(raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
            call.raise_cancel = raise_cancel
            call.cancel_requested = True
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(cancel_aio)
            return trio.lowlevel.Abort.FAILED

        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    # -- asyncio thread

    def _drain_submissions(self) -> None:
        with self._lock:
            items = list(self._submissions)
            self._submissions.clear()
            self._submit_scheduled = False
        loop = self._loop
        assert loop is not None
        for call, fn, args in items:
            if call.cancel_requested:
                self._complete(call, outcome.Error(_CancelledByCaller()))
                continue
            try:
                call.aio_task = loop.create_task(self._wrap(call, fn, args))
            except BaseException as exc:
                self._complete(call, outcome.Error(exc))

    async def _wrap(self, call: _Call[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        result: outcome.Outcome[Any]
        try:
            result = outcome.Value(await fn(*args))
        except asyncio.CancelledError:
            if call.cancel_requested:
                result = outcome.Error(_CancelledByCaller())
            else:
                result = outcome.Error(
                    BackendError(f"{self.name}: cancelled from the asyncio side")
                )
        except Exception as exc:
            result = outcome.Error(exc)
        self._complete(call, result)

    def _complete(self, call: _Call[Any], result: outcome.Outcome[Any]) -> None:
        with self._lock:
            self._completions.append((call, result))
            wake = not self._deliver_scheduled
            self._deliver_scheduled = True
        if wake:
            token = self._token
            assert token is not None
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._deliver_all)

    # -- Trio thread

    def _deliver_all(self) -> None:
        with self._lock:
            items = list(self._completions)
            self._completions.clear()
            self._deliver_scheduled = False
        for call, result in items:
            self._deliver(call, result)


@contextlib.contextmanager
def lean_chat_response_iteration() -> Iterator[None]:
    """For the duration of the block, ``ChatResponse`` iterates pending text deltas inline."""
    from agy_trio.core.events import TextDelta
    from agy_trio.core.streaming import ChatResponse

    original = ChatResponse.__anext__

    async def __anext__(self: ChatResponse) -> str:
        pending = self._pending
        while True:
            if pending:
                event = pending.popleft()
                if type(event) is TextDelta:
                    self._text_parts.append(event.text)
                    return event.text
                self._absorb(event)
                continue
            first = await self._next_event()
            if first is None:
                raise StopAsyncIteration
            if type(first) is TextDelta:
                return first.text

    ChatResponse.__anext__ = __anext__  # type: ignore[method-assign]
    try:
        yield
    finally:
        ChatResponse.__anext__ = original  # type: ignore[method-assign]


@contextlib.contextmanager
def commands_without_cancel_scope() -> Iterator[None]:
    """For the duration of the block, commands skip the runtime's per-command wrapper.

    ``Runtime._run_command`` wraps each command in a cancel scope, registers
    its time limit and records statistics. This is a measurement, not a
    proposal as such: without the wrapper a command has no
    ``operation_timeout`` and shutdown cannot cancel it. It shows what the
    wrapper costs.
    """
    from agy_trio.core.runtime import Runtime

    original = Runtime._run_command

    async def _run_command(self: Runtime, command: Any, scope: trio.CancelScope) -> Any:
        return await self._execute(command)

    Runtime._run_command = _run_command  # type: ignore[method-assign]
    try:
        yield
    finally:
        Runtime._run_command = original  # type: ignore[method-assign]


class _NullSession:
    """An agent session that answers at once, in Trio: no host, no thread."""

    conversation_id = "null"

    async def is_idle(self) -> bool:
        await trio.lowlevel.checkpoint()
        return True

    async def shutdown(self) -> None:
        await trio.lowlevel.checkpoint()


class NullBackend:
    """A backend with nothing behind it, to time the runtime's own command layer."""

    name = "null"

    async def start(self, nursery: trio.Nursery) -> None:
        await trio.lowlevel.checkpoint()

    async def create_agent(self, agent_id: str, config: Any, services: Any) -> _NullSession:
        await trio.lowlevel.checkpoint()
        return _NullSession()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
