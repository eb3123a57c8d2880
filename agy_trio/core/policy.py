"""Tool policies with the SDK's semantics: allow, deny and ask-the-user rules.

A :class:`PolicySet` decides whether a tool may run, the way the SDK's
``google.antigravity.hooks.policy.enforce`` does. The rules are put in order
of precedence, and the first one that matches the call decides:

    specific deny > specific ask_user > specific allow >
    ``server/*`` (and other glob) deny > ask_user > allow >
    ``*`` deny > ``*`` ask_user > ``*`` allow

Within one group the order the rules were given in is kept. A rule matches a
call when its target matches the tool (``"*"`` every tool, ``"server/tool"``
or ``"server/*"`` an MCP server's tools, else the exact name; agy_trio also
reads ``fnmatch`` patterns such as ``"write_*"``, which the SDK would compare
literally) and its ``when`` predicate, if any, holds. So
``[deny_all(), allow("view_file")]`` allows ``view_file`` and denies the rest.

Everything user code decides fails closed: a ``when`` predicate or an
``ask_user`` handler that raises, or does not answer within the runtime's
``handler_timeout``, denies the call, and so does a handler answering
anything but ``True`` or ``False``. When no rule matches, the set's default
applies (ALLOW, as in the SDK, unless the agent's ``default_policy`` says
DENY). The ``reason`` and ``name`` of the rule that decided reach the model's
refusal and the ``agy_trio.policy`` log, in the SDK's words.

The presets (``safe_defaults()``, ``workspace_only()``, ...) are in
:mod:`agy_trio.core.policy_presets`; how predicates and handlers are called is
in :mod:`agy_trio.core.policy_calls`.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import trio

from agy_trio.core.policy_calls import decide_rule
from agy_trio.core.policy_types import (
    DEPRECATED_START_SUBAGENT,
    WILDCARD,
    WORKSPACE_ONLY_POLICY_NAME,
    Approver,
    AskUserHandler,
    Decision,
    PolicyHandler,
    Predicate,
    ToolRequest,
    Verdict,
    normalize_tool_name,
)
from agy_trio.errors import ConfigError, PolicyDenied

__all__ = [
    "DEPRECATED_START_SUBAGENT",
    "WILDCARD",
    "WORKSPACE_ONLY_POLICY_NAME",
    "Approver",
    "AskUserHandler",
    "Decision",
    "McpServerLike",
    "Policy",
    "PolicyHandler",
    "PolicyRule",
    "PolicySet",
    "Predicate",
    "ToolRequest",
    "Verdict",
    "allow",
    "allow_all",
    "ask_user",
    "deny",
    "deny_all",
    "flatten_policies",
]

logger = logging.getLogger("agy_trio.policy")


class McpServerLike(Protocol):
    """An MCP server's configuration, as far as a policy needs it: its name."""

    @property
    def name(self) -> str:
        """The server's name, which MCP rule targets start with (``name/tool``)."""


def _check_decision(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Decision):
        raise ConfigError(f"expected a Decision, got {value!r}", field=attribute.name)


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


def _check_text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, got {value!r}", field=attribute.name)


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


@attrs.frozen
class PolicyRule:
    """One rule: a decision for the tool calls it matches (the SDK's ``Policy``).

    Build rules with :func:`allow`, :func:`deny`, :func:`ask_user`,
    :func:`allow_all`, :func:`deny_all` and the presets of
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

    decision: Decision = attrs.field(validator=_check_decision)
    tool: str = attrs.field(
        default=WILDCARD, converter=_normalized_target, validator=_check_pattern
    )
    handler: PolicyHandler | None = attrs.field(default=None, validator=_check_optional_callable)
    when: Predicate | None = attrs.field(default=None, validator=_check_optional_callable)
    name: str = attrs.field(default="", validator=_check_text)
    reason: str = attrs.field(default="", validator=_check_text)
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

_DECISION_ORDER = {Decision.DENY: 0, Decision.ASK_USER: 1, Decision.ALLOW: 2}


def _precedence(rule: PolicyRule) -> tuple[int, int]:
    return (rule.scope, _DECISION_ORDER[rule.decision])


def _server_name(server: object) -> str:
    name = getattr(server, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"a rule's target must be a tool name or an MCP server with a name, got {server!r}",
            field="tool",
        )
    return name


def _mcp_rules(
    decision: Decision,
    server: object,
    mcp_tools: Sequence[str] | None,
    *,
    when: Predicate | None,
    name: str,
    reason: str,
    handler: PolicyHandler | None = None,
) -> list[PolicyRule]:
    """The SDK's ``server/tool`` rules for an MCP server's tools (all of them when None)."""
    server_name = _server_name(server)
    if isinstance(mcp_tools, str):
        raise ConfigError(
            f"mcp_tools must be a list of tool names (e.g. [{mcp_tools!r}]), not one string",
            field="mcp_tools",
        )
    prefix = decision.value.lower() if decision is not Decision.ALLOW else "approve"
    if mcp_tools is None:
        return [
            PolicyRule(
                decision,
                f"{server_name}/*",
                handler,
                when,
                name or f"{prefix}_{server_name}_all",
                reason,
            )
        ]
    return [
        PolicyRule(
            decision,
            f"{server_name}/{tool}",
            handler,
            when,
            f"{name}_{tool}" if name else f"{prefix}_{server_name}_{tool}",
            reason,
        )
        for tool in mcp_tools
    ]


def _string_target(tool: object, mcp_tools: object) -> bool:
    if isinstance(tool, str):
        if mcp_tools is not None:
            raise ConfigError("mcp_tools only goes with an MCP server target", field="mcp_tools")
        return True
    return False


def allow(
    tool: str | McpServerLike = WILDCARD,
    mcp_tools: Sequence[str] | None = None,
    *,
    when: Predicate | None = None,
    name: str = "",
) -> Any:
    """A rule that lets matching calls run (the SDK's ``APPROVE``).

    Args:
        tool: Tool name, ``"*"``, a pattern, or an MCP server's configuration.
        mcp_tools: With an MCP server: the tools the rule covers (None: all).
        when: Optional predicate over the call's arguments.
        name: Label for logs.

    Returns:
        A :class:`PolicyRule`, or a list of them for an MCP server.
    """
    if _string_target(tool, mcp_tools):
        return PolicyRule(Decision.ALLOW, tool, when=when, name=name)  # type: ignore[arg-type]
    return _mcp_rules(Decision.ALLOW, tool, mcp_tools, when=when, name=name, reason="")


def deny(
    tool: str | McpServerLike = WILDCARD,
    mcp_tools: Sequence[str] | None = None,
    *,
    when: Predicate | None = None,
    name: str = "",
    reason: str = "",
) -> Any:
    """A rule that blocks matching calls.

    Args:
        tool: Tool name, ``"*"``, a pattern, or an MCP server's configuration.
        mcp_tools: With an MCP server: the tools the rule covers (None: all).
        when: Optional predicate over the call's arguments.
        name: Label for logs and the refusal.
        reason: The refusal the model reads.

    Returns:
        A :class:`PolicyRule`, or a list of them for an MCP server.
    """
    if _string_target(tool, mcp_tools):
        return PolicyRule(Decision.DENY, tool, when=when, name=name, reason=reason)  # type: ignore[arg-type]
    return _mcp_rules(Decision.DENY, tool, mcp_tools, when=when, name=name, reason=reason)


def ask_user(
    tool: str | McpServerLike,
    handler_or_tools: PolicyHandler | Sequence[str] | None = None,
    /,
    *,
    handler: PolicyHandler | None = None,
    mcp_tools: Sequence[str] | None = None,
    when: Predicate | None = None,
    name: str = "",
    reason: str = "",
) -> Any:
    """A rule that asks ``handler`` before a matching call runs.

    Both ``ask_user(tool, handler)`` and the SDK's
    ``ask_user(tool, mcp_tools, handler=...)`` are understood: a second
    positional argument that is a list of names is ``mcp_tools``.

    Args:
        tool: Tool name, ``"*"``, a pattern, or an MCP server's configuration.
        handler_or_tools: The handler, or (with an MCP server) ``mcp_tools``.
        handler: Sync or Trio async callable taking a :class:`ToolRequest`
            (and optionally ``reason``) and returning True to let the tool
            run; sync handlers run in a worker thread. Without one, the person
            behind the runtime is asked if it has a way to; else the call is denied.
        mcp_tools: With an MCP server: the tools the rule covers (None: all).
        when: Optional predicate over the call's arguments.
        name: Label for logs and the refusal.
        reason: What the handler is told, and the refusal when it says no.

    Returns:
        A :class:`PolicyRule`, or a list of them for an MCP server.
    """
    if handler_or_tools is not None:
        if callable(handler_or_tools) or isinstance(handler_or_tools, str):
            if handler is not None:
                raise ConfigError("ask_user got two handlers", field="handler")
            handler = handler_or_tools  # type: ignore[assignment]
        else:
            if mcp_tools is not None:
                raise ConfigError("ask_user got mcp_tools twice", field="mcp_tools")
            mcp_tools = handler_or_tools
    if _string_target(tool, mcp_tools):
        return PolicyRule(Decision.ASK_USER, tool, handler, when, name, reason)  # type: ignore[arg-type]
    return _mcp_rules(
        Decision.ASK_USER, tool, mcp_tools, when=when, name=name, reason=reason, handler=handler
    )


def allow_all() -> PolicyRule:
    """A rule that lets every tool run (the lowest precedence: anything more specific wins)."""
    return PolicyRule(Decision.ALLOW, WILDCARD, name="allow_all")


def deny_all() -> PolicyRule:
    """A rule that blocks every tool that no more specific rule lets run."""
    return PolicyRule(Decision.DENY, WILDCARD, name="deny_all")


def flatten_policies(policies: Iterable[Any]) -> tuple[PolicyRule, ...]:
    """Rules and lists of rules (what the MCP builders and presets return), as one tuple.

    Raises:
        ConfigError: An item is neither a rule nor a list of rules.
    """
    flat: list[PolicyRule] = []
    for item in policies:
        if isinstance(item, PolicyRule):
            flat.append(item)
        elif isinstance(item, Iterable) and not isinstance(item, str | bytes | Mapping):
            for inner in item:
                if not isinstance(inner, PolicyRule):
                    raise ConfigError(f"expected PolicyRule objects, got {inner!r}")
                flat.append(inner)
        else:
            raise ConfigError(f"expected PolicyRule objects, got {item!r}")
    return tuple(flat)


def _to_rules(rules: Iterable[Any]) -> tuple[PolicyRule, ...]:
    try:
        return flatten_policies(rules)
    except ConfigError:
        return tuple(rules)  # the validator names the field


def _check_rules(
    _instance: object, attribute: attrs.Attribute[Any], value: tuple[Any, ...]
) -> None:
    for rule in value:
        if not isinstance(rule, PolicyRule):
            raise ConfigError(f"expected PolicyRule objects, got {rule!r}", field=attribute.name)


def _check_default(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in (Decision.ALLOW, Decision.DENY):
        raise ConfigError(
            f"the default must be Decision.ALLOW or Decision.DENY, got {value!r}",
            field=attribute.name,
        )


@attrs.frozen
class PolicySet:
    """The rules that guard an agent's tools, and the decision when none match.

    Attributes:
        rules: The rules (nested lists are flattened), in the order given.
        default: The decision for a call no rule matches (ALLOW or DENY).
    """

    rules: tuple[PolicyRule, ...] = attrs.field(
        default=(), converter=_to_rules, validator=_check_rules
    )
    default: Decision = attrs.field(default=Decision.ALLOW, validator=_check_default)
    ordered: tuple[PolicyRule, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # sorted() is stable: within a precedence group the given order holds.
        object.__setattr__(self, "ordered", tuple(sorted(self.rules, key=_precedence)))

    def matching(self, tool_name: str, server_name: str | None = None) -> tuple[PolicyRule, ...]:
        """The rules whose target matches the tool, in precedence order."""
        return tuple(rule for rule in self.ordered if rule.matches(tool_name, server_name))

    def decide(self, tool_name: str, server_name: str | None = None) -> Decision:
        """The decision for the tool were every ``when`` predicate to hold.

        Returns:
            The decision of the first matching rule in precedence order
            (``workspace_only`` and ``auto`` rules aside), or :attr:`default`.
        """
        for rule in self.matching(tool_name, server_name):
            if not rule.evaluated_elsewhere:
                return rule.decision
        return self.default

    async def evaluate(
        self,
        tool_name: str,
        arguments: Mapping[str, Any],
        *,
        handler_timeout: float,
        agent_id: str = "",
        server_name: str | None = None,
        reason: str = "",
        approver: Approver | None = None,
    ) -> Verdict:
        """Decide one call the way the SDK's evaluator does (see the module docstring).

        Args:
            tool_name: The tool the model wants to run.
            arguments: Its arguments (predicates and handlers see a read-only copy).
            handler_timeout: Seconds each predicate and handler has to answer.
            agent_id: The agent making the call, passed on to handlers.
            server_name: The MCP server of the tool, if it is an MCP tool.
            reason: Why the harness asks, if it gave a reason (an ``ask_user``
                handler is told the rule's reason, else this one).
            approver: Who answers an ``ask_user`` rule without a handler; None
                denies such calls.

        Returns:
            The :class:`Verdict`; outer cancellation still propagates.
        """
        request = ToolRequest(
            normalize_tool_name(tool_name, server_name), arguments, agent_id, server_name, reason
        )
        for rule in self.matching(tool_name, server_name):
            verdict = await decide_rule(rule, request, handler_timeout, approver)
            if verdict is not None:
                return verdict
        # No user code ran on this path, so the checkpoint is ours to make.
        await trio.lowlevel.checkpoint()
        if self.default is Decision.DENY:
            logger.info("No policy matched tool %r; denied by default.", tool_name)
            return Verdict(False, "denied by default policy")
        return Verdict(True)

    async def check(
        self,
        tool_name: str,
        arguments: Mapping[str, Any],
        *,
        handler_timeout: float,
        agent_id: str = "",
        server_name: str | None = None,
        reason: str = "",
        approver: Approver | None = None,
    ) -> None:
        """Return if the tool may run; raise :class:`PolicyDenied` if it may not.

        Takes the arguments of :meth:`evaluate`.

        Raises:
            PolicyDenied: The call is denied; ``reason`` is the refusal the
                model reads (the deciding rule's ``reason``, else the SDK's
                message naming the rule).
        """
        verdict = await self.evaluate(
            tool_name,
            arguments,
            handler_timeout=handler_timeout,
            agent_id=agent_id,
            server_name=server_name,
            reason=reason,
            approver=approver,
        )
        if not verdict.allowed:
            raise PolicyDenied(tool_name, verdict.message)
