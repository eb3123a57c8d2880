"""What a model server answers next, and what it has seen: the state behind its HTTP app.

:class:`ModelState` holds the scripted replies (or the callable choosing
them), the queued faults, the requests held by a ``HANG`` fault, and the
counters of :class:`ModelServerStatistics`. :class:`~agy_trio.testing.ModelServer`
serves it over HTTP (:mod:`agy_trio.testing.app`); the control API and a test's
own calls change it through the same methods.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import attrs
import trio

from agy_trio.testing.replies import Responder, default_reply
from agy_trio.testing.script import Fault, Reply
from agy_trio.testing.wire import ChatRequest

__all__ = ["ModelServerStatistics", "ModelState"]


@attrs.frozen
class ModelServerStatistics:
    """A snapshot of a server's state, from :meth:`ModelServer.statistics`.

    Attributes:
        requests_total: Chat requests received so far.
        in_flight: Chat requests being answered now.
        hung: Requests held by a ``HANG`` fault now.
        pending_faults: Faults still queued.
        pending_replies: Scripted replies not yet used.
        abandoned: Chat requests whose client went away before their answer
            was complete (a turn the harness cancelled, for instance).
    """

    requests_total: int
    in_flight: int
    hung: int
    pending_faults: int
    pending_replies: int
    abandoned: int = 0


@attrs.define
class _QueuedFault:
    fault: Fault
    remaining: int | None


class ModelState:
    """A model server's script, faults and counters; all methods run in the server's Trio thread.

    Attributes:
        requests: Every chat request received, in arrival order.
    """

    def __init__(self, script: Iterable[Reply] | Responder | None = None) -> None:
        """Start with ``script``: replies in arrival order, or a callable choosing one per request.

        Args:
            script: As for :func:`~agy_trio.testing.open_model_server`; the
                default behaviour answers the rest.
        """
        self.requests: list[ChatRequest] = []
        self._responder: Responder | None = script if callable(script) else None
        self._replies: deque[Reply] = deque(() if script is None or callable(script) else script)
        self._faults: list[_QueuedFault] = []
        self._in_flight: set[trio.CancelScope] = set()
        self._hung = 0
        self._abandoned = 0
        self._release = trio.Event()
        self._changed = trio.Event()

    def add_replies(self, *replies: Reply) -> None:
        """Append replies to the script; they are used before the default behaviour.

        Has no effect on requests while the script is a callable, which is
        consulted first.
        """
        self._replies.extend(replies)
        self._notify()

    def inject_fault(self, fault: Fault) -> None:
        """Queue a fault for the next matching request(s)."""
        self._faults.append(_QueuedFault(fault, fault.times))
        self._notify()

    def clear_faults(self) -> int:
        """Drop every queued fault.

        Returns:
            How many faults were dropped.
        """
        dropped = len(self._faults)
        self._faults.clear()
        self._notify()
        return dropped

    @property
    def pending_faults(self) -> list[Fault]:
        """The queued faults, each with ``times`` set to its remaining count."""
        return [attrs.evolve(q.fault, times=q.remaining) for q in self._faults]

    def release_hangs(self) -> int:
        """Let every request held by a ``HANG`` fault carry on and answer.

        Returns:
            How many requests were released.
        """
        released = self._hung
        self._release.set()
        self._release = trio.Event()
        return released

    def statistics(self) -> ModelServerStatistics:
        """Return a snapshot of the server's counters."""
        return ModelServerStatistics(
            requests_total=len(self.requests),
            in_flight=len(self._in_flight),
            hung=self._hung,
            pending_faults=len(self._faults),
            pending_replies=len(self._replies),
            abandoned=self._abandoned,
        )

    async def wait_for_requests(self, count: int) -> None:
        """Wait until at least ``count`` chat requests have been received."""
        await self._wait_until(lambda: len(self.requests) >= count)

    async def wait_for_hung(self, count: int = 1) -> None:
        """Wait until at least ``count`` requests are held by ``HANG`` faults."""
        await self._wait_until(lambda: self._hung >= count)

    async def wait_for_idle(self) -> None:
        """Wait until no chat request is being answered (e.g. after a client left)."""
        await self._wait_until(lambda: not self._in_flight)

    async def _wait_until(self, condition: Callable[[], bool]) -> None:
        # Checkpoint first, so that waiting is a checkpoint even when nothing is to wait for.
        await trio.lowlevel.checkpoint()
        while not condition():
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    def _take_fault(self, request: ChatRequest) -> Fault | None:
        prompt = request.prompt_text
        for queued in self._faults:
            if queued.fault.match is None or queued.fault.match in prompt:
                if queued.remaining is not None:
                    queued.remaining -= 1
                    if queued.remaining == 0:
                        self._faults.remove(queued)
                self._notify()
                return queued.fault
        return None

    def _next_reply(self, request: ChatRequest) -> Reply:
        if self._responder is not None:
            reply = self._responder(request)
            if reply is not None:
                return reply
        elif self._replies:
            reply = self._replies.popleft()
            self._notify()
            return reply
        return default_reply(request)

    async def _hang(self) -> None:
        release = self._release
        self._hung += 1
        self._notify()
        try:
            await release.wait()
        finally:
            self._hung -= 1
            self._notify()
