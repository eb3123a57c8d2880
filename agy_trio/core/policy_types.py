"""The plain types of the policy system: decisions, rules, the call being decided, verdicts.

Kept apart from :mod:`agy_trio.core.policy` (the builders and the rule set's
evaluation order) so that :mod:`agy_trio.core.policy_calls`, which decides
one rule, can use them without an import cycle.
"""

from __future__ import annotations

import enum
import fnmatch
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeAlias

import attrs

from agy_trio.core.validation import attrs_validator, instance_of
from agy_trio.errors import ConfigError

__all__ = [
    "DEPRECATED_START_SUBAGENT",
    "WILDCARD",
    "WORKSPACE_ONLY_POLICY_NAME",
    "Approver",
    "AskUserHandler",
    "Decision",
    "Policy",
    "PolicyHandler",
    "PolicyRule",
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


def _check_pattern(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"a tool pattern must be a non-empty string, got {value!r}", field="tool")


def _check_optional_callable(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is not None and not callable(value):
        raise ConfigError(
            f"{attribute.name} must be callable or None, got {value!r}", field=attribute.name
        )


def _normalized_target(value: str) -> str:
    return normalize_tool_name(value) if isinstance(value, str) else value


def _as_workspaces(value: Iterable[Any] | None) -> tuple[str, ...] | None:
    if value is None or isinstance(value, str):
        return value  # type: ignore[return-value]  # the validator refuses a lone string
    return tuple(str(item) for item in value)


def _check_workspaces(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, tuple):
        raise ConfigError(f"must be a list of folders, got {value!r}", field=attribute.name)


_GLOB_CHARACTERS = frozenset("*?[")
_text = attrs_validator(instance_of(str))


@attrs.frozen
class PolicyRule:
    """One rule: a decision for the tool calls it matches (the SDK's ``Policy``).

    Build rules with the builders of :mod:`agy_trio.core.policy` (``allow``,
    ``deny``, ``ask_user``, ``allow_all``, ``deny_all``) and the presets of
    :mod:`agy_trio.core.policy_presets`.

    Attributes:
        decision: What the rule decides.
        tool: The target: a tool name, ``"*"``, ``"server/tool"``,
            ``"server/*"``, or an ``fnmatch`` pattern (case-sensitive).
        handler: For :attr:`Decision.ASK_USER`: the callable asked before the
            tool runs. An ``ask_user`` rule without one asks the person behind
            the runtime, when the runtime has a way to (otherwise it denies).
        when: An optional predicate; the rule matches only calls it holds for.
        name: A label for logs and refusals (the target when empty).
        reason: Why the rule decided: the refusal the model reads when it
            denies, what an ``ask_user`` handler is told.
        workspaces: For ``workspace_only()`` rules: the folders file tools are
            kept inside.
        auto: Whether the rule switches on the harness's own safety assessment
            (``auto()``); agy_trio's evaluation skips it, as the SDK's does.
        model: For ``auto()``: the model that assesses safety (None: the default).
    """

    decision: Decision = attrs.field(validator=attrs_validator(instance_of(Decision)))
    tool: str = attrs.field(
        default=WILDCARD, converter=_normalized_target, validator=_check_pattern
    )
    handler: PolicyHandler | None = attrs.field(default=None, validator=_check_optional_callable)
    when: Predicate | None = attrs.field(default=None, validator=_check_optional_callable)
    name: str = attrs.field(default="", validator=_text)
    reason: str = attrs.field(default="", validator=_text)
    workspaces: tuple[str, ...] | None = attrs.field(
        default=None, converter=_as_workspaces, validator=_check_workspaces
    )
    auto: bool = False
    model: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.decision is not Decision.ASK_USER and self.handler is not None:
            raise ConfigError(
                f"only ask_user rules take a handler, not {self.decision.value}", field="handler"
            )

    @property
    def ask_user(self) -> PolicyHandler | None:
        """The handler (the SDK's name of the field)."""
        return self.handler

    @property
    def label(self) -> str:
        """How logs and refusals name the rule: its name, else its target."""
        return self.name or self.tool

    @property
    def scope(self) -> int:
        """Its precedence group: 0 a specific target, 1 ``server/*`` or a glob, 2 ``*``."""
        if self.tool == WILDCARD:
            return 2
        if self.tool.endswith("/*") or not _GLOB_CHARACTERS.isdisjoint(self.tool):
            return 1
        return 0

    @property
    def evaluated_elsewhere(self) -> bool:
        """Whether the SDK's evaluator skips it: ``workspace_only`` and ``auto`` rules.

        The harness enforces those itself; agy_trio checks ``workspace_only``
        paths in Trio as well (see :func:`~agy_trio.core.policy_presets.workspace_only`).
        """
        return self.auto or self.name == WORKSPACE_ONLY_POLICY_NAME

    def matches(self, tool_name: str, server_name: str | None = None) -> bool:
        """Whether this rule's target matches the tool (its predicate aside)."""
        if self.tool == WILDCARD:
            return True
        tool_name = normalize_tool_name(tool_name, server_name)
        target = f"{server_name}/{tool_name}" if server_name else tool_name
        if _GLOB_CHARACTERS.isdisjoint(self.tool):
            return target == self.tool
        return fnmatch.fnmatchcase(target, self.tool)


Policy = PolicyRule
"""The SDK's name of :class:`PolicyRule`."""


RuleView: TypeAlias = PolicyRule
"""What a :class:`Verdict` names: the rule that decided (its earlier, protocol name)."""


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
    rule: PolicyRule | None = None


Approver: TypeAlias = Callable[[ToolRequest], Awaitable[bool]]
"""Who answers an ``ask_user`` rule that has no handler: a Trio async callable."""
