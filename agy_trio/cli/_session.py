"""``agy-trio chat`` with no prompt: an interactive chat session in the terminal.

Each line typed is a turn; the answer streams as it comes, with the model's
thoughts and its tool calls shown apart from the answer's text, then one line
of usage. Ctrl-C while an answer streams cancels that answer (the turn is
cancelled at the backend, the agent stays ready); Ctrl-C at the prompt ends
the session (exit status 130), as do Ctrl-D and ``/exit`` (status 0).

The prompt is prompt_toolkit's: line editing, and the earlier prompts of the
session under the up arrow. It runs in a worker thread (prompt_toolkit has an
event loop of its own) while the Trio program waits; the terminal is in raw
mode only there, so a Ctrl-C at the prompt is a key, and during an answer a
SIGINT that the command's signal handling hands to :meth:`ChatSession.interrupt`.
With a standard input that is not a terminal, each line read is a prompt.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import AsyncGenerator
from typing import Any, Protocol, cast

import attrs
import click
import trio

from agy_trio.core.agent import AgentHandle
from agy_trio.core.events import ChatEvent, TextDelta, ThoughtDelta, ToolCall, TurnEnd, Usage
from agy_trio.core.exception_groups import raise_lone_leaf
from agy_trio.core.runtime import Runtime
from agy_trio.core.settings import AgentConfig
from agy_trio.errors import AgyError

__all__ = ["HELP", "ChatSession", "LineReader", "PlainReader", "TerminalReader"]

HELP = """\
/help     this list
/history  the conversation so far
/new      start a new conversation (a new agent)
/exit     leave (so does Ctrl-D)
Ctrl-C cancels the answer being streamed; at the prompt it leaves."""

_PROMPT = "you> "

# What ChatResponse.events() returns: an async generator (closed with aclosing).
_Events = AsyncGenerator[ChatEvent, None]


class LineReader(Protocol):
    """Where the session reads its prompts from."""

    async def read(self, prompt: str) -> str:
        """The next line. Raises EOFError at the end, KeyboardInterrupt on Ctrl-C."""
        ...


class PlainReader:
    """Lines from a standard input that is not a terminal (a pipe, a file)."""

    async def read(self, prompt: str) -> str:
        """The next line, without its line end.

        Raises:
            EOFError: The input ended.
        """
        line: str = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not line:
            raise EOFError
        return line.rstrip("\n")


class TerminalReader:
    """prompt_toolkit's prompt, with line editing and the session's history."""

    def __init__(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import InMemoryHistory

        self._session: Any = PromptSession(history=InMemoryHistory())

    async def read(self, prompt: str) -> str:
        """The next line typed; cancelling this takes the prompt down first.

        Raises:
            EOFError: Ctrl-D.
            KeyboardInterrupt: Ctrl-C.
        """
        app = self._session.app
        cancelled = threading.Event()
        finished = False

        def leave_if_cancelled() -> None:
            if cancelled.is_set():
                app.exit(exception=EOFError())

        def ask() -> str:
            line: str = self._session.prompt(prompt, pre_run=leave_if_cancelled)
            return line

        async def take_down_on_cancel() -> None:
            try:
                await trio.sleep_forever()
            finally:
                if not finished:
                    # The terminal must leave raw mode before the program goes on.
                    cancelled.set()
                    loop = app.loop
                    if loop is not None and app.is_running:
                        loop.call_soon_threadsafe(_exit_quietly, app)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(take_down_on_cancel)
                try:
                    line = await trio.to_thread.run_sync(ask)
                finally:
                    finished = True
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise_lone_leaf(group)  # EOFError, KeyboardInterrupt: as prompt() raised them
            raise
        return line


def _exit_quietly(app: Any) -> None:
    with contextlib.suppress(Exception):  # it ended meanwhile
        app.exit(exception=EOFError())


@attrs.define
class _Printer:
    """Writes a streamed answer: text as is, thoughts and tool calls set apart."""

    kind: str = "start"

    def _switch(self, kind: str) -> None:
        # A new line between kinds, and for each tool call.
        if self.kind != "start" and (self.kind != kind or kind == "tool"):
            click.echo()
        self.kind = kind

    def text(self, text: str) -> None:
        self._switch("text")
        click.echo(text, nl=False)

    def thought(self, text: str) -> None:
        if self.kind != "thought":
            self._switch("thought")
            click.echo(click.style("thinking: ", fg="magenta", dim=True), nl=False)
        click.echo(click.style(text, dim=True, italic=True), nl=False)

    def tool(self, call: ToolCall) -> None:
        self._switch("tool")
        arguments = json.dumps(call.arguments, default=str)
        outcome = f"error: {call.error}" if call.error else _short(call.result)
        click.echo(click.style(f"tool: {call.name}({arguments}) -> {outcome}", fg="cyan"), nl=False)

    def end(self, line: str, *, err: bool = False) -> None:
        if self.kind != "start":
            click.echo()
        click.echo(click.style(line, dim=True) if not err else click.style(line, fg="red"))
        self.kind = "start"


def _short(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _usage_line(usage: Usage | None, stop_reason: object) -> str:
    reason = getattr(stop_reason, "value", stop_reason)
    if usage is None:
        return f"({reason})"
    return f"({usage.input_tokens} in, {usage.output_tokens} out tokens; {reason})"


@attrs.define
class ChatSession:
    """One interactive chat: read a prompt, stream its answer, until the user leaves.

    Attributes:
        runtime: The runtime the agent lives in.
        config: The agent's settings (each ``/new`` agent gets them too).
        reader: Where prompts come from.
        interrupted: Whether the session ended on a Ctrl-C at the prompt.
    """

    runtime: Runtime
    config: AgentConfig
    reader: LineReader
    interrupted: bool = False
    _answering: trio.CancelScope | None = None

    def interrupt(self) -> bool:
        """A Ctrl-C arrived: cancel the answer being streamed; False if there is none."""
        if self._answering is None:
            return False
        self._answering.cancel()
        return True

    async def run(self, banner: str) -> None:
        """Run the session until ``/exit``, Ctrl-D or a Ctrl-C at the prompt."""
        agent = await self.runtime.create_agent(self.config)
        try:
            click.echo(f"{banner}\n/help lists the commands; Ctrl-D or /exit leaves.")
            while True:
                try:
                    line = (await self.reader.read(_PROMPT)).strip()
                except EOFError:
                    return
                except KeyboardInterrupt:
                    self.interrupted = True
                    return
                if not line:
                    continue
                if line.startswith("/"):
                    command = line.split()[0]
                    if command == "/exit":
                        return
                    agent = await self._command(command, agent)
                    continue
                await self._answer(agent, line)
        finally:
            with trio.CancelScope(shield=True):
                await agent.aclose()

    async def _command(self, command: str, agent: AgentHandle) -> AgentHandle:
        if command == "/help":
            click.echo(HELP)
        elif command == "/history":
            messages = await agent.history()
            if not messages:
                click.echo("(no messages yet)")
            for message in messages:
                click.echo(f"{message.role}: {message.text}")
        elif command == "/new":
            await agent.aclose()
            agent = await self.runtime.create_agent(self.config)
            click.echo("(a new conversation)")
        else:
            click.echo(f"unknown command {command}: /help lists them")
        return agent

    async def _answer(self, agent: AgentHandle, prompt: str) -> None:
        printer = _Printer()
        with trio.CancelScope() as scope:
            self._answering = scope
            try:
                async with (
                    await agent.chat(prompt) as response,
                    contextlib.aclosing(
                        cast(AsyncGenerator[ChatEvent, None], response.events())
                    ) as events,
                ):
                    async for event in events:
                        if isinstance(event, TextDelta):
                            printer.text(event.text)
                        elif isinstance(event, ThoughtDelta):
                            printer.thought(event.text)
                        elif isinstance(event, ToolCall):
                            printer.tool(event)
                        elif isinstance(event, TurnEnd):
                            printer.end(_usage_line(event.usage, event.stop_reason))
            except AgyError as error:
                printer.end(f"error: {error}", err=True)
            finally:
                self._answering = None
        if scope.cancelled_caught:
            printer.end("(cancelled)")
