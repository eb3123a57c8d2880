"""The runtime over the scripted backend: commands, concurrency, timeouts, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig
from agy_trio.adapters.scripted import (
    CallTool,
    Compact,
    Fail,
    Hang,
    Say,
    ScriptedBackend,
    Think,
    Turn,
    default_turn,
)
from agy_trio.errors import (
    AgentNotFound,
    BackendError,
    ChannelClosed,
    ConfigError,
    OperationTimeout,
    QuotaExceeded,
    RuntimeClosed,
)
from tests.conversations import echoed_turns

FAST = RuntimeConfig(inter_agent_delay=0)


@pytest.fixture
def fast() -> RuntimeConfig:
    """A runtime config without pacing."""
    return FAST


def host_tasks(backend: ScriptedBackend) -> Callable[[], Any]:
    """An awaitable factory counting asyncio tasks alive on the backend's host loop."""

    async def count() -> int:
        return len(asyncio.all_tasks()) - 1

    async def run() -> int:
        return await backend.host.run(count)

    return run


@pytest.fixture
def clock(mock_clock: trio.testing.MockClock) -> trio.testing.MockClock:
    """Virtual time that jumps once nothing has happened for 0.2 real seconds.

    The real seconds leave the host thread time to answer before time jumps.
    """
    mock_clock.autojump_threshold = 0.2
    return mock_clock


@pytest.fixture
async def hanging() -> ScriptedBackend:
    """A scripted backend whose every turn hangs until it is cancelled."""
    return ScriptedBackend([Turn([Hang()])])


@pytest.fixture
async def scripted() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
async def rt(scripted: ScriptedBackend) -> AsyncIterator[agy_trio.Runtime]:
    async with agy_trio.open_runtime(FAST, backend=scripted) as runtime:
        yield runtime
    assert not any(t.name == scripted.host.name for t in threading.enumerate())


# ----------------------------------------------------------------------------- basics


async def test_default_backend_is_the_real_sdk() -> None:
    from agy_trio.adapters.antigravity import AntigravityBackend

    backend = agy_trio._open.default_backend()
    assert isinstance(backend, AntigravityBackend)


async def test_scripted_backend_answers_quoting_the_prompt(fast: RuntimeConfig) -> None:
    async with agy_trio.open_runtime(fast, backend=ScriptedBackend()) as rt:
        assert rt.backend.name == "scripted"
        agent = await rt.create_agent(AgentConfig(name="echo"))
        response = await agent.chat("hello there")
        deltas = [d async for d in response]
        assert len(deltas) > 1
        assert "".join(deltas) == "You said: hello there"
        assert response.stop_reason is agy_trio.StopReason.END_TURN
        assert response.usage is not None and response.usage.output_tokens > 0


async def test_whole_command_set_answers_truthfully(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent(AgentConfig(name="state"))
    assert agent.agent_id.startswith("state-")
    assert await agent.is_idle()
    assert await agent.turn_count() == 0
    assert await agent.last_response() is None
    assert await agent.history() == []

    r1 = await agent.chat("one")
    assert await r1.text() == "You said: one"
    r2 = await agent.chat([agy_trio.TextPart("two"), agy_trio.BlobPart(b"\x89PNG", "image/png")])
    assert await r2.text() == "You said: two"
    await agent.wait_for_idle()

    assert await agent.turn_count() == 2
    assert await agent.last_response() == "You said: two"
    history = await agent.history()
    assert [(m.role, m.text) for m in history] == echoed_turns("one", "two")
    last = await agent.last_turn_usage()
    total = await agent.total_usage()
    assert total.output_tokens > last.output_tokens > 0
    assert total == (r1.usage or agy_trio.Usage()) + (r2.usage or agy_trio.Usage())
    assert await agent.compaction_indices() == []

    await agent.clear_history()
    assert await agent.history() == []
    assert await agent.last_response() is None

    await agent.send("background")
    await agent.wait_for_idle()
    assert await agent.turn_count() == 3
    assert await agent.last_response() == "You said: background"

    await agent.shutdown()
    with pytest.raises(AgentNotFound):
        await agent.history()


async def test_scripted_turn_with_thoughts_tools_and_compaction(fast: RuntimeConfig) -> None:
    calls: list[dict[str, Any]] = []

    @agy_trio.tool
    async def lookup(key: str) -> str:
        """Look a key up.

        Args:
            key: What to look up.
        """
        await trio.lowlevel.checkpoint()
        calls.append({"key": key, "thread": threading.current_thread().name})
        return f"value-of-{key}"

    script = [
        Turn(
            [
                Think("let me look"),
                CallTool("lookup", {"key": "k1"}),
                Compact(),
                Say("found it", chunks=2),
            ]
        )
    ]
    async with agy_trio.open_runtime(fast, backend=ScriptedBackend(script)) as rt:
        agent = await rt.create_agent(AgentConfig(tools=(lookup,)))
        response = await agent.chat("find k1")
        events = [e async for e in response.events()]
        kinds = [type(e).__name__ for e in events]
        assert kinds == ["ThoughtDelta", "ToolCall", "TextDelta", "TextDelta", "TurnEnd"]
        assert response.thoughts == ["let me look"]
        [call] = response.tool_calls
        assert call.name == "lookup" and call.result == "value-of-k1" and call.error is None
        # The tool ran as Trio code on the Trio thread, not on the asyncio host.
        assert calls == [{"key": "k1", "thread": threading.current_thread().name}]
        assert await agent.compaction_indices() == [2]


async def test_ask_user_handler_that_raises_blocks_the_tool(fast: RuntimeConfig) -> None:
    ran: list[str] = []

    @agy_trio.tool
    def dangerous() -> str:
        """Do something dangerous."""
        ran.append("dangerous")
        return "done"

    def handler(request: agy_trio.policy.ToolRequest) -> bool:
        raise RuntimeError("handler exploded")

    script = [Turn([CallTool("dangerous"), Say("after")])]
    config = AgentConfig(tools=(dangerous,), policies=(agy_trio.policy.ask_user("dang*", handler),))
    async with agy_trio.open_runtime(fast, backend=ScriptedBackend(script)) as rt:
        agent = await rt.create_agent(config)
        response = await agent.chat("go")
        assert await response.text() == "after"
        [call] = response.tool_calls
        assert call.result is None and call.error is not None and "denied" in call.error
    assert ran == []


async def test_ask_user_handler_allows_and_denies(fast: RuntimeConfig) -> None:
    @agy_trio.tool
    def act(n: int) -> int:
        """Act.

        Args:
            n: A number.
        """
        return n + 1

    async def only_small(request: agy_trio.policy.ToolRequest) -> bool:
        await trio.lowlevel.checkpoint()
        return bool(request.arguments["n"] < 10)

    script = [Turn([CallTool("act", {"n": 1}), CallTool("act", {"n": 50}), Say("ok")])]
    config = AgentConfig(tools=(act,), policies=(agy_trio.policy.ask_user("act", only_small),))
    async with agy_trio.open_runtime(fast, backend=ScriptedBackend(script)) as rt:
        agent = await rt.create_agent(config)
        response = await agent.chat("go")
        await response.text()
        allowed, denied = response.tool_calls
        assert allowed.result == 2 and allowed.error is None
        assert denied.result is None and denied.error and "denied" in denied.error


# ----------------------------------------------------------------------------- concurrency


async def test_hundred_concurrent_chats_keep_per_agent_histories(rt: agy_trio.Runtime) -> None:
    agents = [await rt.create_agent(AgentConfig(name=f"a{i}")) for i in range(20)]

    async def converse(agent: agy_trio.AgentHandle, turns: int) -> None:
        for t in range(turns):
            response = await agent.chat(f"{agent.agent_id} turn {t}")
            assert await response.text() == f"You said: {agent.agent_id} turn {t}"

    async with trio.open_nursery() as nursery:
        for agent in agents:
            nursery.start_soon(converse, agent, 5)  # 20 agents x 5 turns = 100 chats
    for agent in agents:
        history = await agent.history()
        users = [m.text for m in history if m.role == "user"]
        assert users == [f"{agent.agent_id} turn {t}" for t in range(5)]
        assert await agent.turn_count() == 5
    stats = rt.statistics()
    assert stats.commands["chat"].completed == 100
    assert stats.failed == 0


async def test_slow_chat_does_not_block_other_commands(
    fast: RuntimeConfig, hanging: ScriptedBackend
) -> None:
    async with agy_trio.open_runtime(fast, backend=hanging) as rt:
        agent = await rt.create_agent()
        response = await agent.chat("hang")
        # The turn hangs, but every other command still answers at once.
        assert await agent.history() != []
        assert not await agent.is_idle()
        await response.cancel()
        await agent.wait_for_idle()


# ----------------------------------------------------------------------------- cancellation


async def test_caller_cancel_cancels_the_turn_and_next_turn_works(fast: RuntimeConfig) -> None:
    backend = ScriptedBackend([Turn([Say("partial", chunks=1), Hang()])])
    count = host_tasks(backend)
    async with agy_trio.open_runtime(fast, backend=backend) as rt:
        agent = await rt.create_agent()
        received: list[str] = []
        with trio.move_on_after(30) as scope:
            response = await agent.chat("first")
            async for delta in response:
                received.append(delta)
                scope.cancel()
            raise AssertionError("the hanging turn ended by itself")
        assert received == ["partial"]
        # The reader's cancellation reached the backend before it returned.
        assert backend.cancel_calls == 1
        assert await count() == 0
        assert await agent.is_idle()
        response = await agent.chat("second")
        assert await response.text() == "You said: second"


async def test_cancel_while_chat_is_starting_leaves_no_task(
    fast: RuntimeConfig, hanging: ScriptedBackend
) -> None:
    # The first turn hangs, so the second chat waits for the agent's turn slot.
    count = host_tasks(hanging)
    async with agy_trio.open_runtime(fast, backend=hanging) as rt:
        agent = await rt.create_agent()
        first = await agent.chat("first")
        with trio.move_on_after(0.05) as scope:
            await agent.chat("second")
        assert scope.cancelled_caught
        await first.cancel()
        await agent.wait_for_idle()
        assert await count() == 0
        assert await agent.turn_count() == 0
        # The cancelled second chat never played: the next one is turn index 2.
        assert await (await agent.chat("third")).text() == "You said: third"


async def test_agent_cancel_stops_the_active_turn(fast: RuntimeConfig) -> None:
    backend = ScriptedBackend([Turn([Say("so far", chunks=1), Hang()])])
    async with agy_trio.open_runtime(fast, backend=backend) as rt:
        agent = await rt.create_agent()
        response = await agent.chat("go")
        async for delta in response:
            assert delta == "so far"
            await agent.cancel()
        assert response.stop_reason is agy_trio.StopReason.CANCELLED
        assert await agent.is_idle()
        assert await (await agent.chat("again")).text() == "You said: again"


# ----------------------------------------------------------------------------- timeouts


async def test_chat_timeout_bounds_a_turn(
    clock: trio.testing.MockClock, fast: RuntimeConfig
) -> None:
    backend = ScriptedBackend([Turn([Say("a", chunks=1), Hang()])])
    config = fast.replace(chat_timeout=30, operation_timeout=100)
    async with agy_trio.open_runtime(config, backend=backend) as rt:
        agent = await rt.create_agent()
        start = trio.current_time()
        response = await agent.chat("go")
        with pytest.raises(OperationTimeout) as info:
            await response.text()
        assert info.value.operation == "chat"
        assert info.value.duration == 30
        assert trio.current_time() - start == pytest.approx(30, abs=0.5)
        assert backend.cancel_calls == 1
        assert await agent.is_idle()


async def test_operation_timeout_is_the_outer_net(
    clock: trio.testing.MockClock, fast: RuntimeConfig, hanging: ScriptedBackend
) -> None:
    config = fast.replace(chat_timeout=30, operation_timeout=100)
    async with agy_trio.open_runtime(config, backend=hanging) as rt:
        agent = await rt.create_agent()
        await agent.send("hang in the background")
        start = trio.current_time()
        # wait_for_idle has no inner limit: the safety net stops it.
        with pytest.raises(OperationTimeout) as info:
            await agent.wait_for_idle()
        assert (info.value.operation, info.value.duration) == ("wait_for_idle", 100)
        assert trio.current_time() - start == pytest.approx(100, abs=0.5)
        await agent.cancel()


async def test_per_agent_chat_timeout_override(
    clock: trio.testing.MockClock, fast: RuntimeConfig, hanging: ScriptedBackend
) -> None:
    async with agy_trio.open_runtime(fast, backend=hanging) as rt:
        agent = await rt.create_agent(AgentConfig(chat_timeout=5))
        response = await agent.chat("go")
        with pytest.raises(OperationTimeout) as info:
            await response.text()
        assert info.value.duration == 5


# ----------------------------------------------------------------------------- shutdown


async def test_shutdown_with_fifty_commands_in_flight(
    clock: trio.testing.MockClock, fast: RuntimeConfig, hanging: ScriptedBackend
) -> None:
    config = fast.replace(shutdown_timeout=7)
    errors: list[BaseException] = []
    outcomes = 0

    async def caller(fn: Callable[[], Any]) -> None:
        nonlocal outcomes
        try:
            await fn()
        except BaseException as exc:
            errors.append(exc)
            raise
        finally:
            outcomes += 1

    async with trio.open_nursery() as callers:
        async with agy_trio.open_runtime(config, backend=hanging) as rt:
            agents = [await rt.create_agent() for _ in range(10)]
            responses = [await a.chat("hang") for a in agents]
            for agent in agents:
                for _ in range(5):  # 10 agents x 5 = 50 blocked commands
                    callers.start_soon(_swallow(caller), agent.wait_for_idle)
            await trio.testing.wait_all_tasks_blocked()
            assert rt.statistics().in_flight == 50
            start = trio.current_time()
        elapsed = trio.current_time() - start
    assert elapsed <= config.shutdown_timeout + 0.5
    assert outcomes == 50
    assert len(errors) == 50 and all(isinstance(e, RuntimeClosed) for e in errors)
    for response in responses:
        with pytest.raises(RuntimeClosed):
            await response.text()


def _swallow(fn: Callable[..., Any]) -> Callable[..., Any]:
    async def run(*args: Any) -> None:
        with contextlib.suppress(RuntimeClosed):
            await fn(*args)

    return run


async def test_commands_after_shutdown_raise_runtime_closed(fast: RuntimeConfig) -> None:
    async with agy_trio.open_runtime(fast, backend=ScriptedBackend()) as rt:
        agent = await rt.create_agent()
    with pytest.raises(RuntimeClosed):
        await agent.history()
    with pytest.raises(RuntimeClosed):
        await rt.create_agent()
    agent.try_shutdown()  # never raises


async def test_graceful_shutdown_lets_in_flight_work_finish(fast: RuntimeConfig) -> None:
    backend = ScriptedBackend([Turn([Say("slow answer", chunks=3)])])
    async with agy_trio.open_runtime(fast, backend=backend) as rt:
        agent = await rt.create_agent()
        response = await agent.chat("go")
    # The turn finished during the grace period, so its events are all there.
    assert await response.text() == "slow answer"


async def test_killing_the_host_thread_yields_channel_closed(fast: RuntimeConfig) -> None:
    backend = ScriptedBackend()
    with pytest.raises(ChannelClosed, match="crashed"):
        async with agy_trio.open_runtime(fast, backend=backend) as rt:
            agent = await rt.create_agent()

            def die() -> None:
                raise SystemExit("killed")

            backend.host.loop.call_soon_threadsafe(die)
            with pytest.raises(ChannelClosed):
                # The first call may race the crash; every call after it fails.
                for _ in range(1000):
                    await agent.history()
            with pytest.raises(ChannelClosed):
                await agent.chat("anyone?")
    assert not any(t.name == backend.host.name for t in threading.enumerate())


# ----------------------------------------------------------------------------- quota, pacing


async def test_quota_backoff_is_honoured_and_only_llm_success_clears_it(
    clock: trio.testing.MockClock, fast: RuntimeConfig
) -> None:
    def script(agent_id: str, prompt: str, index: int) -> Turn:
        if prompt == "first":
            return Turn([Fail("quota", retry_after=20)])
        return default_turn(prompt)

    backend = ScriptedBackend(script)
    async with agy_trio.open_runtime(fast, backend=backend) as rt:
        agent = await rt.create_agent(AgentConfig(api_key="k1"))
        other = await rt.create_agent(AgentConfig(api_key="k2"))
        response = await agent.chat("first")
        with pytest.raises(QuotaExceeded) as info:
            await response.text()
        assert info.value.retry_after == 20
        # Recorded before the reader saw the error: a retry straight away waits.
        assert rt.quota.state_for("k1").backing_off
        await agent.wait_for_idle()
        await trio.testing.wait_all_tasks_blocked()
        state = rt.quota.state_for("k1")
        assert state.backing_off
        # A non-LLM command succeeding does not clear the backoff.
        await agent.history()
        assert state.backing_off
        # Another key is unaffected.
        start = trio.current_time()
        await (await other.chat("x")).text()
        assert trio.current_time() - start < 1
        # The next chat on k1 waits out the Retry-After, then clears it.
        start = trio.current_time()
        assert await (await agent.chat("second")).text() == "You said: second"
        assert trio.current_time() - start >= 19
        await trio.testing.wait_all_tasks_blocked()
        assert not state.backing_off
        assert state.statistics().hits == 1


async def test_chat_starts_are_paced_but_chats_overlap(
    clock: trio.testing.MockClock, fast: RuntimeConfig, hanging: ScriptedBackend
) -> None:
    config = fast.replace(inter_agent_delay=0.5)
    starts: list[float] = []
    async with agy_trio.open_runtime(config, backend=hanging) as rt:
        agents = [await rt.create_agent() for _ in range(4)]
        t0 = trio.current_time()
        responses: list[agy_trio.ChatResponse] = []

        async def start(agent: agy_trio.AgentHandle) -> None:
            responses.append(await agent.chat("go"))
            starts.append(trio.current_time() - t0)

        async with trio.open_nursery() as nursery:
            for agent in agents:
                nursery.start_soon(start, agent)
        # Four hanging turns are alive at once: pacing did not serialise them.
        assert rt.statistics().active_turns == 4
        for response in responses:
            await response.cancel()
    assert sorted(starts) == pytest.approx([0, 0.5, 1.0, 1.5], abs=0.05)


# ----------------------------------------------------------------------------- errors, logs, stats


async def test_backend_errors_are_typed(rt: agy_trio.Runtime, fast: RuntimeConfig) -> None:
    backend = ScriptedBackend([Turn([Fail("server", status=503)])])
    async with agy_trio.open_runtime(fast, backend=backend) as rt2:
        agent = await rt2.create_agent()
        with pytest.raises(BackendError) as info:
            await (await agent.chat("x")).text()
        assert info.value.status == 503


async def test_bad_input_is_rejected_clearly(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    with pytest.raises(ConfigError):
        await agent.chat([])
    with pytest.raises(ConfigError):
        await agent.chat("")
    with pytest.raises(ConfigError):
        await agent.chat(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        await agent.wait_for_wakeup(-1)
    with pytest.raises(ConfigError):
        await rt.create_agent({"name": "x"})  # type: ignore[arg-type]
    with pytest.raises(AgentNotFound):
        rt.agent("nope")
    with pytest.raises(ConfigError):
        async with agy_trio.open_runtime({"chat_timeout": 1}):  # type: ignore[arg-type]
            pass


async def test_wakeups(rt: agy_trio.Runtime, clock: trio.testing.MockClock) -> None:
    agent = await rt.create_agent()
    assert await agent.wait_for_wakeup(5) is False
    await agent.send("wake up")
    assert await agent.wait_for_wakeup(5) is True
    await agent.signal_idle()
    assert await agent.wait_for_wakeup(0) is False

    async def later() -> None:
        await trio.sleep(3)
        await agent.send("now")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        start = trio.current_time()
        assert await agent.wait_for_wakeup(60) is True
        assert trio.current_time() - start == pytest.approx(3, abs=0.3)


async def test_disconnect_then_resume_and_delete(rt: agy_trio.Runtime) -> None:
    backend = rt.backend
    assert isinstance(backend, ScriptedBackend)
    agent = await rt.create_agent()
    await (await agent.chat("remember me")).text()
    conversation = agent.conversation_id
    await agent.disconnect()
    assert conversation in backend.saved_conversations
    resumed = await rt.create_agent(AgentConfig(conversation_id=conversation))
    assert next(m.text for m in await resumed.history()) == "remember me"
    await resumed.delete()
    assert conversation not in backend.saved_conversations
    with pytest.raises(AgentNotFound):
        await rt.create_agent(AgentConfig(conversation_id=conversation))


async def test_open_agent_shuts_the_agent_down(rt: agy_trio.Runtime) -> None:
    async with rt.open_agent(AgentConfig(name="scoped")) as agent:
        assert rt.agent(agent.agent_id) is agent
    with pytest.raises(AgentNotFound):
        await agent.history()
    assert rt.statistics().agents == 0


async def test_try_shutdown_is_non_blocking(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    agent.try_shutdown()
    with trio.fail_after(5):
        while rt.statistics().agents:
            await trio.lowlevel.checkpoint()
    with pytest.raises(AgentNotFound):
        await agent.is_idle()


async def test_statistics_and_logs(rt: agy_trio.Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="agy_trio")
    agent = await rt.create_agent(AgentConfig(name="logged"))
    await agent.history()
    with pytest.raises(AgentNotFound):
        rt.agent("x-1")
    stats = rt.statistics()
    assert stats.agents == 1 and stats.in_flight == 0 and stats.queued == 0
    assert stats.commands["history"].completed == 1
    assert stats.commands["create_agent"].completed == 1
    assert stats.commands["history"].mean_seconds > 0
    records = [r for r in caplog.records if r.name.startswith("agy_trio.runtime")]
    assert records, "the runtime logs agent creation at debug level"
    for record in records:
        assert getattr(record, "agent_id", None) == agent.agent_id
        assert getattr(record, "command", None)


async def test_stuck_host_thread_is_reported_not_waited_for(
    fast: RuntimeConfig, clock: trio.testing.MockClock
) -> None:
    release = threading.Event()
    backend = ScriptedBackend(shutdown_timeout=3)
    config = fast.replace(shutdown_timeout=3)
    start = 0.0
    try:
        with pytest.raises(OperationTimeout, match="thread join"):
            async with agy_trio.open_runtime(config, backend=backend) as rt:
                await rt.create_agent()
                # A blocking call on the loop, like the SDK's harness shutdown.
                backend.host.loop.call_soon_threadsafe(release.wait, 60)
                start = trio.current_time()
        # Grace, agent shutdown, backend close and thread join are each bounded.
        grace = backend.host.cancel_grace  # type: ignore[attr-defined]
        assert trio.current_time() - start <= 4 * config.shutdown_timeout + 2 * grace
    finally:
        release.set()


async def test_hooks_run_in_order_on_the_trio_side(fast: RuntimeConfig) -> None:
    seen: list[tuple[str, str]] = []
    trio_thread = threading.current_thread().name

    def record(kind: str) -> Callable[[Any], Any]:
        async def hook(event: Any) -> None:
            assert threading.current_thread().name == trio_thread
            seen.append((kind, getattr(event, "tool", "")))

        return hook

    @agy_trio.tool
    def ping() -> str:
        """Answer pong."""
        seen.append(("tool", "ping"))
        return "pong"

    hooks = agy_trio.Hooks(
        on_turn_start=[record("turn_start")],
        before_tool=[record("before")],
        after_tool=[record("after")],
        on_turn_end=[record("turn_end")],
    )
    backend = ScriptedBackend([Turn([CallTool("ping"), Say("done")])])
    async with agy_trio.open_runtime(fast, backend=backend) as rt:
        agent = await rt.create_agent(AgentConfig(tools=(ping,), hooks=hooks))
        assert await (await agent.chat("go")).text() == "done"
    assert seen == [
        ("turn_start", ""),
        ("before", "ping"),
        ("tool", "ping"),
        ("after", "ping"),
        ("turn_end", ""),
    ]
