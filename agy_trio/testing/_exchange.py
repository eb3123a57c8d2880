"""The model server's HTTP exchanges: JSON bodies in; errors and chat answers out.

Internal to :mod:`agy_trio.testing.app`. Its async functions await the ASGI
server's ``receive`` and ``send``, which are checkpoints under hypercorn.

Request bodies are read by Starlette (:func:`read_json`), and whole answers
are Starlette responses: errors use OpenAI's error object
(:func:`error_response`, :func:`error_handler`). A chat answer needs more
control than a Starlette response gives: a stream that waits before each
event, stops mid-body without ``[DONE]`` (hypercorn then drops the
connection), or hangs until released; and an answer that stops as soon as its
client leaves. :class:`Exchange` and :class:`Delivery` give that control on
top of the ASGI callables Starlette hands to a response.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import attrs
import trio
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from agy_trio.testing.script import Fault, FaultKind, Reply
from agy_trio.testing.wire import (
    DONE_FRAME,
    ChatRequest,
    completion_body,
    error_body,
    sse_frame,
    stream_events,
)

__all__ = [
    "BadRequest",
    "Delivery",
    "Exchange",
    "error_handler",
    "error_response",
    "read_json",
]

_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


class BadRequest(Exception):
    """The request body is not what the endpoint expects; answered with 400."""


async def read_json(request: Request) -> Any:
    """The request's body, parsed as JSON.

    Raises:
        BadRequest: The body is empty or not JSON.
    """
    # The app's max_body_size (Starlette) bounds the size.
    raw = await request.body()
    if not raw:
        raise BadRequest("the request body is empty; a JSON object is expected")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"the request body is not valid JSON: {error}") from error


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An HTTP error with OpenAI's JSON error object as its body."""
    return JSONResponse(error_body(status, message), status, headers)


async def error_handler(request: Request, error: Exception) -> Response:
    """Answer Starlette's errors (404, 405, 413) and :class:`BadRequest` in OpenAI's format.

    A :class:`~starlette.requests.ClientDisconnect` gets no answer: the client
    left before its request arrived.
    """
    await trio.lowlevel.checkpoint()  # The one async function here that awaits nothing else.
    if isinstance(error, ClientDisconnect):
        return _Silence()
    if not isinstance(error, HTTPException):
        return error_response(400, str(error))
    where = f"{request.method} {request.url.path}"
    message = {404: f"No route for {where}", 405: f"{where} is not allowed"}
    return error_response(
        error.status_code, message.get(error.status_code, error.detail), error.headers
    )


class _Silence(Response):
    """No answer, for a client that has gone."""

    def __init__(self) -> None:
        # Not Response.__init__: nothing is ever sent.
        pass

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return


class Exchange:
    """One HTTP exchange as a chat answer sees it.

    Sends are shielded from cancellation, and whether the response has
    started is noted, so that an answer cut short by shutdown can still be
    given a status when nothing was sent yet.

    Attributes:
        started: Whether the response's status and headers have been sent.
        client_gone: Whether the client went away before the answer was complete.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap the ASGI callables of one HTTP request.

        Args:
            scope: The request's ASGI scope.
            receive: Its ASGI receive callable; the body must already be read.
            send: Its ASGI send callable.
        """
        self._scope = scope
        self._receive = receive
        self._send = send
        self.started = False
        self.client_gone = False

    async def send(self, message: Message) -> None:
        """Send one ASGI message, even from a cancelled scope.

        hypercorn finishes the exchange and re-arms the connection's
        keep-alive inside the call that sends the last body chunk; cancelling
        an answer (client gone, shutdown) must never interrupt that
        bookkeeping, or the connection lingers until the graceful timeout.
        """
        self.started = self.started or message["type"] == "http.response.start"
        with trio.CancelScope(shield=True):
            await self._send(message)

    async def respond(self, response: Response) -> None:
        """Send a whole Starlette response."""
        await response(self._scope, self._receive, self.send)

    async def cancel_on_disconnect(self, scope: trio.CancelScope) -> None:
        """Cancel ``scope`` when the client goes away; runs until then.

        Once the body is read, the next ASGI message can only be the client
        leaving: a hung or slow answer then has nobody to answer to.
        """
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.client_gone = True
        scope.cancel()


@attrs.frozen
class Delivery:
    """One reply on its way to the client, as SSE events or as one JSON completion.

    Attributes:
        exchange: Where the answer goes.
        request: The request answered.
        reply: The reply to send.
        delay: Seconds to wait before each stream event (a completion waits
            as long as its stream would have taken).
        cut: A ``DISCONNECT`` or ``HANG`` fault that bites mid-answer, or None.
        hang: Waits until hung requests are released (a ``HANG`` cut).
    """

    exchange: Exchange
    request: ChatRequest
    reply: Reply
    delay: float
    cut: Fault | None
    hang: Callable[[], Awaitable[None]]

    async def send(self) -> None:
        """Send the answer the request asked for: streamed or not."""
        if self.request.stream:
            await self._stream()
        else:
            await self._complete()

    async def _stream(self) -> None:
        frames = [sse_frame(event) for event in stream_events(self.request, self.reply)]
        frames.append(DONE_FRAME)
        # A disconnect always bites before [DONE], so it cannot pass unnoticed.
        cut_at = min(self.cut.after_chunks, len(frames) - 1) if self.cut is not None else -1
        send = self.exchange.send
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        for index, frame in enumerate(frames):
            if index == cut_at and await self._cut_bites():
                return  # Ending mid-body makes hypercorn drop the connection.
            if self.delay:
                await trio.sleep(self.delay)
            else:
                # Sends are shielded: without this, a stream whose client left
                # would be sent to its end.
                await trio.lowlevel.checkpoint_if_cancelled()
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _complete(self) -> None:
        if self.delay:
            # As long as the same reply would have taken to stream.
            await trio.sleep(self.delay * len(stream_events(self.request, self.reply)))
        response = JSONResponse(completion_body(self.request, self.reply))
        if self.cut is None:
            await self.exchange.respond(response)
            return
        # Cut halfway: the client has the headers and half the promised content-length.
        body = bytes(response.body)
        half = len(body) // 2
        send = self.exchange.send
        await send({"type": "http.response.start", "status": 200, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        if await self._cut_bites():
            return
        await send({"type": "http.response.body", "body": body[half:], "more_body": False})

    async def _cut_bites(self) -> bool:
        # True when the answer ends here; a hang waits and then lets it go on.
        if self.cut is not None and self.cut.kind is FaultKind.DISCONNECT:
            return True
        await self.hang()
        return False
