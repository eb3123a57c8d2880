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


@attrs.define
class _Progress:
    state: str = "starting"
    turns: int = 0
    chars: int = 0
    last: str = ""


def _table(progress: dict[str, _Progress], turns: int, started: float) -> Table:
    table = Table(title=f"agents ({time.monotonic() - started:.1f} s)")
    for column in ("agent", "state", "turns", "chars streamed", "last answer"):
        table.add_column(column)
    for name, p in progress.items():
        table.add_row(name, p.state, f"{p.turns}/{turns}", str(p.chars), p.last[-48:])
    return table


async def _run_agents(
    endpoint: Endpoint, n_agents: int, turns: int, delay: float, console: Console
) -> None:
    config = RuntimeConfig(inter_agent_delay=delay)
    progress = {f"agent-{i + 1}": _Progress() for i in range(n_agents)}
    started = time.monotonic()
    async with open_for(endpoint, config) as (rt, base_config):
        # Printed once the endpoint is up: the local model server's URL is known only now.
        console.print(
            f"[bold]agy-trio run[/]: {n_agents} agents x {turns} turns on {endpoint.describe()}"
        )
        with Live(_table(progress, turns, started), console=console, refresh_per_second=8) as live:

            async def one(name: str) -> None:
                p = progress[name]
                async with rt.open_agent(attrs.evolve(base_config, name=name)) as agent:
                    for turn in range(turns):
                        p.state = f"turn {turn + 1}"
                        response = await agent.chat(f"Hello from {name}, turn {turn + 1}")
                        p.last = ""
                        async for delta in response:
                            p.chars += len(delta)
                            p.last += delta
                            live.update(_table(progress, turns, started))
                        p.turns += 1
                    p.state = "done"
                live.update(_table(progress, turns, started))

            async with trio.open_nursery() as nursery:
                for name in progress:
                    nursery.start_soon(one, name)
        stats = rt.statistics()
    console.print()
    console.print(
        f"{n_agents} agents, {stats.completed} commands ok, {stats.failed} failed, "
        f"{time.monotonic() - started:.2f} s"
    )
