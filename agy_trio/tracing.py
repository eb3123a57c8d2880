"""OpenTelemetry spans for commands, turns and tool calls (extra ``agy-trio[otel]``).

::

    async with agy_trio.open_runtime(...) as rt:
        agy_trio.tracing.instrument(rt)  # the global tracer provider, or pass one

Spans follow the OpenTelemetry GenAI semantic conventions:

- one span per command, ``agy_trio <command>``, child of the caller's current
  span (so a server that extracted ``traceparent`` from a request sees the
  command under the request);
- one span per turn, ``chat <model>`` (``gen_ai.operation.name = "chat"``), child
  of its ``chat`` command's span, with the model, the agent and conversation ids
  and the token usage (``gen_ai.usage.input_tokens`` / ``output_tokens``);
- one span per tool call, ``execute_tool <name>``, child of the turn that called
  it, although the SDK calls tools from its asyncio thread: the runtime knows
  which turn a tool call belongs to and parents the span explicitly, then makes
  it the current span while the tool runs, so spans the tool opens nest too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import outcome

from agy_trio.errors import ConfigError

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigError("agy_trio.tracing needs OpenTelemetry: pip install 'agy-trio[otel]'") from exc

if TYPE_CHECKING:
    from agy_trio.core.commands import Command
    from agy_trio.core.events import Usage
    from agy_trio.core.runtime import Runtime
    from agy_trio.core.settings import AgentConfig

__all__ = ["SpanObserver", "instrument"]

_TRACER_NAME = "agy_trio"


def instrument(runtime: Runtime, tracer_provider: trace.TracerProvider | None = None) -> None:
    """Make ``runtime`` emit spans through ``tracer_provider`` (the global one if None)."""
    runtime.set_observer(
        SpanObserver(trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider))
    )


def _provider_name(config: AgentConfig) -> str:
    if config.base_url:
        return "openai"  # an OpenAI-compatible endpoint
    if config.vertex_project:
        return "gcp.vertex_ai"
    return "gcp.gemini"


def _mark_failed(span: trace.Span, error: BaseException) -> None:
    span.set_attribute("error.type", type(error).__name__)
    span.set_status(trace.StatusCode.ERROR, str(error))


class SpanObserver:
    """An :class:`~agy_trio.core.observe.Observer` that records OpenTelemetry spans."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._commands: dict[Command[Any], trace.Span] = {}
        self._turns: dict[object, trace.Span] = {}
        # The turn a tool call belongs to: the newest turn of its agent.
        self._current_turn: dict[str, trace.Span] = {}

    def _start_operation(
        self,
        parent: trace.Span | None,
        operation: str,
        target: str,
        agent_id: str,
        kind: trace.SpanKind,
        attributes: Mapping[str, str],
    ) -> trace.Span:
        """Start a GenAI span ``"<operation> <target>"`` for ``agent_id`` under ``parent``.

        Under the current span when ``parent`` is None. ``attributes`` are the
        operation's own; its name and the agent's id are added here.
        """
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self._tracer.start_span(
            f"{operation} {target}",
            context=context,
            kind=kind,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.agent.id": agent_id,
                **attributes,
            },
        )

    def command_submitted(self, command: Command[Any]) -> None:
        """Open the command's span under the caller's current span."""
        span = self._tracer.start_span(
            f"agy_trio {command.name}",
            kind=trace.SpanKind.INTERNAL,
            attributes={"agy_trio.command": command.name, "gen_ai.agent.id": command.agent_id},
        )
        self._commands[command] = span

    def command_answered(self, command: Command[Any], result: outcome.Outcome[Any]) -> None:
        """Close the command's span, marking it failed if it raised."""
        span = self._commands.pop(command, None)
        if span is None:
            return
        if isinstance(result, outcome.Error):
            _mark_failed(span, result.error)
        span.end()

    def turn_started(self, turn: object, command: Command[Any], config: AgentConfig) -> None:
        """Open the turn's span as a child of its chat command's span."""
        model = config.model or "default"
        span = self._start_operation(
            self._commands.get(command),
            "chat",
            model,
            command.agent_id,
            trace.SpanKind.CLIENT,
            {
                "gen_ai.provider.name": _provider_name(config),
                "gen_ai.request.model": model,
                "gen_ai.agent.name": config.name or "",
            },
        )
        self._turns[turn] = span
        self._current_turn[command.agent_id] = span

    def turn_ended(self, turn: object, usage: Usage | None, error: BaseException | None) -> None:
        """Close the turn's span with its token usage."""
        span = self._turns.pop(turn, None)
        if span is None:
            return
        for agent_id, current in list(self._current_turn.items()):
            if current is span:
                del self._current_turn[agent_id]
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        if error is not None:
            _mark_failed(span, error)
        span.end()

    @contextmanager
    def tool_call(self, agent_id: str, name: str, arguments: Mapping[str, Any]) -> Iterator[None]:
        """A span for one tool call, child of the agent's current turn, current while it runs."""
        span = self._start_operation(
            self._current_turn.get(agent_id),
            "execute_tool",
            name,
            agent_id,
            trace.SpanKind.INTERNAL,
            {"gen_ai.tool.name": name},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        except BaseException as exc:
            _mark_failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()
