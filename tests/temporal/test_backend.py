"""Every command through Temporal, with a worker in this process on the scripted backend.

The dev server is real; the worker runs in the test's own Trio run, on a task
queue of its own, so these tests are quick and each one sees only its turns.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig, StopReason, Usage
from agy_trio.adapters.scripted import (
    CallTool,
    Fail,
    Hang,
    Responder,
    Say,
    ScriptedBackend,
    Turn,
)
from agy_trio.adapters.temporal import TemporalBackend, WorkerOptions, serve_worker
from agy_trio.adapters.temporal.dev_server import DevServer
from agy_trio.adapters.temporal.messages import conversation_workflow_id
from agy_trio.errors import AgentNotFound, ConfigError, OperationTimeout, SafetyBlocked
from tests.temporal.sample_tools import record_visit, slow_visit


def by_prompt(turns: dict[str, Turn | str]) -> Responder:
    """A script keyed by prompt: a worker may rebuild an agent, restarting any sequence."""

    def respond(_agent_id: str, prompt: str, _index: int) -> Turn:
        turn = turns.get(prompt, f"You said: {prompt}")
        return Turn([Say(turn)]) if isinstance(turn, str) else turn

    return respond


@asynccontextmanager
async def setup(
    server: DevServer,
    script: Responder | None = None,
    *,
    chat_timeout: float = 60.0,
    operation_timeout: float | None = None,
    turns_per_run: int = 500,
) -> AsyncIterator[agy_trio.Runtime]:
    queue = f"agy-trio-inproc-{uuid.uuid4().hex[:8]}"
    options = WorkerOptions(target=server.target, task_queue=queue, shutdown_grace=1.0)
    worker_config = RuntimeConfig(inter_agent_delay=0)
    client_config = RuntimeConfig(
        inter_agent_delay=0,
        chat_timeout=chat_timeout,
        operation_timeout=operation_timeout or chat_timeout + 30,
    )
    backend = TemporalBackend(
        server.target, task_queue=queue, poll_interval=0.05, turns_per_run=turns_per_run
    )
    async with (
        agy_trio.open_runtime(worker_config, backend=ScriptedBackend(script)) as worker_rt,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(serve_worker, worker_rt, AgentConfig(), options)
        async with agy_trio.open_runtime(client_config, backend=backend) as rt:
            yield rt
        nursery.cancel_scope.cancel()


async def test_every_reading_command(temporal_server: DevServer) -> None:
    script = by_prompt(
        {
            "first": Turn([Say("one two three", chunks=3)], usage=Usage(3, 3)),
            "again": "second answer",
        }
    )
    async with setup(temporal_server, script) as rt, rt.open_agent() as agent:
        assert await agent.is_idle()
        assert await agent.history() == []
        assert await agent.last_response() is None
        response = await agent.chat("first")
        # Deltas arrive as the client polls, so their cut may differ; the text may not.
        assert "".join([d async for d in response]) == "one two three"
        assert response.usage == Usage(3, 3)
        await agent.send("again")
        await agent.wait_for_idle()
        assert await agent.turn_count() == 2
        assert await agent.last_response() == "second answer"
        assert await agent.last_turn_usage() == Usage(1, 2)
        assert await agent.total_usage() == Usage(4, 5)
        assert await agent.compaction_indices() == []
        assert [m.text for m in await agent.history()] == [
            "first",
            "one two three",
            "again",
            "second answer",
        ]
        await agent.clear_history()
        assert await agent.history() == []
        assert await agent.last_response() is None
        after = await agent.chat("fresh start")
        assert await after.text() == "You said: fresh start"


async def test_chat_timeout_cancels_the_turn(temporal_server: DevServer) -> None:
    async with (
        setup(
            temporal_server, by_prompt({"hang": Turn([Say("partial"), Hang()])}), chat_timeout=3
        ) as rt,
        rt.open_agent() as agent,
    ):
        response = await agent.chat("hang")
        with pytest.raises(OperationTimeout):
            await response.text()
        await agent.wait_for_idle()
        assert await (await agent.chat("next")).text() == "You said: next"


async def test_operation_timeout_bounds_a_command(temporal_server: DevServer) -> None:
    async with (
        setup(
            temporal_server,
            by_prompt({"hang": Turn([Hang()])}),
            chat_timeout=2,
            operation_timeout=3,
        ) as rt,
        rt.open_agent() as agent,
    ):
        await agent.send("hang")
        with trio.fail_after(60), pytest.raises(OperationTimeout):
            await agent.wait_for_idle()
        await agent.cancel()
        assert await agent.is_idle()


async def test_cancelling_the_reader_cancels_the_turn(temporal_server: DevServer) -> None:
    async with (
        setup(temporal_server, by_prompt({"hang": Turn([Say("a", chunks=1), Hang()])})) as rt,
        rt.open_agent() as agent,
    ):
        response = await agent.chat("hang")
        async with response:
            async for delta in response:
                assert delta == "a"
                break
        assert [delta async for delta in response] == []
        assert response.stop_reason is StopReason.CANCELLED
        await agent.wait_for_idle()
        assert [m.role for m in await agent.history()] == ["user"]


async def test_errors_keep_their_kind(temporal_server: DevServer) -> None:
    async with (
        setup(temporal_server, by_prompt({"unsafe": Turn([Fail("safety", "no")])})) as rt,
        rt.open_agent() as agent,
    ):
        response = await agent.chat("unsafe")
        with pytest.raises(SafetyBlocked):
            await response.text()
        assert await (await agent.chat("fine")).text() == "You said: fine"


async def test_tools_run_on_the_worker_once(temporal_server: DevServer, tmp_path: Path) -> None:
    visits = tmp_path / "visits.txt"
    turn = Turn([CallTool("record_visit", {"path": str(visits), "visitor": "bo"}), Say("ok")])
    config = AgentConfig(tools=(record_visit,))
    async with (
        setup(temporal_server, by_prompt({"visit": turn})) as rt,
        rt.open_agent(config) as agent,
    ):
        response = await agent.chat("visit")
        events = [e async for e in response.events()]
        calls = [e for e in events if isinstance(e, agy_trio.ToolCall)]
        assert [(c.name, c.result) for c in calls] == [("record_visit", "recorded bo")]
        assert visits.read_text() == "bo\n"
        history = await agent.history()
        assert history[-1].tool_calls[0].result == "recorded bo"


async def test_a_local_tool_cannot_travel(temporal_server: DevServer) -> None:
    @agy_trio.tool
    def local() -> str:
        """Not importable."""
        return "x"

    async with setup(temporal_server) as rt:
        with pytest.raises(ConfigError):
            await rt.create_agent(AgentConfig(tools=(local,)))


async def test_unknown_conversation_is_not_found(temporal_server: DevServer) -> None:
    async with setup(temporal_server) as rt:
        with pytest.raises(AgentNotFound):
            await rt.create_agent(AgentConfig(conversation_id="no-such-conversation"))


async def test_disconnect_keeps_the_conversation_running(temporal_server: DevServer) -> None:
    async with setup(temporal_server) as rt:
        agent = await rt.create_agent()
        await (await agent.chat("kept")).text()
        await agent.disconnect()
        again = await rt.create_agent(AgentConfig(conversation_id=agent.conversation_id))
        assert [m.text for m in await again.history()] == ["kept", "You said: kept"]
        await again.delete()


async def test_continue_as_new_keeps_the_conversation(temporal_server: DevServer) -> None:
    async with setup(temporal_server, turns_per_run=2) as rt, rt.open_agent() as agent:
        backend = rt.backend
        assert isinstance(backend, TemporalBackend)

        async def run_id() -> str | None:
            workflow_id = conversation_workflow_id(agent.conversation_id)
            description = await backend.client.get_workflow_handle(workflow_id).describe()
            return description.run_id

        first_run = await backend.host.run(run_id)
        for index in range(5):
            assert await (await agent.chat(f"q{index}")).text() == f"You said: q{index}"
        assert await agent.turn_count() == 5
        assert [m.text for m in await agent.history()][-2:] == ["q4", "You said: q4"]
        assert len(await agent.history()) == 10
        assert await backend.host.run(run_id) != first_run


async def test_a_tool_whose_worker_died_is_not_run_again(
    temporal_server: DevServer, tmp_path: Path
) -> None:
    visits = tmp_path / "visits.txt"
    call = CallTool("slow_visit", {"path": str(visits), "visitor": "cy"})
    script = by_prompt({"visit": Turn([call, Say("carried on")])})
    queue = f"agy-trio-inproc-{uuid.uuid4().hex[:8]}"
    options = WorkerOptions(target=temporal_server.target, task_queue=queue, shutdown_grace=1.0)
    fast = RuntimeConfig(inter_agent_delay=0)
    config = AgentConfig(tools=(slow_visit,))
    backend = TemporalBackend(temporal_server.target, task_queue=queue, poll_interval=0.05)
    async with (
        agy_trio.open_runtime(fast, backend=ScriptedBackend(script)) as first_rt,
        agy_trio.open_runtime(fast, backend=ScriptedBackend(script)) as second_rt,
        trio.open_nursery() as nursery,
    ):
        first_scope = trio.CancelScope()

        async def first(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with first_scope:
                await serve_worker(first_rt, AgentConfig(), options, task_status=task_status)

        await nursery.start(first)
        async with (
            agy_trio.open_runtime(fast, backend=backend) as rt,
            rt.open_agent(config) as agent,
        ):
            response = await agent.chat("visit")
            with trio.fail_after(30):
                while not visits.exists():  # noqa: ASYNC110 - a file another task writes
                    await trio.sleep(0.05)
            await nursery.start(serve_worker, second_rt, AgentConfig(), options)
            first_scope.cancel()  # the first worker dies with the tool call in flight
            assert await response.text() == "carried on"
            assert visits.read_text() == "cy\n"
            [outcome] = response.tool_calls
            assert outcome.error is not None and "not run again" in outcome.error
        nursery.cancel_scope.cancel()
