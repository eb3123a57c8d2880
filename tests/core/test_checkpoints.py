"""Trio's convention: every public async function is a checkpoint, fast paths included."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

import agy_trio
from agy_trio import AgentConfig, AgentHandle, ChatResponse, Runtime, RuntimeConfig
from agy_trio.adapters.scripted import Say, ScriptedBackend, Turn

FAST = RuntimeConfig(inter_agent_delay=0)

# One long answer per chat, so a response always has events already fetched.
SCRIPT = [Turn([Say("x" * 64, chunks=64)])] * 100


@pytest.fixture
async def rt() -> AsyncIterator[Runtime]:
    async with agy_trio.open_runtime(FAST, backend=ScriptedBackend(SCRIPT)) as runtime:
        yield runtime


def _public_async(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if (not name.startswith("_") or name in {"__aenter__", "__aexit__", "__anext__"})
        and (inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member))
    }


# The arguments of the handle's methods that take any; every other public
# async method is called without (a new command's method is covered at once).
HANDLE_ARGS: dict[str, tuple[Any, ...]] = {
    "chat": ("hi",),
    "send": ("hi",),
    "wait_for_wakeup": (0,),
    "__aexit__": (None, None, None),
}
HANDLE_METHODS = sorted(_public_async(AgentHandle))


def _call(agent: AgentHandle, name: str) -> Awaitable[Any]:
    method: Callable[..., Awaitable[Any]] = getattr(agent, name)
    return method(*HANDLE_ARGS.get(name, ()))


def test_every_command_has_its_method_among_those_covered() -> None:
    from agy_trio.core.commands import COMMANDS

    senders = {spec.sender for spec in COMMANDS} - {"create_agent"}  # Runtime's, below
    assert senders <= set(HANDLE_METHODS)
    assert set(HANDLE_ARGS) <= set(HANDLE_METHODS)


@pytest.mark.parametrize("name", HANDLE_METHODS)
async def test_agent_handle_methods_are_checkpoints(rt: Runtime, name: str) -> None:
    agent = await rt.create_agent(AgentConfig(name="cp"))
    with trio.testing.assert_checkpoints():
        result = await _call(agent, name)
    if isinstance(result, ChatResponse):
        await result.aclose()


@pytest.mark.parametrize("name", [n for n in HANDLE_METHODS if n != "__aexit__"])
async def test_agent_handle_methods_raise_cancelled_in_a_cancelled_scope(
    rt: Runtime, name: str
) -> None:
    agent = await rt.create_agent(AgentConfig(name="cp"))
    with trio.CancelScope() as scope:
        scope.cancel()
        await _call(agent, name)
        pytest.fail(f"{name} returned inside a cancelled scope")  # pragma: no cover
    # The command never reached the backend: the agent is as it was.
    assert await agent.turn_count() == 0
    assert await agent.history() == []


RUNTIME_CALLS: dict[str, Callable[[Runtime], Awaitable[Any]]] = {
    "create_agent": lambda rt: rt.create_agent(),
    "aclose": lambda rt: rt.aclose(),
    "shutdown": lambda rt: rt.shutdown(),
}


def test_every_public_async_method_of_the_runtime_is_covered() -> None:
    assert _public_async(Runtime) == set(RUNTIME_CALLS)


@pytest.mark.parametrize("name", sorted(RUNTIME_CALLS))
async def test_runtime_methods_are_checkpoints(rt: Runtime, name: str) -> None:
    with trio.testing.assert_checkpoints():
        await RUNTIME_CALLS[name](rt)
    # A second call takes the fast path (already closed, or another agent).
    with trio.testing.assert_checkpoints():
        await RUNTIME_CALLS[name](rt)
    if rt.closed:
        with trio.testing.assert_checkpoints(), pytest.raises(agy_trio.RuntimeClosed):
            await rt.create_agent()


RESPONSE_STEPS: dict[str, Callable[[ChatResponse], Awaitable[Any]]] = {
    "__anext__": lambda r: r.__anext__(),
    "events": lambda r: _first_event(r),
    "text": lambda r: r.text(),
    "structured_output": lambda r: r.structured_output(),
    "cancel": lambda r: r.cancel(),
    "aclose": lambda r: r.aclose(),
    "__aenter__": lambda r: r.__aenter__(),
    "__aexit__": lambda r: r.__aexit__(None, None, None),
}


async def _first_event(response: ChatResponse) -> Any:
    async with contextlib.aclosing(response.events()) as events:
        return await events.__anext__()


def test_every_public_async_method_of_the_response_is_covered() -> None:
    assert _public_async(ChatResponse) == set(RESPONSE_STEPS)


@pytest.mark.parametrize("name", sorted(RESPONSE_STEPS))
async def test_response_steps_are_checkpoints_while_running_and_after_the_end(
    rt: Runtime, name: str
) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("hi")
    await response.__anext__()  # a batch is fetched: later steps have events ready
    with trio.testing.assert_checkpoints():
        await RESPONSE_STEPS[name](response)
    await response.aclose()
    await agent.wait_for_idle()
    if name in {"__anext__", "events"}:
        return  # after the end these raise StopAsyncIteration, checked below
    with trio.testing.assert_checkpoints():
        await RESPONSE_STEPS[name](response)


async def test_every_iteration_step_is_a_checkpoint_even_with_events_ready(rt: Runtime) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("hi")
    deltas = 0
    while True:
        with trio.testing.assert_checkpoints():
            try:
                await response.__anext__()
            except StopAsyncIteration:
                break
        deltas += 1
    assert deltas == 64


async def test_a_cancelled_reader_gets_no_delta_it_had_already_fetched(rt: Runtime) -> None:
    agent = await rt.create_agent()
    response = await agent.chat("hi")
    first = await response.__anext__()
    assert first == "x"
    received: list[str] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        async for delta in response:  # pragma: no branch
            received.append(delta)
    assert received == []
    assert scope.cancelled_caught
