"""Hibernation: 10,000 real agents on one box, most of them idle.

Everything runs offline against the local model server (in a process of its
own, see :mod:`benchmarks.real_sdk`), in a fresh Python process per run
(``python -m benchmarks.hibernate N WAKE STREAM``), so that the memory
measured is the run's own.

Workload: N agents are created on one ``AntigravityBackend(hibernate_after=NAP)``
in waves (a service's users arrive over time; a wave waits until the one
before it is asleep, so that at most two waves' conversations are open at
once); each chats once, every answer checked word for word, and goes idle.
Once all are asleep, the total PSS (the Python process and every harness) is
measured, and the histories of a sample are checked without waking them. Then
STREAM random agents stream a long answer while WAKE other random agents chat
again (arriving at random, WAKE_RATE a second: a few percent of the users
typing in a minute): each of these wakes its agent, on whatever harness has
room. Figures: PSS, per idle agent, wake latency (the backend's own
statistics: from the wake's start to the resumed session), the chat latency of
the woken agents, errors, history checks.
"""

from __future__ import annotations

import collections
import random
import sys
import time
from typing import Any

import trio

from benchmarks._child import print_figures, run_child
from benchmarks._common import BenchResult, Metric, Row, Target, fmt, percentile_metrics, summaries
from benchmarks._measure import pss_figures, python_pss_mib
from benchmarks._offline import offline_world, sdk_missing
from benchmarks._rounds import Context
from benchmarks._runtime import open_bench_runtime

NAME = "hibernate"
TITLE = "Hibernation: 10,000 real agents, most of them idle"
DESCRIPTION = (
    "Real SDK agents on the local model server, one `AntigravityBackend(hibernate_after=NAP)`. "
    "N agents are created in waves (each wave waits until the one before is asleep), each "
    "chats once (answer checked) and goes idle; once all hibernate: total PSS (Python + "
    "harnesses) and a history check of a sample, answered without waking. Then STREAM random "
    "agents stream a long answer while WAKE other random agents chat again (random arrivals, "
    "20 a second); "
    "each wakes its agent in RESUME mode on a harness with room. Wake latency from the "
    "backend's statistics; chat latency of the woken agents; errors; every woken agent's "
    "history checked (its first turn, then its second)."
)
METRICS = [
    Metric("asleep_pss_mib", "total PSS, all asleep", "MiB", digits=0),
    Metric("asleep_kib_per_agent", "per idle agent, asleep", "KiB", digits=1),
    Metric("awake_pss_mib", "total PSS after the wakes", "MiB", digits=0),
    Metric("peak_pss_mib", "peak total PSS while creating", "MiB", digits=0),
    *percentile_metrics("wake", "wake latency p{p}", "ms", (50, 99)),
    *percentile_metrics("chat", "woken agent's chat latency p{p}", "ms", (50, 99)),
    Metric("create_s", "creating N agents, one chat each", "s", digits=1),
    Metric("errors", "errors and wrong answers", "", digits=0),
    Metric("history_errors", "histories not exact", "", digits=0),
]
NAP = 3.0  # seconds of idleness before an agent hibernates, in this benchmark
WAVE = 500
WAKE_RATE = 20.0  # woken agents' chats per second (Poisson arrivals)
HISTORY_SAMPLE = 200
RUN_TIMEOUT = 3600.0
STREAM_MARK = "STREAMPROBE"
# Quoted back in chunks of 8 characters, one every 20 ms: a minute of streaming
# (the streams are cancelled once the wakes are done).
STREAM_PROMPT = STREAM_MARK + " " + "w " * 12000


def _prompt(i: int, k: int) -> str:
    return f"agent {i} turn {k}"


def _answer(i: int, k: int) -> str:
    return f"You said: {_prompt(i, k)}"


def workload(n: int, wake: int, stream: int) -> dict[str, float]:
    """One run: N agents, WAKE woken by a chat while STREAM stream; its figures."""
    import agy_trio
    from agy_trio.adapters.antigravity import AntigravityBackend

    rng = random.Random(22)
    with offline_world() as (server, root):
        server.add_fault({"kind": "slow", "chunk_delay": 0.02, "match": STREAM_MARK, "times": None})

        async def main() -> dict[str, float]:
            backend = AntigravityBackend(base_dir=root / "agy", hibernate_after=NAP)
            figures: dict[str, float] = {"errors": 0.0, "history_errors": 0.0}
            async with open_bench_runtime(backend, chat_timeout=600) as rt:
                base_pss = python_pss_mib()
                handles: list[Any] = [None] * n
                peak = 0.0

                async def first(i: int) -> None:
                    try:
                        handles[i] = await rt.create_agent(
                            agy_trio.AgentConfig(name=f"h{i}", model="bench", base_url=server.url)
                        )
                        text = await (await handles[i].chat(_prompt(i, 0))).text()
                        figures["errors"] += text != _answer(i, 0)
                    except agy_trio.AgyError as exc:
                        figures["errors"] += 1
                        print(f"error: agent {i}: {exc!r}"[:300], file=sys.stderr)

                async def asleep_at_least(count: int) -> None:
                    # The host threads change the count: polled, not awaited.
                    while backend.statistics().hibernated < count:  # noqa: ASYNC110
                        await trio.sleep(0.05)

                t0 = time.perf_counter()
                for start in range(0, n, WAVE):
                    await asleep_at_least(max(0, start - WAVE))
                    async with trio.open_nursery() as nursery:
                        for i in range(start, min(n, start + WAVE)):
                            nursery.start_soon(first, i)
                    peak = max(peak, pss_figures()["total_pss_mib"])
                figures["create_s"] = time.perf_counter() - t0
                live = sum(h is not None for h in handles)
                with trio.move_on_after(NAP * 4 + 60):
                    await asleep_at_least(live)
                figures["asleep"] = float(backend.statistics().hibernated)
                asleep = pss_figures()
                figures["asleep_pss_mib"] = asleep["total_pss_mib"]
                figures["asleep_harnesses"] = asleep["harnesses"]
                figures["asleep_python_mib"] = asleep["python_pss_mib"]
                figures["asleep_kib_per_agent"] = (
                    (asleep["total_pss_mib"] - base_pss) * 1024 / max(1, live)
                )
                figures["peak_pss_mib"] = peak
                # Histories answered by sleeping agents, without waking them.
                for i in rng.sample(range(n), min(HISTORY_SAMPLE, n)):
                    if handles[i] is None:
                        continue
                    texts = [m.text for m in await handles[i].history()]
                    figures["history_errors"] += texts != [_prompt(i, 0), _answer(i, 0)]
                figures["wakes_for_queries"] = float(backend.statistics().wakes)

                chosen = rng.sample([i for i in range(n) if handles[i] is not None], wake + stream)
                streamers, wakers = chosen[:stream], chosen[stream:]
                latencies: list[float] = []
                streams_started = trio.Semaphore(0)

                async def streaming(i: int) -> None:
                    try:
                        response = await handles[i].chat(STREAM_PROMPT)
                        first = True
                        async for _ in response.text_batches():
                            if first:
                                streams_started.release()
                                first = False
                    except agy_trio.AgyError as exc:
                        figures["errors"] += 1
                        print(f"error: streamer {i}: {exc!r}"[:300], file=sys.stderr)

                async def again(i: int) -> None:
                    started = time.perf_counter()
                    try:
                        text = await (await handles[i].chat(_prompt(i, 1))).text()
                    except agy_trio.AgyError as exc:
                        figures["errors"] += 1
                        print(f"error: waking {i}: {exc!r}"[:300], file=sys.stderr)
                        return
                    latencies.append(time.perf_counter() - started)
                    figures["errors"] += text != _answer(i, 1)
                    texts = [m.text for m in await handles[i].history()]
                    expected = [_prompt(i, 0), _answer(i, 0), _prompt(i, 1), _answer(i, 1)]
                    figures["history_errors"] += texts != expected

                wakes_before = backend.statistics().wakes
                async with trio.open_nursery() as nursery:
                    for i in streamers:
                        nursery.start_soon(streaming, i)
                    for _ in streamers:
                        await streams_started.acquire()
                    async with trio.open_nursery() as wakes:
                        for i in wakers:  # arriving at random, WAKE_RATE a second
                            wakes.start_soon(again, i)
                            await trio.sleep(rng.expovariate(WAKE_RATE))
                    awake = pss_figures()
                    nursery.cancel_scope.cancel()  # the streams have served their purpose
                # Every wake of the run happened here (the queries above woke nobody).
                stats = backend.statistics()
                figures["wakes"] = float(stats.wakes - wakes_before)
                figures["wake_p50_ms"] = (stats.wake_latency_p50 or 0.0) * 1e3
                figures["wake_p99_ms"] = (stats.wake_latency_p99 or 0.0) * 1e3
                figures["wake_max_ms"] = (stats.wake_latency_max or 0.0) * 1e3
                figures["chat_p50_ms"] = _quantile(sorted(latencies), 0.5) * 1e3
                figures["chat_p99_ms"] = _quantile(sorted(latencies), 0.99) * 1e3
                figures["awake_pss_mib"] = awake["total_pss_mib"]
                figures["awake_harnesses"] = awake["harnesses"]
            return figures

        return trio.run(main)


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------------------- the comparison


def run_isolated(n: int, wake: int, stream: int) -> dict[str, float]:
    """Run the workload in a fresh Python process; return its figures."""
    figures, stderr = run_child(NAME, [str(n), str(wake), str(stream)], timeout=RUN_TIMEOUT)
    # What failed, for the notes (the figures count it).
    _ERRORS_SEEN[:] = [line for line in stderr.splitlines() if line.startswith("error:")]
    return figures


_ERRORS_SEEN: list[str] = []


def run(ctx: Context) -> BenchResult:
    skipped = sdk_missing()
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "wake_p50_ms", skipped=skipped)
    if skipped:
        return result
    n, wake, stream = ctx.pick((40, 8, 2), (10_000, 200, 20))
    ctx.log(f"  {NAME}: {n:,} agents, {wake} woken while {stream} stream")
    figures = run_isolated(n, wake, stream)
    metrics = summaries({m.key: [figures[m.key]] for m in METRICS})
    label = "agy_trio, AntigravityBackend(hibernate_after=NAP)"
    note = f"{n:,} agents, {wake} woken, {stream} streaming"
    result.rows.append(Row("agy", label, "agy", metrics, note))
    result.params = {
        "agents": n,
        "woken": wake,
        "streaming while they wake": stream,
        "arrivals of the woken agents' chats": f"Poisson, {WAKE_RATE:.0f} a second",
        "hibernate_after": f"{NAP} s (so that waves of {WAVE} fall asleep quickly)",
        "history sample checked while asleep": min(HISTORY_SAMPLE, n),
    }
    result.extra = {"figures": figures}
    result.notes = [
        f"{fmt(figures['asleep'], 0)} of {n:,} agents asleep at the measurement, on "
        f"{fmt(figures['asleep_harnesses'], 0)} harness process(es); Python "
        f"{fmt(figures['asleep_python_mib'], 0)} MiB. After the wakes: "
        f"{fmt(figures['awake_harnesses'], 0)} harness(es). Wakes: {fmt(figures['wakes'], 0)} "
        f"(queries woke {fmt(figures['wakes_for_queries'], 0)}); the longest "
        f"{fmt(figures['wake_max_ms'], 0)} ms.",
    ]
    if _ERRORS_SEEN:
        kinds = collections.Counter(line.split(": ", 2)[-1][:160] for line in _ERRORS_SEEN)
        result.notes.append(
            "Errors: " + "; ".join(f"{count} x {kind}" for kind, count in kinds.most_common(5))
        )
    result.targets = targets(figures, n)
    return result


def targets(figures: dict[str, float], n: int) -> list[Target]:
    total_gib = max(figures["asleep_pss_mib"], figures["awake_pss_mib"]) / 1024
    errors = figures["errors"] + figures["history_errors"]
    return [
        Target(
            f"hibernate: {n:,} agents, total PSS <= 3 GiB, 0 errors, every history exact",
            total_gib <= 3 and errors == 0,
            f"{fmt(total_gib, 2)} GiB at most (asleep {fmt(figures['asleep_pss_mib'], 0)} MiB, "
            f"after the wakes {fmt(figures['awake_pss_mib'], 0)} MiB; peak while creating "
            f"{fmt(figures['peak_pss_mib'], 0)} MiB); {fmt(figures['errors'], 0)} errors, "
            f"{fmt(figures['history_errors'], 0)} histories not exact",
        ),
        Target(
            "hibernate: wake latency p50 <= 150 ms",
            figures["wake_p50_ms"] <= 150,
            f"p50 {fmt(figures['wake_p50_ms'], 1)} ms "
            f"(chat p50 {fmt(figures['chat_p50_ms'], 1)} ms)",
        ),
        Target(
            "hibernate: wake latency p99 <= 500 ms",
            figures["wake_p99_ms"] <= 500,
            f"p99 {fmt(figures['wake_p99_ms'], 1)} ms "
            f"(chat p99 {fmt(figures['chat_p99_ms'], 1)} ms)",
        ),
        Target(
            "hibernate: an idle agent costs <= 150 KiB in all once hibernated",
            figures["asleep_kib_per_agent"] <= 150,
            f"{fmt(figures['asleep_kib_per_agent'], 1)} KiB per agent (total PSS, Python and "
            "harnesses, over the PSS before the first agent, divided by the agents)",
        ),
    ]


def main(argv: list[str]) -> int:
    """``python -m benchmarks.hibernate N WAKE STREAM``: one run, its figures as a JSON line."""
    n, wake, stream = (int(a) for a in argv[:3])
    return print_figures(workload(n, wake, stream))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
