"""Giving up on a model endpoint the harness cannot reach: :class:`UnreachableWatch`.

When the harness cannot reach the model endpoint it says so only in system
steps of the turn, and on some paths (the Gemini API) it then retries on its
own, with growing pauses, until the turn's time runs out: with no network the
caller would wait for ``chat_timeout`` and learn nothing of the cause.

A watch lives for one attempt of one turn. Once the harness has reported a
connection failure, the attempt is given up ``unreachable_timeout`` seconds
after it started (at once if that time has passed already): the SDK turn is
halted and the attempt fails with
:class:`~agy_trio.errors.EndpointUnreachable` naming the cause, which a
:class:`~agy_trio.adapters.antigravity.RetryPolicy` may retry. A model answer
arriving meanwhile means the harness got through: the watch stands down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from agy_trio.adapters.antigravity.errors import unreachable_cause
from agy_trio.errors import EndpointUnreachable

__all__ = ["UnreachableWatch"]

_CAUSE_MAX = 400  # the harness repeats its cause; the start of it says it all


class UnreachableWatch:
    """Gives up on an attempt whose endpoint the harness reports out of reach.

    Lives on the agent's host loop; create it when the attempt starts.

    Args:
        timeout: Seconds from the start of the attempt after which a reported
            connection failure ends it.
        halt: Stops the SDK's turn (the SDK's own cancel).

    Attributes:
        error: Set once the watch gave up: the error the attempt fails with.
    """

    def __init__(self, timeout: float, halt: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + timeout
        self._halt = halt
        self._cause: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._halting: asyncio.Task[None] | None = None
        self.error: EndpointUnreachable | None = None

    async def report(self, message: str) -> None:
        """A system step reported an error: give up if it is a connection failure, in time."""
        cause = unreachable_cause(message)
        if cause is None or self.error is not None:
            return
        self._cause = cause
        if self._loop.time() >= self._deadline:
            self._cancel_timer()
            self._give_up()
            await self._halt()
        elif self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._give_up_later)

    def answered(self) -> None:
        """The model answered: the endpoint is reachable after all."""
        self._cause = None
        self._cancel_timer()

    async def close(self) -> None:
        """End the watch: no timer left, and a halt it started is over."""
        self._cancel_timer()
        halting, self._halting = self._halting, None
        if halting is not None:
            await asyncio.wait([halting])

    def _give_up(self) -> None:
        cause = self._cause or "no answer"
        if len(cause) > _CAUSE_MAX:
            cause = cause[: _CAUSE_MAX - 3] + "..."
        self.error = EndpointUnreachable(f"the model endpoint is unreachable: {cause}")

    def _give_up_later(self) -> None:
        self._timer = None
        if self._cause is None or self.error is not None:
            return
        self._give_up()
        self._halting = self._loop.create_task(self._halt())

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
