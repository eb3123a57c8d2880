"""The scripted backend: determinism, asyncio-only execution, faults and their types."""

from __future__ import annotations

import asyncio
import threading

import pytest
import trio
import trio.lowlevel

import agy_trio
from agy_trio import RuntimeConfig
from agy_trio.errors import (
    BackendError,
    ChannelClosed,
    MaxTokensReached,
    QuotaExceeded,
    SafetyBlocked,
)
from agy_trio.testing import scripted
from agy_trio.testing.scripted import (
    Fail,
    Pause,
    Say,
    ScriptedBackend,
    ScriptedQuotaError,
    ScriptedSafetyError,
    Think,
    Turn,
    classify_error,
)

FAST = RuntimeConfig(inter_agent_delay=0)


def test_the_old_import_path_gives_the_same_objects() -> None:
    import agy_trio.adapters.scripted as old_path

    assert set(old_path.__all__) <= set(scripted.__all__)
    for name in old_path.__all__:
        assert getattr(old_path, name) is getattr(scripted, name), name
    assert set(old_path.__all__) <= set(dir(old_path))
    with pytest.raises(AttributeError):
        _ = old_path.NoSuchName


def test_faults_are_classified_by_type() -> None:
    quota = classify_error(ScriptedQuotaError("slow down", 7.5))
    assert isinstance(quota, QuotaExceeded) and quota.retry_after == 7.5
    assert isinstance(classify_error(ScriptedSafetyError("no")), SafetyBlocked)
    server = classify_error(scripted.ScriptedServerError("boom", 502))
    assert isinstance(server, BackendError) and server.status == 502
    assert isinstance(classify_error(scripted.ScriptedMaxTokensError("long")), MaxTokensReached)
    assert isinstance(classify_error(scripted.ScriptedConnectionError("gone")), ChannelClosed)


def test_look_alike_class_with_the_same_name_is_not_mistaken() -> None:
    class ScriptedQuotaError(Exception):  # same name, unrelated class
        retry_after = 1.0

    class ScriptedSafetyError(Exception):
        pass

    for impostor in (ScriptedQuotaError("x"), ScriptedSafetyError("y")):
        mapped = classify_error(impostor)
        assert type(mapped) is BackendError
        assert not isinstance(mapped, QuotaExceeded | SafetyBlocked)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("quota", QuotaExceeded),
        ("server", BackendError),
        ("safety", SafetyBlocked),
        ("max_tokens", MaxTokensReached),
        ("connection", ChannelClosed),
    ],
)
async def test_scripted_faults_reach_the_reader_typed(kind: str, error: type[Exception]) -> None:
    backend = ScriptedBackend([Turn([Say("before", chunks=1), Fail(kind)])])
    async with agy_trio.open_runtime(FAST, backend=backend) as rt:
        agent = await rt.create_agent()
        response = await agent.chat("x")
        events: list[agy_trio.ChatEvent] = []
        with pytest.raises(error):
            async for event in response.events():
                events.append(event)
        # Events produced before the failure were delivered first.
        assert events == [agy_trio.TextDelta("before")]
        assert isinstance(response.error, error)
        assert response.stop_reason is agy_trio.StopReason.ERROR
        assert await agent.is_idle()


async def test_script_code_runs_on_the_host_loop_only() -> None:
    seen: list[tuple[str, bool]] = []

    def responder(agent_id: str, prompt: str, index: int) -> Turn:
        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            in_loop = False
        seen.append((threading.current_thread().name, in_loop))
        return Turn([Say(prompt.upper())])

    backend = ScriptedBackend(responder)
    async with agy_trio.open_runtime(FAST, backend=backend) as rt:
        agent = await rt.create_agent()
        assert await (await agent.chat("abc")).text() == "ABC"
    assert seen == [(backend.host.name, True)]
    assert backend.host.name != threading.current_thread().name


async def test_same_script_gives_the_same_events() -> None:
    script = [Turn([Think("hmm"), Say("one two three", chunks=3), Pause(0)])]

    async def play() -> list[agy_trio.ChatEvent]:
        async with agy_trio.open_runtime(FAST, backend=ScriptedBackend(script)) as rt:
            agent = await rt.create_agent()
            return [e async for e in (await agent.chat("go")).events()]

    first, second = await play(), await play()
    assert first == second
    assert [type(e).__name__ for e in first] == [
        "ThoughtDelta",
        "TextDelta",
        "TextDelta",
        "TextDelta",
        "TurnEnd",
    ]


async def test_script_runs_out_then_default_answers() -> None:
    backend = ScriptedBackend([Turn([Say("scripted")])])
    async with agy_trio.open_runtime(FAST, backend=backend) as rt:
        agent = await rt.create_agent()
        assert await (await agent.chat("a")).text() == "scripted"
        assert await (await agent.chat("b")).text() == "You said: b"
        other = await rt.create_agent()
        # Each agent starts at the beginning of the script.
        assert await (await other.chat("c")).text() == "scripted"


async def test_many_chunks_stream_with_backpressure() -> None:
    backend = ScriptedBackend(
        [Turn([Say("x" * 5000, chunks=5000)])], stream_high_water=16, stream_batch_max=8
    )
    async with agy_trio.open_runtime(FAST, backend=backend) as rt:
        agent = await rt.create_agent()
        response = await agent.chat("go")
        count = 0
        async for delta in response:
            assert delta == "x"
            count += 1
            if count % 1000 == 0:
                await trio.lowlevel.checkpoint()
        assert count == 5000


def test_invalid_fail_kind() -> None:
    with pytest.raises(ValueError):
        Fail("meteor")


async def test_strings_are_shorthand_for_say_and_chunks_can_be_delayed() -> None:
    backend = ScriptedBackend(
        ["plain answer", Turn(["step one. ", Say("slow", chunks=2, delay=0.001)])]
    )
    async with agy_trio.open_runtime(FAST, backend=backend) as rt:
        agent = await rt.create_agent()
        assert await (await agent.chat("a")).text() == "plain answer"
        assert await (await agent.chat("b")).text() == "step one. slow"
