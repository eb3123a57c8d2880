"""What the abandoned-turn tests share, over the scripted backend and the real SDK alike."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable

import trio

import agy_trio
from agy_trio import StopReason


async def collected() -> None:
    """Let go of every reference Trio's scheduler may still hold, then collect."""
    # The scheduler holds the value a task was last resumed with until it
    # resumes the next task: a checkpoint lets go of a result just dropped.
    await trio.lowlevel.checkpoint()
    gc.collect()


def pairs(history: list[agy_trio.Message]) -> list[tuple[str, str, bool]]:
    """Each message's role, text and whether it was interrupted."""
    return [(m.role, m.text, m.interrupted) for m in history]


async def assert_a_turn_being_read_is_left_alone(
    agent: agy_trio.AgentHandle,
    prompt: str,
    answer: str,
    *,
    pause: Callable[[], Awaitable[object]],
    within: float,
) -> None:
    """The next chat waits for a turn another task still reads, which runs to its end.

    Args:
        agent: An idle agent.
        prompt: What to ask first; ``answer`` is what the model says to it.
        answer: The first turn's whole answer.
        pause: What the slow reader awaits after each delta.
        within: The bound on the whole exchange: only a hang reaches it.
    """
    response = await agent.chat(prompt)
    reading = trio.Event()
    text: list[str] = []

    async def read_slowly() -> None:
        async for delta in response:
            text.append(delta)
            reading.set()
            await pause()

    with trio.fail_after(within):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_slowly)
            await reading.wait()
            # The next chat waits for the turn being read, which is left alone.
            assert await (await agent.chat("next")).text() == "You said: next"
    assert "".join(text) == answer
    assert response.stop_reason is StopReason.END_TURN
    assert pairs(await agent.history()) == [
        ("user", prompt, False),
        ("assistant", answer, False),
        ("user", "next", False),
        ("assistant", "You said: next", False),
    ]
