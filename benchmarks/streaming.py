"""Streaming: text chunks per second from the scripted backend through ChatResponse."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import trio

from benchmarks._common import (
    BenchResult,
    Context,
    Metric,
    Row,
    Summary,
    Target,
    Timer,
    fmt,
    interleave,
)

NAME = "streaming"
TITLE = "Streaming chunks through ChatResponse"
DESCRIPTION = (
    "Each agent plays one scripted turn of N one-character text chunks "
    "(`Say(text, chunks=N)`), and a reader consumes it with `async for delta in response`; "
    "time per chunk from the first `chat()` call to the last chunk read by every reader. "
    "The baseline runs the same scripted asyncio producer (the backend's own agent objects "
    "and turn code) into an asyncio queue with the same batching and backpressure, read by a "
    "ChatResponse-shaped asyncio reader: the cost of streaming with no Trio and no crossing."
)
METRICS = [
    Metric("wall_us", "wall time per chunk", "µs", digits=2),
    Metric("cpu_us", "CPU time per chunk", "µs", digits=2),
    Metric("kchunks_s", "throughput", "thousand chunks/s", lower_is_better=False),
]

Measure = dict[str, float]


def _measure(t: Timer, total: int) -> Measure:
    return {
        "wall_us": t.wall / total * 1e6,
        "cpu_us": t.cpu / total * 1e6,
        "kchunks_s": total / t.wall / 1e3,
    }


def _turn(chunks: int) -> Any:
    from agy_trio.testing.scripted import Say, Turn

    turn = Turn([Say("x" * chunks, chunks=chunks)])
    return lambda agent_id, prompt, index: turn


async def _agy_body(rt: Any, agents: int, chunks: int) -> Measure:
    handles = [await rt.create_agent() for _ in range(agents)]
    counts: list[int] = []

    async def consume(handle: Any) -> None:
        response = await handle.chat("go")
        n = 0
        async for _ in response:
            n += 1
        counts.append(n)

    await consume(handles[0])  # warm-up
    counts.clear()
    with Timer() as t:
        async with trio.open_nursery() as nursery:
            for handle in handles:
                nursery.start_soon(consume, handle)
    assert counts == [chunks] * agents, "a reader missed chunks"
    return _measure(t, agents * chunks)


def agy_thread(agents: int, chunks: int) -> Measure:
    import agy_trio
    from agy_trio.testing.scripted import ScriptedBackend

    async def main() -> Measure:
        backend = ScriptedBackend(_turn(chunks))
        async with agy_trio.open_runtime(
            agy_trio.RuntimeConfig(inter_agent_delay=0), backend=backend
        ) as rt:
            return await _agy_body(rt, agents, chunks)

    return trio.run(main)


def agy_guest(agents: int, chunks: int) -> Measure:
    import agy_trio
    from agy_trio.adapters.guest import GuestHost, run_trio_guest
    from agy_trio.testing.scripted import ScriptedBackend

    async def trio_main() -> Measure:
        backend = ScriptedBackend(_turn(chunks), host=GuestHost())
        async with agy_trio.open_runtime(
            agy_trio.RuntimeConfig(inter_agent_delay=0), backend=backend
        ) as rt:
            return await _agy_body(rt, agents, chunks)

    return asyncio.run(run_trio_guest(trio_main))


def asyncio_baseline(agents: int, chunks: int, *, yield_each: bool = False) -> Measure:
    from benchmarks._asyncio_agents import AsyncioAgents

    async def main() -> Measure:
        world = AsyncioAgents(_turn(chunks), yield_each=yield_each)
        handles = [world.create() for _ in range(agents)]
        counts: list[int] = []

        async def consume(agent: Any) -> None:
            response = await world.chat(agent, "go")
            n = 0
            async for _ in response:
                n += 1
            counts.append(n)

        await consume(handles[0])
        counts.clear()
        with Timer() as t:
            await asyncio.gather(*(consume(h) for h in handles))
        assert counts == [chunks] * agents, "a reader missed chunks"
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
    import agy_trio
    from agy_trio.testing import NullBackend

    async def main() -> Measure:
        backend = NullBackend("x" * chunks, chunks=chunks)
        async with agy_trio.open_runtime(
            agy_trio.RuntimeConfig(inter_agent_delay=0), backend=backend
        ) as rt:
            return await _agy_body(rt, agents, chunks)

    return trio.run(main)


CONTENDERS: dict[str, tuple[str, str, Callable[[int, int], Measure], str]] = {
    "agy_thread": ("agy_trio, thread host", "agy", agy_thread, "batches cross the thread"),
    "agy_guest": ("agy_trio, guest mode", "agy", agy_guest, "one thread"),
    "asyncio": (
        "asyncio in-loop (baseline)",
        "baseline",
        asyncio_baseline,
        "same producer, asyncio reader",
    ),
    "asyncio_yield": (
        "experiment: asyncio baseline, reader yields each chunk",
        "prototype",
        functools.partial(asyncio_baseline, yield_each=True),
        "as the baseline, with `await asyncio.sleep(0)` per chunk: asyncio's price for "
        "the schedule point Trio's convention puts in every step",
    ),
    "null_runtime": (
        "experiment: runtime over NullBackend",
        "prototype",
        null_runtime,
        "no producer and no thread: the events exist before the turn starts",
    ),
    "checkpoints": (
        "experiment: Trio checkpoints alone",
        "prototype",
        checkpoints_alone,
        "each reader task only awaits trio.lowlevel.checkpoint() once per chunk: the floor "
        "of any Trio reader that checkpoints every step",
    ),
}


def run(ctx: Context) -> BenchResult:
    rounds = ctx.pick(2, 5)
    scenarios = [
        ("1 agent", 1, ctx.pick(5_000, 50_000)),
        (f"{ctx.pick(100, 1000):,} agents at once", ctx.pick(100, 1000), ctx.pick(50, 100)),
    ]
    rows: list[Row] = []
    for group, agents, chunks in scenarios:
        contenders = [
            (key, functools.partial(fn, agents, chunks))
            for key, (_, _, fn, _) in CONTENDERS.items()
        ]
        data = interleave(ctx, contenders, rounds, label=f"{NAME} [{group}]")
        for key, (label, kind, _, note) in CONTENDERS.items():
            metrics = {m: Summary.of(v) for m, v in data[key].items()}
            rows.append(Row(key, label, kind, metrics, f"{note}; {chunks:,} chunks/agent", group))
    result = BenchResult(
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        metrics=METRICS,
        rows=rows,
        chart_metric="wall_us",
        params={
            "rounds": rounds,
            "scenarios": "; ".join(f"{g}: {a} x {c} chunks" for g, a, c in scenarios),
            "stream_high_water": 1024,
            "stream_batch_max": 256,
        },
    )
    result.targets = targets(result, [g for g, _, _ in scenarios])
    return result


def targets(result: BenchResult, groups: list[str]) -> list[Target]:
    out = []
    for group in groups:

        def m(key: str, metric: str = "wall_us", group: str = group) -> float | None:
            return result.median(key, metric, group)

        base, floor, null, yielding = m("asyncio"), m("checkpoints"), m("null_runtime"), None
        yielding = m("asyncio_yield")
        for key, label in (("agy_thread", "thread host"), ("agy_guest", "guest mode")):
            value = m(key)
            if base is None or value is None:
                continue
            ratio = value / base
            detail = (
                f"{fmt(value, 2)} vs {fmt(base, 2)} µs per chunk = {ratio:.2f}x "
                f"(CPU {fmt(m(key, 'cpu_us'), 2)} vs {fmt(m('asyncio', 'cpu_us'), 2)} µs)"
            )
            if ratio > 2 and floor is not None:
                detail += (
                    f". Trio's convention makes every step of `async for` a checkpoint, a trip "
                    f"through the scheduler: {fmt(floor, 2)} µs per chunk for the checkpoints "
                    f"alone here, {floor / base:.1f}x the baseline's whole cost per chunk, whose "
                    "reader never yields while a batch lasts"
                )
                if yielding is not None:
                    detail += (
                        f" (asyncio's own reader yielding once per chunk: {fmt(yielding, 2)} µs, "
                        f"{yielding / base:.1f}x)"
                    )
                if null is not None:
                    detail += (
                        f". The whole Trio side over NullBackend (no producer, no thread) costs "
                        f"{fmt(null, 2)} µs per chunk"
                    )
                detail += (
                    "; on top come the producer (the same as the baseline's) and the crossing"
                    + (
                        ", a wake-up of the reader each time it parks."
                        if key == "agy_thread"
                        else ", where each Trio scheduler round is also an asyncio loop round."
                    )
                )
            out.append(
                Target(
                    f"streaming, {group}, {label}: at most 2x the asyncio baseline per chunk",
                    ratio <= 2,
                    detail,
                )
            )
    return out
