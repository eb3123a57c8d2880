"""NullBackend: a backend that answers every command at once, in the Trio thread."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import agy_trio
from agy_trio.core.events import Message, StopReason, Usage
from agy_trio.errors import AgentNotFound, ConfigError
from agy_trio.testing import NullBackend


async def test_every_command_is_answered() -> None:
    backend = NullBackend("hello there", chunks=3)
    async with agy_trio.open_runtime(backend=backend) as rt:
        agent = await rt.create_agent()
        response = await agent.chat("hi")
        assert [delta async for delta in response] == ["hell", "o th", "ere"]
        assert response.stop_reason is StopReason.END_TURN
        await agent.send("again")
        assert await agent.is_idle()
        await agent.wait_for_idle()
        await agent.cancel()
        assert await agent.turn_count() == 2
        assert await agent.history() == [
            Message("user", "hi"),
            Message("assistant", "hello there"),
            Message("user", "again"),
            Message("assistant", "hello there"),
        ]
        assert await agent.last_response() == "hello there"
        assert await agent.total_usage() == Usage()
        assert await agent.last_turn_usage() == Usage()
        assert await agent.compaction_indices() == []
        await agent.clear_history()
        assert await agent.history() == []
        assert await agent.last_response() is None
        stats = rt.statistics()
        assert stats.backend == "null"
        assert stats.turns == 1
        assert stats.failed == 0
        assert stats.commands["is_idle"].completed == 1


async def test_batches_respect_batch_max() -> None:
    backend = NullBackend("x" * 10, chunks=10, batch_max=3)
    async with agy_trio.open_runtime(backend=backend) as rt:
        agent = await rt.create_agent()
        response = await agent.chat("go")
        assert await response.text() == "x" * 10
        # Ten deltas and the end, in batches of at most three.
        assert rt.statistics().stream_events == 11


async def test_an_empty_reply_streams_only_the_end() -> None:
    async with agy_trio.open_runtime(backend=NullBackend()) as rt:
        agent = await rt.create_agent()
        response = await agent.chat("go")
        assert [delta async for delta in response] == []
        assert response.stop_reason is StopReason.END_TURN


async def test_turns_end_so_the_runtime_is_quiet() -> None:
    async with agy_trio.open_runtime(backend=NullBackend("a b")) as rt:
        agent = await rt.create_agent()
        await agent.chat("unread")
        # The turn's end reaches the runtime without anybody reading it.
        await trio.testing.wait_all_tasks_blocked()
        assert rt.statistics().active_turns == 0
        assert rt.statistics().in_flight == 0


async def test_cancel_after_the_turn_ended_changes_nothing() -> None:
    # Every null turn has ended by the time it starts: as on every backend, a
    # cancel that comes after a turn's end leaves its events and its end alone.
    async with agy_trio.open_runtime(backend=NullBackend("abcdef", chunks=6)) as rt:
        agent = await rt.create_agent()
        response = await agent.chat("go")
        await response.cancel()
        assert [delta async for delta in response] == list("abcdef")
        assert response.stop_reason is StopReason.END_TURN


async def test_conversations_resume_until_deleted() -> None:
    backend = NullBackend("ok")
    async with agy_trio.open_runtime(backend=backend) as rt:
        agent = await rt.create_agent()
        await agent.send("remember me")
        conversation = agent.conversation_id
        await agent.disconnect()
        assert backend.agents == 0
        again = await rt.create_agent(agy_trio.AgentConfig(conversation_id=conversation))
        assert backend.agents == 1
        assert await again.turn_count() == 1
        await again.delete()
        with pytest.raises(AgentNotFound):
            await rt.create_agent(agy_trio.AgentConfig(conversation_id=conversation))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"chunks": 0}, "chunks"),
        ({"chunks": True}, "chunks"),
        ({"batch_max": 0}, "batch_max"),
        ({"reply": 3}, "reply"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        NullBackend(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
