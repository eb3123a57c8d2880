"""The real SDK: google-antigravity agents on the local model server, with and without agy_trio.

Everything runs offline: the local OpenAI-compatible model server
(``python -m agy_trio.testing.model_server``) runs in its own process, fresh
for every contender run, so neither contender shares its event loop or its
CPU thread with the server. ``GEMINI_API_KEY`` is unset, and every folder the
harness touches (``HOME``, save_dir, app_data_dir, workspace) is a temporary
folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
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
    percentile,
)
from benchmarks._worker import ROOT

NAME = "real_sdk"
TITLE = "The real SDK: starts, turns and stream stalls"
DESCRIPTION = (
    "google-antigravity agents (one `localharness` process each) against the local model "
    "server. Workload: N agents started at once, then two turns each (all agents at once), "
    "then all shut down; measured: time until every agent has started, wall time of start "
    "plus two turns, per-turn latency. agy_trio runs the workload through its public API "
    "with `AntigravityBackend` (`inter_agent_delay=0`, so chat starts are not paced); the "
    "baseline writes the same work with the SDK directly in one asyncio loop "
    "(`async with Agent(config)` for each agent, `asyncio.gather`). Stall probe: one agent "
    "streams a slow answer (a chunk every 20 ms) while 10 other agents start and then "
    "shut down; the stall is the longest gap between two chunks the reader sees during "
    "that window, minus the median gap."
)
METRICS = [
    Metric("start_s", "all agents started", "s", digits=2),
    Metric("total_s", "start + 2 turns each", "s", digits=2),
    Metric("turn_p50_s", "turn latency p50", "s", digits=3),
    Metric("turn_p95_s", "turn latency p95", "s", digits=3),
    Metric("stall_start_ms", "worst stall while agents start", "ms", digits=1),
    Metric("stall_stop_ms", "worst stall while agents stop", "ms", digits=1),
]
CHUNK_DELAY = 0.02
PROBE = "STALLPROBE"
PROBE_PROMPT = PROBE + " " + "w " * 1200  # the default reply quotes it: ~300 chunks of 8 chars
MODEL = "agy-trio-bench"


# ---------------------------------------------------------------------------- the model server


class ModelServerProcess:
    """The local model server in a child process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agy_trio.testing.model_server", "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        self.url = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            match = re.search(r"(http://\S+/v1)", line)
            if match:
                self.url = match.group(1)
                break
        if not self.url:
            self.close()
            raise RuntimeError("the local model server did not start")
        self.root = self.url.rsplit("/v1", 1)[0]

    def add_fault(self, fault: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.root}/control/faults",
            data=json.dumps(fault).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def offline_world() -> Iterator[tuple[ModelServerProcess, Path]]:
    """A fresh model server and a temporary folder; GEMINI_API_KEY unset meanwhile."""
    saved = {k: os.environ.pop(k) for k in ("GEMINI_API_KEY", "GOOGLE_API_KEY") if k in os.environ}
    root = Path(tempfile.mkdtemp(prefix="agy-trio-bench-sdk-"))
    server = ModelServerProcess()
    try:
        yield server, root
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)
        os.environ.update(saved)


def _stall(arrivals: list[float], marks: tuple[float, float, float]) -> dict[str, float]:
    """Worst gaps between chunks during the start window and the stop window, over the median."""
    start, started, stopped = marks
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    typical = statistics.median(gaps) if gaps else 0.0

    def worst(lo: float, hi: float) -> float:
        inside = [b - a for a, b in itertools.pairwise(arrivals) if b >= lo and a <= hi]
        return max(inside) if inside else 0.0

    worst_start, worst_stop = worst(start, started), worst(started, stopped)
    return {
        "stall_start_ms": max(0.0, worst_start - typical) * 1e3,
        "stall_stop_ms": max(0.0, worst_stop - typical) * 1e3,
        "worst_gap_ms": max(worst_start, worst_stop) * 1e3,
        "typical_gap_ms": typical * 1e3,
        "start_window_s": started - start,
        "stop_window_s": stopped - started,
        "covered": 1.0 if arrivals and arrivals[-1] >= stopped else 0.0,
    }


# ---------------------------------------------------------------------------- the SDK alone


def _sdk_config(url: str, root: Path, i: int) -> Any:
    from google.antigravity import CapabilitiesConfig, LocalOpenAIAgentConfig
    from google.antigravity.hooks import policy

    folder = root / f"sdk-agent-{i}-{time.monotonic_ns()}"
    for sub in ("save", "app_data", "workspace", "home"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return LocalOpenAIAgentConfig(
        model=MODEL,
        base_url=url,
        capabilities=CapabilitiesConfig(enabled_tools=[], enable_subagents=False),
        policies=[policy.deny_all()],
        workspaces=[str(folder / "workspace")],
        save_dir=str(folder / "save"),
        app_data_dir=str(folder / "app_data"),
        env={"HOME": str(folder / "home")},
    )


async def _sdk_open(url: str, root: Path, n: int, first: int = 0) -> list[Any]:
    from google.antigravity import Agent

    agents = [Agent(_sdk_config(url, root, first + i)) for i in range(n)]
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


def sdk_workload(n: int) -> dict[str, float]:
    with offline_world() as (server, root):

        async def main() -> dict[str, float]:
            t0 = time.perf_counter()
            agents = await _sdk_open(server.url, root, n)
            started = time.perf_counter() - t0
            latencies: list[float] = []
            try:

                async def two_turns(agent: Any, i: int) -> None:
                    for k in range(2):
                        t = time.perf_counter()
                        response = await agent.chat(f"agent {i} turn {k}")
                        text = await response.text()
                        assert text.startswith("You said"), text
                        latencies.append(time.perf_counter() - t)

                await asyncio.gather(*(two_turns(a, i) for i, a in enumerate(agents)))
                total = time.perf_counter() - t0
            finally:
                await _sdk_close(agents)
            return {
                "start_s": started,
                "total_s": total,
                "turn_p50_s": percentile(latencies, 50),
                "turn_p95_s": percentile(latencies, 95),
            }

        return asyncio.run(main())


def sdk_stall(others: int) -> dict[str, float]:
    with offline_world() as (server, root):
        server.add_fault(
            {"kind": "slow", "chunk_delay": CHUNK_DELAY, "match": PROBE, "times": None}
        )

        async def main() -> dict[str, float]:
            (probe,) = await _sdk_open(server.url, root, 1)
            arrivals: list[float] = []
            try:
                response = await probe.chat(PROBE_PROMPT)

                streaming = asyncio.Event()

                async def read() -> None:
                    async for _ in response:
                        arrivals.append(time.perf_counter())
                        if len(arrivals) == 5:
                            streaming.set()

                reader = asyncio.create_task(read())
                await streaming.wait()
                start = time.perf_counter()
                agents = await _sdk_open(server.url, root, others, first=1)
                started = time.perf_counter()
                await _sdk_close(agents)
                stopped = time.perf_counter()
                await reader
            finally:
                await _sdk_close([probe])
            return _stall(arrivals, (start, started, stopped))

        return asyncio.run(main())


# ---------------------------------------------------------------------------- through agy_trio


def _agy_config(url: str, i: int) -> Any:
    import agy_trio

    return agy_trio.AgentConfig(name=f"bench-{i}", model=MODEL, base_url=url)


async def _agy_open(rt: Any, url: str, n: int, first: int = 0) -> list[Any]:
    handles: list[Any] = [None] * n

    async def one(i: int) -> None:
        handles[i] = await rt.create_agent(_agy_config(url, first + i))

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    return handles


async def _agy_close(handles: list[Any]) -> None:
    async with trio.open_nursery() as nursery:
        for handle in handles:
            nursery.start_soon(handle.shutdown)


def _agy_runtime(root: Path, host_threads: int | None = None) -> Any:
    import agy_trio
    from agy_trio.adapters.antigravity import AntigravityBackend

    backend = AntigravityBackend(base_dir=root / "agy", host_threads=host_threads)
    config = agy_trio.RuntimeConfig(inter_agent_delay=0, chat_timeout=300)
    return agy_trio.open_runtime(config, backend=backend)


def agy_workload(n: int, host_threads: int | None = None) -> dict[str, float]:
    with offline_world() as (server, root):

        async def main() -> dict[str, float]:
            async with _agy_runtime(root, host_threads) as rt:
                t0 = time.perf_counter()
                handles = await _agy_open(rt, server.url, n)
                started = time.perf_counter() - t0
                latencies: list[float] = []

                async def two_turns(handle: Any, i: int) -> None:
                    for k in range(2):
                        t = time.perf_counter()
                        text = await (await handle.chat(f"agent {i} turn {k}")).text()
                        assert text.startswith("You said"), text
                        latencies.append(time.perf_counter() - t)

                async with trio.open_nursery() as nursery:
                    for i, handle in enumerate(handles):
                        nursery.start_soon(two_turns, handle, i)
                total = time.perf_counter() - t0
                await _agy_close(handles)
            return {
                "start_s": started,
                "total_s": total,
                "turn_p50_s": percentile(latencies, 50),
                "turn_p95_s": percentile(latencies, 95),
            }

        return trio.run(main)


def agy_stall(others: int, host_threads: int | None = None) -> dict[str, float]:
    with offline_world() as (server, root):
        server.add_fault(
            {"kind": "slow", "chunk_delay": CHUNK_DELAY, "match": PROBE, "times": None}
        )

        async def main() -> dict[str, float]:
            async with _agy_runtime(root, host_threads) as rt:
                (probe,) = await _agy_open(rt, server.url, 1)
                response = await probe.chat(PROBE_PROMPT)
                arrivals: list[float] = []
                window: list[float] = []
                async with trio.open_nursery() as nursery:
                    streaming = trio.Event()

                    async def read() -> None:
                        async for _ in response:
                            arrivals.append(time.perf_counter())
                            if len(arrivals) == 5:
                                streaming.set()

                    nursery.start_soon(read)
                    await streaming.wait()
                    window.append(time.perf_counter())
                    handles = await _agy_open(rt, server.url, others, first=1)
                    window.append(time.perf_counter())
                    await _agy_close(handles)
                    window.append(time.perf_counter())
            return _stall(arrivals, (window[0], window[1], window[2]))

        return trio.run(main)


# ---------------------------------------------------------------------------- the comparison


def availability() -> str | None:
    """Why the comparison cannot run here, or None."""
    try:
        import google.antigravity  # noqa: F401
    except ImportError:
        return "google-antigravity is not installed (pip install 'agy-trio[antigravity]')"
    try:
        from agy_trio.adapters.antigravity import AntigravityBackend  # noqa: F401
    except ImportError as exc:
        return f"agy_trio.adapters.antigravity.AntigravityBackend is not available: {exc}"
    return None


CONTENDERS: dict[str, tuple[str, str, str]] = {
    "agy": ("agy_trio, AntigravityBackend", "agy", "public API, 2 host threads (the default)"),
    "sdk": ("SDK alone, one asyncio loop", "baseline", "asyncio.gather over Agent"),
    "agy_1host": (
        "experiment: agy_trio, one host thread",
        "prototype",
        "AntigravityBackend(host_threads=1)",
    ),
}


def run(ctx: Context) -> BenchResult:
    result = BenchResult(
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        metrics=METRICS,
        rows=[],
        chart_metric="start_s",
    )
    if ctx.quick:
        result.skipped = (
            "skipped in quick mode: every SDK agent starts a ~165 MiB harness process and "
            "the comparison takes minutes; run `python -m benchmarks --only real_sdk`."
        )
        return result
    reason = availability()
    if reason is not None:
        result.skipped = reason
        return result
    sizes = [10, 50]
    rounds = {10: 3, 50: 2}
    others = 10
    stall_rounds = 3
    for n in sizes:
        contenders: list[tuple[str, Callable[[], dict[str, float]]]] = [
            ("agy", functools.partial(agy_workload, n)),
            ("sdk", functools.partial(sdk_workload, n)),
            ("agy_1host", functools.partial(agy_workload, n, 1)),
        ]
        data = interleave(ctx, contenders, rounds[n], label=f"{NAME} [{n} agents]")
        for key, (label, kind, note) in CONTENDERS.items():
            metrics = {m: Summary.of(v) for m, v in data[key].items()}
            result.rows.append(Row(key, label, kind, metrics, note, f"{n} agents"))
    stall_group = f"stream stall while {others} agents start and stop"
    contenders = [
        ("agy", functools.partial(agy_stall, others)),
        ("sdk", functools.partial(sdk_stall, others)),
        ("agy_1host", functools.partial(agy_stall, others, 1)),
    ]
    data = interleave(ctx, contenders, stall_rounds, label=f"{NAME} [stall]")
    stall_detail: dict[str, dict[str, float]] = {}
    for key, (label, kind, note) in CONTENDERS.items():
        values = data[key]
        stall_detail[key] = {
            "worst_gap_ms": max(values["worst_gap_ms"]),
            "typical_gap_ms": statistics.median(values["typical_gap_ms"]),
            "start_window_s": statistics.median(values["start_window_s"]),
            "stop_window_s": statistics.median(values["stop_window_s"]),
            "covered": min(values["covered"]),
        }
        metrics = {m: Summary.of(values[m]) for m in ("stall_start_ms", "stall_stop_ms")}
        result.rows.append(Row(key, label, kind, metrics, note, stall_group))
    result.extra["stall"] = stall_detail
    result.params = {
        "agents": ", ".join(str(n) for n in sizes),
        "rounds": ", ".join(f"{n} agents: {rounds[n]}" for n in sizes) + f", stall: {stall_rounds}",
        "stall probe": f"a chunk every {CHUNK_DELAY * 1e3:.0f} ms while {others} agents "
        "start and stop",
        "host threads": "2 (the experiment row: 1)",
    }
    result.notes = [
        f"{CONTENDERS[k][0]}: start window {fmt(d['start_window_s'], 2)} s, stop window "
        f"{fmt(d['stop_window_s'], 2)} s (medians), typical gap "
        f"{fmt(d['typical_gap_ms'])} ms, worst gap seen {fmt(d['worst_gap_ms'])} ms"
        + ("" if d["covered"] else "; the probe's stream ended before the window did")
        for k, d in stall_detail.items()
    ]
    result.targets = targets(result, stall_group)
    return result


def targets(result: BenchResult, stall_group: str) -> list[Target]:
    out = []
    agy, sdk = (
        result.median("agy", "start_s", "10 agents"),
        result.median("sdk", "start_s", "10 agents"),
    )
    if agy is not None and sdk is not None:
        speedup = sdk / agy
        out.append(
            Target(
                "real SDK: 10 agents start at least 2x faster than the SDK alone in one loop",
                speedup >= 2,
                f"{fmt(agy, 2)} s vs {fmt(sdk, 2)} s = {speedup:.2f}x faster"
                + (
                    ""
                    if speedup >= 2
                    else ". Each start runs a harness process whose own start-up (about 100 ms "
                    "of CPU on this machine) is the floor; with 2 CPUs, 10 harnesses starting "
                    "at once compete for the same cores whatever hosts them."
                ),
            )
        )
    row, sdk_row = result.row("agy", stall_group), result.row("sdk", stall_group)
    if row is not None and sdk_row is not None:
        worst = row.metrics["stall_start_ms"].max
        out.append(
            Target(
                "real SDK: no stream stalls more than 5 ms while other agents start",
                worst <= 5,
                f"worst stall while 10 agents start {fmt(worst)} ms over all rounds (median "
                f"{fmt(row.metrics['stall_start_ms'].median)} ms), while they stop "
                f"{fmt(row.metrics['stall_stop_ms'].median)} ms; the SDK alone: "
                f"{fmt(sdk_row.metrics['stall_start_ms'].median)} / "
                f"{fmt(sdk_row.metrics['stall_stop_ms'].median)} ms"
                + (
                    ""
                    if worst <= 5
                    else ". The harness shutdown, worker-thread start-up, the SDK's metadata "
                    "scans and its config building no longer run on the host loops. What is "
                    "left is small per-start SDK work on the loop (WebSocket handshake, "
                    "protobuf set-up, parsing the harness's answer), GIL hand-offs between "
                    "busy Python threads (CPython's switch interval is 5 ms), and, on 2 CPUs, "
                    "the starting harness processes competing with the streaming agent's "
                    "harness for the cores: with the other agents started in a separate "
                    "process, the stream still stalls 20-50 ms."
                ),
            )
        )
    return out
