"""each_within: many calls at once, cut short at a deadline."""

from __future__ import annotations

import trio
import trio.testing

from agy_trio.core.fan_out import each_within


async def test_every_call_runs_concurrently_and_finishing_in_time_is_true(
    autojump_clock: trio.testing.MockClock,
) -> None:
    done: list[int] = []

    async def work(seconds: int) -> None:
        await trio.sleep(seconds)
        done.append(seconds)

    start = trio.current_time()
    assert await each_within(5, work, [3, 1, 2]) is True
    assert done == [1, 2, 3]
    assert trio.current_time() - start == 3  # concurrently, not 6 s in a row


async def test_a_call_past_the_deadline_is_cancelled_and_the_answer_is_false(
    autojump_clock: trio.testing.MockClock,
) -> None:
    done: list[int] = []
    cancelled: list[int] = []

    async def work(seconds: int) -> None:
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            cancelled.append(seconds)
            raise
        done.append(seconds)

    start = trio.current_time()
    assert await each_within(5, work, [1, 60]) is False
    assert done == [1]
    assert cancelled == [60]
    assert trio.current_time() - start == 5


async def test_no_items_is_true_at_once() -> None:
    async def never(_item: object) -> None:
        raise AssertionError("not called")

    assert await each_within(1, never, []) is True
