"""Agents sharing harness processes, through the real SDK, its harness and the local model server.

Everything runs offline (the harness talks to
:mod:`agy_trio.testing.model_server` on 127.0.0.1; HOME and every folder are
under the test's ``tmp_path``). The point of each test is what agents on one
harness must not notice of each other: a failure, a cancel, a deletion, a
clear, a resume; and what they must all survive: the crash of their harness.
After each test no ``localharness`` process may remain.
"""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.antigravity  # noqa: F401  (the README set-up installs the SDK)
import pytest
import trio

import agy_trio
from agy_trio import AgentConfig, StopReason, policy, tool
from agy_trio.core.hooks import Hooks, ToolEvent, ToolResultEvent, TurnEvent
from agy_trio.errors import AgentNotFound, BackendError, ChannelClosed, QuotaExceeded
from agy_trio.testing import Fault, Reply, Responder
from tests.conversations import echoed
from tests.sdk_support import (
    assert_exit_soon,
    harnesses_of_a_killed_program,
    local_agent,
    replies_to_marks,
    sdk_runtime,
)

pytestmark = pytest.mark.sdk

SLOW_MARK = "a long answer"
LONG_ANSWER = "word " * 150  # 150 chunks of 5 characters, one every 20 ms: 3 s


@pytest.fixture
def responder() -> Responder:
    return replies_to_marks({SLOW_MARK: Reply(LONG_ANSWER, chunk_size=5, delay=0.02)})


pooled_runtime = sdk_runtime


_config = local_agent


async def _create(rt: agy_trio.Runtime, configs: list[AgentConfig]) -> list[agy_trio.AgentHandle]:
    handles: list[Any] = [None] * len(configs)

    async def one(i: int) -> None:
        handles[i] = await rt.create_agent(configs[i])

    async with trio.open_nursery() as nursery:
        for i in range(len(configs)):
            nursery.start_soon(one, i)
    return handles


async def _read_all(response: Any, into: list[str]) -> None:
    async for delta in response:
        into.append(delta)


# ---------------------------------------------------------------------------- sharing


async def test_agents_share_a_harness_unless_their_process_settings_differ(
    tmp_path: Path, server: Any
) -> None:
    async with pooled_runtime(tmp_path) as (rt, backend):
        shared = await _create(rt, [_config(server, name=f"s{i}") for i in range(3)])
        own = await rt.create_agent(_config(server, save_dir=tmp_path / "mine"))
        other_home = await rt.create_agent(_config(server, home_dir=tmp_path / "home"))
        assert sorted(n for _, n in backend.statistics().harness_loads) == [1, 1, 3]
        answers = [await (await a.chat(f"hello {i}")).text() for i, a in enumerate(shared)]
        assert answers == [f"You said: hello {i}" for i in range(3)]
        assert await (await own.chat("mine")).text() == "You said: mine"
        assert await (await other_home.chat("home")).text() == "You said: home"
        # Each conversation's database lands in its own agent's save_dir.
        assert (tmp_path / "mine" / f"{own.conversation_id}.db").exists()
        conversations = backend.root / "conversations"
        assert {p.name for p in conversations.glob("*.db")} >= {
            f"{a.conversation_id}.db" for a in shared
        }
        # No harness outlives its last agent.
        await own.shutdown()
        assert sorted(n for _, n in backend.statistics().harness_loads) == [1, 3]
        for agent in shared:
            await agent.shutdown()
        assert [n for _, n in backend.statistics().harness_loads] == [1]
        await other_home.shutdown()
        assert backend.harness_pids() == []


async def test_tools_policies_and_hooks_stay_per_agent_on_a_shared_harness(
    tmp_path: Path, server: Any
) -> None:
    seen: list[tuple[str, str]] = []

    def make_tool(owner: str) -> Any:
        @tool
        async def lookup(topic: str) -> str:
            """Look a topic up."""
            await trio.sleep(0.2)  # both tools are running at once
            return f"{owner} knows {topic}"

        return lookup

    def hooks(owner: str) -> Hooks:
        def record(what: str) -> Any:
            def hook(event: TurnEvent | ToolEvent | ToolResultEvent) -> None:
                seen.append((owner, what))

            return hook

        return Hooks(
            on_turn_start=[record("start")],
            before_tool=[record("before")],
            after_tool=[record("after")],
            on_turn_end=[record("end")],
        )

    deny_b = policy.ask_user("lookup", lambda request: request.arguments["topic"] != "secret")
    configs = [
        _config(server, name="a", tools=[make_tool("a")], hooks=hooks("a")),
        _config(server, name="b", tools=[make_tool("b")], hooks=hooks("b"), policies=[deny_b]),
    ]
    async with pooled_runtime(tmp_path) as (rt, backend):
        a, b = await _create(rt, configs)
        assert len(backend.harness_pids()) == 1
        texts: dict[str, str] = {}

        async def ask(name: str, agent: Any, topic: str) -> None:
            response = await agent.chat(f'call tool lookup with {{"topic": "{topic}"}}')
            texts[name] = await response.text()

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, "a", a, "secret")
                nursery.start_soon(ask, "b", b, "secret")
        assert "a knows secret" in texts["a"]  # a's tool, allowed
        assert "knows" not in texts["b"] and "denied" in texts["b"]  # b's policy said no
        assert [what for who, what in seen if who == "a"] == ["start", "before", "after", "end"]
        assert [what for who, what in seen if who == "b"] == ["start", "end"]


# ---------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        (Fault.rate_limit(retry_after=1, match="TARGET"), QuotaExceeded, 429),
        (Fault.http_error(503, match="TARGET"), BackendError, 503),
    ],
    ids=["429", "503"],
)
async def test_an_http_error_reopens_only_its_conversation_on_the_same_harness(
    tmp_path: Path, server: Any, fault: Fault, error: type[BackendError], status: int
) -> None:
    async with pooled_runtime(tmp_path) as (rt, backend):
        target, *others = await _create(rt, [_config(server, name=f"a{i}") for i in range(3)])
        assert await (await target.chat("TARGET remembers banana")).text()
        (pid,) = backend.harness_pids()
        streams: list[list[str]] = [[], []]
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for other, into in zip(others, streams, strict=True):
                    nursery.start_soon(_read_all, await other.chat(f"{SLOW_MARK} {id(into)}"), into)
                server.inject_fault(fault)
                failing = await target.chat("TARGET second")
                with pytest.raises(error) as info:
                    await failing.text()
                assert info.value.status == status
                # Reopened in RESUME mode while the others stream on.
                after = await (await target.chat("TARGET third")).text()
        assert after == "You said: TARGET third"
        assert all("".join(into) == LONG_ANSWER for into in streams)  # nothing noticed
        stats = backend.statistics()
        assert backend.harness_pids() == [pid] and stats.harnesses_started == 1
        assert stats.reopens == 1
        assert [m.text for m in await target.history() if m.role == "assistant"] == [
            "You said: TARGET remembers banana",
            "You said: TARGET third",
        ]
        seen = " ".join(str(m.get("content", "")) for m in server.requests[-1].messages)
        assert "banana" in seen  # the model kept the conversation's context


async def test_cancel_reaches_the_sdk_turn_and_only_that_one(tmp_path: Path, server: Any) -> None:
    async with pooled_runtime(tmp_path) as (rt, backend):
        victim, bystander = await _create(rt, [_config(server), _config(server)])
        assert len(backend.harness_pids()) == 1
        full: list[str] = []
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_read_all, await bystander.chat(f"{SLOW_MARK} b"), full)
                response = await victim.chat(f"{SLOW_MARK} v")
                received = []
                async for delta in response:
                    received.append(delta)
                    if len(received) == 3:
                        break
                await response.cancel()
                async for delta in response:
                    received.append(delta)
                assert response.stop_reason is StopReason.CANCELLED
                assert len(received) < 30
                # The harness stopped the turn: the next one starts at once.
                started = trio.current_time()
                assert await (await victim.chat("next")).text() == "You said: next"
                assert trio.current_time() - started < 2.0
        assert "".join(full) == LONG_ANSWER
        assert backend.statistics().reopens == 0


async def test_a_harness_crash_moves_its_agents_to_a_fresh_harness(
    tmp_path: Path, server: Any
) -> None:
    async with pooled_runtime(tmp_path, agents_per_harness=20) as (rt, backend):
        crashed = await _create(rt, [_config(server, name=f"c{i}") for i in range(20)])
        (crashed_pid,) = backend.harness_pids()
        spared = await _create(rt, [_config(server, name=f"s{i}") for i in range(20)])
        (spared_pid,) = set(backend.harness_pids()) - {crashed_pid}
        for i, agent in enumerate(crashed):
            assert await (await agent.chat(f"I am c{i}")).text() == f"You said: I am c{i}"

        outcomes: dict[int, BaseException | None] = {}
        spared_streams: list[list[str]] = [[] for _ in spared]
        streaming = trio.Semaphore(0)

        async def in_flight(i: int, agent: Any) -> None:
            response = await agent.chat(f"{SLOW_MARK} c{i}")
            try:
                async for _ in response:
                    if i not in outcomes:
                        outcomes[i] = None
                        streaming.release()
            except ChannelClosed as exc:
                outcomes[i] = exc

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i, (agent, into) in enumerate(zip(spared, spared_streams, strict=True)):
                    nursery.start_soon(_read_all, await agent.chat(f"{SLOW_MARK} s{i}"), into)
                for i, agent in enumerate(crashed):
                    nursery.start_soon(in_flight, i, agent)
                for _ in crashed:  # every turn on the doomed harness is streaming
                    await streaming.acquire()
                os.kill(crashed_pid, signal.SIGKILL)
        # Every agent on the crashed harness got a typed error for its turn...
        assert all(isinstance(outcomes[i], ChannelClosed) for i in range(20)), outcomes
        # ...the others noticed nothing.
        assert all("".join(into) == LONG_ANSWER for into in spared_streams)
        with trio.fail_after(60):
            answers = [await (await a.chat(f"back c{i}")).text() for i, a in enumerate(crashed)]
        assert answers == [f"You said: back c{i}" for i in range(20)]
        for i, agent in enumerate(crashed):
            texts = [m.text for m in await agent.history() if m.role == "assistant"]
            assert texts[0] == f"You said: I am c{i}" and texts[-1] == f"You said: back c{i}"
        # All resumed together on one fresh harness; the spared one is untouched.
        pids = set(backend.harness_pids())
        assert spared_pid in pids and crashed_pid not in pids and len(pids) == 2
        assert sorted(n for _, n in backend.statistics().harness_loads) == [20, 20]
        assert backend.statistics().harnesses_started == 3


# ---------------------------------------------------------------------------- many descriptors


@pytest.fixture
def descriptors_past_select() -> Iterator[None]:
    """Fill descriptors up past 1,024, select()'s limit, so that whatever opens next lies above.

    Pipes are the cheapest descriptors; the soft limit is raised if it is too
    low (a backend with a few thousand conversations has a WebSocket each).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if wanted < 1500:
        pytest.skip(f"the hard limit on open files ({hard}) is too low to pass 1,024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    pipes: list[tuple[int, int]] = []
    try:
        while not pipes or pipes[-1][0] < 1100:
            pipes.append(os.pipe())
        yield
    finally:
        for read_end, write_end in pipes:
            os.close(read_end)
            os.close(write_end)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("descriptors_past_select")
async def test_harnesses_start_and_serve_with_descriptors_past_1024(
    tmp_path: Path, server: Any
) -> None:
    # Two harnesses start (one agent each) while every descriptor below 1,100 is taken.
    async with pooled_runtime(tmp_path, agents_per_harness=1) as (rt, backend):
        agents = await _create(rt, [_config(server, name=f"fd{i}") for i in range(2)])
        assert len(backend.harness_pids()) == 2
        answers = [await (await a.chat(f"hello {i}")).text() for i, a in enumerate(agents)]
        assert answers == ["You said: hello 0", "You said: hello 1"]
        partial: list[str] = []
        await _read_all(await agents[0].chat(SLOW_MARK), partial)
        assert "".join(partial) == LONG_ANSWER
        assert backend.statistics().reopens == 0


# ---------------------------------------------------------------------------- saved state


async def test_delete_removes_only_that_conversations_files(tmp_path: Path, server: Any) -> None:
    async with pooled_runtime(tmp_path) as (rt, backend):
        doomed, kept = await _create(rt, [_config(server), _config(server)])
        for agent in (doomed, kept):
            assert await (await agent.chat("something to keep")).text()

        def files(agent: Any) -> list[Path]:
            cid = agent.conversation_id
            return [
                backend.root / "conversations" / f"{cid}.db",
                backend.root / "app_data" / "brain" / cid,
            ]

        assert all(path.exists() for path in files(doomed) + files(kept))
        kept_files = files(kept)
        doomed_id, kept_id = doomed.conversation_id, kept.conversation_id
        await doomed.delete()
        assert not any(path.exists() for path in files(doomed))
        assert all(path.exists() for path in kept_files)
        assert len(backend.harness_pids()) == 1  # the other agent's harness goes on
        assert await (await kept.chat("still here")).text() == "You said: still here"
        with pytest.raises(AgentNotFound):
            await rt.create_agent(_config(server, conversation_id=doomed_id))
        # The one kept resumes, with its history.
        await kept.disconnect()
        resumed = await rt.create_agent(_config(server, conversation_id=kept_id))
        assert [m.text for m in await resumed.history()][-1] == "You said: still here"


async def test_resume_by_id_lands_on_the_running_harness(tmp_path: Path, server: Any) -> None:
    async with pooled_runtime(tmp_path) as (rt, backend):
        stays, leaves = await _create(rt, [_config(server), _config(server)])
        assert await (await leaves.chat("the word is banana")).text()
        (pid,) = backend.harness_pids()
        conversation_id = leaves.conversation_id
        await leaves.disconnect()
        resumed = await rt.create_agent(_config(server, conversation_id=conversation_id))
        assert backend.harness_pids() == [pid]
        assert [m.text for m in await resumed.history()] == echoed("the word is banana")
        assert await (await resumed.chat("and now?")).text() == "You said: and now?"
        assert await (await stays.chat("me too")).text() == "You said: me too"


async def test_clear_history_on_a_shared_harness(tmp_path: Path, server: Any) -> None:
    async with pooled_runtime(tmp_path) as (rt, backend):
        forgetful, other = await _create(rt, [_config(server), _config(server)])
        assert await (await forgetful.chat("my secret is 1234")).text()
        assert await (await other.chat("my secret is 5678")).text()
        (pid,) = backend.harness_pids()
        await forgetful.clear_history()
        assert await forgetful.history() == []
        assert await (await forgetful.chat("what is my secret?")).text()
        seen = " ".join(str(m.get("content", "")) for m in server.requests[-1].messages)
        assert "1234" not in seen
        assert [m.text for m in await other.history()] == echoed("my secret is 5678")
        assert backend.harness_pids() == [pid]


# ---------------------------------------------------------------------------- process life


def test_no_pooled_harness_outlives_a_crash_of_python(tmp_path: Path) -> None:
    pids = harnesses_of_a_killed_program(tmp_path / "crash", agents=3, agents_per_harness=2)
    assert len(pids) == 2  # three agents, two per harness
    assert_exit_soon(pids)
