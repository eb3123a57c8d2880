"""A response nobody reads never holds its agent (scripted backend).

The answers here are far longer than the stream's backpressure limit, so a
turn whose reader went away would park its producer, and with it the agent's
turn slot, until ``chat_timeout``. Instead the next message (or the response
being garbage-collected) releases the turn: it runs to its end, its answer
lands in the history, and the next turn runs.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import pytest
import trio

import agy_trio
from agy_trio import RuntimeConfig, StopReason
from agy_trio.adapters.scripted import Say, ScriptedBackend, Turn, default_turn

# Each turn stalls for good if nothing releases it; chat_timeout is far away.
CONFIG = RuntimeConfig(inter_agent_delay=0, chat_timeout=600)
HANG = 20  # a bound for work that takes milliseconds; only a hang reaches it
LONG = "".join(f"{i:03d}." for i in range(400))  # 400 chunks of 4 characters


def script(agent_id: str, prompt: str, index: int) -> Turn:
    if prompt.startswith("long"):
        return Turn([Say(LONG, chunks=400)])
    return default_turn(prompt)


@pytest.fixture
async def rt() -> AsyncIterator[agy_trio.Runtime]:
    backend = ScriptedBackend(script, stream_high_water=4, stream_batch_max=2)
    with trio.fail_after(HANG):
        async with agy_trio.open_runtime(CONFIG, backend=backend) as runtime:
            yield runtime


def _pairs(history: list[agy_trio.Message]) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in history]


async def test_a_dropped_response_does_not_hold_the_next_chat(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    await agent.chat("long one")  # dropped at once, unread
    with trio.fail_after(HANG):
        response = await agent.chat("next")
        assert await response.text() == "You said: next"
    assert _pairs(await agent.history()) == [
        ("user", "long one"),
        ("assistant", LONG),
        ("user", "next"),
        ("assistant", "You said: next"),
    ]
    assert await agent.turn_count() == 2


async def test_a_garbage_collected_response_lets_its_turn_finish(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("long one")
    del response
    gc.collect()
    with trio.fail_after(HANG):
        # Nothing else is sent: only the collection released the turn.
        await agent.wait_for_idle()
    assert await agent.last_response() == LONG
    assert rt.statistics().active_turns == 0


async def test_a_response_read_partly_then_dropped(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("long one")
    assert await response.__anext__() == "000."
    with trio.fail_after(HANG):
        assert await (await agent.chat("next")).text() == "You said: next"
    # The abandoned response stays readable: its events were kept.
    assert "000." + "".join([d async for d in response]) == LONG
    assert response.stop_reason is StopReason.END_TURN


async def test_break_out_of_async_for_then_chat_again(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    seen = []
    async for delta in await agent.chat("long one"):
        seen.append(delta)
        if len(seen) == 3:
            break
    assert seen == ["000.", "001.", "002."]
    with trio.fail_after(HANG):
        assert await (await agent.chat("again")).text() == "You said: again"
    users = [m.text for m in await agent.history() if m.role == "user"]
    assert users == ["long one", "again"]


async def test_send_after_an_unread_chat(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    await agent.chat("long one")
    with trio.fail_after(HANG):
        await agent.send("in the background")
        await agent.wait_for_idle()
    users = [m.text for m in await agent.history() if m.role == "user"]
    assert users == ["long one", "in the background"]
    assert await agent.turn_count() == 2


async def test_many_unread_responses_in_a_row(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    with trio.fail_after(HANG):
        for i in range(10):
            await agent.chat(f"long {i}")
        assert await (await agent.chat("last")).text() == "You said: last"
    users = [m.text for m in await agent.history() if m.role == "user"]
    assert users == [f"long {i}" for i in range(10)] + ["last"]
    assert await agent.turn_count() == 11


async def test_a_released_turn_can_still_be_cancelled(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("long one")
    await agent.send("next")  # releases the first turn
    with trio.fail_after(HANG):
        await response.cancel()
        await agent.wait_for_idle()
    # Whichever came first, the end or the cancel, the stream ends cleanly.
    _ = [delta async for delta in response]
    assert response.stop_reason in (StopReason.END_TURN, StopReason.CANCELLED)
    assert rt.statistics().active_turns == 0
