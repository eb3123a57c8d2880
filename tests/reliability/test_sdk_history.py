"""A caller told its turn started finds its prompt in the history (real SDK).

``chat()`` returns once the turn holds the agent's turn slot: from then on the
prompt belongs to the conversation, whatever happens next (the caller cancels
at once, the harness died while the agent was idle).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from agy_trio import StopReason
from agy_trio.testing import Fault
from tests.conversations import echoed_turns, user_prompts
from tests.sdk_support import local_agent, sdk_agent

pytestmark = [pytest.mark.sdk, pytest.mark.usefixtures("offline", "no_harness_left")]

HANG = 60


async def test_a_turn_cancelled_as_soon_as_it_started_keeps_its_prompt(
    tmp_path: Path, server: Any
) -> None:
    async with sdk_agent(tmp_path, local_agent(server)) as (agent, _):
        prompts = [f"cancelled at once {i}" for i in range(5)]
        with trio.fail_after(HANG):
            for prompt in prompts:
                response = await agent.chat(prompt)
                await response.cancel()
                assert response.stop_reason in (None, StopReason.CANCELLED, StopReason.END_TURN)
            assert await (await agent.chat("next")).text() == "You said: next"
        assert await user_prompts(agent) == [*prompts, "next"]


async def test_a_harness_killed_while_idle_loses_nothing(tmp_path: Path, server: Any) -> None:
    async with sdk_agent(tmp_path, local_agent(server)) as (agent, backend):
        with trio.fail_after(HANG):
            assert await (await agent.chat("before")).text() == "You said: before"
        for pid in backend.harness_pids():
            os.kill(pid, signal.SIGKILL)
        with trio.fail_after(HANG):
            assert await (await agent.chat("after")).text() == "You said: after"
        assert [(m.role, m.text) for m in await agent.history()] == echoed_turns("before", "after")
        assert backend.statistics().reopens == 1


async def test_a_turn_that_fails_while_being_cancelled_leaves_the_session_usable(
    tmp_path: Path, server: Any
) -> None:
    # The model answers 503 as the caller cancels: whichever the harness
    # reports first, the next turn must answer, and both prompts stay.
    async with sdk_agent(tmp_path, local_agent(server)) as (agent, _):
        expected: list[str] = []
        with trio.fail_after(HANG):
            for i in range(12):
                server.inject_fault(Fault.http_error(503, match=f"fails {i}"))
                response = await agent.chat(f"fails {i}")
                await response.cancel()
                expected.append(f"fails {i}")
                # The fault matches every later request of this conversation
                # too (they carry the history): it must not outlive the turn.
                server.clear_faults()
                answer = await agent.chat(f"next {i}")
                assert await answer.text() == f"You said: next {i}"
                expected.append(f"next {i}")
        assert await user_prompts(agent) == expected


async def test_a_turn_cancelled_at_once_after_its_harness_died_keeps_its_prompt(
    tmp_path: Path, server: Any
) -> None:
    # The prompt first goes to the dead harness; it is sent again to the new
    # one (and only then halted), although its caller cancels at once.
    async with sdk_agent(tmp_path, local_agent(server)) as (agent, backend):
        expected: list[str] = []
        with trio.fail_after(HANG):
            for i in range(4):
                assert await (await agent.chat(f"before {i}")).text() == f"You said: before {i}"
                expected.append(f"before {i}")
                for pid in backend.harness_pids():
                    os.kill(pid, signal.SIGKILL)
                response = await agent.chat(f"cancelled {i}")
                await response.cancel()
                expected.append(f"cancelled {i}")
            assert await user_prompts(agent) == expected
