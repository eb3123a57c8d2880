"""Soak: many agents, many commands, faults; memory must stay flat and nothing may leak.

Two parts, each in a fresh subprocess (``python -m benchmarks.soak --child PART``)
so that its memory is its own:

* **scripted**: 1,000 agents share 100,000 commands (chats read whole,
  faulted, cancelled mid-read or dropped unread, messages sent in the
  background, queries, idle waits; every tenth command of an agent clears its
  history, so that what the agents legitimately hold stays bounded). The resident set is
  sampled after a garbage collection every 2% of the commands; its growth
  after the warm-up (the first 20%) is the leak signal.
* **real SDK**: 50 agents of the google-antigravity SDK, 20 turns each,
  against the local model server, which faults 10% of the requests (429,
  500, a stream cut mid-way, a hang past ``chat_timeout``), with a
  ``RetryPolicy``. A turn is *lost* when its caller was told it started but its
  prompt is not in the agent's history, or when it never ended.

After each part every agent is shut down and the runtime left; then no
command, turn, asyncio task, thread, harness process or temporary folder may
remain.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from benchmarks._child import print_figures, run_child
from benchmarks._common import BenchResult, Metric, Row, Summary, Target, fmt
from benchmarks._measure import harnesses, peak_rss_mib, rss, thread_names, trim_heap
from benchmarks._offline import API_KEYS, sdk_missing
from benchmarks._rounds import Context
from benchmarks._runtime import open_bench_runtime

NAME = "soak"
TITLE = "Soak: long runs with faults, memory and leaks"
DESCRIPTION = (
    "Scripted: N agents share M commands on one runtime; every agent's tenth command clears "
    "its history (so what the agents legitimately hold is bounded), the others are 55% chats "
    "read whole, 5% faulted chats (quota, 5xx, cut), 3% chats cancelled mid-read, 3% dropped "
    "unread, 9% sends, 15% queries and 10% idle waits. RSS is sampled after a GC every 2% of "
    "the commands, and its growth after a 20% warm-up is the leak signal. Real SDK: agents of the "
    "google-antigravity SDK play their turns against the local model server, which faults 10% "
    "of the requests (429, 500, cut stream, hang past chat_timeout), under a RetryPolicy. "
    "A lost turn is a prompt whose caller was told it started but that is missing from the "
    "history, or a turn that never ended. Leaks are counted after every agent is shut down "
    "and the runtime left: commands, turns, asyncio tasks, threads, harness processes and "
    "temporary folders."
)
METRICS = [
    Metric("rss_growth_pct", "RSS growth after warm-up", "%", digits=1),
    Metric("commands_per_s", "commands per second", "/s", lower_is_better=False, digits=0),
    Metric("turns_per_s", "turns per second", "/s", lower_is_better=False, digits=1),
    Metric("rss_peak_mib", "peak RSS", "MiB", digits=0),
    Metric("turns_lost", "turns lost", "turns", digits=0),
    Metric("leaks", "leaked tasks, threads, processes, folders", "items", digits=0),
    Metric("faulted", "faulted turns", "turns", lower_is_better=False, digits=0),
    Metric("failed_turns", "turns ended by a typed error", "turns", digits=0),
]
WARM_UP = 0.2
SAMPLES = 50
CLEAR_EVERY = 10  # every agent's tenth command clears its history


# ---------------------------------------------------------------------------- scripted


def _script(agent_id: str, prompt: str, index: int) -> Any:
    from agy_trio.testing.scripted import Fail, Hang, Say, Turn, default_turn

    kind = prompt.split(" ", 1)[0]
    if kind == "quota":
        return Turn([Say("partial", chunks=1), Fail("quota", retry_after=0.0)])
    if kind == "server":
        return Turn([Fail("server", status=503)])
    if kind == "cut":
        return Turn([Say("partial", chunks=1), Fail("connection", message="stream cut")])
    if kind == "slow":
        return Turn([Say("partial", chunks=1), Hang()])
    if kind == "long":
        return Turn([Say("x" * 400, chunks=100)])
    return default_turn(prompt)


class _Tally:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed_turns = 0
        self.lost = 0
        self.samples: list[tuple[int, float, int]] = []
        self.next_sample = 0
        self.step = max(total // SAMPLES, 1)

    def count(self) -> None:
        self.done += 1
        if self.done >= self.next_sample:
            self.next_sample += self.step
            gc.collect()
            trim_heap()
            self.samples.append((self.done, rss() / 2**20, len(gc.get_objects())))


async def _scripted_agent(rt: Any, tally: _Tally, commands: int, seed: int) -> None:
    import agy_trio

    rng = random.Random(seed)
    agent = await rt.create_agent(agy_trio.AgentConfig(name=f"soak-{seed}"))
    sent: list[str] = []  # prompts since the last clear_history
    for i in range(commands):
        r = rng.random()
        prompt = f"ok {seed}-{i}"
        if i % CLEAR_EVERY == CLEAR_EVERY - 1:
            # A steady state: the conversation is bounded, so what grows is a leak.
            await agent.wait_for_idle()
            await agent.clear_history()
            sent.clear()
        elif r < 0.55:
            answer = await (await agent.chat(prompt)).text()
            assert answer == f"You said: {prompt}", answer
            sent.append(prompt)
        elif r < 0.60:
            prompt = f"{rng.choice(['quota', 'server', 'cut'])} {seed}-{i}"
            response = await agent.chat(prompt)
            sent.append(prompt)
            try:
                await response.text()
            except agy_trio.AgyError:
                tally.failed_turns += 1
            else:
                raise AssertionError(f"{prompt}: no error")
        elif r < 0.63:
            prompt = f"slow {seed}-{i}"
            with trio.CancelScope() as scope:
                response = await agent.chat(prompt)
                sent.append(prompt)
                async for _ in response:
                    scope.cancel()
        elif r < 0.66:
            prompt = f"long {seed}-{i}"
            await agent.chat(prompt)  # dropped unread: it must not hold the agent
            sent.append(prompt)
        elif r < 0.75:
            await agent.send(prompt)
            sent.append(prompt)
        elif r < 0.90:
            query = rng.choice([agent.history, agent.turn_count, agent.last_response])
            await query()
        else:
            await agent.wait_for_idle()
        tally.count()
    await agent.wait_for_idle()
    users = [m.text for m in await agent.history() if m.role == "user"]
    tally.lost += len(set(sent) - set(users))
    await agent.shutdown()


def scripted_child(agents: int, commands: int) -> dict[str, Any]:
    from agy_trio.testing.scripted import ScriptedBackend

    threads_before = thread_names()
    tally = _Tally(commands)
    per_agent = commands // agents
    leaks: dict[str, int] = {}

    async def main() -> float:
        backend = ScriptedBackend(_script, stream_high_water=8, stream_batch_max=4)
        async with open_bench_runtime(backend, chat_timeout=60) as rt:
            t0 = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for seed in range(agents):
                    nursery.start_soon(_scripted_agent, rt, tally, per_agent, seed)
            elapsed = time.perf_counter() - t0
            stats = rt.statistics()
            leaks["commands"] = stats.in_flight + stats.queued
            leaks["turns"] = stats.active_turns
            leaks["agents"] = stats.agents

            leaks["asyncio_tasks"], _ = await _tasks_left([backend.host])
        return elapsed

    elapsed = trio.run(main)
    leaks["threads"] = len(thread_names() - threads_before)
    warm = [(mib, objects) for done, mib, objects in tally.samples if done >= tally.total * WARM_UP]
    base = warm[0][0]
    return {
        "commands": tally.done,
        "elapsed_s": elapsed,
        "samples": tally.samples,
        "rss_warm_mib": base,
        "rss_growth_pct": (max(mib for mib, _ in warm) - base) / base * 100,
        # Live objects, a steadier signal than RSS (which keeps the allocator's
        # high-water mark): the median of the last quarter against the first
        # quarter after warm-up.
        "objects_first": statistics.median(n for _, n in warm[: len(warm) // 4 or 1]),
        "objects_last": statistics.median(n for _, n in warm[-(len(warm) // 4 or 1) :]),
        "rss_peak_mib": peak_rss_mib(),
        "turns_lost": tally.lost,
        "failed_turns": tally.failed_turns,
        "leaks": leaks,
    }


# ---------------------------------------------------------------------------- real SDK


FAULTS = ("quota", "server", "cut", "hang")


def sdk_child(agents: int, turns: int, fault_rate: float) -> dict[str, Any]:
    import agy_trio
    from agy_trio.adapters.antigravity import AntigravityBackend, RetryPolicy
    from agy_trio.testing import Fault, open_model_server

    for name in API_KEYS:  # this process is the run's own: no need to put them back
        os.environ.pop(name, None)
    threads_before = thread_names()
    root = Path(tempfile.mkdtemp(prefix="agy-trio-soak-"))
    rng = random.Random(7)
    plan = {
        (a, t): rng.choice(FAULTS) if rng.random() < fault_rate else None
        for a in range(agents)
        for t in range(turns)
    }
    outcome: dict[str, Any] = {"answered": 0, "failed": 0, "lost": 0, "errors": {}}
    leaks: dict[str, int] = {}

    async def one(rt: Any, server: Any, a: int) -> None:
        config = agy_trio.AgentConfig(
            name=f"soak-{a}", model="agy-trio-soak", base_url=server.url, chat_timeout=5.0
        )
        agent = await rt.create_agent(config)
        sent: list[str] = []
        for t in range(turns):
            prompt = f"agent {a} turn {t} <{a}-{t}>"
            fault = plan[a, t]
            if fault == "quota":
                server.inject_fault(Fault.rate_limit(retry_after=0, match=prompt))
            elif fault == "server":
                server.inject_fault(Fault.http_error(500, match=prompt))
            elif fault == "cut":
                server.inject_fault(Fault.disconnect(after_chunks=2, match=prompt))
            elif fault == "hang":
                server.inject_fault(Fault.hang(match=prompt))
            try:
                with trio.fail_after(120):  # a turn that never ends is lost
                    response = await agent.chat(prompt)
                    sent.append(prompt)
                    text = await response.text()
                if text != f"You said: {prompt}":
                    raise AssertionError(text)
                outcome["answered"] += 1
            except agy_trio.AgyError as exc:
                name = type(exc).__name__
                outcome["errors"][name] = outcome["errors"].get(name, 0) + 1
                outcome["failed"] += 1
            except trio.TooSlowError:
                outcome["lost"] += 1
        with trio.fail_after(120):
            await agent.wait_for_idle()
            users = [m.text for m in await agent.history() if m.role == "user"]
        outcome["lost"] += len(set(sent) - set(users))
        await agent.shutdown()

    async def main() -> float:
        async with open_model_server() as server:
            backend = AntigravityBackend(
                base_dir=root / "backend", retry=RetryPolicy(attempts=3, initial_backoff=0.05)
            )
            async with open_bench_runtime(backend, chat_timeout=60) as rt:
                t0 = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    for a in range(agents):
                        nursery.start_soon(one, rt, server, a)
                elapsed = time.perf_counter() - t0
                stats = rt.statistics()
                leaks["commands"] = stats.in_flight + stats.queued
                leaks["turns"] = stats.active_turns
                leaks["asyncio_tasks"], outcome["tasks_left"] = await _tasks_left(backend.hosts)
                outcome["retries"] = backend.statistics().retries
                outcome["reopens"] = backend.statistics().reopens
            leaks["harness_pids"] = len(backend.harness_pids())
        return elapsed

    elapsed = trio.run(main)
    leaks["harness_processes"] = len(harnesses(live_only=True))
    leaks["threads"] = len(thread_names() - threads_before)
    backend_dir = root / "backend"
    leaks["folders"] = len(list(backend_dir.iterdir())) if backend_dir.exists() else 0
    shutil.rmtree(root, ignore_errors=True)
    return {
        "turns": agents * turns,
        "elapsed_s": elapsed,
        "faulted": sum(1 for f in plan.values() if f),
        "rss_peak_mib": peak_rss_mib(),
        **outcome,
        "leaks": leaks,
    }


async def _tasks_left(hosts: list[Any]) -> tuple[int, list[str]]:
    """asyncio tasks still alive on the hosts once work that is over had a moment to unwind."""
    import asyncio

    async def others() -> list[str]:
        me = asyncio.current_task()
        return [repr(t.get_coro()) for t in asyncio.all_tasks() if t is not me]

    left: list[str] = []
    with trio.move_on_after(10):
        while True:
            left = [name for host in hosts for name in await host.run(others)]
            if not left:
                break
            await trio.sleep(0.05)
    return len(left), left


# ---------------------------------------------------------------------------- parent


def _child(args: list[str]) -> dict[str, Any]:
    figures, _ = run_child(NAME, args, timeout=3600)
    return figures


def run(ctx: Context) -> BenchResult:
    agents, commands = ctx.pick((100, 5_000), (1_000, 100_000))
    sdk_agents, sdk_turns = ctx.pick((4, 5), (50, 20))
    fault_rate = 0.1
    result = BenchResult(
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        metrics=METRICS,
        rows=[],
        chart_metric="rss_growth_pct",
        params={
            "scripted_agents": agents,
            "scripted_commands": commands,
            "sdk_agents": sdk_agents,
            "sdk_turns": sdk_turns,
            "fault_rate": fault_rate,
        },
    )
    ctx.log(f"  scripted: {agents} agents, {commands:,} commands")
    scripted = _child(["--child", "scripted", "--agents", str(agents), "--commands", str(commands)])
    scripted_leaks = sum(scripted["leaks"].values())
    result.rows.append(
        Row(
            "scripted",
            "agy_trio, scripted backend",
            "agy",
            {
                "rss_growth_pct": Summary.of([scripted["rss_growth_pct"]]),
                "commands_per_s": Summary.of([scripted["commands"] / scripted["elapsed_s"]]),
                "rss_peak_mib": Summary.of([scripted["rss_peak_mib"]]),
                "turns_lost": Summary.of([scripted["turns_lost"]]),
                "leaks": Summary.of([scripted_leaks]),
                "failed_turns": Summary.of([scripted["failed_turns"]]),
            },
            note=f"{agents:,} agents, {commands:,} commands",
            group="scripted",
        )
    )
    result.extra["scripted"] = scripted
    targets = [
        Target(
            "scripted: memory flat, RSS growth at most 5% after warm-up",
            scripted["rss_growth_pct"] <= 5.0,
            f"{fmt(scripted['rss_growth_pct'], 1)}% (from {fmt(scripted['rss_warm_mib'], 0)} MiB "
            f"after warm-up; peak {fmt(scripted['rss_peak_mib'], 0)} MiB); "
            f"{scripted['commands'] / scripted['elapsed_s']:,.0f} commands/s",
        ),
        Target(
            "scripted: 0 turns lost, 0 leaks",
            scripted["turns_lost"] == 0 and scripted_leaks == 0,
            f"{scripted['turns_lost']} lost; leaks {scripted['leaks']}",
        ),
    ]
    reason = sdk_missing()
    if reason is not None:
        result.notes.append(f"real SDK part skipped: {reason}")
    else:
        ctx.log(f"  real SDK: {sdk_agents} agents x {sdk_turns} turns, {fault_rate:.0%} faulted")
        sdk = _child(
            [
                "--child",
                "sdk",
                "--agents",
                str(sdk_agents),
                "--turns",
                str(sdk_turns),
                "--fault-rate",
                str(fault_rate),
            ]
        )
        sdk_leaks = sum(sdk["leaks"].values())
        result.rows.append(
            Row(
                "sdk",
                "agy_trio, real SDK",
                "agy",
                {
                    "turns_lost": Summary.of([sdk["lost"]]),
                    "leaks": Summary.of([sdk_leaks]),
                    "faulted": Summary.of([sdk["faulted"]]),
                    "failed_turns": Summary.of([sdk["failed"]]),
                    "turns_per_s": Summary.of([sdk["turns"] / sdk["elapsed_s"]]),
                    "rss_peak_mib": Summary.of([sdk["rss_peak_mib"]]),
                },
                note=f"{sdk_agents} agents x {sdk_turns} turns, {fault_rate:.0%} faulted",
                group="real SDK",
            )
        )
        result.extra["sdk"] = sdk
        targets.append(
            Target(
                "real SDK, 10% of requests faulted: 0 turns lost, 0 leaked processes, "
                "threads, tasks or folders",
                sdk["lost"] == 0 and sdk_leaks == 0,
                f"{sdk['answered']} answered, {sdk['failed']} typed errors {sdk['errors']}, "
                f"{sdk['lost']} lost; {sdk['faulted']} requests faulted, {sdk['retries']} "
                f"retries, {sdk['reopens']} reopens; leaks {sdk['leaks']}",
            )
        )
    result.targets = targets
    return result


def child_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", required=True, choices=["scripted", "sdk"])
    parser.add_argument("--agents", type=int, required=True)
    parser.add_argument("--commands", type=int, default=0)
    parser.add_argument("--turns", type=int, default=0)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    args = parser.parse_args(argv)
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "scripted": lambda: scripted_child(args.agents, args.commands),
        "sdk": lambda: sdk_child(args.agents, args.turns, args.fault_rate),
    }
    print_figures(runners[args.child]())


if __name__ == "__main__":
    child_main()
