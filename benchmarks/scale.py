"""Scale: many agents on one runtime, one short turn each; wall time and memory.

Each contender runs in a fresh subprocess (``python -m benchmarks.scale --child
KEY --agents N``) so that its peak RSS is its own; the parent interleaves the
subprocesses over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import resource
import time
from collections.abc import Callable
from typing import Any

import trio

from benchmarks._child import print_figures, run_child
from benchmarks._common import BenchResult, Measure, Metric, Target, fmt
from benchmarks._measure import rss
from benchmarks._rounds import Contender, Context, Timer, compare, timer_metrics
from benchmarks._runtime import open_bench_runtime, run_trio, scripted_backend

NAME = "scale"
TITLE = "Many agents, one short turn each"
DESCRIPTION = (
    "N agents are created at once on one runtime (scripted backend) and each plays one "
    "short turn (the default answer, streamed in 4 chunks) read to the end with "
    "`response.text()`; wall and CPU time from the first `create_agent` to the last "
    "answer. Memory per agent is the growth of the resident set from before the first "
    "agent to when all agents exist and have answered, divided by N; peak RSS is the "
    "process's high-water mark. The baseline is the same work written directly in asyncio "
    "on the scripted backend's own agent objects, in one loop. Every contender runs in its "
    "own subprocess."
)
METRICS = [
    *timer_metrics(unit="s", digits=2),
    Metric("kib_per_agent", "memory per agent", "KiB", digits=1),
    Metric("peak_rss_mib", "peak RSS", "MiB", digits=0),
    Metric("gc_s", "in the cyclic GC", "s", digits=2),
    Metric("shutdown_s", "shutdown", "s", digits=2),
]
GC_THRESHOLD = 100_000


# ---------------------------------------------------------------------------- in the child


async def _agy_body(rt: Any, agents: int) -> Measure:
    answers: list[str] = []
    rss_base = rss()

    async def one() -> None:
        handle = await rt.create_agent()
        answers.append(await (await handle.chat("hi")).text())

    with Timer() as t:
        async with trio.open_nursery() as nursery:
            for _ in range(agents):
                nursery.start_soon(one)
    assert len(answers) == agents and answers[0] == "You said: hi"
    return {**t.figures(unit="s"), "rss_base": rss_base, "rss_live": rss()}


def _agy(make_backend: Callable[[], Any], agents: int, *, guest: bool = False) -> Measure:
    """agy_trio through the public API; the runtime's shutdown timed too."""

    async def main() -> Measure:
        async with open_bench_runtime(make_backend()) as rt:
            out = await _agy_body(rt, agents)
            t = time.perf_counter()
        out["shutdown_s"] = time.perf_counter() - t
        return out

    return run_trio(main, guest=guest)


def _null_backend() -> Any:
    from agy_trio.testing import NullBackend

    # The scripted default answer to "hi", in the same 4 chunks.
    return NullBackend("You said: hi", chunks=4)


def _asyncio(agents: int) -> Measure:
    from benchmarks._asyncio_agents import AsyncioAgents

    async def main() -> Measure:
        world = AsyncioAgents()
        live: list[Any] = []
        answers: list[str] = []
        rss_base = rss()

        async def one() -> None:
            agent = world.create()
            live.append(agent)
            answers.append(await (await world.chat(agent, "hi")).text())

        with Timer() as t:
            await asyncio.gather(*(one() for _ in range(agents)))
        assert len(answers) == agents and answers[0] == "You said: hi"
        out = {**t.figures(unit="s"), "rss_base": rss_base, "rss_live": rss()}
        with Timer() as shutdown:
            await asyncio.gather(*(agent.close() for agent in live))
        out["shutdown_s"] = shutdown.wall
        return out

    return asyncio.run(main())


RUNNERS: dict[str, Callable[[int], Measure]] = {
    "agy_thread": functools.partial(_agy, scripted_backend),
    "agy_guest": functools.partial(
        _agy, functools.partial(scripted_backend, guest=True), guest=True
    ),
    "asyncio": _asyncio,
    "null": functools.partial(_agy, _null_backend),
}


def child_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", required=True, choices=sorted(RUNNERS))
    parser.add_argument("--agents", type=int, required=True)
    parser.add_argument("--gc-threshold", type=int, default=None)
    args = parser.parse_args(argv)
    if args.gc_threshold is not None:
        gc.set_threshold(args.gc_threshold, 50, 100)
    in_gc = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            in_gc[1] = time.perf_counter()
        else:
            in_gc[0] += time.perf_counter() - in_gc[1]

    gc.callbacks.append(on_gc)
    out = RUNNERS[args.child](args.agents)
    gc.callbacks.remove(on_gc)
    out["gc_s"] = in_gc[0]
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print_figures(out)


# ---------------------------------------------------------------------------- in the parent


def _in_child(runner: str, gc_threshold: int | None, agents: int) -> Measure:
    """One run of ``runner`` in a fresh process (its GC's first threshold set, if given)."""
    args = ["--child", runner, "--agents", str(agents)]
    if gc_threshold is not None:
        args += ["--gc-threshold", str(gc_threshold)]
    raw, _ = run_child(NAME, args, timeout=600)
    return {
        "wall_s": raw["wall_s"],
        "cpu_s": raw["cpu_s"],
        "kib_per_agent": (raw["rss_live"] - raw["rss_base"]) / agents / 1024,
        "peak_rss_mib": raw["peak_rss"] / 2**20,
        "gc_s": raw["gc_s"],
        "shutdown_s": raw["shutdown_s"],
    }


def _child(label: str, kind: str, runner: str, note: str, gc: int | None = None) -> Contender:
    return Contender(label, kind, functools.partial(_in_child, runner, gc), note)


RAISED_GC = f"gc.set_threshold({GC_THRESHOLD:,}, 50, 100)"
# Each called with (agents); each run in a fresh process.
CHILDREN: dict[str, Contender] = {
    "agy_thread": _child("agy_trio, thread host", "agy", "agy_thread", "public API, one runtime"),
    "agy_guest": _child("agy_trio, guest mode", "agy", "agy_guest", "public API, one thread"),
    "asyncio": _child(
        "asyncio in-loop (baseline)",
        "baseline",
        "asyncio",
        "scripted agent objects driven directly",
    ),
    "agy_thread_gc": _child(
        "experiment: thread host, gc threshold raised",
        "prototype",
        "agy_thread",
        RAISED_GC,
        GC_THRESHOLD,
    ),
    "null": _child(
        "experiment: runtime over NullBackend",
        "prototype",
        "null",
        "the same public API with no host and no thread: the runtime's own share",
    ),
    "asyncio_gc": _child(
        "experiment: asyncio baseline, gc threshold raised",
        "prototype",
        "asyncio",
        RAISED_GC,
        GC_THRESHOLD,
    ),
}


def run(ctx: Context) -> BenchResult:
    agents, rounds = ctx.pick(1000, 10_000), ctx.pick(2, 3)
    params = {"agents": agents, "rounds": rounds}
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "wall_s", params=params)
    result.rows = compare(ctx, CHILDREN, (agents,), rounds, label=NAME)
    result.targets = targets(result, agents)
    return result


def targets(result: BenchResult, agents: int) -> list[Target]:
    base = result.median("asyncio", "wall_s")
    base_mem = result.median("asyncio", "kib_per_agent")
    base_gc = result.median("asyncio", "gc_s")
    tuned, tuned_base = (
        result.median("agy_thread_gc", "wall_s"),
        result.median("asyncio_gc", "wall_s"),
    )
    null = result.median("null", "wall_s")
    out = []
    for key, label in (("agy_thread", "thread host"), ("agy_guest", "guest mode")):
        value = result.median(key, "wall_s")
        mem = result.median(key, "kib_per_agent")
        in_gc = result.median(key, "gc_s")
        if base is None or value is None:
            continue
        ratio = value / base
        detail = (
            f"{fmt(value, 2)} s vs {fmt(base, 2)} s = {ratio:.2f}x; memory per agent "
            f"{fmt(mem)} KiB (asyncio {fmt(base_mem)} KiB)"
        )
        if ratio > 1.5:
            detail += (
                f". Of the {fmt(value, 2)} s, {fmt(in_gc, 2)} s is CPython's cyclic garbage "
                f"collector (asyncio: {fmt(base_gc, 2)} s), which walks every live object at each "
                "full collection; it runs more often than for the baseline because of the work "
                "in flight during the burst (callers waiting for room in the command channel, "
                "chats waiting for the host)"
            )
            if key == "agy_thread" and tuned is not None and tuned_base is not None:
                detail += (
                    f"; with the GC's first threshold raised to {GC_THRESHOLD:,} in both: "
                    f"{fmt(tuned, 2)} s vs {fmt(tuned_base, 2)} s = {tuned / tuned_base:.2f}x"
                )
            if null is not None:
                detail += (
                    f". The rest is the Trio side's CPU per agent (create_agent, chat and "
                    f"text(), each a command or a read with its scheduler rounds): over "
                    f"NullBackend, with no host at all, the same run takes {fmt(null, 2)} s, "
                    f"{null / base:.2f}x the whole baseline"
                )
            detail += "."
        out.append(
            Target(
                f"{agents:,} agents: at most 1.5x the wall time of plain asyncio ({label})",
                ratio <= 1.5,
                detail,
            )
        )
    return out


if __name__ == "__main__":
    child_main()
