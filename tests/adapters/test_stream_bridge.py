"""The batched asyncio -> Trio stream: order, batching, backpressure, endings."""

from __future__ import annotations

import asyncio

import pytest
import trio

from agy_trio.adapters.aio_host import AioHost
from agy_trio.adapters.stream_bridge import StreamBridge
from agy_trio.errors import ConfigError


def _bridge(**kwargs: int) -> StreamBridge[int]:
    return StreamBridge(trio.lowlevel.current_trio_token(), **kwargs)


async def _drain(bridge: StreamBridge[int]) -> list[list[int]]:
    batches: list[list[int]] = []
    while True:
        try:
            batches.append(list(await bridge.receive_batch()))
        except trio.EndOfChannel:
            return batches


async def test_items_arrive_in_order_and_in_batches(host: AioHost) -> None:
    bridge = _bridge(high_water=4096, batch_max=256)

    async def produce() -> None:
        for i in range(1000):
            await bridge.put(i)
        bridge.finish()

    # Everything is produced before the reader looks: whatever the scheduler
    # does, what was produced meanwhile travels in full batches.
    await host.run(produce)
    batches = await _drain(bridge)
    assert [i for b in batches for i in b] == list(range(1000))
    assert [len(b) for b in batches] == [256, 256, 256, 232]


async def test_producer_waits_at_high_water_until_consumer_drains(host: AioHost) -> None:
    bridge = _bridge(high_water=10, batch_max=3)
    produced: list[int] = []
    started = trio.Event()

    async def produce() -> None:
        host.wake_trio(started.set)
        for i in range(25):
            await bridge.put(i)
            produced.append(i)
        bridge.finish()

    async def probe() -> int:
        # Runs after the producer's first step, which ends when it parks at high water.
        return len(produced)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(host.run, produce)
        await started.wait()
        count = await host.run(probe)
        assert count == 9  # the 10th put is the one waiting
        batches = await _drain(bridge)
    assert [i for b in batches for i in b] == list(range(25))
    assert max(len(b) for b in batches) <= 3


async def test_error_is_raised_after_the_items(host: AioHost) -> None:
    bridge = _bridge()

    async def produce() -> None:
        await bridge.put(1)
        await bridge.put(2)
        bridge.finish(ValueError("broke"))

    await host.run(produce)
    assert list(await bridge.receive_batch()) == [1, 2]
    with pytest.raises(ValueError, match="broke"):
        await bridge.receive_batch()
    seen: list[BaseException | None] = []
    done = trio.Event()
    bridge.add_done_callback(lambda error: (seen.append(error), done.set()))
    assert seen == []  # never synchronously inside add_done_callback
    await done.wait()
    assert len(seen) == 1 and isinstance(seen[0], ValueError)


async def test_released_stream_lets_the_producer_finish_and_keeps_every_item(
    host: AioHost,
) -> None:
    bridge = _bridge(high_water=2)
    started = trio.Event()
    ended: list[BaseException | None] = []
    bridge.add_done_callback(ended.append)

    async def produce() -> str:
        host.wake_trio(started.set)
        for i in range(100):
            await bridge.put(i)
        bridge.finish()
        return "finished"

    async with trio.open_nursery() as nursery:
        result: list[str] = []

        async def run() -> None:
            result.append(await host.run(produce))

        nursery.start_soon(run)
        await started.wait()
        await host.run(asyncio.sleep, 0)  # the producer is parked at high water now
        assert result == []
        bridge.release()
    assert result == ["finished"]
    assert [i for b in await _drain(bridge) for i in b] == list(range(100))
    assert ended == [None]


async def test_cancelled_reader_loses_nothing(host: AioHost) -> None:
    bridge = _bridge()
    with trio.move_on_after(0.01):
        await bridge.receive_batch()  # nothing yet: parks, then is cancelled

    async def produce() -> None:
        await bridge.put(7)
        bridge.finish()

    await host.run(produce)
    assert list(await bridge.receive_batch()) == [7]
    with pytest.raises(trio.EndOfChannel):
        await bridge.receive_batch()


@pytest.mark.parametrize("limits", [{"high_water": 0}, {"batch_max": -1}, {"high_water": True}])
def test_invalid_limits(limits: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        StreamBridge(None, **limits)  # type: ignore[arg-type]
