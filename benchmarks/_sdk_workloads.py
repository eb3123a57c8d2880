"""The real SDK's workload, by the SDK alone and through agy_trio (see :mod:`benchmarks.real_sdk`).

One probe agent streams a slow answer (a chunk every 20 ms); N agents are
started at once; the probe is cancelled; then every agent has two turns (all
at once), every answer checked word for word; then all shut down. Both ways
note the same marks with the same :class:`Record`, so that they differ only
in how they drive the agents: ``asyncio.gather`` over the SDK's ``Agent``, or
agy_trio's public API in Trio.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import Measure, Metric, percentile_metrics, percentiles
from benchmarks._measure import (
    PSS_METRICS,
    ThreadCount,
    harnesses,
    pss_figures,
    python_pss_mib,
)
from benchmarks._offline import ModelServerProcess, offline_world

CHUNK_DELAY = 0.02
PROBE = "STALLPROBE"
# The default reply quotes the prompt in chunks of 8 characters: about 3,000
# chunks, one every 20 ms, a minute of streaming (the probe is cancelled once
# the others have started).
PROBE_PROMPT = PROBE + " " + "w " * 12000
MODEL = "agy-trio-bench"
# The figures of a run (:meth:`Record.figures`) that the comparison's table shows.
METRICS = [
    Metric("start_s", "all agents started", "s", digits=2),
    Metric("total_s", "start + 2 turns each", "s", digits=2),
    *percentile_metrics("turn", "turn latency p{p}", "s", digits=3),
    *PSS_METRICS,
    Metric("stall_ms", "worst stall while the N start", "ms", digits=1),
    Metric("errors", "errors and wrong answers", "", digits=0),
]


def _stall(arrivals: list[float], start: float, started: float) -> float:
    """The worst gap between chunks during the start window, minus the median gap, in ms."""
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    typical = statistics.median(gaps) if gaps else 0.0
    inside = [b - a for a, b in itertools.pairwise(arrivals) if b >= start and a <= started]
    worst = max(inside) if inside else 0.0
    return max(0.0, worst - typical) * 1e3


def _expected(i: int, k: int) -> str:
    return f"You said: agent {i} turn {k}"


class Record:
    """What one run notes down: the probe's chunks, the marks of the phases, the turns."""

    def __init__(self, n: int, threads: ThreadCount) -> None:
        self.n = n
        self.threads = threads
        self.arrivals: list[float] = []
        self.marks: dict[str, float] = {}
        self.latencies: list[float] = []
        self.errors = 0
        self.kinds: collections.Counter[str] = collections.Counter()
        self.before_mib = 0.0

    def chunk(self) -> bool:
        """A chunk of the probe's stream arrived; True at the fifth (it is streaming)."""
        self.arrivals.append(time.perf_counter())
        return len(self.arrivals) == 5

    def starting(self) -> None:
        """The N agents are about to start (the probe agent and every import exist already)."""
        self.before_mib = python_pss_mib()
        self.marks["t0"], self.marks["cpu_t0"] = time.perf_counter(), time.process_time()

    def started(self) -> None:
        self.marks["started"] = time.perf_counter()

    async def two_turns(self, agent: Any, i: int, errors: type[Exception]) -> None:
        """Agent ``i``'s two turns, each answer checked; an ``errors`` exception counts."""
        for k in range(2):
            t = time.perf_counter()
            try:
                text = await (await agent.chat(f"agent {i} turn {k}")).text()
            except errors as exc:
                self.errors += 1
                self.kinds[f"{type(exc).__name__}: {str(exc)[:400]}"] += 1
                continue
            self.errors += text != _expected(i, k)
            self.latencies.append(time.perf_counter() - t)

    def done(self) -> dict[str, float]:
        """Every turn is over: the marks, and the memory of this process and its harnesses."""
        self.marks["done"], self.marks["cpu_done"] = time.perf_counter(), time.process_time()
        self.marks["threads_alive"] = threading.active_count()
        return pss_figures()

    def figures(self, memory: dict[str, float]) -> Measure:
        """The run's figures, from the marks and ``memory`` (as :meth:`done` measured it)."""
        marks, n = self.marks, self.n
        for kind, count in self.kinds.most_common(10):
            print(f"errors: {count} x {kind}", file=sys.stderr)
        turns = percentiles("turn", self.latencies, "s") if self.latencies else {}
        return {
            "start_s": marks["started"] - marks["t0"],
            "total_s": marks["done"] - marks["t0"],
            "turn_p50_s": turns.get("turn_p50_s", 0.0),
            "turn_p95_s": turns.get("turn_p95_s", 0.0),
            "errors": float(self.errors),
            **memory,
            # What the N agents added to the Python process (the probe agent and
            # everything imported were there before).
            "python_kib_per_agent": (memory["python_pss_mib"] - self.before_mib) * 1024 / n,
            "python_cpu_ms_per_agent": (marks["cpu_done"] - marks["cpu_t0"]) * 1e3 / n,
            "threads_alive": float(marks["threads_alive"]),
            "threads_started": float(self.threads.started),
            "stall_ms": _stall(self.arrivals, marks["t0"], marks["started"]),
        }


def _offline_run(n: int, run: Callable[[ModelServerProcess, Path, Record], Measure]) -> Measure:
    """``run`` in a fresh offline world, the probe's prompt streamed slowly, threads counted."""
    with offline_world() as (server, root), ThreadCount() as threads:
        server.add_fault(
            {"kind": "slow", "chunk_delay": CHUNK_DELAY, "match": PROBE, "times": None}
        )
        result = run(server, root, Record(n, threads))
    result["left_running"] = float(len(harnesses()))
    return result


# ---------------------------------------------------------------------------- the SDK alone


def _sdk_config(url: str, root: Path) -> Any:
    from google.antigravity import CapabilitiesConfig, LocalOpenAIAgentConfig
    from google.antigravity.hooks import policy

    for sub in ("save", "app_data", "workspace", "home"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return LocalOpenAIAgentConfig(
        model=MODEL,
        base_url=url,
        capabilities=CapabilitiesConfig(enabled_tools=[], enable_subagents=False),
        policies=[policy.deny_all()],
        workspaces=[str(root / "workspace")],
        save_dir=str(root / "save"),
        app_data_dir=str(root / "app_data"),
        env={"HOME": str(root / "home")},
    )


async def _sdk_open(url: str, root: Path, n: int) -> list[Any]:
    from google.antigravity import Agent

    agents = [Agent(_sdk_config(url, root)) for _ in range(n)]
    results = await asyncio.gather(*(a.__aenter__() for a in agents), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        await _sdk_close(
            [a for a, r in zip(agents, results, strict=True) if not isinstance(r, BaseException)]
        )
        raise RuntimeError(f"{len(failed)} SDK agents failed to start: {failed[0]!r}")
    return agents


async def _sdk_close(agents: list[Any]) -> None:
    await asyncio.gather(*(a.__aexit__(None, None, None) for a in agents), return_exceptions=True)


def sdk_workload(n: int) -> Measure:
    """The SDK alone: N agents in one asyncio loop, a probe streaming meanwhile."""

    def run(server: ModelServerProcess, root: Path, record: Record) -> Measure:
        async def main() -> Measure:
            (probe,) = await _sdk_open(server.url, root, 1)
            agents: list[Any] = []
            try:
                response = await probe.chat(PROBE_PROMPT)
                streaming = asyncio.Event()

                async def read() -> None:
                    with contextlib.suppress(BaseException):
                        async for _ in response:
                            if record.chunk():
                                streaming.set()

                reader = asyncio.create_task(read())
                await streaming.wait()
                record.starting()
                agents = await _sdk_open(server.url, root, n)
                record.started()
                with contextlib.suppress(BaseException):
                    await response.cancel()
                await reader
                turns = (record.two_turns(a, i, Exception) for i, a in enumerate(agents))
                await asyncio.gather(*turns)
                memory = record.done()
            finally:
                await _sdk_close([*agents, probe])
            return record.figures(memory)

        return asyncio.run(main())

    return _offline_run(n, run)


# ---------------------------------------------------------------------------- through agy_trio


def agy_workload(
    n: int, agents_per_harness: int | None = None, harness_processes: int | None = None
) -> Measure:
    """agy_trio's public API: N agents, a probe streaming meanwhile."""
    import agy_trio
    from agy_trio.adapters.antigravity import AntigravityBackend
    from benchmarks._runtime import open_bench_runtime

    # Live conversations throughout: hibernation has a comparison of its own.
    options: dict[str, Any] = {"hibernate_after": None}
    if agents_per_harness is not None:
        options["agents_per_harness"] = agents_per_harness
    if harness_processes is not None:
        options["harness_processes"] = harness_processes

    def run(server: ModelServerProcess, root: Path, record: Record) -> Measure:
        def config(i: int) -> agy_trio.AgentConfig:
            return agy_trio.AgentConfig(name=f"bench-{i}", model=MODEL, base_url=server.url)

        async def main() -> Measure:
            backend = AntigravityBackend(base_dir=root / "agy", **options)
            async with open_bench_runtime(backend, chat_timeout=600) as rt:
                probe = await rt.create_agent(config(-1))
                response = await probe.chat(PROBE_PROMPT)
                handles: list[Any] = [None] * n
                async with trio.open_nursery() as nursery:
                    streaming = trio.Event()

                    async def read() -> None:
                        async for _ in response:
                            if record.chunk():
                                streaming.set()

                    nursery.start_soon(read)
                    await streaming.wait()
                    record.starting()
                    async with trio.open_nursery() as starts:
                        for i in range(n):

                            async def one(i: int = i) -> None:
                                handles[i] = await rt.create_agent(config(i))

                            starts.start_soon(one)
                    record.started()
                    await response.cancel()
                async with trio.open_nursery() as nursery:
                    for i, handle in enumerate(handles):
                        nursery.start_soon(record.two_turns, handle, i, agy_trio.AgyError)
                memory = record.done()
                memory["harnesses"] = float(len(backend.harness_pids()))
            return record.figures(memory)

        return trio.run(main)

    return _offline_run(n, run)


def run_one(contender: str, n: int) -> Measure:
    """One run of ``contender`` (a key of ``real_sdk.CONTENDERS``, or ``agy_<per>x<procs>``)."""
    if contender == "sdk":
        return sdk_workload(n)
    if contender == "agy":
        return agy_workload(n)
    if contender == "agy_solo":
        return agy_workload(n, agents_per_harness=1)
    match = re.fullmatch(r"agy_(\d+)x(\d+)", contender)
    if match:  # agy_<agents per harness>x<harness processes>
        return agy_workload(n, int(match.group(1)), int(match.group(2)))
    raise ValueError(f"unknown contender {contender!r}")
