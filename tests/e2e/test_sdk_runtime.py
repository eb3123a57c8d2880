"""End to end through the real google-antigravity SDK, its harness and the local model server.

Everything runs offline: the harness talks to :mod:`agy_trio.testing.model_server`
on 127.0.0.1, GEMINI_API_KEY is unset, and every folder the harness touches
(HOME included) lives under the test's ``tmp_path``. After each test no
``localharness`` process may remain and the backend's folder must be gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import google.antigravity  # noqa: F401  (the README set-up installs the SDK)
import pytest
import trio
import trio.lowlevel

import agy_trio
from agy_trio import StopReason, policy, tool
from agy_trio.adapters.antigravity import RetryPolicy
from agy_trio.errors import (
    AgentNotFound,
    BackendError,
    ChannelClosed,
    MaxTokensReached,
    QuotaExceeded,
    SafetyBlocked,
)
from agy_trio.testing import ChatRequest, Fault, Reply, Responder, open_model_server
from tests.conversations import echoed, echoed_turns
from tests.sdk_support import (
    assert_exit_soon,
    harness_processes,
    harnesses_of_a_killed_program,
    local_agent,
    sdk_agent,
    sdk_runtime,
)

pytestmark = pytest.mark.sdk

SLOW_MARK = "a long answer"


def _responder(request: ChatRequest) -> Reply | None:
    text = request.user_request
    if SLOW_MARK in text:
        return Reply("word " * 150, chunk_size=5, delay=0.02)  # about three seconds
    if text == "cut me off":
        return Reply("the beginning of a long", finish_reason="length")
    if text == "say something rude":
        return Reply("", finish_reason="content_filter")
    if text == "think first":
        return Reply("<think>two and two make four</think>It is 4.", chunk_size=5)
    return None  # the server's default behaviour


@pytest.fixture
def responder() -> Responder:
    return _responder


_config = local_agent


# ---------------------------------------------------------------------------- chat


async def test_chat_streams_text_with_usage_and_keeps_state(tmp_path: Path, server: Any) -> None:
    async with sdk_agent(tmp_path, _config(server, name="plain")) as (agent, backend):
        response = await agent.chat("hello world")
        deltas = [delta async for delta in response]
        assert "".join(deltas) == "You said: hello world"
        assert response.stop_reason is StopReason.END_TURN
        assert response.usage is not None and response.usage.output_tokens > 0

        assert await agent.turn_count() == 1
        assert await agent.last_response() == "You said: hello world"
        assert [(m.role, m.text) for m in await agent.history()] == echoed_turns("hello world")
        assert await agent.total_usage() == response.usage
        assert await agent.last_turn_usage() == response.usage
        assert await agent.is_idle()
        assert await agent.compaction_indices() == []

        # Safe defaults: no built-in tool reached the model, and the harness's
        # HOME is the backend's own folder.
        request = server.requests[-1]
        assert request.user_request == "hello world"
        assert set(request.tools) <= {"finish"}
        assert (backend.root / "home" / ".gemini").is_dir()
        assert len(backend.harness_pids()) == 1


async def test_send_then_wait_for_idle(tmp_path: Path, server: Any) -> None:
    async with sdk_agent(tmp_path, _config(server)) as (agent, _):
        await agent.send("in the background")
        with trio.fail_after(20):
            await agent.wait_for_idle()
        assert await agent.last_response() == "You said: in the background"
        assert await agent.turn_count() == 1


async def test_inline_reasoning_streams_as_thoughts(tmp_path: Path, server: Any) -> None:
    async with sdk_agent(tmp_path, _config(server)) as (agent, _):
        response = await agent.chat("think first")
        assert await response.text() == "It is 4."
        assert "".join(response.thoughts) == "two and two make four"
        assert await agent.last_response() == "It is 4."
        assert (await agent.history())[-1].text == "It is 4."


async def test_truncated_and_blocked_answers_are_typed_errors(tmp_path: Path, server: Any) -> None:
    async with sdk_agent(tmp_path, _config(server)) as (agent, _):
        with trio.fail_after(20):
            cut = await agent.chat("cut me off")
            with pytest.raises(MaxTokensReached):
                await cut.text()
            blocked = await agent.chat("say something rude")
            with pytest.raises(SafetyBlocked):
                await blocked.text()
            # The agent carries on.
            assert await (await agent.chat("still there?")).text() == "You said: still there?"


# ---------------------------------------------------------------------------- tools and policies


async def test_tool_round_trip_with_an_ask_user_policy(tmp_path: Path, server: Any) -> None:
    ran: list[tuple[str, int]] = []
    asked: list[str] = []

    @tool
    async def lookup(topic: str, count: int) -> str:
        """Look a topic up."""
        await trio.lowlevel.checkpoint()  # Trio code: the tool runs on the Trio side
        ran.append((topic, count))
        return f"{topic} x{count}"

    async def approve(request: policy.ToolRequest) -> bool:
        await trio.lowlevel.checkpoint()
        asked.append(request.arguments["topic"])
        return bool(request.arguments["topic"] != "secret")

    config = _config(server, tools=[lookup], policies=[policy.ask_user("lookup", approve)])
    async with sdk_agent(tmp_path, config) as (agent, _):
        allowed = await agent.chat('call tool lookup with {"topic": "trio", "count": 2}')
        text = await allowed.text()
        assert "trio x2" in text
        (call,) = allowed.tool_calls
        assert (call.name, call.arguments, call.result, call.error) == (
            "lookup",
            {"topic": "trio", "count": 2},
            "trio x2",
            None,
        )
        assert call.call_id

        denied = await agent.chat('call tool lookup with {"topic": "secret", "count": 1}')
        text = await denied.text()  # the turn is not crashed by the refusal
        (refused,) = denied.tool_calls
        assert refused.result is None
        assert refused.error is not None and refused.error.startswith("denied")
        assert "denied by policy" in text  # the model was told the tool failed
        assert denied.stop_reason is StopReason.END_TURN

        assert ran == [("trio", 2)]
        assert asked == ["trio", "secret"]
        tool_messages = [m for m in await agent.history() if m.role == "tool"]
        assert [m.tool_calls[0].result for m in tool_messages] == ["trio x2", None]


async def test_builtin_tools_are_off_by_default_and_guarded_by_policies(
    tmp_path: Path, server: Any
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("the launch code is 42\n")
    (workspace / "private.txt").write_text("do not read\n")
    asked: list[str] = []

    def approve(request: policy.ToolRequest) -> bool:
        path = str(request.arguments.get("AbsolutePath", ""))
        asked.append(Path(path).name)
        return path.endswith("notes.txt")

    config = _config(
        server,
        builtin_tools=["view_file"],
        workspaces=[workspace],
        policies=[policy.ask_user("view_file", approve)],
    )
    async with sdk_agent(tmp_path, config) as (agent, _):
        allowed = await agent.chat(
            f'call tool view_file with {{"AbsolutePath": "{workspace / "notes.txt"}"}}'
        )
        assert "the launch code is 42" in await allowed.text()
        assert [c.name for c in allowed.tool_calls] == ["view_file"]
        assert "view_file" in server.requests[-1].tools

        refused = await agent.chat(
            f'call tool view_file with {{"AbsolutePath": "{workspace / "private.txt"}"}}'
        )
        assert "do not read" not in await refused.text()
        assert asked == ["notes.txt", "private.txt"]


# ---------------------------------------------------------------------------- many agents


@pytest.mark.parametrize(("agents_per_harness", "harnesses"), [(None, 1), (1, 10)])
async def test_ten_agents_at_once(
    tmp_path: Path, server: Any, agents_per_harness: int | None, harnesses: int
) -> None:
    options: dict[str, Any] = {"host_threads": 2}
    if agents_per_harness is not None:
        options["agents_per_harness"] = agents_per_harness
    async with sdk_runtime(tmp_path, **options) as (rt, backend):
        agents: dict[int, agy_trio.AgentHandle] = {}
        answers: dict[int, str] = {}

        async def create(i: int) -> None:
            agents[i] = await rt.create_agent(_config(server, name=f"a{i}"))

        async def talk(i: int) -> None:
            answers[i] = await (await agents[i].chat(f"agent {i} here")).text()

        started = time.perf_counter()
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i in range(10):
                    nursery.start_soon(create, i)
            start_time = time.perf_counter() - started
            # Pooled by default: one harness serves them all.
            assert len(backend.harness_pids()) == harnesses
            assert sorted(n for _, n in backend.statistics().harness_loads) == [10 // harnesses] * (
                harnesses
            )
            assert [load for _, load in backend.statistics().hosts] == [5, 5]
            async with trio.open_nursery() as nursery:
                for i in range(10):
                    nursery.start_soon(talk, i)
        assert answers == {i: f"You said: agent {i} here" for i in range(10)}
        assert len({a.conversation_id for a in agents.values()}) == 10
        print(f"10 agents started in {start_time:.2f} s")


# ---------------------------------------------------------------------------- cancellation


async def test_cancel_mid_stream_then_the_next_turn_starts_at_once(
    tmp_path: Path, server: Any
) -> None:
    async with sdk_agent(tmp_path, _config(server)) as (agent, _):
        response = await agent.chat(f"{SLOW_MARK} please")
        received = []
        async for delta in response:  # deltas arrive one by one as the model streams
            received.append(delta)
            if len(received) == 3:
                break
        await response.cancel()
        async for delta in response:  # what was produced before the cancel, then the end
            received.append(delta)
        assert response.stop_reason is StopReason.CANCELLED
        assert response.done
        assert len(received) < 150

        started = trio.current_time()
        with trio.fail_after(5):
            text = await (await agent.chat("quick one")).text()
        assert text == "You said: quick one"
        assert trio.current_time() - started < 2.0

        # A reader that gives up (a cancel scope) stops the turn as well.
        response = await agent.chat(f"{SLOW_MARK} again")
        with trio.move_on_after(0.3):
            async for _ in response:
                pass
        started = trio.current_time()
        with trio.fail_after(5):
            text = await (await agent.chat("and another")).text()
        assert text == "You said: and another"
        assert trio.current_time() - started < 2.0


async def test_agent_cancel_stops_a_background_turn(tmp_path: Path, server: Any) -> None:
    async with sdk_agent(tmp_path, _config(server)) as (agent, _):
        await agent.send(f"{SLOW_MARK} in the background")
        await trio.sleep(0.3)
        assert not await agent.is_idle()
        with trio.fail_after(5):
            await agent.cancel()
            await agent.wait_for_idle()
            assert await (await agent.chat("next")).text() == "You said: next"


async def test_cancelled_agent_creation_leaves_no_harness(tmp_path: Path, server: Any) -> None:
    async with sdk_runtime(tmp_path) as (rt, backend):
        for delay in (0.0, 0.01, 0.03, 0.06, 0.1, 0.15):
            with trio.move_on_after(delay):
                await rt.create_agent(_config(server))
            # Pooled: one harness while any agent lives, none otherwise.
            expected = min(len(rt.agents), 1)
            assert len(backend.harness_pids()) == expected, f"leak after {delay} s"
            assert len(harness_processes()) == expected


# ---------------------------------------------------------------------------- failures


async def test_quota_error_then_recovery_with_history_intact(tmp_path: Path, server: Any) -> None:
    async with sdk_agent(tmp_path, _config(server)) as (agent, backend):
        assert await (await agent.chat("first")).text() == "You said: first"

        server.inject_fault(Fault.rate_limit(retry_after=1))
        failing = await agent.chat("second")
        with pytest.raises(QuotaExceeded) as info:
            await failing.text()
        assert info.value.status == 429
        assert info.value.retry_after == 1.0

        with trio.fail_after(20):
            assert await (await agent.chat("third")).text() == "You said: third"
        assert [(m.role, m.text) for m in await agent.history()] == [
            ("user", "first"),
            ("assistant", "You said: first"),
            ("user", "second"),
            ("user", "third"),
            ("assistant", "You said: third"),
        ]
        seen = [m.get("content", "") for m in server.requests[-1].messages]
        assert any("first" in str(content) for content in seen)  # the model kept its context
        assert backend.statistics().reopens == 1

        server.inject_fault(Fault.http_error(503))
        failing = await agent.chat("fourth")
        with pytest.raises(BackendError) as server_error:
            await failing.text()
        assert server_error.value.status == 503
        with trio.fail_after(20):
            assert await (await agent.chat("fifth")).text() == "You said: fifth"


async def test_retry_policy_makes_a_transient_429_invisible(tmp_path: Path, server: Any) -> None:
    retry = RetryPolicy(attempts=3, initial_backoff=0.05)
    async with sdk_agent(tmp_path, _config(server), retry=retry) as (agent, backend):
        server.inject_fault(Fault.rate_limit(retry_after=0))
        with trio.fail_after(20):
            response = await agent.chat("hello")
            assert await response.text() == "You said: hello"
        assert response.error is None
        assert [(m.role, m.text) for m in await agent.history()] == echoed_turns("hello")
        assert backend.statistics().retries == 1


async def test_retry_after_a_tool_ran_does_not_repeat_it(tmp_path: Path) -> None:
    ran: list[str] = []
    model: list[Any] = []

    def responder(request: ChatRequest) -> Reply | None:
        last = request.messages[-1]
        if last.get("role") == "tool" or not request.user_request:
            return Reply("finished after the tool")
        return None

    @tool
    async def note(text: str) -> str:
        """Write a note."""
        ran.append(text)
        # The model's next request (after this result) is refused once.
        model[0].inject_fault(Fault.rate_limit(retry_after=0))
        return "noted"

    async with open_model_server(responder) as server:
        model.append(server)
        retry = RetryPolicy(initial_backoff=0.05)
        async with sdk_agent(tmp_path, _config(server, tools=[note]), retry=retry) as (
            agent,
            backend,
        ):
            with trio.fail_after(30):
                response = await agent.chat('call tool note with {"text": "buy milk"}')
                assert await response.text() == "finished after the tool"
            assert ran == ["buy milk"]
            assert [c.result for c in response.tool_calls] == ["noted"]
            assert backend.statistics().retries == 1


async def test_a_killed_harness_gives_a_typed_error_and_no_hang(
    tmp_path: Path, server: Any
) -> None:
    async with sdk_agent(tmp_path, _config(server)) as (agent, backend):
        # Killed in the middle of a turn.
        response = await agent.chat(f"{SLOW_MARK} before the crash")
        await response.__anext__()  # under way (leaving an ``async for`` would stop it)
        (pid,) = backend.harness_pids()
        os.kill(pid, signal.SIGKILL)
        with trio.fail_after(15), pytest.raises(ChannelClosed):
            await response.text()
        with trio.fail_after(20):
            assert await (await agent.chat("after the crash")).text() == "You said: after the crash"
        (new_pid,) = backend.harness_pids()
        assert new_pid != pid

        # Killed while idle: the next turn reopens the session before sending,
        # so nothing the caller sends is lost.
        os.kill(new_pid, signal.SIGKILL)
        await trio.sleep(0.2)
        with trio.fail_after(20):
            assert await (await agent.chat("into the void")).text() == "You said: into the void"
        with trio.fail_after(20):
            assert await (await agent.chat("back again")).text() == "You said: back again"
        history = [m.text for m in await agent.history() if m.role == "assistant"]
        assert history[-3:] == [
            "You said: after the crash",
            "You said: into the void",
            "You said: back again",
        ]


async def test_a_harness_shutdown_never_blocks_its_host_loop(
    tmp_path: Path, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK waits for its harness to exit with a blocking Popen.wait on the
    # asyncio loop. Make the harness slow to exit (a wrapper that lingers after
    # the real harness has seen end-of-file on stdin), shut one agent down, and
    # watch a probe coroutine on the same host loop: it must keep ticking.
    from google.antigravity.connections.local import local_connection

    linger = 1.5
    real = local_connection._get_default_binary_path({})
    wrapper = tmp_path / "lingering-harness"
    wrapper.write_text(f'#!/bin/sh\n"{real}" "$@"\nsleep {linger}\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("ANTIGRAVITY_HARNESS_PATH", str(wrapper))
    async with sdk_agent(tmp_path, _config(server), host_threads=1) as (agent, backend):
        assert await (await agent.chat("hello")).text() == "You said: hello"
        (host,) = backend.hosts
        stop = threading.Event()
        ticking = threading.Event()

        async def probe() -> float:
            worst, last = 0.0, time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = time.monotonic()
                worst, last = max(worst, now - last), now
                ticking.set()
            return worst

        worst: list[float] = []

        async def run_probe() -> None:
            worst.append(await host.run(probe))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_probe)
            assert await trio.to_thread.run_sync(ticking.wait, 10)
            started = time.monotonic()
            with trio.fail_after(30):
                await agent.shutdown()
            took = time.monotonic() - started
            stop.set()
        assert took >= linger * 0.8, "the shutdown did not wait for the harness"
        assert worst[0] < linger / 5, (
            f"the host loop froze for {worst[0]:.3f} s during a {took:.2f} s shutdown"
        )
        assert backend.harness_pids() == []


# ---------------------------------------------------------------------------- saved state


async def test_resume_by_conversation_id_after_disconnect(tmp_path: Path, server: Any) -> None:
    async with sdk_runtime(tmp_path) as (rt, backend):
        first = await rt.create_agent(_config(server))
        assert await (await first.chat("the word is banana")).text()
        conversation_id = first.conversation_id
        await first.disconnect()
        assert backend.harness_pids() == []

        resumed = await rt.create_agent(_config(server, conversation_id=conversation_id))
        assert resumed.conversation_id == conversation_id
        assert [m.text for m in await resumed.history()] == echoed("the word is banana")
        assert await resumed.turn_count() == 1
        assert await (await resumed.chat("what was the word?")).text()
        contents = " ".join(str(m.get("content", "")) for m in server.requests[-1].messages)
        assert "banana" in contents

        with pytest.raises(AgentNotFound):
            await rt.create_agent(_config(server, conversation_id="f" * 32))


async def test_delete_removes_the_saved_conversation(tmp_path: Path, server: Any) -> None:
    async with sdk_runtime(tmp_path) as (rt, backend):
        agent = await rt.create_agent(_config(server))
        await (await agent.chat("something to forget")).text()
        conversation_id = agent.conversation_id
        database = backend.root / "conversations" / f"{conversation_id}.db"
        transcripts = backend.root / "app_data" / "brain" / conversation_id
        assert database.exists() and transcripts.exists()

        await agent.delete()
        assert not database.exists()
        assert not transcripts.exists()
        with pytest.raises(AgentNotFound):
            await rt.create_agent(_config(server, conversation_id=conversation_id))


async def test_clear_history_makes_the_model_forget(tmp_path: Path, server: Any) -> None:
    async with sdk_agent(tmp_path, _config(server)) as (agent, _):
        first = await agent.chat("my secret is 1234")
        await first.text()
        spent = await agent.total_usage()

        await agent.clear_history()
        assert await agent.history() == []
        assert await agent.turn_count() == 0
        assert await agent.last_response() is None
        assert await agent.total_usage() == spent  # spending is not forgotten

        assert await (await agent.chat("what is my secret?")).text()
        contents = " ".join(str(m.get("content", "")) for m in server.requests[-1].messages)
        assert "1234" not in contents
        assert [m.role for m in await agent.history()] == ["user", "assistant"]
        assert await agent.total_usage() != spent


async def test_user_chosen_folders_are_kept(tmp_path: Path, server: Any) -> None:
    saved = tmp_path / "mine"
    async with sdk_runtime(tmp_path) as (rt, _):
        agent = await rt.create_agent(
            _config(server, save_dir=saved / "conversations", home_dir=saved / "home")
        )
        await (await agent.chat("keep me")).text()
        conversation_id = agent.conversation_id
    assert (saved / "conversations" / f"{conversation_id}.db").exists()
    assert (saved / "home" / ".gemini").is_dir()


# ---------------------------------------------------------------------------- process life


async def test_leaving_the_runtime_mid_turn_stops_everything(tmp_path: Path, server: Any) -> None:
    started = trio.current_time()
    async with sdk_runtime(tmp_path) as (rt, _):
        agent = await rt.create_agent(_config(server))
        other = await rt.create_agent(_config(server))
        response = await agent.chat(f"{SLOW_MARK} while we leave")
        async for _ in response:
            break
        other.try_shutdown()
    assert trio.current_time() - started < 10


def test_no_harness_outlives_a_crash_of_python(tmp_path: Path) -> None:
    pids = harnesses_of_a_killed_program(tmp_path / "crash", agents=1)
    assert len(pids) == 1
    assert_exit_soon(pids)
