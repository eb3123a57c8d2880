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
import json
import resource
import subprocess
import sys
import time
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
    fmt,
    interleave,
)
from benchmarks._worker import ROOT

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
    Metric("wall_s", "wall time", "s", digits=2),
    Metric("cpu_s", "CPU time", "s", digits=2),
    Metric("kib_per_agent", "memory per agent", "KiB", digits=1),
    Metric("peak_rss_mib", "peak RSS", "MiB", digits=0),
    Metric("gc_s", "in the cyclic GC", "s", digits=2),
    Metric("shutdown_s", "shutdown", "s", digits=2),
]
GC_THRESHOLD = 100_000


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


# ---------------------------------------------------------------------------- in the child


async def _agy_body(rt: Any, agents: int) -> dict[str, float]:
    answers: list[str] = []
    rss_base = _rss()
    t0, c0 = time.perf_counter(), time.process_time()

    async def one() -> None:
        handle = await rt.create_agent()
        answers.append(await (await handle.chat("hi")).text())

    async with trio.open_nursery() as nursery:
        for _ in range(agents):
            nursery.start_soon(one)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert len(answers) == agents and answers[0] == "You said: hi"
    rss_live = _rss()
    return {"wall_s": wall, "cpu_s": cpu, "rss_base": rss_base, "rss_live": rss_live}


def _agy_thread(agents: int) -> dict[str, float]:
    import agy_trio
    from agy_trio.testing.scripted import ScriptedBackend

    async def main() -> dict[str, float]:
        async with agy_trio.open_runtime(
            agy_trio.RuntimeConfig(inter_agent_delay=0), backend=ScriptedBackend()
        ) as rt:
            out = await _agy_body(rt, agents)
            t = time.perf_counter()
        out["shutdown_s"] = time.perf_counter() - t
        return out

    return trio.run(main)


def _agy_guest(agents: int) -> dict[str, float]:
    import agy_trio
    from agy_trio.adapters.guest import GuestHost, run_trio_guest
    from agy_trio.testing.scripted import ScriptedBackend

    async def trio_main() -> dict[str, float]:
        backend = ScriptedBackend(host=GuestHost())
        async with agy_trio.open_runtime(
            agy_trio.RuntimeConfig(inter_agent_delay=0), backend=backend
        ) as rt:
            out = await _agy_body(rt, agents)
            t = time.perf_counter()
        out["shutdown_s"] = time.perf_counter() - t
        return out

    return asyncio.run(run_trio_guest(trio_main))


def _null(agents: int) -> dict[str, float]:
    import agy_trio
    from agy_trio.testing import NullBackend

    async def main() -> dict[str, float]:
        # The scripted default answer to "hi", in the same 4 chunks.
        backend = NullBackend("You said: hi", chunks=4)
        async with agy_trio.open_runtime(
            agy_trio.RuntimeConfig(inter_agent_delay=0), backend=backend
        ) as rt:
            out = await _agy_body(rt, agents)
            t = time.perf_counter()
        out["shutdown_s"] = time.perf_counter() - t
        return out

    return trio.run(main)


def _asyncio(agents: int) -> dict[str, float]:
    from benchmarks._asyncio_agents import AsyncioAgents

    async def main() -> dict[str, float]:
        world = AsyncioAgents()
        live: list[Any] = []
        answers: list[str] = []
        rss_base = _rss()
        t0, c0 = time.perf_counter(), time.process_time()

        async def one() -> None:
            agent = world.create()
            live.append(agent)
            answers.append(await (await world.chat(agent, "hi")).text())

        await asyncio.gather(*(one() for _ in range(agents)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert len(answers) == agents and answers[0] == "You said: hi"
        rss_live = _rss()
        t = time.perf_counter()
        await asyncio.gather(*(agent.close() for agent in live))
        return {
            "wall_s": wall,
            "cpu_s": cpu,
            "rss_base": rss_base,
            "rss_live": rss_live,
            "shutdown_s": time.perf_counter() - t,
        }

    return asyncio.run(main())


RUNNERS: dict[str, Callable[[int], dict[str, float]]] = {
    "agy_thread": _agy_thread,
    "agy_guest": _agy_guest,
    "asyncio": _asyncio,
    "null": _null,
}

# key -> (label, kind, runner, note, gc gen-0 threshold or None for the default)
CHILDREN: dict[str, tuple[str, str, str, str, int | None]] = {
    "agy_thread": ("agy_trio, thread host", "agy", "agy_thread", "public API, one runtime", None),
    "agy_guest": ("agy_trio, guest mode", "agy", "agy_guest", "public API, one thread", None),
    "asyncio": (
        "asyncio in-loop (baseline)",
        "baseline",
        "asyncio",
        "scripted agent objects driven directly",
        None,
    ),
    "agy_thread_gc": (
        "experiment: thread host, gc threshold raised",
        "prototype",
        "agy_thread",
        f"gc.set_threshold({GC_THRESHOLD:,}, 50, 100)",
        GC_THRESHOLD,
    ),
    "null": (
        "experiment: runtime over NullBackend",
        "prototype",
        "null",
        "the same public API with no host and no thread: the runtime's own share",
        None,
    ),
    "asyncio_gc": (
        "experiment: asyncio baseline, gc threshold raised",
        "prototype",
        "asyncio",
        f"gc.set_threshold({GC_THRESHOLD:,}, 50, 100)",
        GC_THRESHOLD,
    ),
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
    print(json.dumps(out))


# ---------------------------------------------------------------------------- in the parent


def _run_child(key: str, agents: int) -> dict[str, float]:
    _, _, runner, _, threshold = CHILDREN[key]
    command = [sys.executable, "-m", "benchmarks.scale", "--child", runner, "--agents", str(agents)]
    if threshold is not None:
        command += ["--gc-threshold", str(threshold)]
    proc = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scale child {key} failed:\n{proc.stderr[-3000:]}")
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "wall_s": raw["wall_s"],
        "cpu_s": raw["cpu_s"],
        "kib_per_agent": (raw["rss_live"] - raw["rss_base"]) / agents / 1024,
        "peak_rss_mib": raw["peak_rss"] / 2**20,
        "gc_s": raw["gc_s"],
        "shutdown_s": raw["shutdown_s"],
    }


def run(ctx: Context) -> BenchResult:
    agents = ctx.pick(1000, 10_000)
    rounds = ctx.pick(2, 3)
    contenders = [(key, functools.partial(_run_child, key, agents)) for key in CHILDREN]
    data = interleave(ctx, contenders, rounds, label=NAME)
    rows = [
        Row(key, label, kind, {m: Summary.of(v) for m, v in data[key].items()}, note)
        for key, (label, kind, _, note, _) in CHILDREN.items()
    ]
    result = BenchResult(
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        metrics=METRICS,
        rows=rows,
        chart_metric="wall_s",
        params={"agents": agents, "rounds": rounds},
    )
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
