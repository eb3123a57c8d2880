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
leaves behind (threads, caches, a stray process) can touch the next. What
that process runs, the same workload for every contender, is
:mod:`benchmarks._sdk_workloads`.

Sizes: ``AGY_BENCH_REAL_SDK_SIZES`` (e.g. ``10,50``) overrides the sizes of a
run; ``--quick`` measures 10 agents once.
"""

from __future__ import annotations

import functools
import os
import re
import statistics
import sys
from pathlib import Path

from benchmarks._child import print_figures, run_child
from benchmarks._common import BenchResult, Target, fmt
from benchmarks._offline import sdk_missing
from benchmarks._report import pyplot, save_figure
from benchmarks._rounds import Contender, Context, rows_of, run_rounds
from benchmarks._sdk_workloads import CHUNK_DELAY, METRICS, run_one

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
FULL_SIZES = (10, 50, 200, 1000, 2000)
# The SDK alone (and one harness per agent) start a ~70 MiB process per agent:
# 200 is as far as that fits in this machine's memory next to everything else.
PER_AGENT_LIMIT = 200
ROUNDS = {10: 5, 50: 3, 200: 1, 1000: 1, 2000: 1}
RUN_TIMEOUT = 900.0

# Per size, per contender, per metric: the values of the rounds.
Figures = dict[int, dict[str, dict[str, list[float]]]]


# ---------------------------------------------------------------------------- one run, one process


def run_isolated(contender: str, n: int) -> dict[str, float]:
    """Run one contender's workload in a fresh Python process; return its figures."""
    figures, _ = run_child(NAME, [contender, str(n)], timeout=RUN_TIMEOUT)
    return figures


# ---------------------------------------------------------------------------- the comparison


# Each called with (agents); each run in a fresh process.
CONTENDERS: dict[str, Contender] = {
    "agy": Contender(
        "agy_trio, pooled harnesses (default)",
        "agy",
        functools.partial(run_isolated, "agy"),
        "AntigravityBackend(): agents_per_harness=250, harness_processes=1",
    ),
    "agy_solo": Contender(
        "agy_trio, one harness per agent",
        "agy",
        functools.partial(run_isolated, "agy_solo"),
        "AntigravityBackend(agents_per_harness=1)",
    ),
    "sdk": Contender(
        "SDK alone, one asyncio loop",
        "baseline",
        functools.partial(run_isolated, "sdk"),
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
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "start_s", skipped=sdk_missing())
    if result.skipped:
        return result
    sizes = _sizes(ctx)
    per_size: Figures = {}
    for n in sizes:
        keys = ["agy", "agy_solo", "sdk"] if n <= PER_AGENT_LIMIT else ["agy"]
        if not ctx.quick:
            keys += list(KNOBS.get(n, ()))
        rounds = 1 if ctx.quick else ROUNDS.get(n, 1)
        contenders = {key: _contender(key) for key in keys}
        data = run_rounds(ctx, contenders, (n,), rounds, label=f"{NAME} [{n} agents]")
        per_size[n] = data
        # Only the metrics of the table: the others go to `extra` (and the notes).
        result.rows += rows_of(data, contenders, _group(n), only=[m.key for m in METRICS])
    result.extra = {
        "figures": {str(n): _medians(data) for n, data in per_size.items()},
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


def _contender(key: str) -> Contender:
    """The row of ``key``: one of CONTENDERS, or a pool setting ``agy_<per harness>x<procs>``."""
    if key in CONTENDERS:
        return CONTENDERS[key]
    per, procs = re.fullmatch(r"agy_(\d+)x(\d+)", key).groups()  # type: ignore[union-attr]
    return Contender(
        f"agy_trio, {per} agents per harness x {procs} process(es)",
        "agy",
        functools.partial(run_isolated, key),
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
            notes.append(f"{CONTENDERS[key].label}: {fmt(max(left), 0)} harness(es) left running!")
    return notes


def scaling_chart(per_size: Figures, path: Path) -> Path | None:
    """Total PSS and start time against N, one line per contender (log-log)."""
    if len(per_size) < 2:
        return None
    fig, (memory, start) = pyplot().subplots(1, 2, figsize=(11, 4.2))
    styles = {"agy": ("#1f77b4", "o"), "agy_solo": ("#ff7f0e", "s"), "sdk": ("#8c8c8c", "^")}
    for key, (color, marker) in styles.items():
        sizes = sorted(n for n, data in per_size.items() if key in data)
        if not sizes:
            continue
        label = CONTENDERS[key].label
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
    return save_figure(fig, path)


def targets(result: BenchResult, per_size: Figures) -> list[Target]:
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
    return print_figures(run_one(contender, n))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
