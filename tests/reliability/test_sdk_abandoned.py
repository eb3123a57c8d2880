"""An abandoned turn is interrupted at once (real SDK, local model server).

The long answer streams for about 20 s (2,000 chunks, 10 ms apart), far more
than the stream's backpressure limit. A response dropped unread,
garbage-collected, or whose ``async for`` was left early has its turn
cancelled through the harness: the model server sees its request abandoned,
the prompt (and what was produced) stays in the history marked interrupted,
and the next chat is answered at once instead of after the old answer.
A response another task is still reading is never interrupted.
"""

from __future__ import annotations

import functools
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import trio

import agy_trio
from agy_trio import RuntimeConfig, StopReason
from agy_trio.adapters.antigravity import AntigravityBackend
from agy_trio.testing import Reply, Responder
from tests.reliability.abandoning import assert_a_turn_being_read_is_left_alone, collected
from tests.sdk_support import local_agent, replies_to_marks, sdk_agent

pytestmark = [pytest.mark.sdk, pytest.mark.usefixtures("offline", "no_harness_left")]

LONG_MARK = "long answer please"
CHUNKS = 2000
LONG = "".join(f"{i:04d}" for i in range(CHUNKS))
CHUNK_DELAY = 0.01  # the long answer takes CHUNKS * CHUNK_DELAY = 20 s
MEDIUM_MARK = "medium answer please"
MEDIUM = "".join(f"{i:04d}" for i in range(300))
# chat_timeout far beyond the bounds below: a held agent shows as a hang.
CONFIG = RuntimeConfig(inter_agent_delay=0, chat_timeout=120)
HANG = 60
# The next chat must not wait for the old answer (20 s). Answered in well
# under a second here; the bound is generous for a loaded 2-core machine.
NEXT_CHAT_BOUND = 5.0


@pytest.fixture
def responder() -> Responder:
    return replies_to_marks(
        {
            LONG_MARK: Reply(LONG, chunk_size=4, delay=CHUNK_DELAY),
            MEDIUM_MARK: Reply(MEDIUM, chunk_size=4, delay=0.001),
        }
    )


def _streaming_agent(
    tmp_path: Path, server: Any
) -> AbstractAsyncContextManager[tuple[agy_trio.AgentHandle, AntigravityBackend]]:
    """A local agent whose answers stream in batches of at most 8 under a high water of 16."""
    return sdk_agent(
        tmp_path, local_agent(server), CONFIG, stream_high_water=16, stream_batch_max=8
    )


async def _next_chat_answered_at_once(agent: agy_trio.AgentHandle) -> float:
    """Chat again; return the seconds from sending it to its whole answer."""
    started = trio.current_time()
    with trio.fail_after(HANG):
        assert await (await agent.chat("next")).text() == "You said: next"
    elapsed = trio.current_time() - started
    assert elapsed < NEXT_CHAT_BOUND, f"the next chat took {elapsed:.2f} s"
    return elapsed


async def _assert_interrupted(agent: agy_trio.AgentHandle, server: Any) -> None:
    """The long turn was cut short, at the model too; its messages marked; the next is whole."""
    history = await agent.history()
    assert history[0] == agy_trio.Message("user", LONG_MARK, interrupted=True)
    partial = history[1:-2]
    assert [(m.role, m.interrupted) for m in partial] in ([], [("assistant", True)])
    if partial:
        assert LONG.startswith(partial[0].text) and len(partial[0].text) < len(LONG)
    assert [(m.role, m.text, m.interrupted) for m in history[-2:]] == [
        ("user", "next", False),
        ("assistant", "You said: next", False),
    ]
    assert await agent.turn_count() == 1
    # Every request for the long answer was given up by the harness (it may
    # have been halted before it asked the model at all).
    long_requests = sum(LONG_MARK in r.user_request for r in server.requests)
    assert long_requests <= 1
    assert server.statistics().abandoned == long_requests
    assert server.statistics().in_flight == 0


async def test_a_dropped_response_is_interrupted(tmp_path: Path, server: Any) -> None:
    async with _streaming_agent(tmp_path, server) as (agent, _):
        with pytest.warns(ResourceWarning, match="garbage-collected unread"):
            await agent.chat(LONG_MARK)  # dropped at once, unread
            await collected()
        await _next_chat_answered_at_once(agent)
        await _assert_interrupted(agent, server)


async def test_a_garbage_collected_response_is_interrupted(tmp_path: Path, server: Any) -> None:
    async with _streaming_agent(tmp_path, server) as (agent, _):
        response = await agent.chat(LONG_MARK)
        await server.wait_for_requests(1)  # the model is answering
        with pytest.warns(ResourceWarning, match="garbage-collected unread"):
            del response
            await collected()
        await _next_chat_answered_at_once(agent)
        await _assert_interrupted(agent, server)
        assert server.statistics().abandoned == 1


async def test_break_out_of_async_for_interrupts_the_turn(tmp_path: Path, server: Any) -> None:
    async with _streaming_agent(tmp_path, server) as (agent, _):
        response = await agent.chat(LONG_MARK)
        seen = []
        async for delta in response:
            seen.append(delta)
            if len(seen) == 3:
                break
        assert "".join(seen) == LONG[: len("".join(seen))]
        await _next_chat_answered_at_once(agent)
        await _assert_interrupted(agent, server)
        assert server.statistics().abandoned == 1
        # Read again, the response ends as cancelled.
        rest = "".join([delta async for delta in response])
        assert len("".join(seen) + rest) < len(LONG)
        assert response.stop_reason is StopReason.CANCELLED


async def test_leaving_async_with_early_interrupts_the_turn(tmp_path: Path, server: Any) -> None:
    async with _streaming_agent(tmp_path, server) as (agent, _):
        async with await agent.chat(LONG_MARK) as response:
            await response.__anext__()
        await _next_chat_answered_at_once(agent)
        await _assert_interrupted(agent, server)
        assert server.statistics().abandoned == 1
        _ = [delta async for delta in response]
        assert response.stop_reason is StopReason.CANCELLED


async def test_a_response_read_by_another_task_is_not_interrupted(
    tmp_path: Path, server: Any
) -> None:
    async with _streaming_agent(tmp_path, server) as (agent, _):
        slow_reader = functools.partial(trio.sleep, 0.001)
        await assert_a_turn_being_read_is_left_alone(
            agent, MEDIUM_MARK, MEDIUM, pause=slow_reader, within=HANG
        )
        assert server.statistics().abandoned == 0
