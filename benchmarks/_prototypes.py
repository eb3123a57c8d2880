"""Experiments that are not part of agy_trio: variants measured to guide the core's design.

:func:`lean_chat_response_iteration` patches ``ChatResponse.__anext__`` with a
fast path for events already received: a text delta is taken from the pending
batch and returned inline, instead of going through ``_next_event`` and
``_absorb`` (two extra Python calls per chunk).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeVar

import trio

T = TypeVar("T")


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
