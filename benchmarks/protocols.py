"""The agent protocols under load: many concurrent streams over every protocol at once.

`agy-trio serve` runs in its own process with the real SDK against the local
model server (offline, as the command does by default). Each protocol is
driven by its real client, as its users would: the native API with httpx and
httpx-sse, OpenAI Responses with the ``openai`` client, A2A with a2a-sdk's
client, MCP with the ``mcp`` client.

Two parts:

* **mixed load**: N streams at once, spread evenly over the protocols, each
  client on its own connection; every one must complete (0 errors). Time to
  the end of the answer, p50 and p95 per protocol.
* **per-event cost**: for each protocol in turn, the same S chats of a long
  answer (many deltas), one protocol at a time; the server process's CPU time
  (``psutil``, the server process only: the harnesses are processes of their
  own) divided by the answer's deltas. The native SSE path is the baseline:
  the difference is what rendering that protocol costs per event.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from benchmarks._common import (
    BenchResult,
    Metric,
    Row,
    Target,
    fmt,
    percentile_metrics,
    percentiles,
    summaries,
)
from benchmarks._offline import serve_process, without_api_keys
from benchmarks._rounds import Context

NAME = "protocols"
TITLE = "Agent protocols under load: native SSE, OpenAI Responses, A2A, MCP and AG-UI at once"
DESCRIPTION = (
    "`agy-trio serve` (real SDK, local model server, its own process). Mixed load: N chats at "
    "once, spread evenly over the protocols, each driven by its real client on its own "
    "connection (native: httpx + httpx-sse; OpenAI Responses: the `openai` client, streaming; "
    "A2A: a2a-sdk's client, `SendStreamingMessage`; MCP: the `mcp` client's `chat` tool; AG-UI: "
    "`POST /ag-ui` made and read with ag-ui-protocol's types). Every "
    "chat must complete; time from the request to the end of the answer, p50 and p95 per "
    "protocol. Per-event cost: for each protocol alone, S chats of a long answer, one at a time; "
    "the server process's CPU time per answer delta (the harness processes are not counted), "
    "next to the native SSE path."
)
METRICS = [
    *percentile_metrics("done", "done, p{p}", "ms"),
    Metric("cpu_per_event_us", "server CPU per event", "us"),
]

LONG_PROMPT = " ".join(f"word{i}" for i in range(120))
"""The local model server quotes the prompt back: a long prompt is a long answer."""

Chat = Callable[[str, list[str]], Awaitable[list[str]]]


# ---------------------------------------------------------------- one conversation per protocol
# Each function holds one conversation: its prompts answered one after another
# on the same agent (so that the per-event part counts no agent creation).


async def native_chat(url: str, prompts: list[str]) -> list[str]:
    import httpx
    from httpx_sse import aconnect_sse

    answers: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        created = await client.post("/v1/agents", json={})
        created.raise_for_status()
        agent_id = created.json()["id"]
        for prompt in prompts:
            async with aconnect_sse(
                client, "POST", f"/v1/agents/{agent_id}/chat", json={"prompt": prompt}
            ) as source:
                async for event in source.aiter_sse():
                    if event.event == "done":
                        answers.append(event.json()["text"])
                    elif event.event == "error":
                        raise RuntimeError(f"native chat failed: {event.data}")
    return answers


async def responses_chat(url: str, prompts: list[str]) -> list[str]:
    import openai

    answers: list[str] = []
    previous: str | None = None
    async with openai.AsyncOpenAI(
        base_url=f"{url}/v1", api_key="-", max_retries=0, timeout=600
    ) as client:
        for prompt in prompts:
            stream = await client.responses.create(
                model="agy", input=prompt, stream=True, previous_response_id=previous
            )
            async with stream:
                async for event in stream:
                    if event.type == "response.completed":
                        answers.append(event.response.output_text)
                        previous = event.response.id
                    elif event.type in ("response.failed", "response.incomplete", "error"):
                        raise RuntimeError(f"response failed: {event}")
    return answers


async def a2a_chat(url: str, prompts: list[str]) -> list[str]:
    import httpx
    from a2a.client import ClientConfig, ClientFactory
    from a2a.types import Message, Part, Role, SendMessageRequest, TaskState

    answers: list[str] = []
    context = ""
    async with httpx.AsyncClient(timeout=600) as http:
        client = await ClientFactory(ClientConfig(httpx_client=http)).create_from_url(url)
        async with client:
            for prompt in prompts:
                message = Message(
                    message_id=str(uuid.uuid4()),
                    role=Role.ROLE_USER,
                    parts=[Part(text=prompt)],
                    context_id=context,
                )
                pieces: list[str] = []
                state = None
                async for response in client.send_message(SendMessageRequest(message=message)):
                    if response.HasField("task"):
                        context = response.task.context_id
                    elif response.HasField("artifact_update"):
                        pieces.extend(p.text for p in response.artifact_update.artifact.parts)
                    elif response.HasField("status_update"):
                        state = response.status_update.status.state
                if state != TaskState.TASK_STATE_COMPLETED:
                    raise RuntimeError(f"A2A task ended in state {state}")
                answers.append("".join(pieces))
    return answers


async def mcp_chat(url: str, prompts: list[str]) -> list[str]:
    from mcp import Client

    answers: list[str] = []
    arguments: dict[str, str] = {}
    async with Client(f"{url}/mcp") as client:
        for prompt in prompts:
            result = await client.call_tool("chat", {"prompt": prompt, **arguments})
            if result.is_error or result.structured_content is None:
                raise RuntimeError(f"MCP chat failed: {result.content}")
            answers.append(result.structured_content["answer"])
            arguments["conversation_id"] = result.structured_content["conversation_id"]
    return answers


async def ag_ui_chat(url: str, prompts: list[str]) -> list[str]:
    # AG-UI's own client is @ag-ui/client (Node; the tests drive it): here the
    # runs are made and read with ag-ui-protocol's Python types, as it posts them.
    import httpx
    from ag_ui.core import Event, EventType, RunAgentInput, UserMessage
    from httpx_sse import aconnect_sse
    from pydantic import TypeAdapter

    events: TypeAdapter[Any] = TypeAdapter(Event)
    thread = str(uuid.uuid4())
    answers: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        for prompt in prompts:
            body = RunAgentInput(
                thread_id=thread,
                run_id=str(uuid.uuid4()),
                messages=[UserMessage(id=str(uuid.uuid4()), content=prompt)],
                state={},
                tools=[],
                context=[],
                forwarded_props={},
            ).model_dump(by_alias=True, exclude_none=True)
            pieces: list[str] = []
            finished = False
            async with aconnect_sse(client, "POST", "/ag-ui", json=body) as source:
                async for frame in source.aiter_sse():
                    event = events.validate_json(frame.data)
                    if event.type == EventType.TEXT_MESSAGE_CONTENT:
                        pieces.append(event.delta)
                    elif event.type == EventType.RUN_FINISHED:
                        finished = True
                    elif event.type == EventType.RUN_ERROR:
                        raise RuntimeError(f"AG-UI run failed: {event.message}")
            if not finished:
                raise RuntimeError("the AG-UI run ended without RUN_FINISHED")
            answers.append("".join(pieces))
    return answers


PROTOCOLS: dict[str, tuple[str, str, Chat]] = {
    "native": ("native SSE (/v1/agents/{id}/chat)", "baseline", native_chat),
    "responses": ("OpenAI Responses, streaming", "agy", responses_chat),
    "a2a": ("A2A SendStreamingMessage", "agy", a2a_chat),
    "mcp": ("MCP chat tool", "agy", mcp_chat),
    "ag_ui": ("AG-UI run (POST /ag-ui)", "agy", ag_ui_chat),
}


# ---------------------------------------------------------------------------- the two parts


async def _mixed(url: str, n: int) -> dict[str, dict[str, float]]:
    keys = list(PROTOCOLS)
    done: dict[str, list[float]] = {key: [] for key in keys}
    errors: list[str] = []

    async def one(i: int) -> None:
        key = keys[i % len(keys)]
        prompt = f"client {i} says hello"
        t0 = time.perf_counter()
        try:
            (text,) = await PROTOCOLS[key][2](url, [prompt])
        except Exception as exc:
            errors.append(f"{key}: {exc!r}")
            return
        if text != f"You said: {prompt}":
            errors.append(f"{key}: answered {text!r}")
            return
        done[key].append(time.perf_counter() - t0)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} chats failed, e.g. {errors[0]}")
    return {
        key: {**percentiles("done", values, "ms"), "completed": float(len(values))}
        for key, values in done.items()
    }


async def _per_event(url: str, pid: int, chats: int) -> dict[str, float]:
    import httpx
    import psutil
    from httpx_sse import aconnect_sse

    server = psutil.Process(pid)

    def cpu() -> float:
        times = server.cpu_times()
        return float(times.user + times.system)

    # How many deltas the long answer comes in, counted on the native wire.
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        agent_id = (await client.post("/v1/agents", json={})).json()["id"]
        async with aconnect_sse(
            client, "POST", f"/v1/agents/{agent_id}/chat", json={"prompt": LONG_PROMPT}
        ) as source:
            deltas = len([e async for e in source.aiter_sse() if e.event == "delta"])
    cost: dict[str, float] = {}
    for key, (_, _, chat) in PROTOCOLS.items():
        await chat(url, [LONG_PROMPT])  # warm: the client's imports, the first connection
        # A conversation of one turn, then one of 1 + `chats` turns: the
        # difference is `chats` turns, without making the agent or connecting.
        before = cpu()
        await chat(url, [LONG_PROMPT])
        one = cpu() - before
        before = cpu()
        answers = await chat(url, [LONG_PROMPT] * (chats + 1))
        cost[key] = max(cpu() - before - one, 0.0) / (chats * deltas) * 1e6
        if answers != [f"You said: {LONG_PROMPT}"] * (chats + 1):
            raise RuntimeError(f"{key}: a long answer came back wrong")
    cost["deltas"] = float(deltas)
    return cost


def mixed_round(n: int) -> dict[str, dict[str, float]]:
    with serve_process("antigravity", stop_timeout=120) as (url, _):
        return trio.run(_mixed, url, n)


def per_event_round(chats: int) -> dict[str, float]:
    with serve_process("antigravity", stop_timeout=120) as (url, process):
        return trio.run(_per_event, url, process.pid, chats)


def availability() -> str | None:
    """Why this comparison cannot run here, or None."""
    try:
        import a2a.client  # noqa: F401
        import ag_ui.core  # noqa: F401
        import google.antigravity  # noqa: F401
        import httpx_sse  # noqa: F401
        import mcp  # noqa: F401
        import openai  # noqa: F401
        import psutil  # noqa: F401
    except ImportError as exc:
        return f"needs the dev, serve and antigravity extras: {exc}"
    return None


def run(ctx: Context) -> BenchResult:
    skipped = availability()
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "done_p50_ms", skipped=skipped)
    if skipped:
        return result
    with without_api_keys():
        n, rounds, chats = ctx.pick(20, 200), ctx.pick(1, 3), ctx.pick(2, 10)
        mixed: dict[str, dict[str, list[float]]] = {key: {} for key in PROTOCOLS}
        completed: list[float] = []
        for r in range(rounds):
            measured = mixed_round(n)
            completed.append(sum(m["completed"] for m in measured.values()))
            for key, values in measured.items():
                for metric, value in values.items():
                    mixed[key].setdefault(metric, []).append(value)
            ctx.log(f"  {NAME} mixed round {r + 1}/{rounds} done")
        costs: dict[str, list[float]] = {}
        for r in range(rounds):
            for key, value in per_event_round(chats).items():
                costs.setdefault(key, []).append(value)
            ctx.log(f"  {NAME} per-event round {r + 1}/{rounds} done")
    group = f"{n} chats at once over {len(PROTOCOLS)} protocols, real SDK"
    for key, (label, kind, _) in PROTOCOLS.items():
        mixed[key].pop("completed", None)
        metrics = summaries({**mixed[key], "cpu_per_event_us": costs[key]})
        result.rows.append(Row(key, label, kind, metrics, "", group))
    deltas = costs.pop("deltas", [0.0])
    result.params = {
        "chats at once": n,
        "rounds": rounds,
        "per-event chats per protocol": chats,
        "deltas per long answer": int(deltas[0]),
    }
    result.extra["completed_per_round"] = completed
    native = result.median("native", "cpu_per_event_us") or 0.0
    result.targets = [
        Target(
            f"all {n} concurrent chats over {len(PROTOCOLS)} protocols complete, every round",
            all(c == n for c in completed),
            f"{', '.join(str(int(c)) for c in completed)} of {n} completed per round, 0 errors",
        ),
        *(
            Target(
                f"{label}: server CPU per event next to the native SSE path",
                None,
                f"{fmt(result.median(key, 'cpu_per_event_us') or 0.0)} us vs native "
                f"{fmt(native)} us per event",
            )
            for key, (label, _, _) in PROTOCOLS.items()
            if key != "native"
        ),
    ]
    return result


__all__ = ["run"]
