"""A fault soak through `agy-trio serve`: clients, model faults, hang-ups and harness kills.

`agy-trio serve` runs the real SDK in a process of its own, against a local
model server in this process that fails one model call in ten (a 503, or a
stream cut after two chunks). N clients, each with an agent of its own, chat
over the native API (`POST /v1/agents/{id}/chat`, server-sent events) for the
duration; a client hangs up mid-answer now and then, and once a minute one
harness process of the server is killed with SIGKILL. A client whose turn
ended with an `error` event (a typed error) or that hung up sends the same
prompt again, as a real client would.

Counted per turn (one prompt, however many attempts): answered; lost (an
attempt that ended neither with `done` nor with a typed `error`: a stream cut
by the server, a 500, a client-side timeout). At the end every agent must
answer one more chat at once (none stuck), the server must report no active
turn, and its memory (RSS of the server process, sampled every few seconds)
must be flat after the warm-up.

Run it niced: ``nice python -m benchmarks.fault_soak`` (5 minutes, 100
clients) or ``--quick``; ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import psutil
import trio

from benchmarks._measure import harnesses
from benchmarks._offline import serve_process, without_api_keys

# The server's chat_timeout: a turn not over by then ends with a typed
# OperationTimeout. An attempt still without an answer a minute after that
# counts as lost.
SERVER_CHAT_TIMEOUT = 90.0
ATTEMPT_BOUND = SERVER_CHAT_TIMEOUT + 60.0
MAX_ATTEMPTS = 20
# After the soak, with no fault left, each agent must answer within this.
STUCK_BOUND = 30.0
FAULT_SHARE = 0.10  # of the model calls
HANG_UP_SHARE = 0.05  # of the attempts: the client goes away after the first delta


@attrs.define
class Tally:
    """What the clients saw."""

    turns: int = 0
    answered: int = 0
    lost: int = 0
    attempts: int = 0
    hang_ups: int = 0
    retried_turns: int = 0
    errors: Counter[str] = attrs.field(factory=Counter)
    lost_reasons: Counter[str] = attrs.field(factory=Counter)
    stuck: int = 0
    # Seconds from a turn's first attempt to its answer.
    latencies: list[float] = attrs.field(factory=list)


def _server(model_url: str) -> contextlib.AbstractContextManager[tuple[str, Any]]:
    """`agy-trio serve` on the real SDK against ``model_url``; yields its URL and process."""
    options = ("--base-url", model_url, "--model", "agy-trio-local")
    timeout = str(SERVER_CHAT_TIMEOUT)
    return serve_process("antigravity", *options, AGI_CHAT_TIMEOUT_SECS=timeout)


class _Client:
    """One simulated user: an agent of its own, chatting until the deadline."""

    def __init__(self, number: int, url: str, tally: Tally, rng: random.Random) -> None:
        self.number = number
        self.url = url
        self.tally = tally
        self.rng = rng
        self.agent_id = ""

    async def run(self, deadline: float) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=self.url, timeout=ATTEMPT_BOUND) as http:
            for _ in range(MAX_ATTEMPTS):
                answer = await http.post("/v1/agents", json={"name": f"soak-{self.number}"})
                if answer.status_code == 201:
                    self.agent_id = answer.json()["id"]
                    break
                await trio.sleep(0.5)
            else:
                raise RuntimeError(f"client {self.number} could not create its agent")
            turn = 0
            while trio.current_time() < deadline:
                turn += 1
                await self.turn(http, f"client {self.number} turn {turn}")

    async def turn(self, http: Any, prompt: str) -> None:
        tally = self.tally
        tally.turns += 1
        started = trio.current_time()
        for attempt in range(MAX_ATTEMPTS):
            tally.attempts += 1
            if attempt == 1:
                tally.retried_turns += 1
            outcome = await self.attempt(http, prompt)
            if outcome == "answered":
                tally.answered += 1
                tally.latencies.append(trio.current_time() - started)
                return
            if outcome.startswith("lost"):
                tally.lost += 1
                tally.lost_reasons[outcome] += 1
                return
            # A typed error or our own hang-up: send the prompt again.
            await trio.sleep(0.2 + self.rng.random() * 0.3)
        tally.lost += 1
        tally.lost_reasons["lost: out of attempts"] += 1

    async def attempt(self, http: Any, prompt: str, *, may_hang_up: bool = True) -> str:
        from httpx_sse import aconnect_sse

        hang_up = may_hang_up and self.rng.random() < HANG_UP_SHARE
        path = f"/v1/agents/{self.agent_id}/chat"
        outcome: str | None = None
        with trio.move_on_after(ATTEMPT_BOUND) as bound:
            try:
                async with aconnect_sse(http, "POST", path, json={"prompt": prompt}) as source:
                    if source.response.status_code != 200:
                        await source.response.aread()
                        return self._http_error(source.response)
                    # Read to the end of the stream; a hang-up cancels the read,
                    # which finalises every generator httpx nests (not GC).
                    with trio.CancelScope() as reading:
                        async for event in source.aiter_sse():
                            outcome = outcome or self._event(event, prompt, hang_up)
                            if outcome == "hung up":
                                reading.cancel()
            except Exception as exc:  # the server cut the exchange: not a typed answer
                return f"lost: {type(exc).__name__}"
        if outcome is not None:
            return outcome
        if bound.cancelled_caught:
            return "lost: no answer within the bound"
        return "lost: the stream ended without done or error"

    def _event(self, event: Any, prompt: str, hang_up: bool) -> str | None:
        """What one event of the stream means for the attempt (None: read on)."""
        if event.event == "delta" and hang_up:
            self.tally.hang_ups += 1
            return "hung up"  # leaving the block closes the connection
        if event.event == "done":
            text = event.json()["text"]
            return "answered" if f"You said: {prompt}" in text else "lost: text"
        if event.event == "error":
            self.tally.errors[event.json()["type"]] += 1
            return "typed error"
        return None

    def _http_error(self, response: Any) -> str:
        try:
            kind = response.json().get("error", {}).get("type") or response.json().get("type")
        except ValueError:
            kind = None
        if kind and response.status_code != 500:
            self.tally.errors[f"HTTP {response.status_code} {kind}"] += 1
            return "typed error"
        return f"lost: HTTP {response.status_code}"


async def _faults(server: Any, stop: trio.Event) -> dict[str, int]:
    """Keep one model call in ten failing: a 503, or a stream cut after two chunks."""
    from agy_trio.testing import Fault

    injected = {"http_503": 0, "cut_stream": 0}
    while not stop.is_set():
        wanted = int(server.statistics().requests_total * FAULT_SHARE)
        while sum(injected.values()) < wanted:
            if sum(injected.values()) % 2:
                server.inject_fault(Fault.http_error(503))
                injected["http_503"] += 1
            else:
                server.inject_fault(Fault.disconnect(after_chunks=2))
                injected["cut_stream"] += 1
        with trio.move_on_after(0.2):
            await stop.wait()
    return injected


async def _kills(pid: int, every: float, stop: trio.Event, killed: list[int]) -> None:
    """SIGKILL one harness of the server every ``every`` seconds."""
    while True:
        with trio.move_on_after(every):
            await stop.wait()
        if stop.is_set():
            return
        running = harnesses(pid)
        if running:
            victim = random.choice(running)
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
                killed.append(victim.pid)


async def _memory(pid: int, stop: trio.Event, samples: list[tuple[float, float, float]]) -> None:
    """RSS (MiB) of the server process and of its harnesses, every 2 s."""
    server = psutil.Process(pid)
    started = trio.current_time()
    while not stop.is_set():
        with contextlib.suppress(psutil.NoSuchProcess):
            harness = sum(h.memory_info().rss for h in harnesses(pid)) / 2**20
            samples.append(
                (trio.current_time() - started, server.memory_info().rss / 2**20, harness)
            )
        with trio.move_on_after(2.0):
            await stop.wait()


async def _final_check(url: str, clients: list[_Client], tally: Tally) -> dict[str, Any]:
    """Every agent answers one more chat at once; the server has no turn left."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=ATTEMPT_BOUND) as http:

        async def last(client: _Client) -> None:
            started = trio.current_time()
            prompt = f"client {client.number} last word"
            outcome = await client.attempt(http, prompt, may_hang_up=False)
            if outcome != "answered" or trio.current_time() - started > STUCK_BOUND:
                tally.stuck += 1
                tally.lost_reasons[f"stuck: {outcome}"] += 1

        async with trio.open_nursery() as nursery:
            for client in clients:
                if client.agent_id:
                    nursery.start_soon(last, client)
        metrics = (await http.get("/metrics")).text
    active = re.search(r"^agy_trio_active_turns (\S+)$", metrics, re.MULTILINE)
    disconnects = re.search(r"^agy_trio_serve_disconnects_total (\S+)$", metrics, re.MULTILINE)
    return {
        "active_turns_after": float(active.group(1)) if active else None,
        "disconnects_total": float(disconnects.group(1)) if disconnects else None,
    }


async def _soak(clients: int, seconds: float, kill_every: float, seed: int) -> dict[str, Any]:
    from agy_trio.testing import open_model_server

    tally = Tally()
    rng = random.Random(seed)
    samples: list[tuple[float, float, float]] = []
    killed: list[int] = []
    async with open_model_server() as model:
        with _server(model.url) as (url, process):
            stop = trio.Event()
            injected: dict[str, int] = {}
            started = time.monotonic()
            async with trio.open_nursery() as background:

                async def faults() -> None:
                    injected.update(await _faults(model, stop))

                background.start_soon(faults)
                background.start_soon(_kills, process.pid, kill_every, stop, killed)
                background.start_soon(_memory, process.pid, stop, samples)
                users = [
                    _Client(i, url, tally, random.Random(rng.random())) for i in range(clients)
                ]
                deadline = trio.current_time() + seconds
                async with trio.open_nursery() as nursery:
                    for user in users:
                        nursery.start_soon(user.run, deadline)
                stop.set()
            elapsed = time.monotonic() - started
            model.clear_faults()
            final = await _final_check(url, users, tally)
            requests = model.statistics().requests_total
    latencies = sorted(tally.latencies) or [0.0]
    warm = [s for s in samples if s[0] >= 0.2 * seconds]
    rss_warm = warm[0][1] if warm else None
    rss_max = max((s[1] for s in warm), default=None)
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "turns": tally.turns,
        "answered": tally.answered,
        "lost": tally.lost,
        "lost_reasons": dict(tally.lost_reasons),
        "stuck_agents": tally.stuck,
        "attempts": tally.attempts,
        "turns_retried": tally.retried_turns,
        "turn_seconds_p50": round(latencies[len(latencies) // 2], 2),
        "turn_seconds_p95": round(latencies[int(len(latencies) * 0.95)], 2),
        "turn_seconds_max": round(latencies[-1], 2),
        "typed_errors": dict(tally.errors),
        "client_hang_ups": tally.hang_ups,
        "harnesses_killed": len(killed),
        "model_requests": requests,
        "faults_injected": injected,
        "server_rss_mib_after_warmup": rss_warm,
        "server_rss_mib_max_after_warmup": rss_max,
        "server_rss_growth_pct": (
            round(100 * (rss_max - rss_warm) / rss_warm, 1) if rss_warm and rss_max else None
        ),
        "harness_rss_mib_last": samples[-1][2] if samples else None,
        # Server RSS (MiB) at the start of each tenth of the run.
        "server_rss_mib_by_tenth": [
            round(next((s[1] for s in samples if s[0] >= seconds * k / 10), samples[-1][1]), 1)
            for k in range(10)
        ]
        if samples
        else [],
        **final,
    }


def run_soak(
    clients: int = 100, seconds: float = 300.0, kill_every: float = 60.0, seed: int = 19
) -> dict[str, Any]:
    """Run the soak; return its figures (see the module docstring)."""
    with without_api_keys():
        return trio.run(_soak, clients, seconds, kill_every, seed)


def main(argv: list[str] | None = None) -> int:
    """The command line: run the soak, print (and optionally write) its figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fault_soak")
    parser.add_argument("--quick", action="store_true", help="10 clients, 30 s, a kill at 15 s")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        result = run_soak(clients=10, seconds=30.0, kill_every=15.0)
    else:
        result = run_soak(clients=args.clients, seconds=args.seconds)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0 if result["lost"] == 0 and result["stuck_agents"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
