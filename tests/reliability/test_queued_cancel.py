"""A chat queued behind a turn and stopped by ``agent.cancel()`` is told so, in those words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

import agy_trio
from agy_trio import RuntimeConfig
from agy_trio.adapters.scripted import Hang, Say, ScriptedBackend, Turn
from agy_trio.errors import BackendError
from agy_trio.testing import Reply, Responder
from tests.conversations import user_prompts
from tests.sdk_support import local_agent, replies_to_marks, sdk_runtime

CONFIG = RuntimeConfig(inter_agent_delay=0, chat_timeout=60)
HANG = 30
# The scripted backend answers at once: a chat that waits this long for its
# error is stuck (a turn cancelled before its first step once left it waiting
# until something else timed out, 30 s later).
SCRIPTED_HANG = 10
LONG_MARK = "long answer please"


async def _queued_chat_hit_by_agent_cancel(
    rt: agy_trio.Runtime, agent: Any, first: str, hang: float = HANG
) -> str:
    """Chat twice (the second queues behind the first), cancel the agent; the second's error."""
    response = await agent.chat(first)
    errors: list[BaseException] = []

    async def second() -> None:
        try:
            await agent.chat("queued behind it")
        except BackendError as exc:
            errors.append(exc)

    # A hang guard, not a timing check: a chat left waiting is cut off here,
    # and being cut off is the failure.
    with trio.move_on_after(hang) as guard:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(second)
            # The second chat has reached the backend, where it waits its turn
            # (the backend takes the cancel after it, in order).
            while rt.statistics().in_flight == 0:
                await trio.lowlevel.checkpoint()
            await agent.cancel()
        await response.aclose()
    assert not guard.cancel_called, "the queued chat was never told it was cancelled"
    assert len(errors) == 1
    prompts = await user_prompts(agent)
    assert "queued behind it" not in prompts
    return str(errors[0])


async def test_scripted_a_queued_chat_names_agent_cancel() -> None:
    backend = ScriptedBackend([Turn([Say("partial", chunks=1), Hang()])])
    async with agy_trio.open_runtime(CONFIG, backend=backend) as rt:
        agent = await rt.create_agent()
        message = await _queued_chat_hit_by_agent_cancel(rt, agent, "first", SCRIPTED_HANG)
        assert "agent.cancel()" in message and "not sent" in message


@pytest.fixture
def responder() -> Responder:
    return replies_to_marks({LONG_MARK: Reply("x" * 4000, chunk_size=4, delay=0.01)})


@pytest.mark.sdk
@pytest.mark.usefixtures("offline", "no_harness_left")
async def test_sdk_a_queued_chat_names_agent_cancel(tmp_path: Path, server: Any) -> None:
    async with sdk_runtime(tmp_path, CONFIG) as (rt, _):
        agent = await rt.create_agent(local_agent(server))
        message = await _queued_chat_hit_by_agent_cancel(rt, agent, LONG_MARK)
        assert "agent.cancel()" in message and "not sent" in message
