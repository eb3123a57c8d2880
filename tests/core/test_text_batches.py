"""ChatResponse.text_batches(): one step per batch of whatever has arrived, each a checkpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig
from agy_trio.adapters.scripted import CallTool, Fail, Say, ScriptedBackend, Think, Turn
from agy_trio.errors import BackendError

FAST = RuntimeConfig(inter_agent_delay=0)

SCRIPT = {
    "long": Turn([Say("x" * 64, chunks=64)]),
    "mixed": Turn([Say("ab", chunks=2), Think("hmm"), Say("cd", chunks=2)]),
    "gated": Turn([Say("ab", chunks=2), CallTool("wait_for_gate"), Say("cd", chunks=2)]),
    "fails": Turn([Say("ab", chunks=2), Fail("server", "it broke")]),
}


def _script(agent_id: str, prompt: str, index: int) -> Turn:
    return SCRIPT[prompt]


@pytest.fixture
async def rt() -> AsyncIterator[agy_trio.Runtime]:
    async with agy_trio.open_runtime(FAST, backend=ScriptedBackend(_script)) as runtime:
        yield runtime


async def _finished_turn(rt: agy_trio.Runtime, prompt: str) -> agy_trio.ChatResponse:
    """A response whose turn has produced everything (unread: it fits under high water)."""
    agent = await rt.create_agent()
    response = await agent.chat(prompt)
    await agent.wait_for_idle()
    return response


async def test_one_step_hands_over_every_delta_already_there(rt: agy_trio.Runtime) -> None:
    response = await _finished_turn(rt, "long")
    steps = [text async for text in response.text_batches()]
    assert steps == ["x" * 64]  # iterating the response would have taken 64 steps
    assert response.done
    assert await response.text() == "x" * 64


async def test_batches_absorb_the_other_events_and_keep_the_text_exact(
    rt: agy_trio.Runtime,
) -> None:
    response = await _finished_turn(rt, "mixed")
    assert "".join([text async for text in response.text_batches()]) == "abcd"
    assert response.thoughts == ["hmm"]
    assert response.stop_reason is agy_trio.StopReason.END_TURN


async def test_text_arriving_later_comes_in_a_later_step(rt: agy_trio.Runtime) -> None:
    gate = trio.Event()

    @agy_trio.tool
    async def wait_for_gate() -> str:
        """Wait until the test opens the gate."""
        await gate.wait()
        return "open"

    agent = await rt.create_agent(AgentConfig(tools=(wait_for_gate,)))
    response = await agent.chat("gated")
    batches = response.text_batches()
    first = await batches.__anext__()  # "cd" comes only once the gate is open
    while first != "ab":
        first += await batches.__anext__()
    gate.set()
    await agent.wait_for_idle()  # now everything else is there: one step hands it over
    assert await batches.__anext__() == "cd"
    with pytest.raises(StopAsyncIteration):
        await batches.__anext__()
    [call] = response.tool_calls
    assert call.result == "open"


async def test_every_step_is_a_checkpoint_and_a_cancelled_step_takes_nothing(
    rt: agy_trio.Runtime,
) -> None:
    response = await _finished_turn(rt, "long")
    batches = response.text_batches()
    first = await response.__anext__()  # one delta the ordinary way; a batch is fetched
    assert first == "x"
    with trio.CancelScope() as scope:
        scope.cancel()
        async for _ in batches:  # pragma: no branch
            pytest.fail("a cancelled step handed text over")  # pragma: no cover
    assert scope.cancelled_caught
    with trio.testing.assert_checkpoints():
        rest = await batches.__anext__()  # the text was ready: still a checkpoint
    assert rest == "x" * 63
    with trio.testing.assert_checkpoints(), pytest.raises(StopAsyncIteration):
        await batches.__anext__()
    with trio.testing.assert_checkpoints(), pytest.raises(StopAsyncIteration):
        await batches.__anext__()  # after the end too
    assert await response.text() == "x" * 64


async def test_a_failed_turn_raises_after_its_text(rt: agy_trio.Runtime) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("fails")
    received: list[str] = []
    with pytest.raises(BackendError, match="it broke"):
        async for text in response.text_batches():
            received.append(text)
    assert "".join(received) == "ab"
    assert response.error is not None
