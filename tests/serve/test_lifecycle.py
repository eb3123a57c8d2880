"""A client that hangs up cancels its turn; a server that stops tells its live streams why."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

import agy_trio
from agy_trio.adapters.scripted import ScriptedBackend
from agy_trio.serve import ServerAddress, serve
from tests.serve._helpers import (
    FAST,
    chat_events,
    chat_in_task,
    create_agent,
    data,
    open_chat,
    script,
    served,
)


async def test_hanging_up_cancels_the_turn_at_the_backend_with_no_grace() -> None:
    async with served(reattach_grace=0) as s:
        agent_id = await create_agent(s.client)
        handle = s.runtime.agent(agent_id)
        async with open_chat(s.client, agent_id, "hang until I leave") as chat:
            await chat.wait_for("delta")
            assert not await handle.is_idle()
            cancels_before = s.backend.cancel_calls
            await chat.hang_up()
        # The bound: the agent is idle, and the backend's own cancel
        # ran, within a second of the client going away.
        with trio.fail_after(1):
            await handle.wait_for_idle()
        assert s.backend.cancel_calls > cancels_before
        assert [e.event for e in chat.events] == ["delta"]
        # The agent takes its next turn at once.
        events = await chat_events(s.client, agent_id, "still there?")
        assert events[-1].json()["text"] == "You said: still there?"


async def test_many_concurrent_streams_each_get_their_own_answer() -> None:
    async with served() as s:
        agents = [await create_agent(s.client) for _ in range(20)]
        answers: dict[str, str] = {}

        async def one(agent_id: str) -> None:
            events = await chat_events(s.client, agent_id, f"I am {agent_id}")
            answers[agent_id] = events[-1].json()["text"]

        async with trio.open_nursery() as nursery:
            for agent_id in agents:
                nursery.start_soon(one, agent_id)
        assert answers == {a: f"You said: I am {a}" for a in agents}


@asynccontextmanager
async def embedded_server(
    runtime: agy_trio.Runtime,
) -> AsyncIterator[tuple[trio.Nursery, ServerAddress, trio.Event, trio.Event]]:
    """serve() in an embedding program's nursery, next to another task; the test owns neither."""
    other_task_stopped = trio.Event()
    program_ended = trio.Event()

    async def other_work() -> None:
        try:
            await trio.sleep_forever()
        finally:
            other_task_stopped.set()

    async def program(*, task_status: trio.TaskStatus[tuple[trio.Nursery, ServerAddress]]) -> None:
        try:
            async with trio.open_nursery() as nursery:
                address = await nursery.start(functools.partial(serve, runtime, port=0))
                nursery.start_soon(other_work)
                task_status.started((nursery, address))
        finally:
            program_ended.set()

    async with trio.open_nursery() as outside:
        nursery, address = await outside.start(program)
        yield nursery, address, other_task_stopped, program_ended


async def test_cancelling_the_embedding_nursery_tells_live_streams_and_ends_agents() -> None:
    backend = ScriptedBackend(script)
    async with agy_trio.open_runtime(FAST, backend=backend) as runtime:
        own = await runtime.create_agent(agy_trio.AgentConfig(name="the-program's-own"))
        async with (
            embedded_server(runtime) as (nursery, address, other_task_stopped, program_ended),
            httpx.AsyncClient(base_url=address.url) as client,
        ):
            agents = [await create_agent(client) for _ in range(3)]
            async with trio.open_nursery() as readers_nursery:
                readers = [
                    await readers_nursery.start(chat_in_task, client, agent_id, "hang in there")
                    for agent_id in agents
                ]
                for chat in readers:
                    await chat.wait_for("delta")
                cancels_before = backend.cancel_calls

                nursery.cancel_scope.cancel()

                with trio.fail_after(10):
                    for chat in readers:
                        await chat.ended.wait()
            for chat in readers:
                assert [e.event for e in chat.events] == ["delta", "error"]
                assert data(chat.events[-1]) == {
                    "type": "RuntimeClosed",
                    "message": "the server is shutting down",
                    "retry_after": None,
                }
            with trio.fail_after(10):
                await program_ended.wait()
            assert other_task_stopped.is_set()
            # The server is gone: nothing listens on its port any more.
            with pytest.raises(httpx.ConnectError):
                await client.get("/healthz")
        # Every turn was cancelled at the backend, and the agents created over
        # HTTP were shut down; the program's own agent is left to the program.
        assert backend.cancel_calls >= cancels_before + len(agents)
        assert [h.agent_id for h in runtime.agents] == [own.agent_id]
        assert sorted(backend.saved_conversations) == sorted(
            f"scripted-{n}" for n in range(2, 2 + len(agents))
        )


async def test_a_stopping_server_refuses_new_work_then_closes() -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        service = s.runtime  # the runtime outlives the server in this test
        async with open_chat(s.client, agent_id, "hang on") as chat:
            await chat.wait_for("delta")
            await s.runtime.shutdown()  # the runtime itself shuts down under a live stream
            error = await chat.wait_for("error")
        assert error.json()["type"] == "RuntimeClosed"
        answer = await s.client.post("/v1/agents", json={})
        assert answer.status_code == 503
        assert answer.json()["error"]["type"] == "RuntimeClosed"
        assert service.closed
