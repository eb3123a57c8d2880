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

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, Required, TypedDict, Unpack

import attrs
import trio

from agy_trio.core import policy_types
from agy_trio.core.policy_calls import decide_rule

# The plain types are part of this module's public face too (they were first
# defined here), so its names are policy_types' and its own.
from agy_trio.core.policy_types import *  # noqa: F403
from agy_trio.core.policy_types import (
    WILDCARD,
    Approver,
    Decision,
    PolicyHandler,
    PolicyRule,
    Predicate,
    ToolRequest,
    Verdict,
    normalize_tool_name,
)
from agy_trio.errors import ConfigError, PolicyDenied

__all__ = [
    *policy_types.__all__,
    "CallContext",
    "McpServerLike",
    "PolicySet",
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


def _rule_or_rules(
    decision: Decision,
    tool: str | McpServerLike,
    mcp_tools: Sequence[str] | None,
    *,
    when: Predicate | None,
    name: str,
    reason: str = "",
    handler: PolicyHandler | None = None,
) -> PolicyRule | list[PolicyRule]:
    """One rule for a tool target, or the ``server/tool`` rules for an MCP server."""
    if not isinstance(tool, str):
        return _mcp_rules(
            decision, tool, mcp_tools, when=when, name=name, reason=reason, handler=handler
        )
    if mcp_tools is not None:
        raise ConfigError("mcp_tools only goes with an MCP server target", field="mcp_tools")
    return PolicyRule(decision, tool, handler, when, name, reason)


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
    return _rule_or_rules(Decision.ALLOW, tool, mcp_tools, when=when, name=name)


def deny(
    tool: str | McpServerLike = WILDCARD,
    mcp_tools: Sequence[str] | None = None,
    *,
    when: Predicate | None = None,
    name: str = "",
    reason: str = "",
) -> Any:
    """A rule that blocks matching calls.

    Takes the arguments of :func:`allow`, and ``reason``: the refusal the
    model reads (``name`` labels the refusal too).

    Returns:
        A :class:`PolicyRule`, or a list of them for an MCP server.
    """
    return _rule_or_rules(Decision.DENY, tool, mcp_tools, when=when, name=name, reason=reason)


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
    return _rule_or_rules(
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


class CallContext(TypedDict, total=False):
    """The keyword arguments of :meth:`PolicySet.evaluate` (and ``check``), said once."""

    handler_timeout: Required[float]
    agent_id: str
    server_name: str | None
    reason: str
    approver: Approver | None


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
        self, tool_name: str, arguments: Mapping[str, Any], **context: Unpack[CallContext]
    ) -> None:
        """Return if the tool may run; raise :class:`PolicyDenied` if it may not.

        Takes the arguments of :meth:`evaluate`.

        Raises:
            PolicyDenied: The call is denied; ``reason`` is the refusal the
                model reads (the deciding rule's ``reason``, else the SDK's
                message naming the rule).
        """
        verdict = await self.evaluate(tool_name, arguments, **context)
        if not verdict.allowed:
            raise PolicyDenied(tool_name, verdict.message)
