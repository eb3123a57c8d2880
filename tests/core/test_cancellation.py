"""Cancelling a caller at any point: it gets the result, or the command never ran."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import attrs
import hypothesis.strategies as st
import outcome
import trio
from hypothesis import HealthCheck, given, settings

import agy_trio
from agy_trio import AgentHandle, ChatResponse, RuntimeConfig
from agy_trio.adapters.scripted import Hang, Pause, Say, ScriptedBackend, Turn
from agy_trio.core import commands as cmds
from agy_trio.core.commands import Command
from agy_trio.testing import NullBackend

FAST = RuntimeConfig(inter_agent_delay=0)


def _script(agent_id: str, prompt: str, index: int) -> Turn:
    # Some turns take a moment on the asyncio side, so later chats queue behind them.
    if prompt.endswith("slow"):
        return Turn([Say("a", chunks=1), Pause(0.002), Say(f"done {prompt}", chunks=3)])
    return Turn([Say(f"done {prompt}", chunks=2)])


Attempt = tuple[int, str, int, bool]  # (agent, kind, checkpoints before the cancel, slow turn)

attempts = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from(["chat", "send", "history", "turn_count", "cancel"]),
        st.integers(0, 12),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


async def _attempt(
    agent: AgentHandle, kind: str, prompt: str, checkpoints: int, told: dict[str, bool]
) -> None:
    """Run one command, cancelled after ``checkpoints`` scheduler rounds; note what it was told."""
    response: ChatResponse | None = None
    sent = False
    with trio.CancelScope() as scope:

        async def cancel_later() -> None:
            for _ in range(checkpoints):
                await trio.lowlevel.checkpoint()
            scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_later)
            try:
                if kind == "chat":
                    response = await agent.chat(prompt)
                    sent = True
                elif kind == "send":
                    await agent.send(prompt)
                    sent = True
            except agy_trio.AgyError:
                # A concurrent agent.cancel() also stops turns queued behind the
                # active one: such a chat fails and its prompt never joins.
                pass
            if kind == "history":
                await agent.history()
            elif kind == "turn_count":
                await agent.turn_count()
            else:
                await agent.cancel()
            nursery.cancel_scope.cancel()
    if kind in ("chat", "send"):
        told[prompt] = sent
    if response is not None:
        # The caller holds the response even if its scope was cancelled right
        # after: closing it ends the turn (the prompt stays in the conversation).
        with trio.CancelScope(shield=True):
            await response.aclose()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=attempts, capacity=st.sampled_from([1, 2, 3, 64]))
async def test_random_cancellation_never_orphans_a_turn_or_a_prompt(
    plan: list[Attempt], capacity: int
) -> None:
    # A small channel fills up: callers then wait in send(), and their command
    # may be answered before they are back to wait for it.
    backend = ScriptedBackend(_script)
    told: dict[str, bool] = {}
    config = attrs.evolve(FAST, channel_capacity=capacity)
    async with agy_trio.open_runtime(config, backend=backend) as rt:
        agents = [await rt.create_agent() for _ in range(4)]
        async with trio.open_nursery() as nursery:
            for number, (index, kind, checkpoints, slow) in enumerate(plan):
                prompt = f"p{number}" + (" slow" if slow else "")
                nursery.start_soon(_attempt, agents[index], kind, prompt, checkpoints, told)
        for agent in agents:
            await agent.wait_for_idle()
        in_history: set[str] = set()
        for agent in agents:
            in_history |= {m.text for m in await agent.history() if m.role == "user"}
        # Exactly the prompts whose callers were told they went are in the conversations.
        assert in_history == {prompt for prompt, went in told.items() if went}

        async def count_tasks() -> int:
            return len(asyncio.all_tasks()) - 1

        # No turn or command is left running on the asyncio side.
        assert await backend.host.run(count_tasks) == 0
        stats = rt.statistics()
        assert stats.in_flight == 0 and stats.active_turns == 0 and stats.queued == 0


async def test_a_chat_cancelled_while_queued_behind_a_turn_never_runs() -> None:
    backend = ScriptedBackend([Turn([Say("partial", chunks=1), Hang()])])
    async with agy_trio.open_runtime(FAST, backend=backend) as rt:
        agent = await rt.create_agent()
        first = await agent.chat("first")  # holds the turn slot until cancelled
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def second() -> None:
                with scope:
                    await agent.chat("second")

            nursery.start_soon(second)
            # Wait until the second chat reached the backend (it queues there).
            while rt.statistics().in_flight == 0:
                await trio.lowlevel.checkpoint()
            scope.cancel()
        assert scope.cancelled_caught
        await first.aclose()
        await agent.wait_for_idle()
        prompts = [m.text for m in await agent.history() if m.role == "user"]
        assert prompts == ["first"]


async def test_a_cancelled_caller_that_got_its_response_can_still_read_it() -> None:
    backend = ScriptedBackend(_script)
    received: list[Any] = []
    async with agy_trio.open_runtime(FAST, backend=backend) as rt:
        agent = await rt.create_agent()
        with trio.CancelScope() as scope:
            response = await agent.chat("hello")
            received.append(response)
            scope.cancel()
            await trio.lowlevel.checkpoint()
        assert scope.cancelled_caught
        assert await received[0].text() == "done hello"


async def test_an_answer_already_given_reaches_a_cancelled_caller() -> None:
    command = Command(cmds.IS_IDLE, "agent-1")
    command.start()
    command.complete(outcome.Value(True))
    answers: list[bool] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        # Answered before the caller came to wait: the answer is not thrown away...
        answers.append(await command.wait())
        # ...and the cancellation lands at the caller's next checkpoint.
        await trio.lowlevel.checkpoint()
    assert answers == [True]
    assert scope.cancelled_caught


async def test_chats_that_waited_for_room_in_a_full_channel_are_never_orphaned() -> None:
    # A small channel and a backend that answers in the dispatch loop itself:
    # a caller that waited in send() may find its chat answered (the loop took
    # it on a later caller's count) by the time it is back, its scope
    # cancelled meanwhile. Every prompt in the conversation must have had its
    # response handed to its caller.
    config = attrs.evolve(FAST, channel_capacity=2)
    handed: list[ChatResponse] = []
    rounds = random.Random(19)
    async with agy_trio.open_runtime(config, backend=NullBackend()) as rt:
        agent = await rt.create_agent()
        for number in range(300):
            scopes = [trio.CancelScope() for _ in range(6)]

            async def chat(prompt: str, scope: trio.CancelScope, late: int) -> None:
                with scope:
                    for _ in range(late):
                        await trio.lowlevel.checkpoint()
                    handed.append(await agent.chat(prompt))

            async with trio.open_nursery() as nursery:
                for caller, scope in enumerate(scopes):
                    nursery.start_soon(chat, f"{number}-{caller}", scope, rounds.randrange(3))
                for _ in range(rounds.randrange(6)):
                    await trio.lowlevel.checkpoint()
                for scope in scopes:
                    scope.cancel()
        prompts = [m.text for m in await agent.history() if m.role == "user"]
        assert len(prompts) == len(handed)
