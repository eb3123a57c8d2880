"""OpenTelemetry spans: one per command, per turn, per tool call, nested as the work is."""

from __future__ import annotations

import pytest
import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agy_trio
import agy_trio.tracing
from agy_trio.adapters.scripted import CallTool, Fail, Say, ScriptedBackend, Turn

FAST = agy_trio.RuntimeConfig(inter_agent_delay=0)
TOOL_TRACERS: list[trace.Tracer] = []  # what the tool's own code uses


@agy_trio.tool
async def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: The key.
    """
    # A span the tool itself opens nests under the tool-call span.
    with TOOL_TRACERS[-1].start_as_current_span("inside the tool"):
        await trio.lowlevel.checkpoint()
    return key.upper()


@pytest.fixture
def exporter() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def test_command_turn_and_tool_spans_nest(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, spans = exporter
    tracer = provider.get_tracer("test")
    TOOL_TRACERS.append(provider.get_tracer("user-code"))
    backend = ScriptedBackend([Turn([CallTool("lookup", {"key": "k"}), Say("done")])])
    config = agy_trio.AgentConfig(
        name="traced", model="m1", base_url="http://x/v1", tools=(lookup,)
    )
    async with agy_trio.open_runtime(FAST, backend=backend) as rt:
        agy_trio.tracing.instrument(rt, provider)
        agent = await rt.create_agent(config)
        with tracer.start_as_current_span("request"):
            response = await agent.chat("hi")
            assert await response.text() == "done"
        await agent.wait_for_idle()
        await agent.history()
    by_name = {span.name: span for span in spans.get_finished_spans()}
    request = by_name["request"]
    chat_command = by_name["agy_trio chat"]
    turn = by_name["chat m1"]
    tool = by_name["execute_tool lookup"]
    inner = by_name["inside the tool"]
    assert (
        chat_command.parent is not None and chat_command.parent.span_id == request.context.span_id
    )
    assert turn.parent is not None and turn.parent.span_id == chat_command.context.span_id
    assert tool.parent is not None and tool.parent.span_id == turn.context.span_id
    assert inner.parent is not None and inner.parent.span_id == tool.context.span_id
    assert turn.attributes is not None
    assert turn.attributes["gen_ai.operation.name"] == "chat"
    assert turn.attributes["gen_ai.request.model"] == "m1"
    assert turn.attributes["gen_ai.usage.output_tokens"] == 1
    assert tool.attributes is not None and tool.attributes["gen_ai.tool.name"] == "lookup"
    assert "agy_trio history" in by_name and "agy_trio create_agent" in by_name
    assert len({s.context.trace_id for s in (request, chat_command, turn, tool, inner)}) == 1


async def test_failed_turns_and_commands_are_marked(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, spans = exporter
    backend = ScriptedBackend([Turn([Fail("server", status=503)])])
    async with agy_trio.open_runtime(FAST, backend=backend) as rt:
        agy_trio.tracing.instrument(rt, provider)
        agent = await rt.create_agent()
        with pytest.raises(agy_trio.BackendError):
            await (await agent.chat("hi")).text()
        gone = await rt.create_agent()
        await gone.delete()
        with pytest.raises(agy_trio.AgentNotFound):
            await gone.history()
    failed = [
        s for s in spans.get_finished_spans() if s.status.status_code is trace.StatusCode.ERROR
    ]
    assert {s.name for s in failed} >= {"chat default", "agy_trio history"}
    assert all(s.end_time is not None for s in spans.get_finished_spans())
