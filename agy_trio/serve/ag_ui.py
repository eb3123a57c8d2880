"""AG-UI at ``POST /ag-ui``: a ``RunAgentInput`` in, AG-UI events out as server-sent events.

The `AG-UI protocol <https://docs.ag-ui.com>`_ (``ag-ui-protocol``'s pydantic
types and ``EventEncoder``): ``threadId`` names the conversation (a new thread
gets a new agent from the served profile), the last user message is the
prompt, and the run streams a rendering of the turn's
:class:`~agy_trio.serve.turn_log.TurnLog`:

==========================  =================================================
turn log                    AG-UI events
==========================  =================================================
(the run starts)            ``RUN_STARTED`` (``protocolVersion`` set)
``Text``                    ``TEXT_MESSAGE_START`` (once), ``..._CONTENT``
``Thought``                 ``REASONING_START``, ``REASONING_MESSAGE_START``
                            (once), ``REASONING_MESSAGE_CONTENT``
``ToolStarted``             ``TOOL_CALL_START``, ``_ARGS`` (the JSON), ``_END``
``ToolFinished``            ``TOOL_CALL_RESULT`` (the JSON result, or the error)
``ApprovalAsked``           ``RUN_FINISHED``, outcome ``interrupt``: one
                            ``Interrupt`` per waiting approval (``id``,
                            ``reason``, ``toolCallId``, ``metadata`` with the
                            tool, its arguments and the ``turn_id``); the
                            turn stays parked
``TurnFinished``            ``RUN_FINISHED``, outcome ``success`` (or
                            ``cancelled``), with the usage
``TurnFailed``              ``RUN_ERROR``: ``code`` is the agy_trio error class
==========================  =================================================

An open message is ended (``TEXT_MESSAGE_END``, ``REASONING_MESSAGE_END`` and
``REASONING_END``) before anything else is sent. Every event carries an SSE
``id`` (``N.k``: the log event it renders, and which of its frames).

The next run on an interrupted thread answers it with ``resume=[{interruptId,
status, payload}]``: ``resolved`` with ``{"approved": true}`` lets the tool
run, ``{"approved": false}`` (optionally with a ``reason``) or ``cancelled``
refuses it; the run then streams the rest of the same turn. An interrupt
nobody answers within the server's approval timeout is refused; resuming it
afterwards streams that refusal.

A malformed body is 422 with a JSON error (``ConfigError``, ``field`` naming
the bad key); the bearer token, the body size limit and the origin check are
the rest of the API's.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    Interrupt,
    ReasoningEndEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    ResumeEntry,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agy_trio.core.events import StopReason
from agy_trio.errors import AgentNotFound, AgyError, ApprovalNotFound, ConfigError
from agy_trio.serve import turn_log as tl
from agy_trio.serve.approvals import Approvals
from agy_trio.serve.stream import ChatStream
from agy_trio.serve.turn_log import TurnEvent, TurnLog

if TYPE_CHECKING:
    from agy_trio.serve.state import ServiceState

__all__ = ["AgUiEndpoint", "AgUiRender"]

_ENCODER = EventEncoder()


def _usage(usage: Any) -> list[TokenUsage]:
    return [
        TokenUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        )
    ]


@attrs.define(eq=False)
class AgUiRender:
    """Renders one run of a thread from its turn's log (a ``StreamRender``).

    Args:
        thread_id: The run's thread.
        run_id: The run's id.
        approvals: The server's approvals (which ones still wait).
        start: The log event id the run starts after (0: the turn's start).
        on_interrupt: Called with the log event id and the approval ids when
            the run ends on an interrupt.
    """

    _thread_id: str
    _run_id: str
    _approvals: Approvals
    _start: int = attrs.field(default=0, kw_only=True)
    _on_interrupt: Callable[[int, list[str]], None] = attrs.field(kw_only=True)
    # The ids of the open text message and of the open reasoning message.
    _text: str | None = attrs.field(init=False, default=None)
    _reasoning: str | None = attrs.field(init=False, default=None)

    def _frames(self, event_id: int | str, events: list[BaseEvent]) -> bytes:
        return b"".join(
            f"id: {event_id}.{index}\n{_ENCODER.encode(event)}".encode()
            for index, event in enumerate(events)
        )

    def opening(self) -> bytes:
        """``RUN_STARTED``."""
        started = RunStartedEvent(
            thread_id=self._thread_id, run_id=self._run_id, protocol_version=PROTOCOL_VERSION
        )
        return self._frames(f"{self._start}.start", [started])

    def _close_open(self) -> list[BaseEvent]:
        closed: list[BaseEvent] = []
        if self._text is not None:
            closed.append(TextMessageEndEvent(message_id=self._text))
            self._text = None
        if self._reasoning is not None:
            closed.append(ReasoningMessageEndEvent(message_id=self._reasoning))
            closed.append(ReasoningEndEvent(message_id=self._reasoning))
            self._reasoning = None
        return closed

    def render(self, event: TurnEvent) -> tuple[bytes, bool]:
        """The AG-UI events for one logged event, and whether the run ends with them."""
        events, last = self._events(event)
        return self._frames(event.id, events), last

    def _events(self, event: TurnEvent) -> tuple[list[BaseEvent], bool]:
        payload = event.payload
        message_id = f"{event.turn_id}-{event.id}"
        match payload:
            case tl.Text(text=text) if text:
                out: list[BaseEvent] = []
                if self._reasoning is not None:
                    out = self._close_open()
                if self._text is None:
                    self._text = message_id
                    out.append(TextMessageStartEvent(message_id=message_id, role="assistant"))
                out.append(TextMessageContentEvent(message_id=self._text, delta=text))
                return out, False
            case tl.Thought(text=text) if text:
                out = []
                if self._text is not None:
                    out = self._close_open()
                if self._reasoning is None:
                    self._reasoning = message_id
                    out.append(ReasoningStartEvent(message_id=message_id))
                    out.append(ReasoningMessageStartEvent(message_id=message_id, role="reasoning"))
                out.append(ReasoningMessageContentEvent(message_id=self._reasoning, delta=text))
                return out, False
            case tl.ToolStarted():
                return [
                    *self._close_open(),
                    ToolCallStartEvent(tool_call_id=payload.call_id, tool_call_name=payload.name),
                    ToolCallArgsEvent(
                        tool_call_id=payload.call_id, delta=json.dumps(payload.arguments)
                    ),
                    ToolCallEndEvent(tool_call_id=payload.call_id),
                ], False
            case tl.ToolFinished():
                content = (
                    f"error: {payload.error}"
                    if payload.error is not None
                    else json.dumps(payload.result, ensure_ascii=False)
                )
                result = ToolCallResultEvent(
                    message_id=message_id,
                    tool_call_id=payload.call_id,
                    content=content,
                    role="tool",
                )
                return [*self._close_open(), result], False
            case tl.ApprovalAsked():
                return self._interrupt(event, payload)
            case tl.TurnFinished():
                outcome = (
                    RunFinishedCancelledOutcome()
                    if payload.stop_reason is StopReason.CANCELLED
                    else RunFinishedSuccessOutcome()
                )
                finished = RunFinishedEvent(
                    thread_id=self._thread_id,
                    run_id=self._run_id,
                    outcome=outcome,
                    usage=_usage(payload.usage),
                )
                return [*self._close_open(), finished], True
            case tl.TurnFailed():
                failed = RunErrorEvent(message=payload.message, code=payload.type)
                return [*self._close_open(), failed], True
            case _:
                return [], False

    def _interrupt(
        self, event: TurnEvent, payload: tl.ApprovalAsked
    ) -> tuple[list[BaseEvent], bool]:
        waiting = [a for a in self._approvals.pending() if a.turn_id == event.turn_id]
        if not any(a.id == payload.approval_id for a in waiting):
            return [], False  # answered already (a replay): the turn went on
        interrupts = [
            Interrupt(
                id=approval.id,
                reason=approval.reason,
                message=f"Allow {approval.tool} to run?",
                tool_call_id=approval.call_id,
                metadata={
                    "tool": approval.tool,
                    "arguments": approval.arguments,
                    "turn_id": event.turn_id,
                },
            )
            for approval in waiting
        ]
        self._on_interrupt(event.id, [approval.id for approval in waiting])
        finished = RunFinishedEvent(
            thread_id=self._thread_id,
            run_id=self._run_id,
            outcome=RunFinishedInterruptOutcome(interrupts=interrupts),
        )
        return [*self._close_open(), finished], True

    def closing(self, error: AgyError) -> bytes:
        """``RUN_ERROR`` for a stream the server ends early."""
        failed = RunErrorEvent(message=str(error), code=type(error).__name__)
        return self._frames("end", [*self._close_open(), failed])


@attrs.define
class _Thread:
    """What the server remembers of an AG-UI thread: its agent, and an open interrupt."""

    agent_id: str
    log: TurnLog | None = None
    interrupted_after: int = 0
    interrupts: list[str] = attrs.field(factory=list)


def _prompt(run_input: RunAgentInput) -> str:
    for message in reversed(run_input.messages):
        if message.role != "user":
            continue
        content: Any = message.content
        if isinstance(content, str):
            text = content
        else:
            text = "".join(getattr(part, "text", "") or "" for part in content)
        if text.strip():
            return text
    raise ConfigError("the run has no user message with text to answer", field="messages")


def _invalid(exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ())) or None
    return ConfigError(f"not a RunAgentInput: {first.get('msg', 'invalid')}", field=field)


class AgUiEndpoint:
    """``POST /ag-ui`` over the app's shared state.

    Args:
        service: The app's shared state (runtime, profile, turns, approvals).
    """

    def __init__(self, service: ServiceState) -> None:
        self._service = service
        self._threads: dict[str, _Thread] = {}

    def routes(self) -> list[Route]:
        """The endpoint's route."""
        return [Route("/ag-ui", self.run, methods=["POST"])]

    async def run(self, request: Request) -> Response:
        """One AG-UI run: a new turn, or the rest of an interrupted one."""
        service = self._service
        service._check_open()
        body = await service._json_object(request, empty_ok=False)
        try:
            run_input = RunAgentInput.model_validate(body)
        except ValidationError as exc:
            raise _invalid(exc) from None
        thread = self._threads.get(run_input.thread_id)
        if run_input.resume:
            return self._resume(run_input, thread)
        if thread is not None and thread.interrupts:
            waiting = {a.id for a in service.approvals.pending()}
            if waiting.intersection(thread.interrupts):
                raise ConfigError(
                    "the thread waits for the answer to its interrupt: resume it", field="resume"
                )
        prompt = _prompt(run_input)
        thread = await self._thread(run_input.thread_id, thread)
        turn_log, reader = await service.turns.start(service.runtime.agent(thread.agent_id), prompt)
        thread.log, thread.interrupts = turn_log, []
        return ChatStream(reader, service.streams, service.redact, self._render(run_input, thread))

    def _render(self, run_input: RunAgentInput, thread: _Thread, start: int = 0) -> AgUiRender:
        def interrupted(event_id: int, approval_ids: list[str]) -> None:
            thread.interrupted_after, thread.interrupts = event_id, approval_ids

        return AgUiRender(
            run_input.thread_id,
            run_input.run_id,
            self._service.approvals,
            start=start,
            on_interrupt=interrupted,
        )

    async def _thread(self, thread_id: str, thread: _Thread | None) -> _Thread:
        service = self._service
        if thread is not None:
            try:
                service.runtime.agent(thread.agent_id)
                return thread
            except AgentNotFound:
                pass  # deleted meanwhile: the thread starts over with a new agent
        handle = await service.runtime.create_agent(service.defaults)
        service._created.add(handle.agent_id)
        thread = _Thread(handle.agent_id)
        self._threads[thread_id] = thread
        return thread

    def _resume(self, run_input: RunAgentInput, thread: _Thread | None) -> Response:
        if thread is None or thread.log is None or not thread.interrupts:
            raise ConfigError("the thread has no interrupt to resume", field="resume")
        entries: list[ResumeEntry] = list(run_input.resume or ())
        for entry in entries:
            if entry.interrupt_id not in thread.interrupts:
                raise ConfigError(
                    f"the thread has no interrupt {entry.interrupt_id!r}", field="resume"
                )
        service = self._service
        # Attached before answering: the turn must not find itself without a
        # reader (and start its grace) between the answer and this run.
        reader = thread.log.attach(thread.interrupted_after)
        start, thread.interrupts = thread.interrupted_after, []
        for entry in entries:
            payload = entry.payload if isinstance(entry.payload, dict) else {}
            approved = entry.status == "resolved" and payload.get("approved") is True
            reason = payload.get("reason")
            # One that timed out meanwhile is gone: the stream shows its refusal.
            with contextlib.suppress(ApprovalNotFound):
                service.approvals.answer(
                    entry.interrupt_id, approved, reason if isinstance(reason, str) else ""
                )
        render = self._render(run_input, thread, start)
        return ChatStream(reader, service.streams, service.redact, render)
