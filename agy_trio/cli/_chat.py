"""``agy-trio chat``: one agent, streamed answers; an interactive session with no PROMPT."""

from __future__ import annotations

import sys

import click

from agy_trio.cli._endpoint import Endpoint, backend_options, choose_endpoint, open_for
from agy_trio.cli._running import exit_interrupted, run_trio
from agy_trio.cli._session import ChatSession, LineReader, PlainReader, TerminalReader
from agy_trio.core.settings import RuntimeConfig

__all__ = ["chat"]


@click.command()
@backend_options
@click.argument("prompt", required=False)
def chat(backend: str, base_url: str | None, model: str | None, prompt: str | None) -> None:
    """Send PROMPT to one agent and stream the answer; with no PROMPT, chat interactively.

    In the interactive session the answers stream with the model's thoughts
    and tool calls shown apart; Ctrl-C cancels the answer being streamed, and
    at the prompt leaves; /help lists the commands.
    """
    endpoint = choose_endpoint(backend, base_url, model)
    if prompt is not None:
        run_trio(_one_shot, endpoint, prompt)
        return
    # prompt_toolkit is imported only here: a one-shot chat starts without it.
    reader: LineReader = TerminalReader() if sys.stdin.isatty() else PlainReader()
    sessions: list[ChatSession] = []

    def interrupt() -> bool:
        return bool(sessions) and sessions[0].interrupt()

    run_trio(_interactive, endpoint, reader, sessions, interrupt=interrupt)
    if sessions and sessions[0].interrupted:
        exit_interrupted()


async def _one_shot(endpoint: Endpoint, prompt: str) -> None:
    config = RuntimeConfig(inter_agent_delay=0)
    async with open_for(endpoint, config) as (rt, cfg), rt.open_agent(cfg) as agent:
        response = await agent.chat(prompt)
        async for delta in response:
            click.echo(delta, nl=False)
        click.echo()


async def _interactive(endpoint: Endpoint, reader: LineReader, sessions: list[ChatSession]) -> None:
    config = RuntimeConfig(inter_agent_delay=0)
    async with open_for(endpoint, config) as (rt, agent_config):
        session = ChatSession(rt, agent_config, reader)
        sessions.append(session)
        await session.run(f"agy-trio chat: {endpoint.describe()}")
