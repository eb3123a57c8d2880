"""Cancel latency: from cancelling a Trio reader of a hung turn to the turn stopped in asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import Any

import trio
import trio.testing

from benchmarks._common import BenchResult, Measure, Target, fmt, percentile_metrics, percentiles
from benchmarks._rounds import Contender, Context, compare
from benchmarks._runtime import on_scripted

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
POINTS = (50, 99)
METRICS = [
    *percentile_metrics("stopped", "turn stopped, p{p}", "µs", POINTS),
    *percentile_metrics("unwound", "reader unwound, p{p}", "µs", POINTS),
]

Samples = list[tuple[float, float]]  # (stopped, unwound) in seconds


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
            samples.append((marks["stopped"] - t0, unwound - t0))
    return samples


def agy(n: int, warmup: int, *, guest: bool = False) -> Samples:
    """agy_trio through the public API, on its thread host or in guest mode."""
    return on_scripted(
        lambda rt, backend: _agy_samples(rt, backend, n, warmup), _hang_script(), guest=guest
    )


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
                samples.append((stopped - t0, unwound - t0))
        return samples

    return asyncio.run(main())


# Each called with (samples, warm-up samples).
CONTENDERS: dict[str, Contender] = {
    "agy_thread": Contender("agy_trio, thread host", "agy", agy, "the reader's cancel scope"),
    "agy_guest": Contender(
        "agy_trio, guest mode",
        "agy",
        functools.partial(agy, guest=True),
        "the reader's cancel scope",
    ),
    "asyncio": Contender(
        "asyncio in-loop (floor)",
        "baseline",
        asyncio_floor,
        "task.cancel() + the backend's cancel",
    ),
}


def _figures(samples: Samples) -> Measure:
    """The percentiles of the turn stopped and the reader unwound, in µs."""
    stopped, unwound = [s for s, _ in samples], [u for _, u in samples]
    return {
        **percentiles("stopped", stopped, "µs", POINTS),
        **percentiles("unwound", unwound, "µs", POINTS),
    }


def run(ctx: Context) -> BenchResult:
    rounds, n, warmup = ctx.pick(2, 5), ctx.pick(40, 300), ctx.pick(5, 20)
    pooled: dict[str, Samples] = {key: [] for key in CONTENDERS}

    def pooling(key: str, n: int, warmup: int) -> Measure:
        samples = CONTENDERS[key].run(n, warmup)
        pooled[key].extend(samples)
        return _figures(samples)

    # Each round's own percentiles for the rows; every sample pooled for the targets.
    contenders = {k: c._replace(run=functools.partial(pooling, k)) for k, c in CONTENDERS.items()}
    params = {"rounds": rounds, "samples per round": n, "warm-up samples": warmup}
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "stopped_p99_us", params=params)
    result.rows = compare(ctx, contenders, (n, warmup), rounds, label=NAME)
    pooled_stats: dict[str, dict[str, float]] = {}
    for key, samples in pooled.items():
        pooled_stats[key] = {
            "n": len(samples),
            **_figures(samples),
            "stopped_max_us": max(s for s, _ in samples) * 1e6,
            "unwound_max_us": max(u for _, u in samples) * 1e6,
        }
    result.extra["pooled"] = pooled_stats
    result.notes = [
        f"{CONTENDERS[k].label}, all {int(s['n'])} samples pooled: turn stopped p50 "
        f"{fmt(s['stopped_p50_us'])} / p99 {fmt(s['stopped_p99_us'])} / max "
        f"{fmt(s['stopped_max_us'])} µs; reader unwound p50 {fmt(s['unwound_p50_us'])} / "
        f"p99 {fmt(s['unwound_p99_us'])} / max {fmt(s['unwound_max_us'])} µs."
        for k, s in pooled_stats.items()
    ]
    result.targets = [
        Target(
            f"cancel latency p99 under 1 ms ({CONTENDERS[key].label.split(', ')[1]})",
            pooled_stats[key]["stopped_p99_us"] < 1000,
            f"p99 {fmt(pooled_stats[key]['stopped_p99_us'])} µs to the turn stopped, "
            f"{fmt(pooled_stats[key]['unwound_p99_us'])} µs to the reader unwound "
            f"({int(pooled_stats[key]['n'])} samples)",
        )
        for key in ("agy_thread", "agy_guest")
    ]
    return result
