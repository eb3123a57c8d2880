"""Hibernation through the real SDK, its harness and the local model server.

An agent idle for ``hibernate_after`` seconds closes its harness conversation
(the harness exits once its last conversation has gone) and keeps only what it
needs to come back; its next chat reopens it in RESUME mode, with its history,
tools, policies and hooks. The tests use a tiny ``hibernate_after`` and wait
on the backend's state (its statistics), never on a guessed duration.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google.antigravity  # noqa: F401  (the README set-up installs the SDK)
import pytest
import trio

from agy_trio import policy, tool
from agy_trio.adapters.antigravity import AntigravityBackend
from agy_trio.core.hooks import Hooks, ToolEvent, ToolResultEvent, TurnEvent
from agy_trio.errors import AgyError, ConfigError
from agy_trio.testing import Reply, Responder
from tests.conversations import echoed
from tests.sdk_support import local_agent, replies_to_marks, sdk_agent, sdk_runtime

pytestmark = pytest.mark.sdk

SLOW_MARK = "a long answer"
LONG_ANSWER = "word " * 150  # 150 chunks, one every 20 ms: 3 s
NAP = 0.3  # hibernate_after in these tests


@pytest.fixture
def responder() -> Responder:
    return replies_to_marks({SLOW_MARK: Reply(LONG_ANSWER, chunk_size=5, delay=0.02)})


async def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait until ``condition`` holds (state another thread brings about), at most ``timeout``."""
    with trio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - the host threads change it, not a Trio task
            await trio.sleep(0.01)
    assert condition(), what


def _hibernated(backend: AntigravityBackend, n: int) -> Callable[[], bool]:
    return lambda: backend.statistics().hibernated == n


async def test_an_idle_agent_hibernates_and_wakes_on_chat_with_history_tools_policies_hooks(
    tmp_path: Path, server: Any
) -> None:
    calls: list[tuple[str, str]] = []
    seen: list[str] = []

    @tool
    async def lookup(topic: str) -> str:
        """Look a topic up."""
        await trio.lowlevel.checkpoint()
        calls.append((topic, threading.current_thread().name))
        return f"the Trio tool knows {topic}"

    def record(what: str) -> Any:
        def hook(event: TurnEvent | ToolEvent | ToolResultEvent) -> None:
            seen.append(what)

        return hook

    hooks = Hooks(on_turn_start=[record("start")], on_turn_end=[record("end")])
    no_secrets = policy.ask_user("lookup", lambda request: request.arguments["topic"] != "secret")
    config = local_agent(server, tools=[lookup], hooks=hooks, policies=[no_secrets])
    async with sdk_agent(tmp_path, config, hibernate_after=NAP) as (agent, backend):
        assert await (await agent.chat("remember the word banana")).text() == (
            "You said: remember the word banana"
        )
        before = await agent.history()
        usage = await agent.total_usage()
        assert usage.total_tokens > 0
        (pid,) = backend.harness_pids()
        await _until(_hibernated(backend, 1), "the idle agent hibernates")
        # It left its harness: kept up empty (warm) for the next wake.
        stats = backend.statistics()
        assert stats.harness_loads == ((pid, 0),)
        assert (stats.hibernations, stats.wakes, stats.wake_latency_p50) == (1, 0, None)

        # Queries answer from what it kept, without waking it.
        assert await agent.history() == before
        assert await agent.turn_count() == 1
        assert await agent.total_usage() == usage
        assert await agent.last_response() == "You said: remember the word banana"
        assert await agent.is_idle()
        assert backend.statistics().wakes == 0

        # The next chat wakes it, on the warm harness, with its tool, policy and hooks.
        text = await (await agent.chat('call tool lookup with {"topic": "bananas"}')).text()
        assert "the Trio tool knows bananas" in text
        assert calls == [("bananas", threading.current_thread().name)]  # ran in Trio
        stats = backend.statistics()
        assert (stats.hibernated, stats.wakes) == (0, 1)
        assert stats.wake_latency_p50 is not None and stats.wake_latency_p50 > 0
        assert stats.harness_loads == ((pid, 1),) and stats.harnesses_started == 1
        denied = await (await agent.chat('call tool lookup with {"topic": "secret"}')).text()
        assert "denied" in denied and len(calls) == 1  # its policy came back too
        assert seen == ["start", "end"] * 3

        history = [m.text for m in await agent.history()]
        assert history[:2] == [m.text for m in before]
        assert await agent.turn_count() == 3
        after = await agent.total_usage()
        assert after.input_tokens > usage.input_tokens  # carried over, then grown

        # It sleeps again once idle, and its snapshot is the new history.
        await _until(_hibernated(backend, 1), "the agent hibernates again")
        assert [m.text for m in await agent.history()] == history
        assert await agent.total_usage() == after
        assert backend.statistics().hibernations == 2


async def test_a_hibernated_agents_harness_can_be_killed_without_loss(
    tmp_path: Path, server: Any
) -> None:
    async with sdk_runtime(tmp_path, hibernate_after=NAP) as (rt, backend):
        sleeper = await rt.create_agent(local_agent(server, name="sleeper"))
        busy = await rt.create_agent(local_agent(server, name="busy"))
        assert await (await sleeper.chat("the word is kiwi")).text() == "You said: the word is kiwi"
        (pid,) = backend.harness_pids()
        # The other agent keeps the harness up, streaming a slow answer.
        response = await busy.chat(SLOW_MARK)
        first = await response.__anext__()
        assert first
        await _until(_hibernated(backend, 1), "the idle agent hibernates")
        assert backend.harness_pids() == [pid]
        assert [n for _, n in backend.statistics().harness_loads] == [1]  # only the busy one
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(AgyError):
            async for _ in response:
                pass
        # Nothing of the sleeper's was on the harness: it wakes on a new one, whole.
        assert await (await sleeper.chat("and now?")).text() == "You said: and now?"
        assert [m.text for m in await sleeper.history()] == echoed("the word is kiwi", "and now?")
        assert pid not in backend.harness_pids()
        assert backend.statistics().wakes == 1


async def test_a_hibernated_agent_wakes_on_a_fresh_harness_after_its_warm_one_is_killed(
    tmp_path: Path, server: Any
) -> None:
    async with sdk_agent(tmp_path, local_agent(server), hibernate_after=NAP) as (agent, backend):
        assert await (await agent.chat("the word is fig")).text() == "You said: the word is fig"
        await _until(_hibernated(backend, 1), "the idle agent hibernates")
        ((pid, load),) = backend.statistics().harness_loads
        assert load == 0
        os.kill(pid, signal.SIGKILL)
        await _until(lambda: backend.statistics().harness_loads == (), "the harness is dead")
        assert await (await agent.chat("still there?")).text() == "You said: still there?"
        assert [m.text for m in await agent.history()] == echoed("the word is fig", "still there?")
        assert pid not in backend.harness_pids()
        assert backend.statistics().harnesses_started == 2


async def test_a_hibernated_agent_shuts_down_and_resumes_by_id(tmp_path: Path, server: Any) -> None:
    keep = tmp_path / "keep"
    async with sdk_runtime(tmp_path, hibernate_after=NAP) as (rt, backend):
        agent = await rt.create_agent(local_agent(server, save_dir=keep))
        assert await (await agent.chat("hello")).text() == "You said: hello"
        await _until(_hibernated(backend, 1), "the idle agent hibernates")
        conversation_id = agent.conversation_id
        await agent.shutdown()
        assert backend.statistics().hibernated == 0
        # Its saved state is whole: resumed by id, it has its history.
        resumed = await rt.create_agent(
            local_agent(server, save_dir=keep, conversation_id=conversation_id)
        )
        assert [m.text for m in await resumed.history()] == ["hello", "You said: hello"]
        assert backend.statistics().wakes == 0  # a resume by id, not a wake


@pytest.mark.parametrize("value", [0, -1.0, "soon", True])
def test_hibernate_after_is_checked(value: Any) -> None:
    with pytest.raises(ConfigError, match="hibernate_after"):
        AntigravityBackend(hibernate_after=value)


def test_hibernation_is_on_by_default_and_none_turns_it_off() -> None:
    from agy_trio.adapters.antigravity.hibernation import DEFAULT_HIBERNATE_AFTER

    assert AntigravityBackend().settings.hibernate_after == DEFAULT_HIBERNATE_AFTER > 0
    assert AntigravityBackend(hibernate_after=None).settings.hibernate_after is None
