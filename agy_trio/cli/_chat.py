"""``agy-trio chat``: one agent, streamed answers."""

from __future__ import annotations

import click

from agy_trio.cli._endpoint import Endpoint, backend_options, choose_endpoint, open_for
from agy_trio.cli._running import run_trio
from agy_trio.core.settings import RuntimeConfig

__all__ = ["chat"]


@click.command()
@backend_options
@click.argument("prompt")
def chat(backend: str, base_url: str | None, model: str | None, prompt: str) -> None:
    """Send PROMPT to one agent and stream the answer."""
    run_trio(_one_shot, choose_endpoint(backend, base_url, model), prompt)


async def _one_shot(endpoint: Endpoint, prompt: str) -> None:
    config = RuntimeConfig(inter_agent_delay=0)
    async with open_for(endpoint, config) as (rt, cfg), rt.open_agent(cfg) as agent:
        response = await agent.chat(prompt)
        async for delta in response:
            click.echo(delta, nl=False)
        click.echo()
