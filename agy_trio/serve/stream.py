"""The chat event stream: one turn's log relayed as server-sent events.

A :class:`ChatStream` is the Starlette response of ``POST /v1/agents/{id}/chat``
and of ``GET /v1/turns/{id}/events``. It relays the turn's log from where its
reader stands, and watches the connection meanwhile: when the client goes away
the relay stops and the reader detaches; the turn goes on for the server's
reattach grace (see :mod:`agy_trio.serve.turns`). :class:`LiveStreams` knows
every stream being served, so that a server shutting down can end each one
with an ``error`` event of type ``RuntimeClosed`` before the connection closes.
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from agy_trio.errors import AgyError, RuntimeClosed
from agy_trio.serve.turn_log import TERMINAL, TurnEvent, TurnReader
from agy_trio.serve.wire import Redactor, error_event, sse_for

__all__ = ["ChatStream", "LiveStreams", "NativeRender", "StreamRender"]

log = logging.getLogger("agy_trio.serve")

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


class StreamRender(Protocol):
    """How a protocol renders a turn's log as server-sent events (see :class:`ChatStream`)."""

    def opening(self) -> bytes:
        """What the stream starts with, before any event (e.g. AG-UI's ``RUN_STARTED``)."""

    def render(self, event: TurnEvent) -> tuple[bytes, bool]:
        """The bytes for ``event`` (may be empty), and whether the stream ends with them."""

    def closing(self, error: AgyError) -> bytes:
        """The last words of a stream the server ends early (``RuntimeClosed``)."""


class NativeRender:
    """The native API's rendering: :func:`~agy_trio.serve.wire.sse_for`, ending at the terminal."""

    def __init__(self, redact: Redactor) -> None:
        self._redact = redact

    def opening(self) -> bytes:
        """Nothing: the native stream starts with the turn's first event."""
        return b""

    def render(self, event: TurnEvent) -> tuple[bytes, bool]:
        """The event's native SSE (if the native API sends it); the terminal one ends it."""
        return sse_for(event) or b"", event.kind in TERMINAL

    def closing(self, error: AgyError) -> bytes:
        """An ``error`` event."""
        return error_event(error, self._redact)


class ChatStream(Response):
    """The ``text/event-stream`` answer of a chat: a turn's log, relayed as it is recorded.

    Events (see :func:`agy_trio.serve.wire.native_event`): ``delta`` and
    ``thought`` (``{"text"}``), ``tool_call`` (``{"call_id", "name",
    "arguments", "result", "error"}``), ``approval`` and
    ``approval_answered``, then exactly one of ``done`` (``{"stop_reason",
    "text", "usage"}``) or ``error`` (``{"type", "message", "retry_after"}``).
    Each carries the log's event id as its SSE ``id`` and ``turn_id`` in its
    data; the ``X-Turn-Id`` header names the turn.

    The stream reads the turn through ``reader`` and closes it when the client
    goes away: the turn itself goes on (see :mod:`agy_trio.serve.turns`).

    Args:
        reader: An attached reader of the turn's log, positioned where the
            client resumes.
        streams: Where the stream registers while it is live.
        redact: Masks secrets in error messages.
        render: How the events are rendered; the native API's by default.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        reader: TurnReader,
        streams: LiveStreams,
        redact: Redactor,
        render: StreamRender | None = None,
    ) -> None:
        # Not Response.__init__: a stream has no body to measure up front.
        self.status_code = 200
        self.background = None
        self.init_headers(
            {
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
                "x-turn-id": reader.log.turn_id,
            }
        )
        self._reader = reader
        self._streams = streams
        self._render: StreamRender = render or NativeRender(redact)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the stream (the ASGI entry point)."""
        reader = self._reader
        try:
            stream = self._streams._open()
        except RuntimeClosed:
            reader.close()
            raise
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            opening = self._render.opening()
            if opening:
                await send({"type": "http.response.body", "body": opening, "more_body": True})
            final: bytes | None = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_disconnect, receive, stream)
                with stream.scope:
                    final = await self._relay(send)
                nursery.cancel_scope.cancel()
            if stream.ended_by_client:
                return  # nobody left to tell; the turn's grace starts
            if final is None:
                final = self._rest()
            # Shielded: the connection's keep-alive bookkeeping happens inside
            # the last send, and a shutdown in progress must not cut it short.
            with trio.CancelScope(shield=True), trio.move_on_after(_FINAL_SEND_TIMEOUT):
                await send({"type": "http.response.body", "body": final, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            reader.close()
            self._streams._done(stream)

    async def _relay(self, send: Send) -> bytes:
        """Send the turn's events as they come; return the last bytes (``done``, ``error``...)."""
        async for event in self._reader:
            body, last = self._render.render(event)
            if last:
                return body
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
        # The reader stops only at the terminal event, which every render ends with.
        raise AssertionError("a turn log ended without its terminal event")  # pragma: no cover

    def _rest(self) -> bytes:
        """What a stream the server ended still owes its client: the events recorded since."""
        reader = self._reader
        parts: list[bytes] = []
        for event in reader.log.events_after(reader.position):
            body, last = self._render.render(event)
            parts.append(body)
            if last:
                return b"".join(parts)
        parts.append(self._render.closing(RuntimeClosed("the server is shutting down")))
        return b"".join(parts)
