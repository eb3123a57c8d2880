"""AG-UI at /ag-ui, read with the ag-ui-protocol types: runs, tools, interrupts, errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from ag_ui.core import (
    Event,
    EventType,
    RunAgentInput,
    RunFinishedEvent,
    UserMessage,
)
from httpx_sse import aconnect_sse
from pydantic import TypeAdapter

from agy_trio.adapters.scripted import CallTool, Fail, Say, Think, Turn
from tests.serve import sample_tools
from tests.serve._helpers import TOKEN, served
from tests.serve.test_approvals import RULE_REASON, lending_profile

EVENT = TypeAdapter(Event)


def script(agent_id: str, prompt: str, index: int) -> Turn:
    if prompt.startswith("lend "):
        book = prompt.removeprefix("lend ")
        return Turn([CallTool("lend", {"book": book}), Say("Done.")])
    if prompt == "quota":
        return Turn([Fail("quota", message="slow down", retry_after=3)])
    return Turn([Think("hmm"), Say("Hello ", chunks=1), Say("there.", chunks=1)])


@asynccontextmanager
async def ag_ui_server(**serve_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The lending profile served over :func:`script`; a client that sends no token."""
    sample_tools.LENT.clear()
    serve_options.setdefault("profile", lending_profile())
    async with served(turns=script, authorized=False, **serve_options) as server:
        yield server.client


def run_input(thread_id: str, prompt: str | None = None, **fields: Any) -> dict[str, Any]:
    messages = [UserMessage(id=str(uuid.uuid4()), content=prompt)] if prompt else []
    body = RunAgentInput(
        thread_id=thread_id,
        run_id=str(uuid.uuid4()),
        messages=messages,
        state={},
        tools=[],
        context=[],
        forwarded_props={},
        **fields,
    )
    dumped: dict[str, Any] = body.model_dump(by_alias=True, exclude_none=True)
    return dumped


async def run(client: httpx.AsyncClient, body: dict[str, Any]) -> list[Any]:
    async with aconnect_sse(client, "POST", "/ag-ui", json=body) as source:
        assert source.response.status_code == 200, await source.response.aread()
        frames = [frame async for frame in source.aiter_sse()]
    ids = [frame.id for frame in frames]
    assert all(ids) and len(set(ids)) == len(ids)  # every event has its own SSE id
    return [EVENT.validate_json(frame.data) for frame in frames]


async def test_a_run_streams_text_and_reasoning_between_run_started_and_finished() -> None:
    async with ag_ui_server() as client:
        events = await run(client, run_input("thread-1", "hi"))
        kinds = [event.type for event in events]
        assert kinds == [
            EventType.RUN_STARTED,
            EventType.REASONING_START,
            EventType.REASONING_MESSAGE_START,
            EventType.REASONING_MESSAGE_CONTENT,
            EventType.REASONING_MESSAGE_END,
            EventType.REASONING_END,
            EventType.TEXT_MESSAGE_START,
            EventType.TEXT_MESSAGE_CONTENT,
            EventType.TEXT_MESSAGE_CONTENT,
            EventType.TEXT_MESSAGE_END,
            EventType.RUN_FINISHED,
        ]
        assert events[0].protocol_version == "1.0" and events[0].thread_id == "thread-1"
        text = "".join(e.delta for e in events if e.type == EventType.TEXT_MESSAGE_CONTENT)
        assert text == "Hello there."
        finished = events[-1]
        assert isinstance(finished, RunFinishedEvent) and finished.outcome is not None
        assert finished.outcome.type == "success"
        # The same thread is the same agent: its history has both turns.
        await run(client, run_input("thread-1", "again"))
        agents = (await client.get("/v1/agents")).json()
        assert [row["turns"] for row in agents] == [2]
        await run(client, run_input("thread-2", "hi"))
        assert len((await client.get("/v1/agents")).json()) == 2


async def resume_body(
    thread_id: str, interrupt_id: str, status: str, payload: Any
) -> dict[str, Any]:
    await trio.lowlevel.checkpoint()
    return run_input(
        thread_id, resume=[{"interruptId": interrupt_id, "status": status, "payload": payload}]
    )


async def interrupted(client: httpx.AsyncClient, thread_id: str) -> Any:
    events = await run(client, run_input(thread_id, "lend Dune"))
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        EventType.RUN_STARTED,
        EventType.TOOL_CALL_START,
        EventType.TOOL_CALL_ARGS,
        EventType.TOOL_CALL_END,
    ]
    assert kinds[-1] == EventType.RUN_FINISHED
    outcome = events[-1].outcome
    assert outcome.type == "interrupt"
    (interrupt,) = outcome.interrupts
    assert interrupt.tool_call_id == events[1].tool_call_id
    assert events[1].tool_call_name == "lend" and events[2].delta == '{"book": "Dune"}'
    assert interrupt.reason == RULE_REASON
    assert interrupt.metadata == {
        "tool": "lend",
        "arguments": {"book": "Dune"},
        "turn_id": interrupt.metadata["turn_id"],
    }
    assert sample_tools.LENT == []
    return interrupt


async def test_an_interrupt_resumed_approved_runs_the_tool_in_the_same_turn() -> None:
    async with ag_ui_server() as client:
        interrupt = await interrupted(client, "t")
        (listed,) = (await client.get("/v1/approvals")).json()
        assert listed["id"] == interrupt.id
        events = await run(
            client, await resume_body("t", interrupt.id, "resolved", {"approved": True})
        )
        result = next(e for e in events if e.type == EventType.TOOL_CALL_RESULT)
        assert result.tool_call_id == interrupt.tool_call_id
        assert result.content == '"lent Dune"'
        assert events[-1].outcome.type == "success"
        assert sample_tools.LENT == ["Dune"]
        text = "".join(e.delta for e in events if e.type == EventType.TEXT_MESSAGE_CONTENT)
        assert text == "Done."
        agents = (await client.get("/v1/agents")).json()
        assert agents[0]["turns"] == 1  # one turn, across both runs


@pytest.mark.parametrize(
    ("status", "payload"),
    [("resolved", {"approved": False, "reason": "not today"}), ("cancelled", None)],
)
async def test_an_interrupt_resumed_denied_refuses_the_tool(status: str, payload: Any) -> None:
    async with ag_ui_server() as client:
        interrupt = await interrupted(client, "t")
        events = await run(client, await resume_body("t", interrupt.id, status, payload))
        result = next(e for e in events if e.type == EventType.TOOL_CALL_RESULT)
        assert result.content.startswith("error: ") and RULE_REASON in result.content
        assert events[-1].outcome.type == "success"
        assert sample_tools.LENT == []


async def test_an_unanswered_interrupt_is_refused_after_the_timeout() -> None:
    async with ag_ui_server(approval_timeout=0.2, reattach_grace=60) as client:
        interrupt = await interrupted(client, "t")
        # Follow the turn natively until the timeout has answered the approval.
        turn = interrupt.metadata["turn_id"]
        with trio.CancelScope() as seen, trio.fail_after(5):
            async with aconnect_sse(client, "GET", f"/v1/turns/{turn}/events") as source:
                async for frame in source.aiter_sse():
                    if frame.event == "approval_answered":
                        assert frame.json()["reason"] == "nobody answered within 0.2 s"
                        seen.cancel()
        assert (await client.get("/v1/approvals")).json() == []
        # Resuming now (even approved) streams the refusal the timeout made.
        events = await run(
            client, await resume_body("t", interrupt.id, "resolved", {"approved": True})
        )
        result = next(e for e in events if e.type == EventType.TOOL_CALL_RESULT)
        assert result.content.startswith("error: ")
        assert sample_tools.LENT == []


async def test_a_failed_turn_is_a_run_error_with_the_error_class_as_code() -> None:
    async with ag_ui_server() as client:
        events = await run(client, run_input("t", "quota"))
        assert [e.type for e in events] == [EventType.RUN_STARTED, EventType.RUN_ERROR]
        assert events[-1].code == "QuotaExceeded" and "slow down" in events[-1].message


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"threadId": "t"}',
        b'{"threadId": 5, "runId": "r", "messages": []}',
    ],
)
async def test_a_malformed_body_is_422_json(body: bytes) -> None:
    async with ag_ui_server() as client:
        answer = await client.post("/ag-ui", content=body)
        assert answer.status_code == 422
        assert answer.json()["error"]["type"] == "ConfigError"
        assert (await client.get("/v1/agents")).json() == []  # nothing changed


async def test_runs_without_a_prompt_or_with_nothing_to_resume_are_422() -> None:
    async with ag_ui_server() as client:
        answer = await client.post("/ag-ui", json=run_input("t"))
        assert answer.status_code == 422 and answer.json()["error"]["field"] == "messages"
        body = await resume_body("t", "approval-x", "resolved", {"approved": True})
        answer = await client.post("/ag-ui", json=body)
        assert answer.status_code == 422 and answer.json()["error"]["field"] == "resume"


async def test_the_token_and_the_size_limit_guard_ag_ui() -> None:
    async with ag_ui_server(token=TOKEN, max_body_bytes=2048) as client:
        answer = await client.post("/ag-ui", json=run_input("t", "hi"))
        assert answer.status_code == 401
        headers = {"authorization": f"Bearer {TOKEN}"}
        answer = await client.post("/ag-ui", json=run_input("t", "x" * 4096), headers=headers)
        assert answer.status_code == 413
        async with httpx.AsyncClient(
            base_url=str(client.base_url), headers=headers, timeout=10
        ) as authorized:
            events = await run(authorized, run_input("t", "hi"))
        assert events[-1].type == EventType.RUN_FINISHED
