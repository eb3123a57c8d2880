"""The plain types of the policy system: decisions, the call being decided, verdicts.

Kept apart from :mod:`agy_trio.core.policy` (the rules and their evaluation
order) so that :mod:`agy_trio.core.policy_calls` can use them without an
import cycle.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeAlias

import attrs

__all__ = [
    "DEPRECATED_START_SUBAGENT",
    "WILDCARD",
    "WORKSPACE_ONLY_POLICY_NAME",
    "Approver",
    "AskUserHandler",
    "Decision",
    "PolicyHandler",
    "Predicate",
    "RuleView",
    "ToolRequest",
    "Verdict",
    "normalize_tool_name",
]

WILDCARD = "*"
"""The target that matches every tool."""

WORKSPACE_ONLY_POLICY_NAME = "workspace_only"
"""The name the SDK gives the rules of ``workspace_only()`` (it skips them when it evaluates)."""

DEPRECATED_START_SUBAGENT = "start_subagent"
"""The SDK's old name of ``invoke_subagent``; a rule or call using it means ``invoke_subagent``."""


class Decision(enum.Enum):
    """What a policy rule says about a tool call.

    ``APPROVE`` is the SDK's name of ``ALLOW`` (the same member).
    """

    ALLOW = "allow"
    DENY = "deny"
    ASK_USER = "ask_user"
    APPROVE = "allow"


def normalize_tool_name(name: str, server_name: str | None = None) -> str:
    """The SDK's normalisation of a tool name: ``start_subagent`` is ``invoke_subagent``."""
    if name == DEPRECATED_START_SUBAGENT and not server_name:
        return "invoke_subagent"
    return name


def _read_only(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
    # A handler gets a read-only snapshot: it must not be able to change what
    # the tool will receive after it said yes.
    return types.MappingProxyType(dict(arguments))


@attrs.frozen
class ToolRequest:
    """A tool call being decided: what predicates and ``ask_user`` handlers see.

    It answers to the SDK's ``ToolCall`` names as well (``name``, ``args``,
    ``server_name``), so a handler written for the SDK works unchanged.

    Attributes:
        tool: The name of the tool the model wants to run.
        arguments: The arguments it wants to pass (read-only).
        agent_id: The runtime's id of the agent, when known.
        server_name: The MCP server the tool belongs to, if any.
        reason: Why confirmation is asked: the rule's ``reason``, else the
            harness's (e.g. a safety assessment); empty when neither gave one.
        policy: The name (or target) of the rule asking.
    """

    tool: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict, converter=_read_only, hash=False)
    agent_id: str = ""
    server_name: str | None = None
    reason: str = attrs.field(default="", eq=False)
    policy: str = attrs.field(default="", eq=False)

    @property
    def name(self) -> str:
        """The tool's name (the SDK's ``ToolCall.name``)."""
        return self.tool

    @property
    def args(self) -> Mapping[str, Any]:
        """The arguments (the SDK's ``ToolCall.args``)."""
        return self.arguments

    @property
    def target(self) -> str:
        """What rules are matched against: ``server/tool`` for an MCP tool, else the name."""
        return f"{self.server_name}/{self.tool}" if self.server_name else self.tool


PolicyHandler: TypeAlias = Callable[..., bool | Awaitable[bool]]
"""A sync or Trio async callable answering a :class:`ToolRequest` with a bool.

It may take a second parameter, ``reason`` (the SDK's ``AskUserHandler``).
"""

AskUserHandler: TypeAlias = PolicyHandler
"""The SDK's name of :data:`PolicyHandler`."""

Predicate: TypeAlias = Callable[..., Any]
"""A sync or Trio async ``when`` predicate.

It takes the call's arguments (a read-only mapping), or nothing, or, when its
first parameter is annotated so, a :class:`ToolRequest` or a pydantic model
built from the arguments; its answer is read for truth, as the SDK does.
"""


class RuleView(Protocol):
    """What deciding a call reads of a rule (:class:`~agy_trio.core.policy.PolicyRule`)."""

    @property
    def decision(self) -> Decision:
        """What the rule decides."""

    @property
    def handler(self) -> PolicyHandler | None:
        """The ``ask_user`` handler, if any."""

    @property
    def when(self) -> Predicate | None:
        """The rule's predicate, if any."""

    @property
    def reason(self) -> str:
        """Why the rule decides as it does."""

    @property
    def workspaces(self) -> tuple[str, ...] | None:
        """For ``workspace_only`` rules: the folders."""

    @property
    def label(self) -> str:
        """How logs and refusals name the rule."""

    @property
    def evaluated_elsewhere(self) -> bool:
        """Whether the SDK's evaluator skips the rule."""


@attrs.frozen
class Verdict:
    """What a :class:`PolicySet` decided about one call.

    Attributes:
        allowed: Whether the tool may run.
        message: The refusal, in the SDK's words (empty when allowed).
        rule: The rule that decided (None: the default did).
    """

    allowed: bool
    message: str = ""
    rule: RuleView | None = None


Approver: TypeAlias = Callable[[ToolRequest], Awaitable[bool]]
"""Who answers an ``ask_user`` rule that has no handler: a Trio async callable."""
