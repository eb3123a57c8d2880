"""The real SDK: google-antigravity agents on the local model server, with and without agy_trio.

Everything runs offline: the local OpenAI-compatible model server
(``python -m agy_trio.testing.model_server``) runs in its own process, fresh
for every contender run, so no contender shares its event loop or its CPU
thread with the server. ``GEMINI_API_KEY`` is unset, and every folder the
harness touches (``HOME``, save_dir, app_data_dir, workspace) is a temporary
folder.

Every contender run is a fresh Python process of its own (``python -m
benchmarks.real_sdk RUN ...``), so that the memory of one run (the Python
process's and its harness processes') is measured alone, and nothing one run
leaves behind (threads, caches, a stray process) can touch the next.

Sizes: ``AGY_BENCH_REAL_SDK_SIZES`` (e.g. ``10,50``) overrides the sizes of a
run; ``--quick`` measures 10 agents once.
"""

from __future__ import annotations

import asyncio
import collections
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
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trio

from benchmarks._child import print_figures, run_child
from benchmarks._common import BenchResult, Metric, Row, Summary, Target, fmt, percentile
from benchmarks._measure import ThreadCount, harnesses, pss_figures, python_pss_mib
from benchmarks._rounds import Context, interleave
from benchmarks._worker import ROOT

NAME = "real_sdk"
TITLE = "The real SDK: 10 to 2,000 agents, starts, turns, memory and stream stalls"
DESCRIPTION = (
    "google-antigravity agents against the local model server (in a process of its own). "
    "Workload: one probe agent streams a slow answer (a chunk every 20 ms); N agents are "
    "started at once; the probe is cancelled; then every agent has two turns (all at once), "
    "every answer checked word for word; then all shut down. Measured: time until all N "
    "are started; start plus two turns; turn latency; PSS of the harness processes and of "
    "the Python process after the turns; the worst stall of the probe's stream while the N "
    "start (the longest gap between two chunks in that window, minus the median gap). "
    "Contenders: agy_trio through its public API with `AntigravityBackend` (agents share "
    "harness processes: the default), the same with `agents_per_harness=1` (one harness "
    "per agent, the SDK's way), and the SDK alone in one asyncio loop (`async with "
    "Agent(config)` per agent, `asyncio.gather`), written as a careful user would: one "
    "shared HOME, save_dir and workspace, no built-in tools. Each run is a fresh process."
)
METRICS = [
    Metric("start_s", "all agents started", "s", digits=2),
    Metric("total_s", "start + 2 turns each", "s", digits=2),
    Metric("turn_p50_s", "turn latency p50", "s", digits=3),
    Metric("turn_p95_s", "turn latency p95", "s", digits=3),
    Metric("harness_pss_mib", "PSS of the harnesses", "MiB", digits=0),
    Metric("python_pss_mib", "PSS of the Python process", "MiB", digits=0),
    Metric("total_pss_mib", "total PSS", "MiB", digits=0),
    Metric("stall_ms", "worst stall while the N start", "ms", digits=1),
    Metric("errors", "errors and wrong answers", "", digits=0),
]
CHUNK_DELAY = 0.02
PROBE = "STALLPROBE"
# The default reply quotes the prompt in chunks of 8 characters: about 3,000
# chunks, one every 20 ms, a minute of streaming (the probe is cancelled once
# the others have started).
PROBE_PROMPT = PROBE + " " + "w " * 12000
MODEL = "agy-trio-bench"
FULL_SIZES = (10, 50, 200, 1000, 2000)
# The SDK alone (and one harness per agent) start a ~70 MiB process per agent:
# 200 is as far as that fits in this machine's memory next to everything else.
PER_AGENT_LIMIT = 200
ROUNDS = {10: 5, 50: 3, 200: 1, 1000: 1, 2000: 1}
RUN_TIMEOUT = 900.0

# Per size, per contender, per metric: the values of the rounds.
Figures = dict[int, dict[str, dict[str, list[float]]]]


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


# ---------------------------------------------------------------------------- measuring


def _stall(arrivals: list[float], start: float, started: float) -> float:
    """The worst gap between chunks during the start window, minus the median gap, in ms."""
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    typical = statistics.median(gaps) if gaps else 0.0
    inside = [b - a for a, b in itertools.pairwise(arrivals) if b >= start and a <= started]
    worst = max(inside) if inside else 0.0
    return max(0.0, worst - typical) * 1e3


def _expected(i: int, k: int) -> str:
    return f"You said: agent {i} turn {k}"


def _finish(
    n: int,
    marks: dict[str, float],
    latencies: list[float],
    errors: int,
    memory: dict[str, float],
    before_mib: float,
    threads: ThreadCount,
) -> dict[str, float]:
    return {
        "start_s": marks["started"] - marks["t0"],
        "total_s": marks["done"] - marks["t0"],
        "turn_p50_s": percentile(latencies, 50) if latencies else 0.0,
        "turn_p95_s": percentile(latencies, 95) if latencies else 0.0,
        "errors": float(errors),
        **memory,
        # What the N agents added to the Python process (the probe agent and
        # everything imported were there before).
        "python_kib_per_agent": (memory["python_pss_mib"] - before_mib) * 1024 / n,
        "python_cpu_ms_per_agent": (marks["cpu_done"] - marks["cpu_t0"]) * 1e3 / n,
        "threads_alive": float(marks["threads_alive"]),
        "threads_started": float(threads.started),
    }


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


def sdk_workload(n: int) -> dict[str, float]:
    """The SDK alone: N agents in one asyncio loop, a probe streaming meanwhile."""
    with offline_world() as (server, root), ThreadCount() as threads:
        server.add_fault(
            {"kind": "slow", "chunk_delay": CHUNK_DELAY, "match": PROBE, "times": None}
        )

        async def main() -> dict[str, float]:
            (probe,) = await _sdk_open(server.url, root, 1)
            arrivals: list[float] = []
            marks: dict[str, float] = {}
            latencies: list[float] = []
            errors = 0
            agents: list[Any] = []
            try:
                response = await probe.chat(PROBE_PROMPT)
                streaming = asyncio.Event()

                async def read() -> None:
                    with contextlib.suppress(BaseException):
                        async for _ in response:
                            arrivals.append(time.perf_counter())
                            if len(arrivals) == 5:
                                streaming.set()

                reader = asyncio.create_task(read())
                await streaming.wait()
                before = python_pss_mib()
                marks["t0"], marks["cpu_t0"] = time.perf_counter(), time.process_time()
                agents = await _sdk_open(server.url, root, n)
                marks["started"] = time.perf_counter()
                with contextlib.suppress(BaseException):
                    await response.cancel()
                await reader

                async def two_turns(agent: Any, i: int) -> None:
                    nonlocal errors
                    for k in range(2):
                        t = time.perf_counter()
                        try:
                            text = await (await agent.chat(f"agent {i} turn {k}")).text()
                        except Exception:
                            errors += 1
                            continue
                        errors += text != _expected(i, k)
                        latencies.append(time.perf_counter() - t)

                await asyncio.gather(*(two_turns(a, i) for i, a in enumerate(agents)))
                marks["done"], marks["cpu_done"] = time.perf_counter(), time.process_time()
                marks["threads_alive"] = threading.active_count()
                memory = pss_figures()
            finally:
                await _sdk_close([*agents, probe])
            result = _finish(n, marks, latencies, errors, memory, before, threads)
            result["stall_ms"] = _stall(arrivals, marks["t0"], marks["started"])
            return result

        result = asyncio.run(main())
    result["left_running"] = float(len(harnesses()))
    return result


# ---------------------------------------------------------------------------- through agy_trio


def agy_workload(
    n: int, agents_per_harness: int | None = None, harness_processes: int | None = None
) -> dict[str, float]:
    """agy_trio's public API: N agents, a probe streaming meanwhile."""
    import agy_trio
    from agy_trio.adapters.antigravity import AntigravityBackend

    # Live conversations throughout: hibernation has a comparison of its own.
    options: dict[str, Any] = {"hibernate_after": None}
    if agents_per_harness is not None:
        options["agents_per_harness"] = agents_per_harness
    if harness_processes is not None:
        options["harness_processes"] = harness_processes
    with offline_world() as (server, root), ThreadCount() as threads:
        server.add_fault(
            {"kind": "slow", "chunk_delay": CHUNK_DELAY, "match": PROBE, "times": None}
        )

        def config(i: int) -> agy_trio.AgentConfig:
            return agy_trio.AgentConfig(name=f"bench-{i}", model=MODEL, base_url=server.url)

        async def main() -> dict[str, float]:
            backend = AntigravityBackend(base_dir=root / "agy", **options)
            runtime_config = agy_trio.RuntimeConfig(inter_agent_delay=0, chat_timeout=600)
            marks: dict[str, float] = {}
            latencies: list[float] = []
            errors = 0
            kinds: collections.Counter[str] = collections.Counter()
            async with agy_trio.open_runtime(runtime_config, backend=backend) as rt:
                probe = await rt.create_agent(config(-1))
                response = await probe.chat(PROBE_PROMPT)
                arrivals: list[float] = []
                handles: list[Any] = [None] * n
                async with trio.open_nursery() as nursery:
                    streaming = trio.Event()

                    async def read() -> None:
                        async for _ in response:
                            arrivals.append(time.perf_counter())
                            if len(arrivals) == 5:
                                streaming.set()

                    nursery.start_soon(read)
                    await streaming.wait()
                    before = python_pss_mib()
                    marks["t0"], marks["cpu_t0"] = time.perf_counter(), time.process_time()
                    async with trio.open_nursery() as starts:
                        for i in range(n):

                            async def one(i: int = i) -> None:
                                handles[i] = await rt.create_agent(config(i))

                            starts.start_soon(one)
                    marks["started"] = time.perf_counter()
                    await response.cancel()

                async def two_turns(handle: Any, i: int) -> None:
                    nonlocal errors
                    for k in range(2):
                        t = time.perf_counter()
                        try:
                            text = await (await handle.chat(f"agent {i} turn {k}")).text()
                        except agy_trio.AgyError as exc:
                            errors += 1
                            kinds[f"{type(exc).__name__}: {str(exc)[:400]}"] += 1
                            continue
                        errors += text != _expected(i, k)
                        latencies.append(time.perf_counter() - t)

                async with trio.open_nursery() as nursery:
                    for i, handle in enumerate(handles):
                        nursery.start_soon(two_turns, handle, i)
                marks["done"], marks["cpu_done"] = time.perf_counter(), time.process_time()
                marks["threads_alive"] = threading.active_count()
                memory = pss_figures()
                memory["harnesses"] = float(len(backend.harness_pids()))
            for kind, count in kinds.most_common(10):
                print(f"errors: {count} x {kind}", file=sys.stderr)
            result = _finish(n, marks, latencies, errors, memory, before, threads)
            result["stall_ms"] = _stall(arrivals, marks["t0"], marks["started"])
            return result

        result = trio.run(main)
    result["left_running"] = float(len(harnesses()))
    return result


# ---------------------------------------------------------------------------- one run, one process


def run_isolated(contender: str, n: int) -> dict[str, float]:
    """Run one contender's workload in a fresh Python process; return its figures."""
    figures, _ = run_child(NAME, [contender, str(n)], timeout=RUN_TIMEOUT)
    return figures


def _run_one(contender: str, n: int) -> dict[str, float]:
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


# ---------------------------------------------------------------------------- the comparison


def availability() -> str | None:
    """Why the comparison cannot run here, or None."""
    try:
        import google.antigravity  # noqa: F401
        import psutil  # noqa: F401
    except ImportError:
        return "google-antigravity is not installed (pip install 'agy-trio[antigravity]')"
    try:
        from agy_trio.adapters.antigravity import AntigravityBackend  # noqa: F401
    except ImportError as exc:
        return f"agy_trio.adapters.antigravity.AntigravityBackend is not available: {exc}"
    return None


CONTENDERS: dict[str, tuple[str, str, str]] = {
    "agy": (
        "agy_trio, pooled harnesses (default)",
        "agy",
        "AntigravityBackend(): agents_per_harness=250, harness_processes=1",
    ),
    "agy_solo": (
        "agy_trio, one harness per agent",
        "agy",
        "AntigravityBackend(agents_per_harness=1)",
    ),
    "sdk": (
        "SDK alone, one asyncio loop",
        "baseline",
        "asyncio.gather over Agent; one shared HOME and save_dir",
    ),
}
# Other pool settings, compared in full runs (agy_<agents per harness>x<harness processes>):
# how many agents per process at 1,000 agents; spreading over two processes at 200.
KNOBS = {200: ("agy_250x2",), 1000: ("agy_100x1", "agy_500x1", "agy_1000x1")}


def _sizes(ctx: Context) -> list[int]:
    chosen = os.environ.get("AGY_BENCH_REAL_SDK_SIZES")
    if chosen:
        return [int(part) for part in chosen.split(",") if part.strip()]
    return [10] if ctx.quick else list(FULL_SIZES)


def _group(n: int) -> str:
    return f"{n:,} agents"


def run(ctx: Context) -> BenchResult:
    result = BenchResult(
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        metrics=METRICS,
        rows=[],
        chart_metric="start_s",
    )
    reason = availability()
    if reason is not None:
        result.skipped = reason
        return result
    sizes = _sizes(ctx)
    per_size: Figures = {}
    for n in sizes:
        keys = ["agy", "agy_solo", "sdk"] if n <= PER_AGENT_LIMIT else ["agy"]
        if not ctx.quick:
            keys += list(KNOBS.get(n, ()))
        rounds = 1 if ctx.quick else ROUNDS.get(n, 1)
        contenders: list[tuple[str, Callable[[], dict[str, float]]]] = [
            (key, functools.partial(run_isolated, key, n)) for key in keys
        ]
        data = interleave(ctx, contenders, rounds, label=f"{NAME} [{n} agents]")
        per_size[n] = data
        for key in keys:
            label, kind, note = CONTENDERS.get(key) or _knob_row(key)
            metrics = {m.key: Summary.of(data[key][m.key]) for m in METRICS}
            result.rows.append(Row(key, label, kind, metrics, note, _group(n)))
    result.extra = {
        "figures": {
            str(n): {
                key: {m: statistics.median(v) for m, v in d.items()} for key, d in data.items()
            }
            for n, data in per_size.items()
        },
        "sizes_not_run": {
            key: [n for n in sizes if n > PER_AGENT_LIMIT] for key in ("agy_solo", "sdk")
        },
    }
    result.params = {
        "agents": ", ".join(str(n) for n in sizes),
        "rounds": ", ".join(f"{n}: {1 if ctx.quick else ROUNDS.get(n, 1)}" for n in sizes),
        "stall probe": f"a chunk every {CHUNK_DELAY * 1e3:.0f} ms while the N agents start",
        "host threads": "2 (the default)",
        "one harness per agent and the SDK alone": f"up to {PER_AGENT_LIMIT} agents "
        f"(~70 MiB of PSS per agent: {PER_AGENT_LIMIT} agents is ~14 GiB)",
    }
    result.notes = _notes(result, per_size)
    scaling = scaling_chart(per_size, ctx.output / f"{NAME}_scaling.png")
    if scaling is not None:
        result.notes.append(
            f"Memory and start time against N: `{scaling.name}`, next to this comparison's chart."
        )
    result.targets = targets(result, per_size)
    return result


def _knob_row(key: str) -> tuple[str, str, str]:
    per, procs = re.fullmatch(r"agy_(\d+)x(\d+)", key).groups()  # type: ignore[union-attr]
    return (
        f"agy_trio, {per} agents per harness x {procs} process(es)",
        "agy",
        f"AntigravityBackend(agents_per_harness={per}, harness_processes={procs})",
    )


def _medians(data: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {key: {m: statistics.median(v) for m, v in d.items()} for key, d in data.items()}


def _notes(result: BenchResult, per_size: Figures) -> list[str]:
    notes = []
    for n, data in per_size.items():
        if "agy" not in data:
            continue
        pooled = _medians(data)["agy"]
        notes.append(
            f"{n:,} agents, pooled: {fmt(pooled['harnesses'], 0)} harness process(es); the "
            f"Python process grew {fmt(pooled['python_kib_per_agent'], 0)} KiB and spent "
            f"{fmt(pooled['python_cpu_ms_per_agent'], 2)} ms of CPU per agent (start and two "
            f"turns); {fmt(pooled['threads_alive'], 0)} threads alive after the turns, "
            f"{fmt(pooled['threads_started'], 0)} started during the run (the SDK starts a "
            "stderr reader per conversation; on a pooled harness it reads an empty stream "
            "and ends at once)."
        )
    for key in ("agy", "agy_solo", "sdk"):
        left = [v for data in per_size.values() for v in data.get(key, {}).get("left_running", [])]
        if left and max(left) > 0:
            notes.append(f"{CONTENDERS[key][0]}: {fmt(max(left), 0)} harness(es) left running!")
    return notes


def scaling_chart(
    per_size: dict[int, dict[str, dict[str, list[float]]]], path: Path
) -> Path | None:
    """Total PSS and start time against N, one line per contender (log-log)."""
    if len(per_size) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory, start) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"agy": ("#1f77b4", "o"), "agy_solo": ("#ff7f0e", "s"), "sdk": ("#8c8c8c", "^")}
    for key, (color, marker) in styles.items():
        sizes = sorted(n for n, data in per_size.items() if key in data)
        if not sizes:
            continue
        label = CONTENDERS[key][0]
        mem = [statistics.median(per_size[n][key]["total_pss_mib"]) / 1024 for n in sizes]
        st = [statistics.median(per_size[n][key]["start_s"]) for n in sizes]
        memory.plot(sizes, mem, marker=marker, color=color, label=label)
        start.plot(sizes, st, marker=marker, color=color, label=label)
    for ax, title, unit in (
        (memory, "Total PSS (harnesses + Python)", "GiB"),
        (start, "Time until all agents are started", "s"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("agents (N)")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    memory.legend(fontsize=8)
    fig.suptitle(
        f"Real SDK, local model server; one harness per agent and the SDK alone stop at "
        f"{PER_AGENT_LIMIT} agents (memory)",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def targets(
    result: BenchResult, per_size: dict[int, dict[str, dict[str, list[float]]]]
) -> list[Target]:
    out = []
    group = _group(50)
    agy_start, sdk_start = (
        result.median("agy", "start_s", group),
        result.median("sdk", "start_s", group),
    )
    agy_mem = result.median("agy", "total_pss_mib", group)
    sdk_mem = result.median("sdk", "total_pss_mib", group)
    if None not in (agy_start, sdk_start, agy_mem, sdk_mem):
        assert agy_start and sdk_start and agy_mem and sdk_mem
        speedup, saving = sdk_start / agy_start, sdk_mem / agy_mem
        out.append(
            Target(
                "real SDK: 50 agents start at least 8x faster than the SDK alone",
                speedup >= 8,
                f"{fmt(agy_start, 2)} s vs {fmt(sdk_start, 2)} s = {speedup:.1f}x faster",
            )
        )
        out.append(
            Target(
                "real SDK: 50 agents take at most 1/8 of the SDK alone's memory (harnesses + "
                "Python, PSS)",
                saving >= 8,
                f"{fmt(agy_mem, 0)} MiB vs {fmt(sdk_mem, 0)} MiB = 1/{saving:.1f}",
            )
        )
    big = per_size.get(1000, {}).get("agy")
    if big:
        worst_mem = max(big["total_pss_mib"])
        errors = max(big["errors"])
        left = max(big["left_running"])
        out.append(
            Target(
                "real SDK: 1,000 agents x 2 turns, every answer exact, 0 errors, total PSS "
                "<= 6 GiB, nothing left running",
                errors == 0 and worst_mem <= 6 * 1024 and left == 0,
                f"{fmt(errors, 0)} errors or wrong answers, total PSS {fmt(worst_mem, 0)} MiB, "
                f"{fmt(left, 0)} harness(es) left; {fmt(max(big['start_s']), 1)} s to start, "
                f"{fmt(max(big['total_s']), 1)} s with the turns",
            )
        )
    huge = per_size.get(2000, {}).get("agy")
    if huge:
        errors = max(huge["errors"])
        out.append(
            Target(
                "real SDK: 2,000 agents x 2 turns (more than 1,024 descriptors open), 0 errors",
                errors == 0 and max(huge["left_running"]) == 0,
                f"{fmt(errors, 0)} errors or wrong answers over "
                f"{fmt(max(huge['harnesses']), 0)} harnesses, total PSS "
                f"{fmt(max(huge['total_pss_mib']), 0)} MiB; "
                f"{fmt(max(huge['start_s']), 1)} s to start, "
                f"{fmt(max(huge['total_s']), 1)} s with the turns",
            )
        )
    row = result.row("agy", _group(10))
    if row is not None:
        worst = row.metrics["stall_ms"].max
        sdk_row = result.row("sdk", _group(10))
        out.append(
            Target(
                "real SDK: a running stream stalls at most 5 ms while 10 other agents start",
                worst <= 5,
                f"worst {fmt(worst)} ms over {row.metrics['stall_ms'].n} round(s) (median "
                f"{fmt(row.metrics['stall_ms'].median)} ms)"
                + (
                    f"; the SDK alone: {fmt(sdk_row.metrics['stall_ms'].median)} ms median"
                    if sdk_row is not None
                    else ""
                )
                + (
                    ""
                    if worst <= 5
                    else ". See docs/performance.md, 'Stream stalls while agents start': the "
                    "stall is already there when the harness's WebSocket frames arrive."
                ),
            )
        )
    return out


def main(argv: list[str]) -> int:
    """``python -m benchmarks.real_sdk CONTENDER N``: one run, its figures as a JSON line."""
    contender, n = argv[0], int(argv[1])
    return print_figures(_run_one(contender, n))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
