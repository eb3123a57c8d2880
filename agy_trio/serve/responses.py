"""OpenAI Responses over the served agents: ``/v1/responses`` and ``/v1/models``.

Any client of OpenAI's Responses API (the ``openai`` package's
``client.responses.create(...)``) drives agy_trio's agents:

* ``GET /v1/models`` lists the served profiles; ``model`` names one.
* ``POST /v1/responses`` starts a turn: on a new agent made from the profile,
  or, with ``previous_response_id``, on the agent that answered that
  response (the same conversation). The last user message of ``input`` is
  the prompt. ``stream: true`` answers with the Responses stream events,
  otherwise the finished Response object.
* ``GET /v1/responses/{id}`` and ``POST /v1/responses/{id}/cancel``.

Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``,
so the client raises its own typed errors (``BadRequestError``,
``NotFoundError`` ...). The rendering itself is in
:mod:`agy_trio.serve.responses_wire`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import trio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agy_trio.core.agent import AgentHandle
from agy_trio.errors import (
    AgentNotFound,
    AgyError,
    ConfigError,
    OperationTimeout,
    QuotaExceeded,
    RuntimeClosed,
    TurnNotFound,
)
from agy_trio.serve import turn_log
from agy_trio.serve.json_body import JsonBodyError, parse_json
from agy_trio.serve.profile import DEFAULT_PROFILE_NAME
from agy_trio.serve.responses_wire import ResponseRecord, ResponseRender, new_item_id, openai_error
from agy_trio.serve.state import ServiceState
from agy_trio.serve.wire import error_body

__all__ = ["DEFAULT_PROFILE_NAME", "ResponsesAPI"]


_KEEP_RESPONSES = 1000
"""Finished responses remembered for ``GET`` and ``previous_response_id`` (oldest go first)."""

# Request fields that are taken (and checked) ...
_USED_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "previous_response_id",
        "stream",
        "background",
        "store",
        "metadata",
    }
)
# ... and fields clients commonly send that change nothing here: sampling and
# output options belong to the served profile, not to one request.
_IGNORED_FIELDS = frozenset(
    {
        "temperature",
        "top_p",
        "max_output_tokens",
        "parallel_tool_calls",
        "tool_choice",
        "reasoning",
        "text",
        "truncation",
        "user",
        "include",
        "service_tier",
        "stream_options",
        "prompt_cache_key",
        "safety_identifier",
    }
)


class _BadRequest(Exception):
    """A request the Responses API refuses: 400 with OpenAI's error object."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


_ERROR_KIND: tuple[tuple[type[AgyError], int, str, str | None], ...] = (
    (AgentNotFound, 404, "invalid_request_error", "not_found"),
    (ConfigError, 400, "invalid_request_error", None),
    (QuotaExceeded, 429, "rate_limit_error", "rate_limit_exceeded"),
    (RuntimeClosed, 503, "server_error", "service_unavailable"),
    (OperationTimeout, 504, "server_error", "timeout"),
)


def _text_of(content: Any, where: str) -> str:
    """The text of a message's ``content``: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _BadRequest("must be a string or a list of content parts", param=where)
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
            raise _BadRequest(
                "only text content parts (input_text) are supported", param=f"{where}[{index}]"
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise _BadRequest("must be a string", param=f"{where}[{index}].text")
        texts.append(text)
    return "".join(texts)


def _prompt_of(value: Any) -> str:
    """The prompt in a request's ``input``: the string, or the last user message's text."""
    if isinstance(value, str):
        prompt = value
    elif isinstance(value, list):
        prompt = ""
        for index, item in enumerate(value):
            if not isinstance(item, dict) or item.get("type", "message") != "message":
                raise _BadRequest(
                    "only message items are supported (tools run on the server)",
                    param=f"input[{index}]",
                )
            if item.get("role") == "user":
                prompt = _text_of(item.get("content"), f"input[{index}].content")
    else:
        raise _BadRequest("must be a string or a list of input items", param="input")
    if not prompt.strip():
        raise _BadRequest("there is no user message to answer", param="input")
    return prompt


class _Entry:
    """One response the API knows: its record and its turn's log (the events themselves)."""

    __slots__ = ("log", "record")

    def __init__(self, record: ResponseRecord, log: turn_log.TurnLog) -> None:
        self.record = record
        self.log = log

    def _finished_at(self) -> float:
        # From the log's own clock, so that every rendering says the same.
        log = self.log
        assert log.finished_at is not None
        return self.record.created_at + (log.finished_at - log.started_at)

    def render(self, events: Iterable[turn_log.TurnEvent] | None = None) -> ResponseRender:
        """A rendering fed with ``events`` (default: every event recorded so far)."""
        render = ResponseRender(self.record)
        render.start()
        for event in self.log.events if events is None else events:
            self.feed(render, event)
        return render

    def feed(self, render: ResponseRender, event: turn_log.TurnEvent) -> list[dict[str, Any]]:
        """Render one turn event; the stream events it makes."""
        match event.payload:
            case turn_log.Text(text=text):
                return render.text(text)
            case turn_log.Thought(text=text):
                return render.thought(text)
            case turn_log.ToolStarted(call_id=call_id, name=name, arguments=arguments):
                return render.tool_started(call_id, name, arguments)
            case turn_log.ToolFinished() as done:
                return render.tool_finished(
                    done.call_id, done.name, done.arguments, done.result, done.error
                )
            case turn_log.TurnFinished(stop_reason=stop_reason, usage=usage):
                return render.finished(stop_reason, usage, self._finished_at())
            case turn_log.TurnFailed(type=kind, message=message):
                return render.failed(kind, message, self._finished_at())
            case _:
                return []  # usage comes again with the end; approvals wait in /v1/approvals

    async def stream(
        self, reader: turn_log.TurnReader, starting_after: int
    ) -> AsyncIterator[bytes]:
        """The response's stream events, as SSE, after ``starting_after``, live to its end."""
        render = ResponseRender(self.record)
        async with reader:
            pending = render.start()
            async for event in reader:
                pending += self.feed(render, event)
                for item in pending:
                    if item["sequence_number"] > starting_after:
                        yield _sse_frame(item)
                pending = []
            for item in pending:
                if item["sequence_number"] > starting_after:
                    yield _sse_frame(item)


class ResponsesAPI:
    """The Responses endpoints of one app.

    Args:
        service: The app's shared state (runtime, defaults, redaction).
        profile_name: The name ``/v1/models`` lists the served profile by.
    """

    def __init__(self, service: ServiceState, profile_name: str = DEFAULT_PROFILE_NAME) -> None:
        self._service = service
        self.profile_name = profile_name
        self._created = int(time.time())
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        # Where background responses are read to their end (while the app runs).
        self._nursery: trio.Nursery | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Host the readers of background responses for the app's lifetime."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                yield
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()

    def routes(self) -> list[Route]:
        """The Starlette routes, to mount on the app."""
        return [
            Route("/v1/models", self._guarded(self.list_models), methods=["GET"]),
            Route("/v1/models/{model}", self._guarded(self.get_model), methods=["GET"]),
            Route("/v1/responses", self._guarded(self.create), methods=["POST"]),
            Route("/v1/responses/{response_id}", self._guarded(self.get), methods=["GET"]),
            Route(
                "/v1/responses/{response_id}/cancel", self._guarded(self.cancel), methods=["POST"]
            ),
        ]

    # ------------------------------------------------------------------ errors

    def _guarded(self, endpoint: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """``endpoint`` with every failure answered in OpenAI's error shape."""

        async def guarded(request: Request) -> Response:
            try:
                response: Response = await endpoint(request)
            except _BadRequest as exc:
                return JSONResponse(
                    openai_error(str(exc), "invalid_request_error", param=exc.param), exc.status
                )
            except HTTPException as exc:  # 413 from the body size limit, mostly
                return JSONResponse(
                    openai_error(str(exc.detail), "invalid_request_error"), exc.status_code
                )
            except AgyError as exc:
                return self._agy_error(exc)
            return response

        return guarded

    def _agy_error(self, exc: AgyError) -> JSONResponse:
        body = error_body(exc, self._service.redact)["error"]
        for kind, status, error_type, code in _ERROR_KIND:
            if isinstance(exc, kind):
                param = body.get("field")
                return JSONResponse(
                    openai_error(body["message"], error_type, param=param, code=code), status
                )
        return JSONResponse(openai_error(body["message"], "server_error", code="server_error"), 502)

    # ------------------------------------------------------------------ models

    def _model_object(self) -> dict[str, Any]:
        return {
            "id": self.profile_name,
            "object": "model",
            "created": self._created,
            "owned_by": "agy_trio",
        }

    async def list_models(self, request: Request) -> Response:
        """``GET /v1/models``: the served profiles."""
        await trio.lowlevel.checkpoint()
        return JSONResponse({"object": "list", "data": [self._model_object()]})

    async def get_model(self, request: Request) -> Response:
        """``GET /v1/models/{model}``."""
        await trio.lowlevel.checkpoint()
        if request.path_params["model"] != self.profile_name:
            raise _BadRequest(
                f"The model {request.path_params['model']!r} does not exist", status=404
            )
        return JSONResponse(self._model_object())

    # ------------------------------------------------------------------ responses

    def _entry(self, response_id: str, param: str = "response_id") -> _Entry:
        entry = self._entries.get(response_id)
        if entry is not None:
            try:  # its events are kept as long as its turn's log is
                self._service.turn_logs.get(entry.log.turn_id)
            except TurnNotFound:
                del self._entries[response_id]
                entry = None
        if entry is None:
            raise _BadRequest(
                f"Response with id {response_id!r} not found.", param=param, status=404
            )
        return entry

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = parse_json(raw)
        except JsonBodyError as exc:
            raise _BadRequest(f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _BadRequest("the body must be a JSON object")
        for name in sorted(body):
            if name not in _USED_FIELDS and name not in _IGNORED_FIELDS:
                if name == "tools" and not body[name]:
                    continue
                raise _BadRequest(f"Unknown or unsupported parameter: '{name}'.", param=name)
        return body

    async def create(self, request: Request) -> Response:
        """``POST /v1/responses``: a turn, streamed or answered whole."""
        self._service._check_open()
        body = await self._body(request)
        model = body.get("model")
        if model != self.profile_name:
            raise _BadRequest(
                f"The model {model!r} does not exist; GET /v1/models lists the served ones",
                param="model",
                status=404 if isinstance(model, str) else 400,
            )
        prompt = _prompt_of(body.get("input"))
        stream, background = body.get("stream", False), body.get("background", False)
        store = body.get("store", True)
        for name, value in (("stream", stream), ("background", background), ("store", store)):
            if not isinstance(value, bool):
                raise _BadRequest("must be a boolean", param=name)
        if background and not store:
            raise _BadRequest("a background response must be stored", param="store")
        if (background or not store) and self._nursery is None:
            raise RuntimeClosed("the server is not running")
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise _BadRequest("must be a string", param="instructions")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise _BadRequest("must be an object of strings", param="metadata")
        previous = body.get("previous_response_id")
        if previous is not None and not isinstance(previous, str):
            raise _BadRequest("must be a string", param="previous_response_id")
        handle = await self._agent_for(previous, instructions)
        record = ResponseRecord(
            id=new_item_id("resp"),
            model=self.profile_name,
            agent_id=handle.agent_id,
            created_at=time.time(),
            background=background,
            instructions=instructions,
            metadata=metadata,
            previous_response_id=previous,
            store=store,
        )
        log, reader = await self._service.turns.start(handle, prompt)
        entry = _Entry(record, log)
        # Not stored: nothing can continue it, so its agent goes with its turn
        # (before the answer is sent, when the answer is sent whole).
        disposable = not store and previous is None
        if store:
            self._remember(entry)
        elif disposable and stream and self._nursery is not None:
            self._nursery.start_soon(_delete_after, handle, log)
        if background and self._nursery is not None:
            # The server reads a background response to its end: an attached
            # reader keeps the turn going when the client disconnects.
            self._nursery.start_soon(_read_to_end, log.attach())
        if stream:
            return _event_stream(entry.stream(reader, -1))
        async with reader:
            async for _ in reader:
                pass
        if disposable:
            await _delete_after(handle, log)
        return JSONResponse(entry.render().response())

    async def _agent_for(self, previous: str | None, instructions: str | None) -> AgentHandle:
        service = self._service
        if previous is not None:
            entry = self._entry(previous, param="previous_response_id")
            try:
                return service.runtime.agent(entry.record.agent_id)
            except AgentNotFound:
                raise _BadRequest(
                    f"the agent of response {previous!r} is gone",
                    param="previous_response_id",
                    status=404,
                ) from None
        config = service.defaults
        if instructions:
            config = config.replace(system_instructions=instructions)
        handle = await service.runtime.create_agent(config)
        service._created.add(handle.agent_id)
        return handle

    def _remember(self, entry: _Entry) -> None:
        self._entries[entry.record.id] = entry
        while len(self._entries) > _KEEP_RESPONSES:
            self._entries.popitem(last=False)

    async def get(self, request: Request) -> Response:
        """``GET /v1/responses/{id}``: the Response object, or (``stream=true``) its stream.

        With ``stream=true`` the stream is rendered again from the turn's
        log, from ``starting_after`` (a ``sequence_number``) on, and follows
        the turn live to its end.
        """
        await trio.lowlevel.checkpoint()
        entry = self._entry(request.path_params["response_id"])
        query = request.query_params
        stream = query.get("stream", "false").lower()
        if stream not in ("true", "false"):
            raise _BadRequest("must be true or false", param="stream")
        if stream == "false":
            return JSONResponse(entry.render().response())
        raw = query.get("starting_after", "-1")
        try:
            starting_after = int(raw)
        except ValueError:
            raise _BadRequest("must be an integer", param="starting_after") from None
        return _event_stream(entry.stream(entry.log.attach(), starting_after))

    async def cancel(self, request: Request) -> Response:
        """``POST /v1/responses/{id}/cancel``: stop its turn; the Response object, cancelled."""
        entry = self._entry(request.path_params["response_id"])
        running = self._service.turns.turn(entry.log.turn_id)
        if running is not None:
            running.scope.cancel()
        while not entry.log.finished:
            await entry.log.wait_changed()
        return JSONResponse(entry.render().response())


async def _delete_after(handle: AgentHandle, log: turn_log.TurnLog) -> None:
    while not log.finished:
        await log.wait_changed()
    with contextlib.suppress(AgyError):
        await handle.delete()


async def _read_to_end(reader: turn_log.TurnReader) -> None:
    async with reader:
        async for _ in reader:
            pass


def _sse_frame(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


def _event_stream(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
