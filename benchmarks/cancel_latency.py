"""Cancel latency: from cancelling a Trio reader of a hung turn to the turn stopped in asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

import trio
import trio.testing

from benchmarks._common import (
    BenchResult,
    Context,
    Metric,
    Row,
    Summary,
    Target,
    fmt,
    interleave,
    percentile,
)

NAME = "cancel_latency"
TITLE = "Cancel latency across the boundary"
DESCRIPTION = (
    "A reader iterates a chat whose scripted turn sends one chunk and then hangs "
    "(`Turn([Say(...), Hang()])`). Once the reader is parked waiting for the next chunk, its "
    "cancel scope is cancelled. Measured with `perf_counter` on both sides: the time until "
    "the turn's asyncio task has finished (a done-callback on the host loop, installed "
    "through the public `backend.host.run`; `ScriptedBackend.cancel_calls` confirms the "
    "backend's own cancel ran), and the time until the cancelled reader has unwound "
    "in Trio. p50 and p99 per round, summarised over rounds; the targets use every sample "
    "of every round pooled. The floor does the same in one asyncio loop: cancel the reader "
    "task, call the backend's cancel, wait for the turn task."
)
METRICS = [
    Metric("stopped_p50_us", "turn stopped, p50", "µs"),
    Metric("stopped_p99_us", "turn stopped, p99", "µs"),
    Metric("unwound_p50_us", "reader unwound, p50", "µs"),
    Metric("unwound_p99_us", "reader unwound, p99", "µs"),
]

Samples = list[tuple[float, float]]  # (stopped, unwound) in µs


def _hang_script() -> Any:
    from agy_trio.testing.scripted import Hang, Say, Turn

    turn = Turn([Say("started", chunks=1), Hang()])
    return lambda agent_id, prompt, index: turn


async def _watch_turns(marks: dict[str, float]) -> list[Any]:
    """On the host loop: note when the first task now alive there (the hung turn) finishes.

    Returns the tasks watched, so that :func:`_unwatch` can take the callbacks off.
    """
    current = asyncio.current_task()

    def stopped(_: Any) -> None:
        marks.setdefault("stopped", time.perf_counter())

    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.add_done_callback(stopped)
    marks["watching"] = len(tasks)
    return [(task, stopped) for task in tasks]


async def _unwatch(watched: list[Any]) -> None:
    for task, callback in watched:
        task.remove_done_callback(callback)


async def _agy_samples(rt: Any, backend: Any, n: int, warmup: int) -> Samples:
    agent = await rt.create_agent()
    host = backend.host
    marks: dict[str, float] = {}
    samples: Samples = []
    for i in range(warmup + n):
        cancels_before = backend.cancel_calls
        response = await agent.chat("hang")
        first = trio.Event()

        async def reader(
            task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
            response: Any = response,
            first: trio.Event = first,
        ) -> None:
            with trio.CancelScope() as scope:
                task_status.started(scope)
                async for _ in response:
                    first.set()

        marks.clear()
        async with trio.open_nursery() as nursery:
            scope = await nursery.start(reader)
            await first.wait()
            # Through the host's public door: the turn's asyncio task is on its loop.
            watched = await host.run(_watch_turns, marks)
            await trio.testing.wait_all_tasks_blocked()
            t0 = time.perf_counter()
            scope.cancel()
        unwound = time.perf_counter()
        await host.run(_unwatch, watched)
        assert backend.cancel_calls == cancels_before + 1, "the backend's cancel was not called"
        assert marks["watching"] >= 1 and marks["stopped"] >= t0, marks
        if i >= warmup:
            samples.append(((marks["stopped"] - t0) * 1e6, (unwound - t0) * 1e6))
    return samples


def agy_thread(n: int, warmup: int) -> Samples:
    import agy_trio
    from agy_trio.testing.scripted import ScriptedBackend

    async def main() -> Samples:
        backend = ScriptedBackend(_hang_script())
        async with agy_trio.open_runtime(
            agy_trio.RuntimeConfig(inter_agent_delay=0), backend=backend
        ) as rt:
            return await _agy_samples(rt, backend, n, warmup)

    return trio.run(main)


def agy_guest(n: int, warmup: int) -> Samples:
    import agy_trio
    from agy_trio.adapters.guest import GuestHost, run_trio_guest
    from agy_trio.testing.scripted import ScriptedBackend

    async def trio_main() -> Samples:
        backend = ScriptedBackend(_hang_script(), host=GuestHost())
        async with agy_trio.open_runtime(
            agy_trio.RuntimeConfig(inter_agent_delay=0), backend=backend
        ) as rt:
            return await _agy_samples(rt, backend, n, warmup)

    return asyncio.run(run_trio_guest(trio_main))


def asyncio_floor(n: int, warmup: int) -> Samples:
    from benchmarks._asyncio_agents import AsyncioAgents

    async def main() -> Samples:
        world = AsyncioAgents(_hang_script())
        agent = world.create()
        samples: Samples = []
        for i in range(warmup + n):
            response = await world.chat(agent, "hang")
            turn = response.turn
            assert turn is not None
            first = asyncio.Event()

            async def read(response: Any = response, first: asyncio.Event = first) -> None:
                async for _ in response:
                    first.set()

            reader = asyncio.create_task(read())
            await first.wait()
            for _ in range(3):
                await asyncio.sleep(0)
            t0 = time.perf_counter()
            reader.cancel()
            await agent.cancel_turns([turn])
            stopped = time.perf_counter()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            unwound = time.perf_counter()
            if i >= warmup:
                samples.append(((stopped - t0) * 1e6, (unwound - t0) * 1e6))
        return samples

    return asyncio.run(main())


CONTENDERS: dict[str, tuple[str, str, Callable[[int, int], Samples], str]] = {
    "agy_thread": ("agy_trio, thread host", "agy", agy_thread, "the reader's cancel scope"),
    "agy_guest": ("agy_trio, guest mode", "agy", agy_guest, "the reader's cancel scope"),
    "asyncio": (
        "asyncio in-loop (floor)",
        "baseline",
        asyncio_floor,
        "task.cancel() + the backend's cancel",
    ),
}


def run(ctx: Context) -> BenchResult:
    rounds = ctx.pick(2, 5)
    n = ctx.pick(40, 300)
    warmup = ctx.pick(5, 20)
    pooled: dict[str, Samples] = {key: [] for key in CONTENDERS}

    def one(key: str) -> dict[str, float]:
        samples = CONTENDERS[key][2](n, warmup)
        pooled[key].extend(samples)
        stopped = [s for s, _ in samples]
        unwound = [u for _, u in samples]
        return {
            "stopped_p50_us": percentile(stopped, 50),
            "stopped_p99_us": percentile(stopped, 99),
            "unwound_p50_us": percentile(unwound, 50),
            "unwound_p99_us": percentile(unwound, 99),
        }

    data = interleave(
        ctx, [(key, functools.partial(one, key)) for key in CONTENDERS], rounds, label=NAME
    )
    rows = [
        Row(key, label, kind, {m: Summary.of(v) for m, v in data[key].items()}, note)
        for key, (label, kind, _, note) in CONTENDERS.items()
    ]
    result = BenchResult(
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        metrics=METRICS,
        rows=rows,
        chart_metric="stopped_p99_us",
        params={"rounds": rounds, "samples per round": n, "warm-up samples": warmup},
    )
    pooled_stats: dict[str, dict[str, float]] = {}
    for key, samples in pooled.items():
        stopped = [s for s, _ in samples]
        unwound = [u for _, u in samples]
        pooled_stats[key] = {
            "n": len(samples),
            "stopped_p50_us": percentile(stopped, 50),
            "stopped_p99_us": percentile(stopped, 99),
            "stopped_max_us": max(stopped),
            "unwound_p50_us": percentile(unwound, 50),
            "unwound_p99_us": percentile(unwound, 99),
            "unwound_max_us": max(unwound),
        }
    result.extra["pooled"] = pooled_stats
    result.notes = [
        f"{CONTENDERS[k][0]}, all {int(s['n'])} samples pooled: turn stopped p50 "
        f"{fmt(s['stopped_p50_us'])} / p99 {fmt(s['stopped_p99_us'])} / max "
        f"{fmt(s['stopped_max_us'])} µs; reader unwound p50 {fmt(s['unwound_p50_us'])} / "
        f"p99 {fmt(s['unwound_p99_us'])} / max {fmt(s['unwound_max_us'])} µs."
        for k, s in pooled_stats.items()
    ]
    result.targets = [
        Target(
            f"cancel latency p99 under 1 ms ({CONTENDERS[key][0].split(', ')[1]})",
            pooled_stats[key]["stopped_p99_us"] < 1000,
            f"p99 {fmt(pooled_stats[key]['stopped_p99_us'])} µs to the turn stopped, "
            f"{fmt(pooled_stats[key]['unwound_p99_us'])} µs to the reader unwound "
            f"({int(pooled_stats[key]['n'])} samples)",
        )
        for key in ("agy_thread", "agy_guest")
    ]
    return result
