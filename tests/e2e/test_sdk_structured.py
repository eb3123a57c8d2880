"""Structured output and budgets through the real SDK, its harness and the local model server.

What the harness does here was checked against the model server first: it
declares a ``finish`` tool whose parameters are the JSON schema, checks the
model's arguments against it (asking again when they do not fit), puts the
call to the pre-tool policy check, and ends the turn with the FINISH step.
Each budget field is enforced and ends the turn with its own stop reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

import agy_trio
from agy_trio import StopReason, policy
from agy_trio.errors import StructuredOutputError
from agy_trio.testing import ChatRequest, CompletionUsage, Reply, ToolCallSpec, open_model_server
from tests.sample_schemas import Rating
from tests.sdk_support import local_agent, sdk_runtime

pytestmark = pytest.mark.sdk


def _finish(answer: dict[str, Any]) -> str:
    return f"finish with {json.dumps(answer)}"


async def test_a_schema_gives_an_instance_then_the_typed_error_then_none(tmp_path: Path) -> None:
    async with open_model_server() as server, sdk_runtime(tmp_path) as (runtime, _):
        # deny_all: the user's policies deny every tool, yet finish passes.
        config = local_agent(server, response_schema=Rating, policies=[policy.deny_all()])
        async with runtime.open_agent(config) as agent:
            first = await agent.chat(_finish({"item": "tea", "stars": 9}))
            assert await first.structured_output() == Rating("tea", 9)
            assert first.stop_reason is StopReason.END_TURN
            assert [c.name for c in first.tool_calls] == ["finish"]

            refused = await agent.chat(_finish({"item": "mud", "stars": 11}))
            with pytest.raises(StructuredOutputError) as caught:
                await refused.structured_output()
            assert json.loads(caught.value.raw_json) == {"item": "mud", "stars": 11}
            assert "at most 10, got 11" in str(caught.value)

            plain = await agent.chat("just talk")
            assert await plain.text() == "You said: just talk"
            assert await plain.structured_output() is None  # not the earlier turn's value

    finish_tools = [r.tools["finish"] for r in server.requests if "finish" in r.tools]
    assert finish_tools and finish_tools[0]["required"] == ["item", "stars"]


async def test_a_json_schema_gives_parsed_json_and_a_bad_answer_is_asked_again(
    tmp_path: Path,
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    answers = iter(
        [
            Reply(tool_calls=[ToolCallSpec("finish", {"city": 5})]),  # does not fit
            Reply(tool_calls=[ToolCallSpec("finish", {"city": "Oslo", "population": 709000})]),
        ]
    )

    def responder(request: ChatRequest) -> Reply | None:
        return next(answers, None) if "finish" in request.tools else None

    async with open_model_server(responder) as server, sdk_runtime(tmp_path) as (runtime, _):
        config = local_agent(server, response_schema=json.dumps(schema))
        async with runtime.open_agent(config) as agent:
            response = await agent.chat("which city?")
            assert await response.structured_output() == {"city": "Oslo", "population": 709000}
    # The harness checked the first answer against the schema and asked again.
    assert len(server.requests) == 2
    retry = server.requests[1].messages[-1]
    assert retry["role"] == "tool" and "do not match schema" in retry["content"]


async def test_without_a_schema_there_is_no_finish_tool(tmp_path: Path) -> None:
    prompt = _finish({"item": "x", "stars": 1})
    async with open_model_server() as server, sdk_runtime(tmp_path) as (runtime, _):
        agent = await runtime.create_agent(local_agent(server))
        response = await agent.chat(prompt)
        assert await response.text() == "You said: " + prompt
        assert await response.structured_output() is None
    assert all("finish" not in r.tools for r in server.requests)


# ------------------------------------------------------------------ budgets


PER_CALL = CompletionUsage(prompt_tokens=150, completion_tokens=10)


def _tool_loop(request: ChatRequest) -> Reply | None:
    # Calls the echo tool again and again: only a budget stops it.
    if "echo" in request.tools:
        return Reply(
            text="working ", tool_calls=[ToolCallSpec("echo", {"text": "again"})], usage=PER_CALL
        )
    return None


def echo(text: str) -> str:
    """Echo the text back."""
    return text


@pytest.mark.parametrize(
    ("budget", "stop"),
    [
        (agy_trio.Budget(max_model_calls=2), StopReason.MAX_MODEL_CALLS_EXCEEDED),
        (agy_trio.Budget(max_tool_calls=1), StopReason.MAX_TOOL_CALLS_EXCEEDED),
        (agy_trio.Budget(max_input_tokens=100), StopReason.MAX_INPUT_TOKENS_EXCEEDED),
        (agy_trio.Budget(max_output_tokens=5), StopReason.MAX_OUTPUT_TOKENS_EXCEEDED),
        (agy_trio.Budget(max_total_tokens=100), StopReason.MAX_TOTAL_TOKENS_EXCEEDED),
    ],
    ids=lambda value: getattr(value, "name", None) or "budget",
)
async def test_each_budget_field_stops_a_runaway_turn_with_its_reason(
    tmp_path: Path, budget: agy_trio.Budget, stop: StopReason
) -> None:
    async with open_model_server(_tool_loop) as server, sdk_runtime(tmp_path) as (runtime, _):
        config = local_agent(server, tools=[echo], budget=budget)
        async with runtime.open_agent(config) as agent:
            response = await agent.chat("loop forever")
            text = await response.text()
            assert response.stop_reason is stop
            assert text.startswith("working")
            usage = response.usage
            assert usage is not None
            history = await agent.history()
    # The budget ended the turn after one or two model calls (not the chat
    # timeout), and usage stays exact: what the server reported, summed.
    calls = len(server.requests)
    assert calls == (2 if stop is StopReason.MAX_MODEL_CALLS_EXCEEDED else 1)
    expected = (calls * PER_CALL.prompt_tokens, calls * PER_CALL.completion_tokens)
    assert (usage.input_tokens, usage.output_tokens) == expected
    assert any(m.role == "user" and m.text == "loop forever" for m in history)


@attrs.frozen
class Place:
    """Where something is."""

    city: str


async def test_agents_on_one_harness_each_get_their_own_schema(tmp_path: Path) -> None:
    async with open_model_server() as server, sdk_runtime(tmp_path) as (runtime, backend):
        judge = await runtime.create_agent(local_agent(server, response_schema=Rating))
        finder = await runtime.create_agent(local_agent(server, response_schema=Place))
        plain = await runtime.create_agent(local_agent(server))
        assert len(backend.harness_pids()) == 1  # one harness serves all three
        results: dict[str, Any] = {}

        async def ask(name: str, agent: agy_trio.AgentHandle, prompt: str) -> None:
            response = await agent.chat(prompt)
            results[name] = await response.structured_output()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "judge", judge, _finish({"item": "ok", "stars": 5}))
            nursery.start_soon(ask, "finder", finder, _finish({"city": "Lima"}))
            nursery.start_soon(ask, "plain", plain, _finish({"city": "Lima"}))
    assert results == {"judge": Rating("ok", 5), "finder": Place("Lima"), "plain": None}
    declared = sorted(
        tuple(r.tools["finish"]["required"]) for r in server.requests if "finish" in r.tools
    )
    assert declared == [("city",), ("item", "stars")]
