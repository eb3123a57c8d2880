"""The chat event stream: one turn relayed as server-sent events, cancelled with its client.

A :class:`ChatStream` is the Starlette response of ``POST /v1/agents/{id}/chat``.
It starts the turn, relays its events, and watches the connection meanwhile:
when the client goes away the relay is cancelled, and cancelling the reader of
a :class:`~agy_trio.ChatResponse` cancels the turn itself, down to the
backend's own cancel. :class:`LiveStreams` knows every stream being served, so
that a server shutting down can end each one with an ``error`` event of type
``RuntimeClosed`` before the connection closes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import cast

import trio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from agy_trio.core.agent import AgentHandle
from agy_trio.core.events import ChatEvent, TextDelta
from agy_trio.core.streaming import ChatResponse
from agy_trio.errors import AgyError, RuntimeClosed
from agy_trio.serve.wire import Redactor, done_event, error_event, event_for

__all__ = ["ChatStream", "LiveStreams"]

log = logging.getLogger("agy_trio.serve")


def event_generator(response: ChatResponse) -> AsyncGenerator[ChatEvent, None]:
    """``response.events()``, typed as the async generator it is (for ``aclosing``)."""
    return cast(AsyncGenerator[ChatEvent, None], response.events())


# The last messages of a stream are sent even while its task is being
# cancelled, but never wait longer than this on a client that stopped reading.
_FINAL_SEND_TIMEOUT = 5.0


class _Stream:
    """One stream being served: the scope its relay runs in, and who ended it."""

    __slots__ = ("ended_by_client", "ended_by_server", "scope")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.ended_by_client = False
        self.ended_by_server = False


class LiveStreams:
    """The chat streams an app is serving now.

    Attributes:
        disconnects: Streams ended so far because their client went away.
    """

    def __init__(self) -> None:
        self._live: set[_Stream] = set()
        self._changed = trio.Event()
        self._closing = False
        self.disconnects = 0

    def __len__(self) -> int:
        return len(self._live)

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` was called: new streams are refused."""
        return self._closing

    def _open(self) -> _Stream:
        if self._closing:
            raise RuntimeClosed("the server is shutting down")
        stream = _Stream()
        self._live.add(stream)
        return stream

    def _done(self, stream: _Stream) -> None:
        self._live.discard(stream)
        if stream.ended_by_client:
            self.disconnects += 1
        self._changed.set()
        self._changed = trio.Event()

    async def close(self, grace: float) -> None:
        """End every live stream with ``RuntimeClosed`` and wait (at most ``grace`` s) for them.

        Streams opened afterwards are refused. Idempotent.
        """
        self._closing = True
        for stream in self._live:
            stream.ended_by_server = True
            stream.scope.cancel()
        with trio.move_on_after(grace):
            while self._live:
                await self._changed.wait()
        if self._live:
            log.warning("%d chat stream(s) did not end within %g s", len(self._live), grace)
        await trio.lowlevel.checkpoint()


async def _watch_disconnect(receive: Receive, stream: _Stream) -> None:
    # The request body has been read, so the next message can only be the
    # client going away (ASGI says so for http scopes).
    while (await receive())["type"] != "http.disconnect":
        pass
    stream.ended_by_client = True
    stream.scope.cancel()


class ChatStream(Response):
    """The ``text/event-stream`` answer of a chat: one turn, relayed as it happens.

    Events: ``delta`` and ``thought`` (``{"text"}``), ``tool_call``
    (``{"name", "arguments", "result", "error"}``), then exactly one of
    ``done`` (``{"stop_reason", "text", "usage"}``) or ``error``
    (``{"type", "message", "retry_after"}``).

    Args:
        handle: The agent to chat with.
        prompt: The user's message.
        streams: Where the stream registers while it is live.
        redact: Masks secrets in error messages.
        response: The turn, when the caller started it already (so that what
            refused it became an HTTP status); the stream then relays it, and
            closes it whatever happens, cancelling the turn if it is not over.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        handle: AgentHandle,
        prompt: str,
        streams: LiveStreams,
        redact: Redactor,
        *,
        response: ChatResponse | None = None,
    ) -> None:
        # Not Response.__init__: a stream has no body to measure up front.
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})
        self._handle = handle
        self._prompt = prompt
        self._streams = streams
        self._redact = redact
        self._response = response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the stream (the ASGI entry point)."""
        stream = self._streams._open()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            final: bytes | None = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_disconnect, receive, stream)
                with stream.scope:
                    final = await self._relay(send)
                nursery.cancel_scope.cancel()
            if final is None:
                if stream.ended_by_client:
                    return  # nobody left to tell
                final = error_event(RuntimeClosed("the server is shutting down"), self._redact)
            # Shielded: the connection's keep-alive bookkeeping happens inside
            # the last send, and a shutdown in progress must not cut it short.
            with trio.CancelScope(shield=True), trio.move_on_after(_FINAL_SEND_TIMEOUT):
                await send({"type": "http.response.body", "body": final, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._streams._done(stream)
            if self._response is not None:
                # Never relayed (cancelled first) or relayed: closed either way.
                with trio.CancelScope(shield=True):
                    await self._response.aclose()

    async def _relay(self, send: Send) -> bytes:
        """Start the turn and send its events; return the last one, ``done`` or ``error``."""
        text: list[str] = []
        try:
            response = self._response or await self._handle.chat(self._prompt)
            # Leaving the block early (cancellation) cancels the turn at the backend.
            # Read to the very end, past TurnEnd: a response that has not seen
            # the end of its stream would cancel the turn on exit. aclosing: a
            # cancel while sending closes the events' generator now, not in
            # the garbage collector.
            async with response, contextlib.aclosing(event_generator(response)) as events:
                async for event in events:
                    if type(event) is TextDelta:
                        text.append(event.text)
                    body = event_for(event)
                    if body is not None:
                        await send({"type": "http.response.body", "body": body, "more_body": True})
            return done_event(response.stop_reason, "".join(text), response.usage)
        except AgyError as error:
            return error_event(error, self._redact)
        except Exception as error:
            log.exception("chat stream of %s failed", self._handle.agent_id)
            return error_event(error, self._redact)
