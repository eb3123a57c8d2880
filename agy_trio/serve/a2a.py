"""A2A (protocol 1.0): the agent card and JSON-RPC at ``/a2a``, rendering the served turns.

The wire is a2a-sdk's own: its JSON-RPC dispatcher (method routing, the
``A2A-Version`` check, parameter parsing into protobuf, the JSON-RPC errors
``-32700/-32600/-32601/-32602`` and A2A's ``TaskNotFoundError`` ...) and its
card serializer run on the server's Trio thread as plain Starlette routes.
What a2a-sdk would run on asyncio (its ``DefaultRequestHandler``, event queues
and task store) is replaced by :class:`AgyRequestHandler`, a Trio
implementation of its ``RequestHandler`` interface over the served turns:

* ``contextId`` is the conversation (the agent's id; a message without one
  starts a new agent from the served profile), a task is one turn (the
  task id is the turn id), its answer is the ``answer`` artifact.
* ``SendMessage`` waits until the task ends or needs input (unless
  ``configuration.returnImmediately``); ``SendStreamingMessage`` streams the
  task; both return when the task needs input.
* Tasks go on when a stream closes: the server itself reads every task to
  its end. ``SubscribeToTask`` re-attaches; ``GetTask``, ``ListTasks``,
  ``CancelTask`` do what they say.
* A tool call an ``ask_user`` rule holds makes the task ``input-required``;
  a message on the same task (``taskId``) with data ``{"approved": bool,
  "reason": str}`` (or the text ``approve`` / ``deny``) answers it, and the
  rest of the same task follows.

Push notifications and the extended card are not offered (the card says so).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from typing import Any

import trio
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes.jsonrpc_routes import create_jsonrpc_routes
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    CancelTaskRequest,
    ExtendedAgentCardNotConfiguredError,
    GetTaskRequest,
    HTTPAuthSecurityScheme,
    InvalidParamsError,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    PushNotificationNotSupportedError,
    SecurityRequirement,
    SecurityScheme,
    SendMessageRequest,
    StringList,
    SubscribeToTaskRequest,
    Task,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskState,
    UnsupportedOperationError,
)
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from a2a.utils.errors import A2AError, InternalError
from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import agy_trio
from agy_trio.core.agent import AgentHandle
from agy_trio.errors import AgentNotFound, AgyError, ApprovalNotFound, TurnNotFound
from agy_trio.serve.a2a_render import A2AEvent, TaskView, pending_approval
from agy_trio.serve.state import ServiceState
from agy_trio.serve.turn_log import ApprovalAsked, Text, TurnLog, TurnReader
from agy_trio.serve.wire import error_body

__all__ = ["A2A_PATH", "A2AEndpoint", "AgyRequestHandler"]

A2A_PATH = "/a2a"
"""Where the JSON-RPC endpoint listens (the card names it)."""

_KEEP_TASKS = 1000
"""Tasks remembered for ``GetTask`` / ``ListTasks`` at most (their turns' logs expire too)."""

# a2a-sdk's dispatcher logs a client's malformed request as an ERROR with a
# traceback, and every JSON-RPC error answer as a WARNING: the client's mistake
# would read as the server's. They are kept, at INFO and without a traceback;
# an internal error (-32603) keeps its level.
_DISPATCHER_LOGGER = "a2a.server.routes.jsonrpc_dispatcher"
_CLIENT_MISTAKES = ("Failed to validate base JSON-RPC request", "Failed to parse request params")


class _ClientMistakesAtInfo(logging.Filter):
    """Logs a client's bad request at INFO, without a traceback (see above)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        args = record.args if isinstance(record.args, tuple) else ()
        internal = -32603 in args
        if message in _CLIENT_MISTAKES or (message.startswith("Request Error") and not internal):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_client_mistakes() -> None:
    dispatcher_log = logging.getLogger(_DISPATCHER_LOGGER)
    if not any(isinstance(f, _ClientMistakesAtInfo) for f in dispatcher_log.filters):
        dispatcher_log.addFilter(_ClientMistakesAtInfo())


_APPROVE = frozenset({"approve", "approved", "yes", "y", "allow", "ok"})
_DENY = frozenset({"deny", "denied", "no", "n", "refuse", "reject"})


def _text_of(message: Message) -> str:
    texts = [part.text for part in message.parts if part.WhichOneof("content") == "text"]
    return "\n".join(texts)


def _decision(message: Message) -> tuple[bool, str]:
    """The approval a message on an ``input-required`` task gives: approved, and why."""
    for part in message.parts:
        if part.WhichOneof("content") == "data":
            data = json_format.MessageToDict(part.data)
            if isinstance(data, dict) and isinstance(data.get("approved"), bool):
                reason = data.get("reason", "")
                return data["approved"], reason if isinstance(reason, str) else ""
    word = _text_of(message).strip().lower().rstrip(".!")
    if word in _APPROVE:
        return True, ""
    if word in _DENY:
        return False, ""
    raise InvalidParamsError(
        message='this task waits for an approval: send data {"approved": true|false} '
        '(or the text "approve" / "deny")'
    )


class _TaskRecord:
    """What A2A adds to a turn: the user's messages on it."""

    __slots__ = ("history", "log")

    def __init__(self, log: TurnLog, message: Message) -> None:
        self.log = log
        self.history: list[Message] = [message]

    def view(self) -> TaskView:
        return TaskView(self.log, self.history)


def _not_offered(error: type[A2AError], capability: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    """A handler method refusing a part of the protocol the card says is not offered."""

    async def refuse(self: object, *args: Any) -> Any:
        await trio.lowlevel.checkpoint()
        raise error

    refuse.__doc__ = f"Not offered: the card says ``{capability}: false``."
    return refuse


class AgyRequestHandler(RequestHandler):
    """a2a-sdk's ``RequestHandler`` interface, on Trio, over the server's served turns.

    Args:
        service: The app's shared state (runtime, served profile, turns).
    """

    def __init__(self, service: ServiceState) -> None:
        self._service = service
        # Where the server reads every task to its end, so that a task goes
        # on when the stream that started it closes (set while the app runs).
        self.nursery: trio.Nursery | None = None
        self._tasks: collections.OrderedDict[str, _TaskRecord] = collections.OrderedDict()

    # ------------------------------------------------------------------ helpers

    def _record(self, task_id: str) -> _TaskRecord:
        record = self._tasks.get(task_id)
        if record is not None:
            try:
                self._service.turn_logs.get(task_id)
            except TurnNotFound:
                del self._tasks[task_id]
                record = None
        if record is None:
            raise TaskNotFoundError(message=f"no task {task_id!r} (unknown, or expired)")
        return record

    def _remember(self, record: _TaskRecord) -> None:
        self._tasks[record.log.turn_id] = record
        while len(self._tasks) > _KEEP_TASKS:
            self._tasks.popitem(last=False)

    def _a2a_error(self, error: AgyError) -> A2AError:
        message = error_body(error, self._service.redact)["error"]["message"]
        if isinstance(error, AgentNotFound):
            return InvalidParamsError(message=f"unknown contextId: {message}")
        return InternalError(message=f"{type(error).__name__}: {message}")

    async def _agent_for(self, message: Message) -> AgentHandle:
        service = self._service
        try:
            service._check_open()
            if message.context_id:
                return service.runtime.agent(message.context_id)
            handle = await service.runtime.create_agent(service.defaults)
        except AgyError as error:
            raise self._a2a_error(error) from None
        service._created.add(handle.agent_id)
        return handle

    async def _keep(self, reader: TurnReader) -> None:
        """Read the task to its end: an attached reader keeps the turn going."""
        async with reader:
            async for _ in reader:
                pass

    async def _start(self, params: SendMessageRequest) -> tuple[_TaskRecord, int]:
        """Start the task a new message asks for, or answer the approval it waits on.

        Returns:
            The task, and the id of the last turn event already accounted for
            (its updates start after it).
        """
        message = params.message
        if not message.message_id or not message.parts:
            raise InvalidParamsError(message="a message needs a messageId and at least one part")
        if message.task_id:
            return await self._answer(message)
        prompt = _text_of(message)
        if not prompt.strip():
            raise InvalidParamsError(message="the message has no text to answer")
        if self.nursery is None:
            raise UnsupportedOperationError(message="the server is not running")
        handle = await self._agent_for(message)
        try:
            log, reader = await self._service.turns.start(handle, prompt)
        except AgyError as error:
            raise self._a2a_error(error) from None
        self.nursery.start_soon(self._keep, reader)
        stamped = Message()
        stamped.CopyFrom(message)
        stamped.task_id, stamped.context_id = log.turn_id, log.agent_id
        record = _TaskRecord(log, stamped)
        self._remember(record)
        return record, 0

    async def _answer(self, message: Message) -> tuple[_TaskRecord, int]:
        record = self._record(message.task_id)
        approval = pending_approval(record.log)
        if record.view().is_terminal() or approval is None:
            raise UnsupportedOperationError(
                message=f"task {message.task_id!r} does not wait for input; "
                "send a message without taskId for a new task"
            )
        approved, reason = _decision(message)
        position = record.log.last_id
        self._answer_approval(approval.approval_id, approved, reason)
        record.history.append(message)
        return record, position

    def _answer_approval(self, approval_id: str, approved: bool, reason: str) -> None:
        try:
            self._service.approvals.answer(approval_id, approved, reason)
        except ApprovalNotFound:
            raise UnsupportedOperationError(
                message="the approval was answered already (or timed out)"
            ) from None

    async def _settled(self, record: _TaskRecord) -> None:
        """Wait until the task ended or waits for input."""
        view = record.view()
        while not (view.is_terminal() or view.is_interrupted()):
            await record.log.wait_changed()

    async def _follow(self, record: _TaskRecord, after: int) -> AsyncIterator[A2AEvent]:
        """The task's updates after turn event ``after``, live, until it ends or needs input."""
        view = record.view()
        text_before = any(type(e.payload) is Text for e in record.log.events[:after])
        async with record.log.attach(after) as reader:
            async for event in reader:
                for update in view.updates(event, text_before):
                    yield update
                kind = type(event.payload)
                text_before = text_before or kind is Text
                # The stream ends where the task needs input, unless it was
                # answered already (a quick answer, or a replay).
                if kind is ApprovalAsked and pending_approval(record.log) == event.payload:
                    return

    # ------------------------------------------------------------------ the methods

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        """``SendMessage``: the task once it ended or needs input (or at once, if asked)."""
        record, _ = await self._start(params)
        if not params.configuration.return_immediately:
            await self._settled(record)
        return record.view().task(self._history_length(params))

    @staticmethod
    def _history_length(params: SendMessageRequest) -> int | None:
        configuration = params.configuration
        return configuration.history_length if configuration.HasField("history_length") else None

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[A2AEvent]:
        """``SendStreamingMessage``: the task, then its updates until it ends or needs input."""
        record, after = await self._start(params)
        view = record.view()
        if after == 0:
            submitted = view.task()
            submitted.status.state = TaskState.TASK_STATE_SUBMITTED
            submitted.ClearField("artifacts")
            yield submitted
            yield view.working()
        else:
            yield view.task()
        async for update in self._follow(record, after):
            yield update

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[A2AEvent]:
        """``SubscribeToTask``: the task as it stands, then its updates, live."""
        record = self._record(params.id)
        view = record.view()
        if view.is_terminal():
            raise UnsupportedOperationError(
                message=f"task {params.id!r} has ended; GetTask returns it"
            )
        after = record.log.last_id
        yield view.task()
        async for update in self._follow(record, after):
            yield update

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        """``GetTask``."""
        await trio.lowlevel.checkpoint()
        history = params.history_length if params.HasField("history_length") else None
        return self._record(params.id).view().task(history)

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        """``ListTasks``: newest first, filtered by ``contextId`` and ``status``, paged."""
        await trio.lowlevel.checkpoint()
        for task_id in list(self._tasks):
            with contextlib.suppress(TaskNotFoundError):
                self._record(task_id)
        views = [record.view() for record in reversed(self._tasks.values())]
        if params.context_id:
            views = [view for view in views if view.context_id == params.context_id]
        if params.status != TaskState.TASK_STATE_UNSPECIFIED:
            views = [view for view in views if view.state() == params.status]
        size = params.page_size if params.HasField("page_size") else 50
        if not 1 <= size <= 100:
            raise InvalidParamsError(message="pageSize must be between 1 and 100")
        try:
            start = int(params.page_token or "0")
        except ValueError:
            raise InvalidParamsError(message="pageToken is not one this server gave") from None
        history = params.history_length if params.HasField("history_length") else None
        page = views[start : start + size]
        following = start + size if start + size < len(views) else None
        return ListTasksResponse(
            tasks=[view.task(history) for view in page],
            next_page_token="" if following is None else str(following),
            page_size=size,
            total_size=len(views),
        )

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        """``CancelTask``: stop the turn; the task, ``canceled``."""
        record = self._record(params.id)
        running = self._service.turns.turn(params.id)
        if record.view().is_terminal() or running is None:
            raise TaskNotCancelableError(message=f"task {params.id!r} has ended already")
        running.scope.cancel()
        while not record.log.finished:
            await record.log.wait_changed()
        return record.view().task()

    # The optional parts of the protocol that the card says are not offered.
    _no_push_notifications = _not_offered(PushNotificationNotSupportedError, "pushNotifications")
    on_create_task_push_notification_config = _no_push_notifications
    on_get_task_push_notification_config = _no_push_notifications
    on_list_task_push_notification_configs = _no_push_notifications
    on_delete_task_push_notification_config = _no_push_notifications
    on_get_extended_agent_card = _not_offered(
        ExtendedAgentCardNotConfiguredError, "extendedAgentCard"
    )


class A2AEndpoint:
    """The A2A card and JSON-RPC routes of one app.

    Args:
        service: The app's shared state.
        profile_name: The served profile's name (the card's ``name``).
        token: The server's bearer token: the card then names the bearer scheme.
    """

    def __init__(self, service: ServiceState, profile_name: str, token: str | None) -> None:
        self._service = service
        self.profile_name = profile_name
        self._token = token
        self.handler = AgyRequestHandler(service)
        _quiet_client_mistakes()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Host the tasks' readers for the app's lifetime."""
        async with trio.open_nursery() as nursery:
            self.handler.nursery = nursery
            try:
                yield
            finally:
                self.handler.nursery = None
                nursery.cancel_scope.cancel()

    def routes(self) -> list[Route]:
        """The card route and the JSON-RPC route (a2a-sdk's dispatcher)."""
        rpc = create_jsonrpc_routes(self.handler, A2A_PATH)
        return [Route(AGENT_CARD_WELL_KNOWN_PATH, self.card, methods=["GET"]), *rpc]

    def agent_card(self, base_url: str) -> AgentCard:
        """The card, naming the JSON-RPC endpoint under ``base_url``."""
        profile = self._service.profile
        defaults = profile.config
        skills = [
            AgentSkill(
                id="chat",
                name="chat",
                description="Answer a message in a conversation (contextId), with the "
                "profile's tools",
                tags=["chat"],
                examples=["What can you do?"],
            ),
            *(
                AgentSkill(
                    id=tool.name, name=tool.name, description=tool.description, tags=["tool"]
                )
                for tool in defaults.tools
            ),
        ]
        card = AgentCard(
            name=self.profile_name,
            description=profile.description
            or defaults.system_instructions
            or f"An agy_trio agent ({defaults.model or 'the default model'})",
            version=agy_trio.__version__,
            supported_interfaces=[
                AgentInterface(
                    url=f"{base_url}{A2A_PATH}", protocol_binding="JSONRPC", protocol_version="1.0"
                )
            ],
            capabilities=AgentCapabilities(
                streaming=True, push_notifications=False, extended_agent_card=False
            ),
            default_input_modes=["text/plain", "application/json"],
            default_output_modes=["text/plain"],
            skills=skills,
        )
        if self._token is not None:
            card.security_schemes["bearer"].CopyFrom(
                SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="bearer"))
            )
            card.security_requirements.append(SecurityRequirement(schemes={"bearer": StringList()}))
        return card

    async def card(self, request: Request) -> Response:
        """``GET /.well-known/agent-card.json``: public, like any A2A card (it runs nothing)."""
        await trio.lowlevel.checkpoint()
        base = str(request.base_url).rstrip("/")
        body = agent_card_to_dict(self.agent_card(base))
        return JSONResponse(json.loads(json.dumps(body)))
