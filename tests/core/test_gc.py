"""The runtime and the cyclic GC: start-up objects frozen, no cycles per command or turn."""

from __future__ import annotations

import collections
import gc
import weakref
from collections.abc import Iterator

import pytest
import trio

import agy_trio
from agy_trio.adapters.scripted import ScriptedBackend
from agy_trio.core.gc_freeze import freeze_startup_objects

FAST = agy_trio.RuntimeConfig(inter_agent_delay=0)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """Keep what the collector finds in cycles (instead of freeing it) for the test to look at."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_the_objects_alive_at_start_up_are_frozen_once() -> None:
    async with agy_trio.open_runtime(FAST, backend=ScriptedBackend()):
        assert gc.get_freeze_count() > 0  # the first runtime of the process froze them
        assert freeze_startup_objects() is False  # once per process only


async def test_cycles_made_after_start_up_are_still_collected() -> None:
    async with agy_trio.open_runtime(FAST, backend=ScriptedBackend()):
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
        gc.collect()
        assert alive() is None


async def test_commands_and_turns_leave_no_reference_cycles(saved_garbage: list[object]) -> None:
    async with agy_trio.open_runtime(FAST, backend=ScriptedBackend()) as rt:
        agents = [await rt.create_agent() for _ in range(5)]
        for agent in agents:  # the first turn of each creates its per-agent state
            assert await (await agent.chat("warm up")).text()
        gc.collect()
        saved_garbage.clear()
        async with trio.open_nursery() as nursery:
            for agent in agents:

                async def use(agent: agy_trio.AgentHandle = agent) -> None:
                    for k in range(4):
                        response = await agent.chat(f"turn {k}")
                        async for _ in response.text_batches():
                            pass
                        await agent.history()
                        await agent.turn_count()
                        await agent.total_usage()
                        await agent.is_idle()

                nursery.start_soon(use)
        gc.collect()
        kinds = collections.Counter(type(o).__qualname__ for o in saved_garbage)
        assert not saved_garbage, f"objects left in reference cycles: {kinds.most_common(10)}"
