"""The scripted backend's script language: the steps a turn is made of.

A script is a sequence of :class:`Turn` values (one per turn, for each agent)
or a function building a turn from (agent id, prompt text, turn index). A turn
is a tuple of steps played in order: text chunks, thoughts, tool calls, pauses,
hangs, compactions and faults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from agy_trio import errors
from agy_trio.core import events

__all__ = [
    "FAULT_KINDS",
    "CallTool",
    "Compact",
    "Fail",
    "Hang",
    "Pause",
    "Responder",
    "Say",
    "Script",
    "Step",
    "Think",
    "Turn",
    "TurnBook",
    "default_turn",
    "split_text",
]


@attrs.frozen
class Say:
    """Stream ``text`` as answer deltas, in ``chunks`` roughly equal pieces.

    Attributes:
        text: The answer text.
        chunks: How many deltas to split it into.
        delay: Seconds to wait (on the asyncio loop, real time) before each delta.
    """

    text: str
    chunks: int = 4
    delay: float = 0.0


@attrs.frozen
class Think:
    """Stream ``text`` as one thought delta."""

    text: str


@attrs.frozen
class CallTool:
    """Call a tool through the runtime (policies, hooks, then the tool itself)."""

    name: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Pause:
    """Wait ``seconds`` on the asyncio loop (real time) before the next step."""

    seconds: float


@attrs.frozen
class Hang:
    """Never finish: the turn waits until it is cancelled or times out."""


@attrs.frozen
class Compact:
    """Record a compaction of the conversation at this point."""


FAULT_KINDS = ("quota", "server", "safety", "max_tokens", "connection")
"""The values :attr:`Fail.kind` accepts."""


def _known_fault(_instance: object, _attribute: object, kind: str) -> None:
    if kind not in FAULT_KINDS:
        raise errors.ConfigError(
            f"must be one of {', '.join(FAULT_KINDS)}; got {kind!r}", field="kind"
        )


@attrs.frozen
class Fail:
    """Fail the turn here.

    Attributes:
        kind: ``"quota"``, ``"server"``, ``"safety"``, ``"max_tokens"`` or ``"connection"``.
        message: The error's text.
        retry_after: For ``"quota"``: the Retry-After the endpoint "sent".
        status: For ``"server"``: the HTTP status.
    """

    kind: str = attrs.field(validator=_known_fault)
    message: str = "scripted failure"
    retry_after: float | None = None
    status: int = 500


Step: TypeAlias = Say | Think | CallTool | Pause | Hang | Compact | Fail


def _as_steps(steps: Sequence[Step | str]) -> tuple[Step, ...]:
    # A plain string is shorthand for Say(string).
    return tuple(Say(step) if isinstance(step, str) else step for step in steps)


@attrs.frozen
class Turn:
    """One scripted turn: its steps, played in order, and the usage to report."""

    steps: tuple[Step, ...] = attrs.field(converter=_as_steps)
    usage: events.Usage | None = None


Responder: TypeAlias = Callable[[str, str, int], Turn]
"""Builds a turn from (agent id, prompt text, turn index)."""

Script: TypeAlias = Sequence[Turn | str] | Responder | None
"""What a scripted backend plays: a sequence of turns, a responder, or None (the default)."""


def default_turn(prompt: str) -> Turn:
    """The answer given when no script says otherwise: it quotes the prompt."""
    return Turn((Say(f"You said: {prompt}", chunks=4),))


def split_text(text: str, chunks: int) -> list[str]:
    """``text`` in ``chunks`` roughly equal pieces (none for empty text)."""
    if chunks <= 1 or len(text) <= 1:
        return [text] if text else []
    size = -(-len(text) // chunks)
    return [text[i : i + size] for i in range(0, len(text), size)]


class TurnBook:
    """Which turn each agent plays next: the script, read with a per-agent turn index.

    Args:
        script: The turns (the same sequence for every agent, from its first),
            a responder, or None for :func:`default_turn` throughout.
    """

    def __init__(self, script: Script) -> None:
        self._script = script
        self._turn_index: dict[str, int] = {}

    def next_turn(self, agent_id: str, prompt: str) -> Turn:
        """The turn ``agent_id`` plays for ``prompt``; advances its turn index."""
        index = self._turn_index.get(agent_id, 0)
        self._turn_index[agent_id] = index + 1
        script = self._script
        if script is None:
            return default_turn(prompt)
        if callable(script):
            return script(agent_id, prompt, index)
        if index < len(script):
            turn = script[index]
            # A plain string is shorthand for a turn that says it.
            return Turn((Say(turn),)) if isinstance(turn, str) else turn
        return default_turn(prompt)
