"""``agy-trio run``: several agents chatting concurrently, with a live progress view."""

from __future__ import annotations

import time

import attrs
import click
import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from agy_trio.cli._endpoint import Endpoint, backend_options, choose_endpoint, open_for
from agy_trio.cli._running import run_trio
from agy_trio.core.settings import RuntimeConfig

__all__ = ["run"]


@click.command()
@backend_options
@click.option("--agents", "n_agents", default=6, show_default=True, help="Agents at once.")
@click.option("--turns", default=2, show_default=True, help="Turns per agent.")
@click.option("--delay", default=0.0, show_default=True, help="inter_agent_delay (s).")
def run(
    backend: str, base_url: str | None, model: str | None, n_agents: int, turns: int, delay: float
) -> None:
    """Run several agents chatting concurrently, with a live progress view."""
    if n_agents < 1 or turns < 1:
        raise click.BadParameter("--agents and --turns must be >= 1")
    endpoint = choose_endpoint(backend, base_url, model)
    console = Console()
    run_trio(_run_agents, endpoint, n_agents, turns, delay, console)


_ANSWER_TAIL = 40  # characters of the last answer shown


@attrs.define
class _Progress:
    agent_id: str = "..."  # the runtime's id, once the agent exists
    state: str = "starting"
    turns: int = 0
    chars: int = 0
    last: str = ""


def _table(progress: list[_Progress], turns: int, started: float) -> Table:
    table = Table(title=f"agents ({time.monotonic() - started:.1f} s)")
    for column in ("agent", "state", "turns", "chars"):
        table.add_column(column, no_wrap=True, min_width=len(column) + 2)
    table.add_column("last answer", no_wrap=True, overflow="ellipsis", ratio=1)
    for p in sorted(progress, key=lambda p: (len(p.agent_id), p.agent_id)):
        # The end of the answer, on one line: what is new while it streams.
        last = " ".join(p.last.split())[-_ANSWER_TAIL:]
        table.add_row(p.agent_id, p.state, f"{p.turns}/{turns}", str(p.chars), last)
    return table


async def _run_agents(
    endpoint: Endpoint, n_agents: int, turns: int, delay: float, console: Console
) -> None:
    config = RuntimeConfig(inter_agent_delay=delay)
    progress = [_Progress() for _ in range(n_agents)]
    started = time.monotonic()
    async with open_for(endpoint, config) as (rt, base_config):
        # Printed once the endpoint is up: the local model server's URL is known only now.
        console.print(
            f"[bold]agy-trio run[/]: {n_agents} agents x {turns} turns on {endpoint.describe()}"
        )
        with Live(_table(progress, turns, started), console=console, refresh_per_second=8) as live:

            async def one(p: _Progress) -> None:
                async with rt.open_agent(attrs.evolve(base_config, name="agent")) as agent:
                    p.agent_id = agent.agent_id
                    for turn in range(turns):
                        p.state = f"turn {turn + 1}"
                        response = await agent.chat(f"Hello from {agent.agent_id}, turn {turn + 1}")
                        answer = ""
                        async for delta in response:
                            # The previous answer stays shown until this one has text.
                            answer += delta
                            p.chars += len(delta)
                            p.last = answer
                            live.update(_table(progress, turns, started))
                        p.turns += 1
                    p.state = "done"
                live.update(_table(progress, turns, started))

            async with trio.open_nursery() as nursery:
                for p in progress:
                    nursery.start_soon(one, p)
        stats = rt.statistics()
    console.print()
    console.print(
        f"{n_agents} agents, {stats.completed} commands ok, {stats.failed} failed, "
        f"{time.monotonic() - started:.2f} s"
    )
