"""Streaming: text chunks per second from the scripted backend through ChatResponse."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from typing import Any

import trio

from benchmarks._common import BenchResult, Measure, Metric, Target, fmt
from benchmarks._rounds import Contender, Context, Timer, compare, timer_metrics
from benchmarks._runtime import on_runtime, on_scripted

NAME = "streaming"
TITLE = "Streaming a long answer through ChatResponse: tokens per second"
DESCRIPTION = (
    "Each agent plays one scripted turn of N one-character text deltas (tokens) "
    "(`Say(text, chunks=N)`), and a reader consumes it: either `async for delta in response` "
    "(one delta per step) or `async for text in response.text_batches()` (every delta already "
    "there, joined, per step); tokens per second and time per token from the first `chat()` "
    "call to the last token read by every reader. The baselines run the same scripted asyncio "
    "producer (the backend's own agent objects and turn code) into an asyncio queue with the "
    "same batching and backpressure, read by a ChatResponse-shaped asyncio reader that never "
    "yields while a batch lasts: per delta, and per batch (asyncio at its best). No Trio and "
    "no crossing."
)
METRICS = [
    *timer_metrics("token", digits=2),
    Metric("ktokens_s", "throughput", "thousand tokens/s", lower_is_better=False),
]


def _measure(t: Timer, total: int) -> Measure:
    return {**t.figures(total), "ktokens_s": total / t.wall / 1e3}


def _turn(chunks: int) -> Any:
    from agy_trio.testing.scripted import Say, Turn

    turn = Turn([Say("x" * chunks, chunks=chunks)])
    return lambda agent_id, prompt, index: turn


def _reader(response: Any, batches: bool) -> Any:
    return response.text_batches() if batches else response


async def _agy_body(rt: Any, agents: int, chunks: int, batches: bool = False) -> Measure:
    handles = [await rt.create_agent() for _ in range(agents)]
    counts: list[int] = []

    async def consume(handle: Any) -> None:
        response = await handle.chat("go")
        n = 0
        async for text in _reader(response, batches):
            n += len(text)
        counts.append(n)

    await consume(handles[0])  # warm-up
    counts.clear()
    with Timer() as t:
        async with trio.open_nursery() as nursery:
            for handle in handles:
                nursery.start_soon(consume, handle)
    assert counts == [chunks] * agents, "a reader missed tokens"
    return _measure(t, agents * chunks)


def agy(agents: int, chunks: int, *, guest: bool = False, batches: bool = False) -> Measure:
    """agy_trio through the public API, on its thread host or in guest mode."""

    def body(rt: Any, _: Any) -> Awaitable[Measure]:
        return _agy_body(rt, agents, chunks, batches)

    return on_scripted(body, _turn(chunks), guest=guest)


def asyncio_baseline(
    agents: int, chunks: int, *, yield_each: bool = False, batches: bool = False
) -> Measure:
    from benchmarks._asyncio_agents import AsyncioAgents

    async def main() -> Measure:
        world = AsyncioAgents(_turn(chunks), yield_each=yield_each)
        handles = [world.create() for _ in range(agents)]
        counts: list[int] = []

        async def consume(agent: Any) -> None:
            response = await world.chat(agent, "go")
            n = 0
            async for text in _reader(response, batches):
                n += len(text)
            counts.append(n)

        await consume(handles[0])
        counts.clear()
        with Timer() as t:
            await asyncio.gather(*(consume(h) for h in handles))
        assert counts == [chunks] * agents, "a reader missed tokens"
        return _measure(t, agents * chunks)

    return asyncio.run(main())


def checkpoints_alone(agents: int, chunks: int) -> Measure:
    """One Trio checkpoint per chunk, by as many tasks as there are readers, and nothing else."""

    async def main() -> Measure:
        checkpoint = trio.lowlevel.checkpoint

        async def reader() -> None:
            for _ in range(chunks):
                await checkpoint()

        await reader()  # warm-up, as the others
        with Timer() as t:
            async with trio.open_nursery() as nursery:
                for _ in range(agents):
                    nursery.start_soon(reader)
        return _measure(t, agents * chunks)

    return trio.run(main)


def null_runtime(agents: int, chunks: int) -> Measure:
    """The runtime and ChatResponse over NullBackend: the Trio side alone, no producer."""
    from agy_trio.testing import NullBackend

    def backend() -> Any:
        return NullBackend("x" * chunks, chunks=chunks)

    return on_runtime(backend, lambda rt, _: _agy_body(rt, agents, chunks))


# Each called with (agents, tokens per agent).
CONTENDERS: dict[str, Contender] = {
    "agy_thread_batches": Contender(
        "agy_trio, thread host, text_batches()",
        "agy",
        functools.partial(agy, batches=True),
        "batches cross the thread; one step per batch",
    ),
    "agy_guest_batches": Contender(
        "agy_trio, guest mode, text_batches()",
        "agy",
        functools.partial(agy, guest=True, batches=True),
        "one thread; one step per batch",
    ),
    "agy_thread": Contender(
        "agy_trio, thread host, per delta",
        "agy",
        agy,
        "batches cross the thread; `async for delta in response`, one step per delta",
    ),
    "agy_guest": Contender(
        "agy_trio, guest mode, per delta",
        "agy",
        functools.partial(agy, guest=True),
        "one thread; `async for delta in response`, one step per delta",
    ),
    "asyncio_batches": Contender(
        "asyncio in-loop, per batch (baseline at its best)",
        "baseline",
        functools.partial(asyncio_baseline, batches=True),
        "same producer, asyncio reader handing over each batch's text joined",
    ),
    "asyncio": Contender(
        "asyncio in-loop, per delta (baseline)",
        "baseline",
        asyncio_baseline,
        "same producer, asyncio reader handing over one delta per step",
    ),
    "asyncio_yield": Contender(
        "experiment: asyncio baseline, reader yields each delta",
        "prototype",
        functools.partial(asyncio_baseline, yield_each=True),
        "as the per-delta baseline, with `await asyncio.sleep(0)` per delta: asyncio's price "
        "for the schedule point Trio's convention puts in every step",
    ),
    "null_runtime": Contender(
        "experiment: runtime over NullBackend, per delta",
        "prototype",
        null_runtime,
        "no producer and no thread: the events exist before the turn starts",
    ),
    "checkpoints": Contender(
        "experiment: Trio checkpoints alone",
        "prototype",
        checkpoints_alone,
        "each reader task only awaits trio.lowlevel.checkpoint() once per delta: the floor "
        "of any Trio reader that checkpoints every delta",
    ),
}


def run(ctx: Context) -> BenchResult:
    rounds = ctx.pick(2, 5)
    scenarios = [
        ("1 agent", 1, ctx.pick(5_000, 100_000)),
        (f"{ctx.pick(100, 1000):,} agents at once", ctx.pick(100, 1000), ctx.pick(50, 100)),
    ]
    params = {
        "rounds": rounds,
        "scenarios": "; ".join(f"{g}: {a} x {c:,} tokens" for g, a, c in scenarios),
        "stream_high_water": 1024,
        "stream_batch_max": 256,
    }
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "wall_us", params=params)
    for group, agents, chunks in scenarios:
        result.rows += compare(
            ctx,
            CONTENDERS,
            (agents, chunks),
            rounds,
            label=f"{NAME} [{group}]",
            group=group,
            note=f"; {chunks:,} tokens/agent",
        )
    result.targets = targets(result, [g for g, _, _ in scenarios])
    return result


def targets(result: BenchResult, groups: list[str]) -> list[Target]:
    out = []
    for group in groups:

        def m(key: str, metric: str = "wall_us", group: str = group) -> float | None:
            return result.median(key, metric, group)

        per_batch, per_delta = m("asyncio_batches", "cpu_us"), m("asyncio", "cpu_us")
        if per_batch is None or per_delta is None:
            continue
        best_key = "asyncio_batches" if per_batch <= per_delta else "asyncio"
        best = min(per_batch, per_delta)
        for key, label in (
            ("agy_thread_batches", "thread host"),
            ("agy_guest_batches", "guest mode"),
        ):
            value = m(key, "cpu_us")
            wall, best_wall = m(key, "wall_us"), m(best_key, "wall_us")
            if value is None or wall is None or best_wall is None:
                continue
            ratio = value / best
            out.append(
                Target(
                    f"streaming, {group}, {label}, text_batches(): at most 1.5x the CPU cost "
                    "per token of asyncio at its best",
                    ratio <= 1.5,
                    f"CPU {fmt(value, 2)} vs {fmt(best, 2)} µs per token = {ratio:.2f}x; "
                    f"wall {fmt(wall, 2)} vs {fmt(best_wall, 2)} µs per token "
                    f"({fmt(1e3 / wall, 0)} vs {fmt(1e3 / best_wall, 0)} thousand tokens/s, "
                    f"{wall / best_wall:.2f}x); the best asyncio reader here: {best_key}",
                )
            )
        per_delta = m("asyncio")
        if per_delta is None:
            continue
        floor, yielding = m("checkpoints"), m("asyncio_yield")
        for key, label in (("agy_thread", "thread host"), ("agy_guest", "guest mode")):
            value = m(key)
            if value is None:
                continue
            ratio = value / per_delta
            detail = (
                f"{fmt(value, 2)} vs {fmt(per_delta, 2)} µs per delta = {ratio:.2f}x "
                f"(CPU {fmt(m(key, 'cpu_us'), 2)} vs {fmt(m('asyncio', 'cpu_us'), 2)} µs)"
            )
            if ratio > 2 and floor is not None:
                detail += (
                    f". Every step of `async for` over a response is a Trio checkpoint, a trip "
                    f"through the scheduler: {fmt(floor, 2)} µs per delta for the checkpoints "
                    f"alone, {floor / per_delta:.1f}x the baseline's whole cost per delta"
                    + (
                        f" (asyncio's reader yielding once per delta: {fmt(yielding, 2)} µs)"
                        if yielding is not None
                        else ""
                    )
                    + ". Readers that want throughput use text_batches(), one step per batch."
                )
            out.append(
                Target(
                    f"streaming, {group}, {label}, per delta: at most 2x the asyncio per-delta "
                    "reader",
                    ratio <= 2,
                    detail,
                )
            )
    return out
