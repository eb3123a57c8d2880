"""Streams that survive a reconnect: Last-Event-ID replay, the reattach grace, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio
import trio.testing
from httpx_sse import ServerSentEvent, aconnect_sse

import agy_trio
from agy_trio.adapters.scripted import CallTool, Say, Turn
from tests.serve._helpers import chat_events, served

FIRST_HALF = "The first half of a slow answer. "
SECOND_HALF = "And here is the second half."


@attrs.define
class Gate:
    """A tool the model calls mid-answer, which waits until the test opens it."""

    opened: trio.Event = attrs.field(factory=trio.Event)
    reached: trio.Event = attrs.field(factory=trio.Event)
    cancelled: bool = False

    async def __call__(self) -> str:
        self.reached.set()
        try:
            await self.opened.wait()
        except trio.Cancelled:
            self.cancelled = True
            raise
        return "open"


def slow_answer(agent_id: str, prompt: str, index: int) -> Turn:
    if prompt == "quick":
        return Turn([Say("quick answer", chunks=2)])
    return Turn([Say(FIRST_HALF, chunks=4), CallTool("gate", {}), Say(SECOND_HALF, chunks=4)])


@attrs.define
class Setup:
    runtime: agy_trio.Runtime
    client: httpx.AsyncClient
    agent: agy_trio.AgentHandle
    gate: Gate


@asynccontextmanager
async def gated_server(**serve_options: Any) -> AsyncIterator[Setup]:
    gate = Gate()

    async def gate_tool() -> str:
        """Wait for the gate."""
        return await gate()

    tool = agy_trio.tool(gate_tool, name="gate")
    async with served(turns=slow_answer, **serve_options) as server:
        config = agy_trio.AgentConfig(name="slow", tools=[tool])
        agent = await server.runtime.create_agent(config)
        yield Setup(server.runtime, server.client, agent, gate)


async def read_until_gate(setup: Setup) -> tuple[str, list[ServerSentEvent]]:
    """Start the chat, read up to the gate, then drop the connection; the turn id and events."""
    events: list[ServerSentEvent] = []
    turn_id = ""
    # Hanging up is cancelling the reader: the cancellation runs through every
    # iterator httpx and httpx-sse nest, and the connection closes mid-stream.
    with trio.CancelScope() as hang_up:
        async with aconnect_sse(
            setup.client, "POST", f"/v1/agents/{setup.agent.agent_id}/chat", json={"prompt": "go"}
        ) as source:
            turn_id = source.response.headers["x-turn-id"]
            async for event in source.aiter_sse():
                events.append(event)
                if "".join(e.json()["text"] for e in events if e.event == "delta") == FIRST_HALF:
                    hang_up.cancel()
    assert hang_up.cancelled_caught
    await setup.gate.reached.wait()
    return turn_id, events


async def resume(setup: Setup, turn_id: str, last_event_id: str) -> list[ServerSentEvent]:
    """Reconnect with ``Last-Event-ID`` and read to the end of the turn."""
    async with aconnect_sse(
        setup.client,
        "GET",
        f"/v1/turns/{turn_id}/events",
        headers={"last-event-id": last_event_id},
    ) as source:
        assert source.response.status_code == 200
        assert source.response.headers["x-turn-id"] == turn_id
        return [event async for event in source.aiter_sse()]


def check_once(turn_id: str, events: list[ServerSentEvent]) -> None:
    """The events of both connections: increasing ids, none repeated, one turn, the whole answer."""
    ids = [int(e.id) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
    assert {e.json()["turn_id"] for e in events} == {turn_id}
    text = "".join(e.json()["text"] for e in events if e.event == "delta")
    assert text == FIRST_HALF + SECOND_HALF
    assert [e.event for e in events].count("tool_call") == 1
    assert events[-1].event == "done"
    assert events[-1].json()["text"] == FIRST_HALF + SECOND_HALF
    assert events[-1].json()["stop_reason"] == "end_turn"


async def test_a_reconnect_replays_what_was_missed_exactly_once() -> None:
    async with gated_server(reattach_grace=60) as setup:
        turn_id, first = await read_until_gate(setup)
        assert not await setup.agent.is_idle()  # nobody reads, the turn goes on
        # The rest of the turn happens while nobody is connected.
        setup.gate.opened.set()
        with trio.fail_after(10):
            await setup.agent.wait_for_idle()
        rest = await resume(setup, turn_id, first[-1].id)
        check_once(turn_id, first + rest)
        assert not setup.gate.cancelled
        # The same turn can be read again from the start, or from any point.
        assert [e.id for e in await resume(setup, turn_id, "0")] == [e.id for e in first + rest]


async def test_a_reconnect_while_the_turn_runs_follows_it_live() -> None:
    async with gated_server(reattach_grace=60) as setup:
        turn_id, first = await read_until_gate(setup)
        rest: list[ServerSentEvent] = []

        async def read_rest() -> None:
            rest.extend(await resume(setup, turn_id, first[-1].id))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_rest)
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert rest == []  # attached, waiting for the turn
            setup.gate.opened.set()
        check_once(turn_id, first + rest)


async def test_without_a_reconnect_the_turn_is_cancelled_after_the_grace() -> None:
    grace = 0.3
    async with gated_server(reattach_grace=grace) as setup:
        turn_id, first = await read_until_gate(setup)
        # (That it is not cancelled before the grace is MockClock-tested in test_turn_log.)
        with trio.fail_after(grace + 1):
            await setup.agent.wait_for_idle()
        assert setup.gate.cancelled  # the tool call it was in was cancelled with it
        rest = await resume(setup, turn_id, first[-1].id)
        assert rest[-1].event == "done"
        assert rest[-1].json()["stop_reason"] == "cancelled"
        assert rest[-1].json()["text"] == FIRST_HALF
        # The agent is free for its next chat.
        events = await chat_events(setup.client, setup.agent.agent_id, "quick")
        assert events[-1].json()["text"] == "quick answer"


async def test_unknown_turns_and_bad_event_ids_are_refused() -> None:
    async with gated_server() as setup:
        answer = await setup.client.get("/v1/turns/turn-nope/events")
        assert answer.status_code == 404
        assert answer.json()["error"]["type"] == "TurnNotFound"
        events = await chat_events(setup.client, setup.agent.agent_id, "quick")
        turn_id = events[-1].json()["turn_id"]
        for bad in ("x", "-1", "1.5"):
            answer = await setup.client.get(
                f"/v1/turns/{turn_id}/events", headers={"last-event-id": bad}
            )
            assert answer.status_code == 422, bad
            assert answer.json()["error"]["type"] == "ConfigError"
