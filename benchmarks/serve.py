"""Serving chats over HTTP: concurrent SSE clients of `agy-trio serve`, next to in-process chats.

The server is `agy-trio serve` in its own process, fresh for every run (the
scripted backend, or the real SDK against the local model server, offline:
`GEMINI_API_KEY` unset, every folder the harness touches temporary). The
clients are httpx on Trio in the benchmark's process, one connection each.
The in-process contender makes the same chats through the public API in one
process, with the same backend and runtime settings as the command, so the
difference is the HTTP layer: Starlette, hypercorn, SSE framing, the loopback
socket and the client's parsing.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import BenchResult, Metric, Row, Summary, Target, fmt, percentile
from benchmarks._rounds import Context, interleave
from benchmarks._worker import ROOT

NAME = "serve"
TITLE = "Serving chats over HTTP (SSE) next to in-process chats"
DESCRIPTION = (
    "N clients each stream one chat at once from `agy-trio serve` (`POST "
    "/v1/agents/{id}/chat`, server-sent events), every client on its own connection; the "
    "agents are created and each has one warm-up turn first. Measured per chat from the "
    "request being sent: time to the first `delta` event and to the `done` event; p50 and "
    "p95 over the N chats of a round, summarised over rounds. All N requests leave at once, "
    "so the figures include queueing behind one another on the server. The server runs in "
    "its own process (fresh for each round); the clients (one httpx client each, as separate "
    "browsers) on Trio in the benchmark's. The "
    "in-process row makes the same chats through the public API (`agent.chat()`, first "
    "`TextDelta`, end of the stream) with the same backend and runtime settings, in one "
    "process: the difference is the HTTP layer. Scripted backend: the default turn (the "
    "prompt quoted back in 4 chunks). Real SDK: google-antigravity agents (one harness "
    "process each) against the local model server, as `agy-trio serve` runs by default."
)
METRICS = [
    Metric("first_p50_ms", "first delta, p50", "ms"),
    Metric("first_p95_ms", "first delta, p95", "ms"),
    Metric("done_p50_ms", "done, p50", "ms"),
    Metric("done_p95_ms", "done, p95", "ms"),
]

Measure = dict[str, float]


def _summary(first: list[float], done: list[float], completed: int) -> Measure:
    return {
        "first_p50_ms": percentile(first, 50) * 1e3,
        "first_p95_ms": percentile(first, 95) * 1e3,
        "done_p50_ms": percentile(done, 50) * 1e3,
        "done_p95_ms": percentile(done, 95) * 1e3,
        "completed": float(completed),
    }


def _prompt(i: int) -> str:
    return f"client {i} says hello"


# ---------------------------------------------------------------------------- over HTTP


@contextlib.contextmanager
def _offline_env() -> Iterator[tuple[dict[str, str], Path]]:
    root = Path(tempfile.mkdtemp(prefix="agy-trio-bench-serve-"))
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    (root / "tmp").mkdir()
    env.update(HOME=str(root), TMPDIR=str(root / "tmp"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        yield env, root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def serve_process(backend: str) -> Iterator[str]:
    """`agy-trio serve --backend BACKEND --port 0` in a child process; yields its URL."""
    with _offline_env() as (env, root):
        process = subprocess.Popen(
            [sys.executable, "-m", "agy_trio", "serve", "--backend", backend, "--port", "0"],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert process.stdout is not None
            match = re.fullmatch(r"Serving on (http://\S+)\n", process.stdout.readline())
            if match is None:
                raise RuntimeError("agy-trio serve did not start")
            yield match.group(1)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _http_clients(url: str, n: int) -> Measure:
    import httpx
    from httpx_sse import aconnect_sse

    async with contextlib.AsyncExitStack() as stack:
        # One client (connection pool) per simulated user, as separate browsers
        # would be: httpx's pool is shared badly by hundreds of live streams.
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=600))
            for _ in range(n)
        ]
        ids: list[str] = [""] * n

        async def create(i: int) -> None:
            answer = await clients[i].post("/v1/agents", json={"name": f"bench-{i}"})
            answer.raise_for_status()
            ids[i] = answer.json()["id"]

        first: list[float] = []
        done: list[float] = []

        async def chat(i: int, record: bool) -> None:
            t0 = time.perf_counter()
            t_first = t_done = None
            text = None
            async with aconnect_sse(
                clients[i], "POST", f"/v1/agents/{ids[i]}/chat", json={"prompt": _prompt(i)}
            ) as source:
                async for event in source.aiter_sse():
                    if event.event == "delta" and t_first is None:
                        t_first = time.perf_counter()
                    elif event.event == "done":
                        t_done = time.perf_counter()
                        text = event.json()["text"]
                    elif event.event == "error":
                        raise RuntimeError(f"chat {i} failed: {event.data}")
            if text is None or not text.startswith("You said") or t_first is None:
                raise RuntimeError(f"chat {i} did not complete: {text!r}")
            if record:
                assert t_done is not None
                first.append(t_first - t0)
                done.append(t_done - t0)

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(create, i)
        for record in (False, True):  # a warm-up turn (connections open), then the measured one
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(chat, i, record)
    return _summary(first, done, len(done))


def http_round(backend: str, n: int) -> Measure:
    with serve_process(backend) as url:
        return trio.run(_http_clients, url, n)


# ---------------------------------------------------------------------------- in-process


async def _inproc_chats(rt: Any, base_config: Any, n: int) -> Measure:
    import attrs

    from agy_trio import TextDelta

    handles: list[Any] = [None] * n

    async def create(i: int) -> None:
        handles[i] = await rt.create_agent(attrs.evolve(base_config, name=f"bench-{i}"))

    first: list[float] = []
    done: list[float] = []

    async def chat(i: int, record: bool) -> None:
        t0 = time.perf_counter()
        t_first = None
        response = await handles[i].chat(_prompt(i))
        text: list[str] = []
        async for event in response.events():
            if type(event) is TextDelta:
                if t_first is None:
                    t_first = time.perf_counter()
                text.append(event.text)
        t_done = time.perf_counter()
        if not "".join(text).startswith("You said") or t_first is None:
            raise RuntimeError(f"chat {i} did not complete: {''.join(text)!r}")
        if record:
            first.append(t_first - t0)
            done.append(t_done - t0)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(create, i)
    for record in (False, True):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(chat, i, record)
    return _summary(first, done, len(done))


def inproc_round(backend: str, n: int) -> Measure:
    import agy_trio

    # The settings `agy-trio serve` uses: chat starts are not paced.
    config = agy_trio.RuntimeConfig(inter_agent_delay=0)

    async def scripted() -> Measure:
        from agy_trio.testing.scripted import ScriptedBackend

        async with agy_trio.open_runtime(config, backend=ScriptedBackend()) as rt:
            return await _inproc_chats(rt, agy_trio.AgentConfig(), n)

    async def real_sdk(root: Path) -> Measure:
        from agy_trio.adapters.antigravity import AntigravityBackend
        from agy_trio.testing import open_model_server

        # As the command does: the local model server in the same process.
        async with open_model_server() as server:
            backend = AntigravityBackend(base_dir=root / "agy")
            base = agy_trio.AgentConfig(model="local-model", base_url=server.url)
            async with agy_trio.open_runtime(config, backend=backend) as rt:
                return await _inproc_chats(rt, base, n)

    if backend == "scripted":
        return trio.run(scripted)
    with _offline_env() as (_, root):
        saved = {
            k: os.environ.pop(k) for k in ("GEMINI_API_KEY", "GOOGLE_API_KEY") if k in os.environ
        }
        try:
            return trio.run(real_sdk, root)
        finally:
            os.environ.update(saved)


# ---------------------------------------------------------------------------- the comparison


def availability(backend: str) -> str | None:
    """Why this part of the comparison cannot run here, or None."""
    try:
        import httpx  # noqa: F401
        import httpx_sse  # noqa: F401

        import agy_trio.serve  # noqa: F401
    except ImportError as exc:
        return f"needs the serve extra and httpx-sse (pip install -e '.[dev,bench]'): {exc}"
    if backend == "antigravity":
        try:
            import google.antigravity  # noqa: F401
        except ImportError:
            return "google-antigravity is not installed (pip install 'agy-trio[antigravity]')"
    return None


CONTENDERS: dict[str, tuple[str, str, Callable[[str, int], Measure], str]] = {
    "http": (
        "agy-trio serve, HTTP + SSE",
        "agy",
        http_round,
        "server process; one httpx client per user, on loopback",
    ),
    "inproc": (
        "same chats in-process",
        "baseline",
        inproc_round,
        "agent.chat() through the public API, one process",
    ),
}


def run(ctx: Context) -> BenchResult:
    result = BenchResult(
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        metrics=METRICS,
        rows=[],
        chart_metric="first_p50_ms",
    )
    scenarios = [
        ("scripted", ctx.pick(20, 200), ctx.pick(2, 5), "scripted backend"),
        ("antigravity", ctx.pick(4, 50), ctx.pick(1, 3), "real SDK, local model server"),
    ]
    skipped: list[str] = []
    completed: dict[str, list[float]] = {}
    params: dict[str, Any] = {}
    for backend, n, rounds, label in scenarios:
        reason = availability(backend)
        if reason is not None:
            skipped.append(f"{label}: {reason}")
            continue
        group = f"{n} clients at once, {label}"
        contenders = [
            (key, functools.partial(fn, backend, n)) for key, (_, _, fn, _) in CONTENDERS.items()
        ]
        data = interleave(ctx, contenders, rounds, label=f"{NAME} [{group}]")
        for key, (row_label, kind, _, note) in CONTENDERS.items():
            values = data[key]
            completed[f"{group}: {row_label}"] = values.pop("completed")
            metrics = {m: Summary.of(v) for m, v in values.items()}
            result.rows.append(Row(key, row_label, kind, metrics, note, group))
        params[label] = f"{n} clients x {rounds} rounds"
    result.params = params
    if skipped:
        result.notes = [f"Not run: {s}" for s in skipped]
        if not result.rows:
            result.skipped = "; ".join(skipped)
    result.extra["completed_per_round"] = completed
    result.targets = targets(result, scenarios, completed)
    return result


def targets(
    result: BenchResult,
    scenarios: list[tuple[str, int, int, str]],
    completed: dict[str, list[float]],
) -> list[Target]:
    out = []
    for _, n, _, label in scenarios:
        group = f"{n} clients at once, {label}"
        http_row = result.row("http", group)
        base_row = result.row("inproc", group)
        if http_row is None or base_row is None:
            continue
        runs = completed.get(f"{group}: {CONTENDERS['http'][0]}", [])
        ok = bool(runs) and all(c == n for c in runs)
        first = http_row.metrics["first_p50_ms"].median
        base_first = base_row.metrics["first_p50_ms"].median
        done = http_row.metrics["done_p95_ms"].median
        base_done = base_row.metrics["done_p95_ms"].median
        out.append(
            Target(
                f"serve, {label}: all {n} concurrent SSE streams complete, every round",
                ok,
                f"{', '.join(str(int(c)) for c in runs)} of {n} streams completed per round; "
                f"first delta p50 {fmt(first)} ms over HTTP vs {fmt(base_first)} ms in-process, "
                f"done p95 {fmt(done)} vs {fmt(base_done)} ms",
            )
        )
    return out
