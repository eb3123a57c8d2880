"""An incoming ``traceparent`` parents the spans of the commands a request issues."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agy_trio.tracing
from tests.serve._helpers import chat_events, create_agent, served

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


async def test_traceparent_parents_the_command_and_turn_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with served() as srv:
        agy_trio.tracing.instrument(srv.runtime, provider)
        agent_id = await create_agent(srv.client)
        srv.client.headers["traceparent"] = f"00-{TRACE_ID}-{PARENT_ID}-01"
        events = await chat_events(srv.client, agent_id, "hello")
        assert events[-1].event == "done"
    spans = {span.name: span for span in exporter.get_finished_spans()}
    chat = spans["agy_trio chat"]
    turn = spans["chat default"]
    assert format(chat.context.trace_id, "032x") == TRACE_ID
    assert chat.parent is not None and format(chat.parent.span_id, "016x") == PARENT_ID
    assert turn.parent is not None and turn.parent.span_id == chat.context.span_id
    # The agent was created before the header was set: its own trace.
    assert format(spans["agy_trio create_agent"].context.trace_id, "032x") != TRACE_ID
