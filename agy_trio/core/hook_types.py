"""What the SDK's hook points hand their hooks and take back, under the SDK's names.

The classes mirror ``google.antigravity.types`` (``HookResult``, ``StopArgs``,
``StopHookResult``, ``StopDecision``, the ``AskQuestion*`` interaction
types) and ``google.antigravity.hooks.HookContext``, as plain attrs classes
that core code can build without the SDK.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from agy_trio.core.validation import as_tuple

if TYPE_CHECKING:
    from agy_trio.core.policy_types import ToolRequest

__all__ = [
    "AskQuestionEntry",
    "AskQuestionInteractionSpec",
    "AskQuestionOption",
    "HookContext",
    "HookResult",
    "QuestionHookResult",
    "QuestionResponse",
    "StopArgs",
    "StopDecision",
    "StopHookResult",
]


@attrs.define
class HookContext:
    """What a hook knows of where it runs: the agent, the turn, the tool call.

    A hook receives it when it takes a parameter named ``context`` (or
    annotated ``HookContext``), as in the SDK.

    Attributes:
        agent_id: The runtime's id of the agent.
        turn: The agent's turn number (1 for its first chat), 0 outside a turn.
        call: The tool call the hook is about, if any.
        state: A dict shared by every hook of the agent for its lifetime
            (the SDK's state store).
    """

    agent_id: str
    turn: int = 0
    call: ToolRequest | None = None
    state: dict[str, Any] = attrs.field(factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A value from :attr:`state` (the SDK's ``StateStore.get``)."""
        return self.state.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Store a value in :attr:`state` (the SDK's ``StateStore.set``)."""
        self.state[key] = value


def _as_args(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


@attrs.frozen
class HookResult:
    """A deciding hook's answer (``pre_turn``, ``pre_tool_call``).

    Attributes:
        allow: Whether the turn or the tool call may go on.
        message: Why not: what the model (or the caller) is told.
        modified_args: For ``pre_tool_call``: arguments to merge into the
            call's before the tool runs.
    """

    allow: bool = True
    message: str = ""
    modified_args: dict[str, Any] | None = attrs.field(default=None, converter=_as_args)


class StopDecision(enum.Enum):
    """What a ``stop`` hook decides when the agent is about to end its turn."""

    ALLOW_STOP = "ALLOW_STOP"
    CONTINUE = "CONTINUE"


@attrs.frozen
class StopArgs:
    """What a ``stop`` hook is told.

    Attributes:
        response_text: The answer the model gave.
        trajectory_id: The harness's id of the (root) trajectory.
        continuation_count: How many times a stop hook has continued this turn.
        stop_reason: Why the model stopped, when the harness says.
        error_message: The error that ended it, if any.
    """

    response_text: str = ""
    trajectory_id: str = ""
    continuation_count: int = 0
    stop_reason: str = ""
    error_message: str = ""


@attrs.frozen
class StopHookResult:
    """A ``stop`` hook's answer: stop, or continue with ``reason`` as the next instruction.

    Attributes:
        decision: Stop (the default) or continue.
        reason: With CONTINUE: the instruction the model is given to go on.
    """

    decision: StopDecision = StopDecision.ALLOW_STOP
    reason: str = ""


@attrs.frozen
class AskQuestionOption:
    """One choice of a question the model asks."""

    id: str
    text: str


@attrs.frozen
class AskQuestionEntry:
    """One question the model asks the user."""

    question: str
    options: tuple[AskQuestionOption, ...] = attrs.field(default=(), converter=as_tuple)
    is_multi_select: bool = False


@attrs.frozen
class AskQuestionInteractionSpec:
    """The questions of one ``ask_question`` call: what ``on_interaction`` hooks answer."""

    questions: tuple[AskQuestionEntry, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen
class QuestionResponse:
    """The answer to one question: chosen options, free text, or skipped."""

    selected_option_ids: tuple[str, ...] | None = None
    freeform_response: str = ""
    skipped: bool = False


@attrs.frozen
class QuestionHookResult:
    """An ``on_interaction`` hook's answers, one per question, or a cancellation."""

    responses: tuple[QuestionResponse, ...] = attrs.field(default=(), converter=as_tuple)
    cancelled: bool = False
