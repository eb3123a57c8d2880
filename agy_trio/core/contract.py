"""The one contract every backend's agent implements: :class:`HostedAgent`.

Each command a backend answers (``CommandSpec.call`` is set) is one typed
coroutine here, of the command's own name, arguments and result. A command
travels ``AgentHandle.<name>`` -> the runtime -> ``AgentSession.submit`` ->
``spec.call(agent, *args)``, that is ``HostedAgent.<name>``, run where the
backend keeps its agents (an asyncio host loop, or inline for the null
backend). mypy checks each backend's agent against this protocol where it
hands it to :class:`~agy_trio.adapters.hosted.HostedSession`, and
:func:`check_contract` checks the command set against the protocol and the
handle (the runtime runs it when it is imported, and a test on a throwaway
spec shows it fails), so a command without its method fails at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol, TypeAlias

from agy_trio.core.content import Part
from agy_trio.core.events import ChatEvent, Message, Usage

__all__ = [
    "ContractError",
    "DeclaredCommand",
    "Ending",
    "HostedAgent",
    "TurnHandle",
    "TurnSink",
    "check_contract",
]

Ending: TypeAlias = Literal["shutdown", "disconnect", "delete"]
"""How an agent ends (see :meth:`HostedAgent.end`)."""

TurnHandle: TypeAlias = Any
"""What a backend returns for a started turn; handed back to :meth:`HostedAgent.cancel_turns`."""


class TurnSink(Protocol):
    """Where a turn's events go, as its producer sees it (a stream bridge)."""

    async def put(self, item: ChatEvent) -> None:
        """Add one event; waits while the reader is far behind (backpressure)."""

    def put_nowait(self, item: ChatEvent) -> None:
        """Add one event regardless of backpressure (the final one)."""

    def finish(self, error: BaseException | None = None) -> None:
        """End the stream, normally or with ``error``."""

    def release(self) -> None:
        """Stop applying backpressure: nobody waits for the rest (a cancelled turn)."""

    @property
    def finished(self) -> bool:
        """Whether the stream has ended."""


class HostedAgent(Protocol):
    """One agent as a backend keeps it: one coroutine per command it answers.

    The coroutines run where the backend keeps its agents (for the SDK, the
    scripted double and Temporal, an asyncio host loop); errors they raise are
    the backend's own, classified by its session on the way to the caller.
    """

    @property
    def conversation_id(self) -> str:
        """The id under which the backend keeps the conversation (used to resume)."""

    # -- commands (each is the method of the command of the same name)

    async def chat(self, content: Sequence[Part], sink: TurnSink) -> TurnHandle:
        """Start a turn whose events go to ``sink``; return once it holds the turn slot.

        The prompt is then part of the conversation; if cancelled before that,
        the turn never ran.
        """

    async def send(self, content: Sequence[Part]) -> None:
        """Start a turn nobody reads; return once it holds the turn slot."""

    async def cancel(self) -> None:
        """Stop the active turn and every turn queued behind it; wait until they are over."""

    async def wait_for_idle(self) -> None:
        """Return once no turn is active."""

    async def is_idle(self) -> bool:
        """Whether no turn is active."""

    async def history(self) -> list[Message]:
        """The conversation so far."""

    async def turn_count(self) -> int:
        """How many turns completed."""

    async def total_usage(self) -> Usage:
        """Token usage summed over all turns."""

    async def last_turn_usage(self) -> Usage:
        """Token usage of the most recent turn."""

    async def clear_history(self) -> None:
        """Forget the conversation so far."""

    async def compaction_indices(self) -> list[int]:
        """History indices at which the conversation was compacted."""

    async def last_response(self) -> str | None:
        """The text of the last answer."""

    # -- what the session needs besides the commands

    async def cancel_turns(self, turns: Sequence[TurnHandle]) -> None:
        """Stop these turns (a reader's cancel) and wait until they are over."""

    async def end(self, how: Ending) -> None:
        """End the agent: ``"shutdown"`` and ``"disconnect"`` keep what a resume needs."""


_NOT_COMMANDS = frozenset({"cancel_turns", "end"})
"""The protocol's methods that serve no command of their own name."""


class DeclaredCommand(Protocol):
    """What :func:`check_contract` reads of a command's spec (a ``CommandSpec``)."""

    @property
    def name(self) -> str:
        """The command's name, and its agent method's."""

    @property
    def call(self) -> object | None:
        """How the backend answers it; None when the runtime does."""

    @property
    def sender(self) -> str:
        """The name of the method that sends it."""


class ContractError(TypeError):
    """The command set, the handle and the agent protocol do not agree."""


def check_contract(
    specs: Iterable[DeclaredCommand], senders: Sequence[type], agent: type = HostedAgent
) -> None:
    """Check that every command has the method that sends it, and its agent method if needed.

    Args:
        specs: The command set.
        senders: The classes whose methods send the commands (``AgentHandle``,
            and ``Runtime`` for ``create_agent``).
        agent: The protocol the backends implement.

    Raises:
        ContractError: A command lacks its sending method, a command answered
            by the backend (``spec.call`` set) lacks its coroutine on ``agent``,
            or a coroutine of ``agent`` serves no command.
    """
    problems: list[str] = []
    answered: set[str] = set()
    for spec in specs:
        if not any(inspect.iscoroutinefunction(getattr(c, spec.sender, None)) for c in senders):
            names = " or ".join(c.__name__ for c in senders)
            problems.append(f"{names} has no coroutine method {spec.sender}()")
        if spec.call is not None:
            answered.add(spec.name)
            if not inspect.iscoroutinefunction(getattr(agent, spec.name, None)):
                problems.append(f"{agent.__name__} has no coroutine method {spec.name}()")
    for name, _ in inspect.getmembers(agent, inspect.iscoroutinefunction):
        if name not in answered and name not in _NOT_COMMANDS:
            problems.append(f"{agent.__name__}.{name}() answers no command")
    if problems:
        raise ContractError("the command contract is broken: " + "; ".join(problems))
