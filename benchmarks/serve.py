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
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import BenchResult, Measure, Target, fmt, percentile_metrics, percentiles
from benchmarks._offline import offline_env, serve_process, without_api_keys
from benchmarks._rounds import Contender, Context, rows_of, run_rounds
from benchmarks._runtime import on_scripted, open_bench_runtime

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
    *percentile_metrics("first", "first delta, p{p}", "ms"),
    *percentile_metrics("done", "done, p{p}", "ms"),
]


def _prompt(i: int) -> str:
    return f"client {i} says hello"


class _Chats:
    """N users' chats all at once: each creates its agent, has a warm-up turn, then one measured.

    ``create(i)`` makes user ``i``'s agent; ``chat(i)`` plays one turn and returns the
    seconds from the request to its first delta and to its end.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.first: list[float] = []
        self.done: list[float] = []

    async def _all(self, fn: Callable[[int], Awaitable[Any]]) -> None:
        async with trio.open_nursery() as nursery:
            for i in range(self.n):
                nursery.start_soon(fn, i)

    async def run(
        self,
        create: Callable[[int], Awaitable[None]],
        chat: Callable[[int], Awaitable[tuple[float, float]]],
    ) -> Measure:
        async def measured(i: int) -> None:
            first, done = await chat(i)
            self.first.append(first)
            self.done.append(done)

        await self._all(create)
        await self._all(chat)  # a warm-up turn (connections open), then the measured one
        await self._all(measured)
        return {
            **percentiles("first", self.first, "ms"),
            **percentiles("done", self.done, "ms"),
            "completed": float(len(self.done)),
        }


# ---------------------------------------------------------------------------- over HTTP


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

        async def chat(i: int) -> tuple[float, float]:
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
            assert t_done is not None
            return t_first - t0, t_done - t0

        return await _Chats(n).run(create, chat)


def http_round(backend: str, n: int) -> Measure:
    with serve_process(backend) as (url, _):
        return trio.run(_http_clients, url, n)


# ---------------------------------------------------------------------------- in-process


async def _inproc_chats(rt: Any, base_config: Any, n: int) -> Measure:
    import attrs

    from agy_trio import TextDelta

    handles: list[Any] = [None] * n

    async def create(i: int) -> None:
        handles[i] = await rt.create_agent(attrs.evolve(base_config, name=f"bench-{i}"))

    async def chat(i: int) -> tuple[float, float]:
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
        return t_first - t0, t_done - t0

    return await _Chats(n).run(create, chat)


def inproc_round(backend: str, n: int) -> Measure:
    """The same chats through the public API, with the settings `agy-trio serve` uses."""
    import agy_trio

    if backend == "scripted":
        return on_scripted(lambda rt, _: _inproc_chats(rt, agy_trio.AgentConfig(), n))

    async def real_sdk(root: Path) -> Measure:
        from agy_trio.adapters.antigravity import AntigravityBackend
        from agy_trio.testing import open_model_server

        # As the command does: the local model server in the same process.
        async with open_model_server() as server:
            backend = AntigravityBackend(base_dir=root / "agy")
            base = agy_trio.AgentConfig(model="local-model", base_url=server.url)
            async with open_bench_runtime(backend) as rt:
                return await _inproc_chats(rt, base, n)

    with offline_env("agy-trio-bench-serve-") as (_, root), without_api_keys():
        return trio.run(real_sdk, root)


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


# Each called with (backend, clients).
CONTENDERS: dict[str, Contender] = {
    "http": Contender(
        "agy-trio serve, HTTP + SSE",
        "agy",
        http_round,
        "server process; one httpx client per user, on loopback",
    ),
    "inproc": Contender(
        "same chats in-process",
        "baseline",
        inproc_round,
        "agent.chat() through the public API, one process",
    ),
}


def run(ctx: Context) -> BenchResult:
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "first_p50_ms")
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
        data = run_rounds(ctx, CONTENDERS, (backend, n), rounds, label=f"{NAME} [{group}]")
        for key, contender in CONTENDERS.items():
            completed[f"{group}: {contender.label}"] = data[key].pop("completed")
        result.rows += rows_of(data, CONTENDERS, group)
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
        runs = completed.get(f"{group}: {CONTENDERS['http'].label}", [])
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
