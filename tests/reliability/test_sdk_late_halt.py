"""A halt the harness answers late never reaches a later turn (real SDK, SIGSTOP/SIGCONT).

The harness is stopped mid-answer, so the cancel of that turn is not answered
within ``cancel_grace`` and the turn is given up on this side while it still
runs in the harness. The next chat must still reach the model and the
history: it waits until the harness has ended the earlier turn, or, if the
harness stays stalled, goes to a fresh session.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import agy_trio
from agy_trio import RuntimeConfig, StopReason
from agy_trio.adapters.antigravity import AntigravityBackend
from agy_trio.testing import Reply, Responder
from tests.conversations import echoed_turns
from tests.sdk_support import local_agent, replies_to_marks, sdk_agent

pytestmark = [pytest.mark.sdk, pytest.mark.usefixtures("offline", "no_harness_left")]

LONG_MARK = "long answer please"
LONG = "".join(f"{i:04d}" for i in range(2000))
CONFIG = RuntimeConfig(inter_agent_delay=0, chat_timeout=60)
GRACE = 0.5  # cancel_grace: how long a halt may take before the turn is given up on
HANG = 40


@pytest.fixture
def responder() -> Responder:
    return replies_to_marks({LONG_MARK: Reply(LONG, chunk_size=4, delay=0.01)})


async def _stall_mid_answer(agent: agy_trio.AgentHandle, pid: int) -> None:
    """Start the long answer, stop the harness, and give up on the turn."""
    response = await agent.chat(LONG_MARK)
    await response.__anext__()
    os.kill(pid, signal.SIGSTOP)
    with trio.fail_after(HANG):
        await response.aclose()  # the halt is not answered: given up after GRACE


async def _next_reaches_the_model(agent: agy_trio.AgentHandle, server: Any) -> None:
    with trio.fail_after(HANG):
        response = await agent.chat("next")
        assert await response.text() == "You said: next"
    assert response.stop_reason is StopReason.END_TURN
    assert any(r.user_request == "next" for r in server.requests)
    history = await agent.history()
    assert [(m.role, m.text) for m in history[-2:]] == echoed_turns("next")
    assert history[0] == agy_trio.Message("user", LONG_MARK, interrupted=True)


@asynccontextmanager
async def _stalled_mid_answer(
    tmp_path: Path, server: Any
) -> AsyncIterator[tuple[agy_trio.AgentHandle, int, AntigravityBackend]]:
    """An agent whose harness stopped mid-answer, the turn given up; the harness pid.

    The harness goes on (SIGCONT) on leaving at the latest.
    """
    async with sdk_agent(tmp_path, local_agent(server), CONFIG, cancel_grace=GRACE) as (
        agent,
        backend,
    ):
        (pid,) = backend.harness_pids()
        try:
            await _stall_mid_answer(agent, pid)
            yield agent, pid, backend
        finally:
            # A harness the backend gave up on may be gone already: nothing to resume.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("resume", ["before the next chat", "while it waits"])
async def test_a_late_halt_does_not_stop_the_next_turn(
    tmp_path: Path, server: Any, resume: str
) -> None:
    async with _stalled_mid_answer(tmp_path, server) as (agent, pid, _):
        if resume == "before the next chat":
            os.kill(pid, signal.SIGCONT)
            await _next_reaches_the_model(agent, server)
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_next_reaches_the_model, agent, server)
                # The next turn has the turn slot and waits for the harness.
                await trio.testing.wait_all_tasks_blocked()
                os.kill(pid, signal.SIGCONT)
        # And the turn after that too.
        with trio.fail_after(HANG):
            assert await (await agent.chat("third")).text() == "You said: third"


async def test_a_harness_stalled_past_the_grace_gets_a_fresh_session(
    tmp_path: Path, server: Any
) -> None:
    async with _stalled_mid_answer(tmp_path, server) as (agent, pid, backend):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_next_reaches_the_model, agent, server)
            # Stalled for longer than the next turn waits for it.
            await trio.sleep(3 * GRACE)
            os.kill(pid, signal.SIGCONT)
        assert backend.statistics().reopens >= 1
