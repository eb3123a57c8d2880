"""An abandoned turn is interrupted at once; a turn still being read is never (scripted backend).

The answers here are far longer than the stream's backpressure limit, so a
turn nobody reads would park its producer, and with it the agent's turn slot.
A response closed before the end, garbage-collected unread, or whose
``async for`` was left early has its turn cancelled: what it produced stays
in the history, marked interrupted, and the next turn runs at once. A
response someone still holds and reads is left alone: the next chat waits.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
import trio.testing

import agy_trio
from agy_trio import ChatResponse, RuntimeConfig, StopReason
from agy_trio.adapters.scripted import Say, ScriptedBackend, Turn, default_turn
from tests.reliability.abandoning import (
    assert_a_turn_being_read_is_left_alone,
    collected,
    pairs,
)

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


async def _the_next_chat_answers(agent: agy_trio.AgentHandle, then: str) -> None:
    """``then`` is answered at once; the abandoned turn stays before it, marked interrupted."""
    with trio.fail_after(HANG):
        assert await (await agent.chat(then)).text() == f"You said: {then}"
    history = await agent.history()
    assert history[0] == agy_trio.Message("user", "long one", interrupted=True)
    middle = history[1:-2]
    # The partial answer (if the turn produced any), a strict prefix of the whole.
    assert [(m.role, m.interrupted) for m in middle] in ([], [("assistant", True)])
    if middle:
        assert LONG.startswith(middle[0].text) and len(middle[0].text) < len(LONG)
    answer = f"You said: {then}"
    assert pairs(history[-2:]) == [("user", then, False), ("assistant", answer, False)]


async def test_a_dropped_response_is_interrupted(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    with pytest.warns(ResourceWarning, match="garbage-collected unread"):
        await agent.chat("long one")  # dropped at once, unread
        await collected()
    await _the_next_chat_answers(agent, "next")
    assert await agent.turn_count() == 1


async def test_a_garbage_collected_response_interrupts_its_turn(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("long one")
    with pytest.warns(ResourceWarning):
        del response
        await collected()
    with trio.fail_after(HANG):
        # Nothing else is sent: only the collection stopped the turn.
        await agent.wait_for_idle()
    history = await agent.history()
    assert history[0] == agy_trio.Message("user", "long one", interrupted=True)
    assert all(m.interrupted for m in history)
    assert await agent.last_response() is None
    assert rt.statistics().active_turns == 0


async def test_break_out_of_async_for_interrupts_the_turn(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("long one")
    seen = []
    async for delta in response:
        seen.append(delta)
        if len(seen) == 3:
            break
    assert seen == ["000.", "001.", "002."]
    await _the_next_chat_answers(agent, "again")
    # Read again, the response ends as cancelled, after what was already produced.
    rest = "".join([delta async for delta in response])
    assert LONG.startswith("".join(seen) + rest) and len("".join(seen) + rest) < len(LONG)
    assert response.stop_reason is StopReason.CANCELLED


async def _close_the_events_iterator_early(response: ChatResponse) -> None:
    async with contextlib.aclosing(response.events()) as events:
        async for _event in events:
            break


async def _break_out_of_events_and_drop_it(response: ChatResponse) -> None:
    # events() is an async generator: Trio finalises it (and warns) once dropped.
    with pytest.warns(ResourceWarning, match="Async generator"):
        async for _event in response.events():
            break
        await collected()
        await trio.testing.wait_all_tasks_blocked()  # Trio's finaliser has run


@pytest.mark.parametrize(
    "leave", [_close_the_events_iterator_early, _break_out_of_events_and_drop_it]
)
async def test_leaving_events_early_interrupts_the_turn(
    rt: agy_trio.Runtime, leave: Callable[[ChatResponse], Awaitable[None]]
) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("long one")
    await leave(response)
    await _the_next_chat_answers(agent, "again")
    assert await response.text() != LONG
    assert response.stop_reason is StopReason.CANCELLED


async def test_an_exception_in_the_loop_body_interrupts_the_turn(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("long one")
    with pytest.raises(KeyError):
        async for _delta in response:
            raise KeyError("the reader failed")
    with trio.fail_after(HANG):
        await agent.wait_for_idle()
    assert (await agent.history())[0].interrupted


async def test_leaving_async_with_early_interrupts_the_turn(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    async with await agent.chat("long one") as response:
        assert await response.__anext__() == "000."
    await _the_next_chat_answers(agent, "next")
    _ = [delta async for delta in response]
    assert response.stop_reason is StopReason.CANCELLED


async def test_a_response_entered_in_a_cancelled_scope_is_closed(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("long one")
    with trio.CancelScope() as scope:
        scope.cancel()
        async with response:
            pytest.fail("the block of a cancelled scope never runs")
    assert scope.cancelled_caught
    with trio.fail_after(HANG):
        await agent.wait_for_idle()  # the turn was stopped, not left running
    assert (await agent.history())[0].interrupted
    assert rt.statistics().active_turns == 0


async def _a_few_rounds() -> None:
    """A slow reader: a few scheduler rounds per delta."""
    for _ in range(3):
        await trio.lowlevel.checkpoint()


async def test_a_response_being_read_is_not_interrupted_by_the_next_chat(
    rt: agy_trio.Runtime,
) -> None:
    agent = await rt.create_agent()
    await assert_a_turn_being_read_is_left_alone(
        agent, "long one", LONG, pause=_a_few_rounds, within=HANG
    )


async def test_a_held_unread_response_runs_to_its_end_when_the_agent_is_sent_more(
    rt: agy_trio.Runtime,
) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("long one")  # held, not read: not abandoned
    with trio.fail_after(HANG):
        await agent.send("in the background")
        await agent.wait_for_idle()
    assert pairs(await agent.history())[:2] == [
        ("user", "long one", False),
        ("assistant", LONG, False),
    ]
    assert await response.text() == LONG


async def test_many_dropped_responses_in_a_row(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    with trio.fail_after(HANG):
        for i in range(10):
            with pytest.warns(ResourceWarning):
                await agent.chat(f"long {i}")
                await collected()
        assert await (await agent.chat("last")).text() == "You said: last"
    history = await agent.history()
    users = [(m.text, m.interrupted) for m in history if m.role == "user"]
    assert users == [(f"long {i}", True) for i in range(10)] + [("last", False)]
    assert await agent.turn_count() == 1


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
