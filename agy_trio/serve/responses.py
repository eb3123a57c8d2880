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
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import trio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agy_trio.core.agent import AgentHandle
from agy_trio.core.events import StopReason, TextDelta, ThoughtDelta, ToolCall, TurnEnd, Usage
from agy_trio.errors import (
    AgentNotFound,
    AgyError,
    ConfigError,
    OperationTimeout,
    QuotaExceeded,
    RuntimeClosed,
)
from agy_trio.serve.json_body import JsonBodyError, parse_json
from agy_trio.serve.responses_wire import ResponseRecord, ResponseRender, new_item_id, openai_error
from agy_trio.serve.wire import Redactor, error_body

if TYPE_CHECKING:
    from agy_trio.serve.app import _Service

__all__ = ["DEFAULT_PROFILE_NAME", "ResponsesAPI"]

DEFAULT_PROFILE_NAME = "agy"
"""The name ``/v1/models`` lists the served profile by when it has none of its own."""

_KEEP_RESPONSES = 1000
"""Finished responses remembered for ``GET`` and ``previous_response_id`` (oldest go first)."""

# Request fields that are taken (and checked) ...
_USED_FIELDS = frozenset(
    {"model", "input", "instructions", "previous_response_id", "stream", "background", "metadata"}
)
# ... and fields clients commonly send that change nothing here: sampling and
# output options belong to the served profile, not to one request.
_IGNORED_FIELDS = frozenset(
    {
        "store",
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
    """One response the API knows: its record, its rendering so far, and when it ended."""

    __slots__ = ("changed", "ended", "events", "record", "render")

    def __init__(self, record: ResponseRecord) -> None:
        self.record = record
        self.render = ResponseRender(record)
        self.events: list[dict[str, Any]] = []
        self.ended = False
        self.changed = trio.Event()

    def add(self, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)
        self.changed.set()
        self.changed = trio.Event()


class ResponsesAPI:
    """The Responses endpoints of one app.

    Args:
        service: The app's shared state (runtime, defaults, redaction).
        profile_name: The name ``/v1/models`` lists the served profile by.
    """

    def __init__(self, service: _Service, profile_name: str = DEFAULT_PROFILE_NAME) -> None:
        self._service = service
        self.profile_name = profile_name
        self._created = int(time.time())
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()

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
        for name, value in (("stream", stream), ("background", background)):
            if not isinstance(value, bool):
                raise _BadRequest("must be a boolean", param=name)
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
        )
        entry = self._remember(record)
        turn = _Turn(handle, prompt, entry, self._service.redact)
        if stream:
            return StreamingResponse(
                _sse(turn.run()),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        async for _ in turn.run():
            pass
        return JSONResponse(entry.render.response())

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

    def _remember(self, record: ResponseRecord) -> _Entry:
        entry = _Entry(record)
        self._entries[record.id] = entry
        while len(self._entries) > _KEEP_RESPONSES:
            oldest = next(iter(self._entries.values()))
            if not oldest.ended:
                break
            self._entries.popitem(last=False)
        return entry

    async def get(self, request: Request) -> Response:
        """``GET /v1/responses/{id}``: the Response object as it stands."""
        await trio.lowlevel.checkpoint()
        entry = self._entry(request.path_params["response_id"])
        return JSONResponse(entry.render.response())

    async def cancel(self, request: Request) -> Response:
        """``POST /v1/responses/{id}/cancel``: stop its turn; the Response object, cancelled."""
        entry = self._entry(request.path_params["response_id"])
        if not entry.ended:
            await self._service.runtime.agent(entry.record.agent_id).cancel()
            while not entry.ended:
                await entry.changed.wait()
        return JSONResponse(entry.render.response())


class _Turn:
    """One response's turn, run by the request that asked for it."""

    def __init__(self, handle: AgentHandle, prompt: str, entry: _Entry, redact: Redactor) -> None:
        self._redact = redact
        self._handle = handle
        self._prompt = prompt
        self._entry = entry

    async def run(self) -> AsyncIterator[dict[str, Any]]:
        """Run the turn; yield its stream events as they are rendered."""
        entry, render = self._entry, self._entry.render
        entry.add(render.start())
        sent = 0
        try:
            response = await self._handle.chat(self._prompt)
            async with response:
                async for event in response.events():
                    entry.add(_render_core_event(render, event))
                    for item in entry.events[sent:]:
                        yield item
                    sent = len(entry.events)
            entry.add(
                render.finished(
                    response.stop_reason or StopReason.END_TURN,
                    response.usage or Usage(),
                    time.time(),
                )
            )
        except AgyError as error:
            error_json = error_body(error, self._redact)["error"]
            entry.add(render.failed(error_json["type"], error_json["message"], time.time()))
        finally:
            entry.ended = True
            entry.add([])
        for item in entry.events[sent:]:
            yield item


def _render_core_event(render: ResponseRender, event: Any) -> list[dict[str, Any]]:
    kind = type(event)
    if kind is TextDelta:
        return render.text(event.text)
    if kind is ThoughtDelta:
        return render.thought(event.text)
    if kind is ToolCall:
        call_id = event.call_id or new_item_id("call")
        return render.tool_finished(call_id, event.name, event.arguments, event.result, event.error)
    assert kind is TurnEnd
    return []


async def _sse(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for event in events:
        data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        yield f"event: {event['type']}\ndata: {data}\n\n".encode()
