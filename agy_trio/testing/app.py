"""The model server over HTTP: its Starlette app, control API and life cycle on hypercorn.

What it answers next and what it has seen (replies, faults, counters) is
:mod:`agy_trio.testing.model_state`'s; :class:`ModelServer` serves that state.

Routes (Starlette, which runs on Trio through anyio):

* ``POST /v1/chat/completions`` (also without ``/v1``): the model.
* ``GET /v1/models`` (also without ``/v1``) and ``GET /health``.
* The control API, JSON in and out, meant for a trusted loopback test setup:
  ``POST /control/faults`` queues a fault object or a list of them (the field
  names of :class:`~agy_trio.testing.Fault`, ``kind`` one of ``http_error``,
  ``slow``, ``disconnect``, ``hang``), ``GET`` lists and ``DELETE`` drops the
  queued faults; ``POST /control/release`` releases every hung request;
  ``POST /control/replies`` queues a reply object or a list (the field names
  of :class:`~agy_trio.testing.Reply`); ``GET /control/requests`` returns the
  logged chat requests.

Errors, 404 and 405 included, use OpenAI's JSON error object. How a chat
answer is sent, faults included, is :mod:`agy_trio.testing._exchange`'s part;
which answer, and which fault, is decided here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import trio
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from agy_trio._sockets import ServerAddress
from agy_trio.core.exception_groups import raise_lone_leaf
from agy_trio.testing import _exchange
from agy_trio.testing.hosting import serve_asgi
from agy_trio.testing.model_state import ModelServerStatistics, ModelState
from agy_trio.testing.replies import Responder
from agy_trio.testing.script import Fault, FaultKind, Reply, reply_from_json
from agy_trio.testing.wire import MODEL_ID, ChatRequest, default_error_message

__all__ = ["ModelServer", "ModelServerStatistics", "open_model_server", "run_model_server"]


# The server logs under the name of its documented module.
_LOG = logging.getLogger("agy_trio.testing.model_server")

# Large enough for the biggest prompt the harness sends (~15k tokens), small
# enough that a runaway client cannot exhaust memory.
_MAX_BODY_BYTES: Final = 32 * 1024 * 1024

# Accept loops on the listening socket. Trio's serve_listeners takes one
# connection per loop and scheduler round; a harness opens a new connection for
# most requests (its HTTP client keeps two idle ones per host), so thousands of
# conversations asking at once, with thousands of answers streaming, had
# connections wait in the accept queue until the harness gave up dialling
# ("dial tcp ...: i/o timeout").
_ACCEPTORS: Final = 16

# hypercorn's settings (see hypercorn.config.Config).
_HYPERCORN_SETTINGS: Final[Mapping[str, Any]] = {
    # A backstop only: in-flight requests are cancelled before hypercorn is
    # asked to stop, so its graceful wait normally ends at once.
    "graceful_timeout": 2.0,
    # Connections waiting to be accepted: thousands of conversations ask at
    # once (Python's default of 128 drops the rest, which their harness sees
    # as EOF).
    "backlog": 4096,
    # How long an idle keep-alive connection stays open. Hypercorn's default
    # (5 s) closes connections the harness's HTTP client still holds in its
    # pool; when a closure crosses a new request on the same connection the
    # request fails ("failed to send HTTP request ... EOF"). Hosted model
    # endpoints keep idle connections for minutes.
    "keep_alive_timeout": 300.0,
    "errorlog": _LOG,
}

_SHUTTING_DOWN: Final = "The model server is shutting down."

_T = TypeVar("_T")


class ModelServer(ModelState):
    """A running model server's state and behaviour; made by :func:`open_model_server`.

    Its script, faults and counters are :class:`~agy_trio.testing.model_state.ModelState`'s;
    this class serves them over HTTP. All methods must be called from the Trio
    thread that runs the server.

    Attributes:
        requests: Every chat request received, in arrival order.
        host: The host clients should connect to (empty until it listens).
        port: The TCP port the server listens on, the real one when 0 was
            asked (0 until it listens).
    """

    def __init__(
        self, script: Iterable[Reply] | Responder | None = None, log_path: Path | None = None
    ) -> None:
        """Create a server that is not yet listening.

        Args:
            script: Replies to use in arrival order, or a callable choosing
                one per request; the default behaviour answers the rest.
            log_path: A JSON Lines file every chat request is appended to.
        """
        super().__init__(script)
        self._log_path = log_path
        self._log_lock = trio.Lock()
        self.host = ""
        self.port = 0
        self._closing = False
        self._shutdown = trio.Event()
        self._app = self._build_app()

    # -- public face -------------------------------------------------------

    @property
    def root_url(self) -> str:
        """The URL of the server's root, e.g. ``http://127.0.0.1:8765``."""
        return ServerAddress(self.host, self.port).url

    @property
    def url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:8765/v1``."""
        return f"{self.root_url}/v1"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope: the server as an ASGI application.

        Args:
            scope: The ASGI connection scope.
            receive: The ASGI receive callable.
            send: The ASGI send callable.
        """
        # A checkpoint whatever the server's receive and send do.
        await trio.lowlevel.checkpoint()
        await self._app(scope, receive, send)

    # -- routes ---------------------------------------------------------------

    def _build_app(self) -> Starlette:
        openai = [
            Route("/chat/completions", self._chat, methods=["POST"]),
            Route("/models", _models, methods=["GET"]),
        ]
        control = [
            Route("/faults", self._control_faults, methods=["GET", "POST", "DELETE"]),
            Route("/release", self._control_release, methods=["POST"]),
            Route("/replies", self._control_replies, methods=["POST"]),
            Route("/requests", self._control_requests, methods=["GET"]),
        ]
        routes = [
            Mount("/v1", routes=openai),
            *openai,
            Route("/health", _health, methods=["GET"]),
            Mount("/control", routes=control),
        ]
        handlers = dict.fromkeys(
            (HTTPException, _exchange.BadRequest, ClientDisconnect), _exchange.error_handler
        )
        return Starlette(routes=routes, exception_handlers=handlers, max_body_size=_MAX_BODY_BYTES)

    async def _chat(self, request: Request) -> Response:
        body = await _exchange.read_json(request)
        if not isinstance(body, dict):
            raise _exchange.BadRequest("the request body must be a JSON object")
        if self._closing:
            return _exchange.error_response(503, _SHUTTING_DOWN)
        chat = ChatRequest(len(self.requests) + 1, time.time(), request.scope["path"], body)
        self.requests.append(chat)
        self._notify()
        await self._log(chat)
        return _ChatAnswer(self, chat)

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            return JSONResponse({"cleared": self.clear_faults()})
        if request.method == "POST":
            faults = _parse_items(await _exchange.read_json(request), Fault.from_json)
            for fault in faults:
                self.inject_fault(fault)
            return JSONResponse({"queued": len(faults), "faults": self._faults_json()})
        return JSONResponse({"faults": self._faults_json()})

    async def _control_release(self, request: Request) -> Response:
        return JSONResponse({"released": self.release_hangs()})

    async def _control_replies(self, request: Request) -> Response:
        replies = _parse_items(await _exchange.read_json(request), reply_from_json)
        self.add_replies(*replies)
        return JSONResponse({"queued": len(replies), "pending": len(self._replies)})

    async def _control_requests(self, request: Request) -> Response:
        return JSONResponse({"requests": [r.to_json() for r in self.requests]})

    def _faults_json(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self.pending_faults]

    # -- answering a chat request ------------------------------------------

    async def _answer(self, request: ChatRequest, exchange: _exchange.Exchange) -> None:
        async with trio.open_nursery() as nursery:
            self._in_flight.add(nursery.cancel_scope)
            answered = False
            try:
                nursery.start_soon(exchange.cancel_on_disconnect, nursery.cancel_scope)
                await self._answer_under_faults(request, exchange)
                answered = True
                nursery.cancel_scope.cancel()
            finally:
                if exchange.client_gone and not answered:
                    self._abandoned += 1
                self._in_flight.discard(nursery.cancel_scope)
                self._notify()
        if self._closing and not exchange.started:
            # A request cut short by shutdown still gets a clear answer.
            await exchange.respond(_exchange.error_response(503, _SHUTTING_DOWN))

    async def _answer_under_faults(
        self, request: ChatRequest, exchange: _exchange.Exchange
    ) -> None:
        fault = self._take_fault(request)
        if fault is not None and fault.kind is FaultKind.HTTP_ERROR:
            headers = {} if fault.retry_after is None else {"retry-after": str(fault.retry_after)}
            message = fault.message or default_error_message(fault.status, fault.retry_after)
            await exchange.respond(_exchange.error_response(fault.status, message, headers))
            return
        if fault is not None and fault.kind is FaultKind.HANG and fault.after_chunks == 0:
            await self._hang()
            fault = None  # Released: answer normally.
        try:
            reply = self._next_reply(request)
        except Exception as error:
            # A broken script is the test author's bug: say so to the client
            # (and the log) instead of leaving a bare 500.
            _LOG.exception("the script failed on request %d", request.seq)
            message = f"the model server's script raised {error!r}"
            await exchange.respond(_exchange.error_response(500, message))
            return
        delay = reply.delay
        if fault is not None and fault.kind is FaultKind.SLOW:
            delay, fault = delay + fault.chunk_delay, None
        await _exchange.Delivery(exchange, request, reply, delay, cut=fault, hang=self._hang).send()

    async def _log(self, request: ChatRequest) -> None:
        if self._log_path is None:
            return
        line = json.dumps(request.to_json()) + "\n"
        # The lock keeps lines in arrival order; opening per line means an
        # out-of-process reader always sees whole, flushed lines.
        async with self._log_lock:
            await trio.to_thread.run_sync(_append_line, self._log_path, line)

    # -- life cycle ----------------------------------------------------------

    async def _serve(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[ServerAddress] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await serve_asgi(
            self._app,
            host,
            port,
            Config.from_mapping(_HYPERCORN_SETTINGS),
            shutdown_trigger=self._shutdown.wait,
            acceptors=_ACCEPTORS,
            task_status=task_status,
        )

    def _begin_shutdown(self) -> None:
        # Cancelling in-flight requests first lets hypercorn's graceful stop
        # finish at once instead of waiting for hung or slow answers.
        self._closing = True
        for scope in self._in_flight:
            scope.cancel()
        self._shutdown.set()


class _ChatAnswer(Response):
    """The answer to one logged chat request: its status, headers and body are decided as it goes.

    Starlette calls it like any response, with the exchange's ASGI callables.
    """

    def __init__(self, server: ModelServer, request: ChatRequest) -> None:
        # Not Response.__init__: nothing can be rendered before the faults are known.
        self._server = server
        self._request = request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._server._answer(self._request, _exchange.Exchange(scope, receive, send))


async def _models(request: Request) -> Response:
    models = [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "agy_trio"}]
    return JSONResponse({"object": "list", "data": models})


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _parse_items(data: object, parse: Callable[[object], _T]) -> list[_T]:
    # The control API takes one object or a list of them.
    try:
        return [parse(item) for item in (data if isinstance(data, list) else [data])]
    except (TypeError, ValueError) as error:
        raise _exchange.BadRequest(str(error)) from error


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(line)


@asynccontextmanager
async def open_model_server(
    script: Iterable[Reply] | Responder | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_path: str | Path | None = None,
) -> AsyncIterator[ModelServer]:
    """Run a model server for the duration of an ``async with`` block.

    Leaving the block stops the server promptly: requests in flight (hung ones
    included) are cancelled, those that had not started answering get a 503,
    and no task is left behind.

    Args:
        script: Replies to use in arrival order, or a callable choosing one
            per request (returning None falls back to the default behaviour).
        host: The address to listen on.
        port: The TCP port; 0 picks a free one (see :attr:`ModelServer.port`).
        log_path: A JSON Lines file every chat request is appended to.

    Yields:
        The running server; :attr:`ModelServer.url` is the base URL to give an
        OpenAI-compatible client.

    Raises:
        OSError: The address could not be bound.
    """
    server = ModelServer(script, Path(log_path) if log_path is not None else None)
    try:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server._serve, host, port)
            server.host, server.port = address.host, address.port
            try:
                yield server
            finally:
                server._begin_shutdown()
    except BaseExceptionGroup as group:
        # The server's own tasks end cleanly, so a group holding one exception
        # carries the body's: re-raise it as the body raised it.
        raise_lone_leaf(group)
        raise


async def run_model_server(
    host: str = "127.0.0.1",
    port: int = 8765,
    log_path: str | Path | None = None,
    *,
    script: Iterable[Reply] | Responder | None = None,
    on_ready: Callable[[ModelServer], None] | None = None,
) -> None:
    """Serve until cancelled: the body of the command line, reusable by other CLIs.

    Args:
        host: The address to listen on.
        port: The TCP port; 0 picks a free one.
        log_path: A JSON Lines file every chat request is appended to.
        script: As for :func:`open_model_server`.
        on_ready: Called once the server listens, e.g. to print its URL.
    """
    async with open_model_server(script, host=host, port=port, log_path=log_path) as server:
        if on_ready is not None:
            on_ready(server)
        await trio.sleep_forever()
