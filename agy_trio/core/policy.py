"""Tool policies: allow, deny and ask-the-user rules, evaluated fail-closed.

A :class:`PolicySet` decides whether a tool may run. Among the rules whose
pattern matches the tool's name, *deny* beats *ask_user*, which beats *allow*,
whatever their order; when no rule matches, the set's default applies. An
*ask_user* rule consults its handler, and only an explicit ``True`` lets the
tool run: a handler that raises, answers something other than a bool, or does
not answer within the time limit denies the call.

An *ask_user* rule without a handler asks "the person behind the server": the
runtime's :data:`Approver`, which ``agy_trio.serve`` installs (the call parks
as an approval a client answers over HTTP). With no approver installed there
is nobody to ask, and the call is denied with a reason that says so.
"""

from __future__ import annotations

import enum
import fnmatch
import logging
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias, overload

import attrs
import trio

from agy_trio.core.calling import Guard
from agy_trio.core.mcp import McpHttpServer, McpServer, McpStdioServer, mcp_pattern
from agy_trio.errors import ConfigError, PolicyDenied

__all__ = [
    "Approver",
    "Decision",
    "PolicyHandler",
    "PolicyRule",
    "PolicySet",
    "ToolRequest",
    "allow",
    "allow_all",
    "ask_user",
    "deny",
    "deny_all",
]

logger = logging.getLogger("agy_trio.policy")

# Only an explicit True lets the tool run.
_ASK_USER = Guard("ask_user handler", "refused", logger)


class Decision(enum.Enum):
    """What a policy rule says about a tool call."""

    ALLOW = "allow"
    DENY = "deny"
    ASK_USER = "ask_user"


# Stronger decisions win when several rules match one tool.
_STRENGTH = {Decision.ALLOW: 0, Decision.ASK_USER: 1, Decision.DENY: 2}


def _read_only(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
    # A handler gets a read-only snapshot: it must not be able to change what
    # the tool will receive after it said yes.
    return types.MappingProxyType(dict(arguments))


@attrs.frozen
class ToolRequest:
    """A tool call waiting for an ``ask_user`` handler's answer.

    Attributes:
        tool: The name of the tool the model wants to run.
        arguments: The arguments it wants to pass (read-only).
        agent_id: The runtime's id of the agent, when known.
    """

    tool: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict, converter=_read_only, hash=False)
    agent_id: str = ""


PolicyHandler: TypeAlias = Callable[[ToolRequest], bool | Awaitable[bool]]
"""A sync or Trio async callable that answers a :class:`ToolRequest` with a bool."""

Approver: TypeAlias = Callable[[ToolRequest, str], Awaitable[bool]]
"""Answers handler-less ``ask_user`` rules: ``await approver(request, reason)``.

True lets the tool run; False (or raising :class:`PolicyDenied` with a reason
of its own) denies it. It has its own time limit: the runtime's
``handler_timeout`` does not apply, as a person may take a while.
"""

NO_APPROVER_REASON = (
    "ask_user rule {rule!r} has no handler and there is no server to ask "
    "(serve the agent with agy-trio serve, or give the rule a handler)"
)


def _check_decision(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Decision):
        raise ConfigError(f"expected a Decision, got {value!r}", field=attribute.name)


def _check_pattern(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"a tool pattern must be a non-empty string, got {value!r}", field="tool")


@attrs.frozen
class PolicyRule:
    """One rule: a decision for the tools whose names match a pattern.

    Build rules with :func:`allow`, :func:`deny`, :func:`ask_user`,
    :func:`allow_all` and :func:`deny_all`.

    Attributes:
        decision: What the rule decides.
        tool: A tool name, or an ``fnmatch`` pattern (``*``, ``?``, ``[seq]``);
            matching is case-sensitive.
        handler: For :attr:`Decision.ASK_USER` only: the callable consulted
            before the tool runs; None asks the person behind the server
            (the runtime's :data:`Approver`).
        reason: For :attr:`Decision.ASK_USER` only: why the call needs an
            answer, shown to whoever is asked.
    """

    decision: Decision = attrs.field(validator=_check_decision)
    tool: str = attrs.field(default="*", validator=_check_pattern)
    handler: PolicyHandler | None = None
    reason: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.handler is not None and not callable(self.handler):
            raise ConfigError(
                f"an ask_user handler must be callable, got {self.handler!r}", field="handler"
            )
        if self.decision is not Decision.ASK_USER and self.handler is not None:
            raise ConfigError(
                f"only ask_user rules take a handler, not {self.decision.value}", field="handler"
            )
        if self.reason is not None and not isinstance(self.reason, str):
            raise ConfigError(f"a reason must be a string, got {self.reason!r}", field="reason")
        if self.decision is not Decision.ASK_USER and self.reason is not None:
            raise ConfigError(
                f"only ask_user rules take a reason, not {self.decision.value}", field="reason"
            )

    @property
    def prompt(self) -> str:
        """What an approval asks: the rule's reason, or which rule holds the call."""
        return self.reason or f"ask_user rule {self.tool!r} holds this tool call"

    def matches(self, tool_name: str) -> bool:
        """Whether this rule applies to the tool called ``tool_name``."""
        return fnmatch.fnmatchcase(tool_name, self.tool)


def _mcp_rules(
    decision: Decision,
    server: McpServer,
    mcp_tools: Sequence[str] | None,
    handler: PolicyHandler | None = None,
) -> list[PolicyRule]:
    """Rules for tools of an MCP server: ``server/tool`` each, or ``server/*`` for all."""
    if isinstance(mcp_tools, str):
        raise ConfigError(
            f"must be a list of tool names (e.g. [{mcp_tools!r}]), not a single string",
            field="mcp_tools",
        )
    if mcp_tools is None:
        return [PolicyRule(decision, mcp_pattern(server.name), handler)]
    return [PolicyRule(decision, mcp_pattern(server.name, name), handler) for name in mcp_tools]


def _is_server(tool: object) -> bool:
    return isinstance(tool, McpStdioServer | McpHttpServer)


def _refuse_tools_for_name(mcp_tools: object) -> None:
    if mcp_tools is not None:
        raise ConfigError("is only for an MCP server, not a tool name", field="mcp_tools")


@overload
def allow(tool: str = "*") -> PolicyRule: ...


@overload
def allow(tool: McpServer, mcp_tools: Sequence[str] | None = None) -> list[PolicyRule]: ...


def allow(
    tool: str | McpServer = "*", mcp_tools: Sequence[str] | None = None
) -> PolicyRule | list[PolicyRule]:
    """A rule that lets matching tools run.

    Args:
        tool: Tool name or ``fnmatch`` pattern; or an MCP server's config, for
            rules on its tools (``server/tool``).
        mcp_tools: With an MCP server: the names of its tools the rules are
            for; None (the default) means every tool of the server (``server/*``).

    Returns:
        One rule for a tool name; a list of rules for an MCP server (as the
        SDK's ``policy.allow``), which ``AgentConfig(policies=...)`` takes as
        it is.
    """
    if _is_server(tool):
        return _mcp_rules(Decision.ALLOW, tool, mcp_tools)  # type: ignore[arg-type]
    _refuse_tools_for_name(mcp_tools)
    return PolicyRule(Decision.ALLOW, tool)  # type: ignore[arg-type]


@overload
def deny(tool: str = "*") -> PolicyRule: ...


@overload
def deny(tool: McpServer, mcp_tools: Sequence[str] | None = None) -> list[PolicyRule]: ...


def deny(
    tool: str | McpServer = "*", mcp_tools: Sequence[str] | None = None
) -> PolicyRule | list[PolicyRule]:
    """A rule that blocks matching tools (it beats every other rule).

    Args:
        tool: Tool name or ``fnmatch`` pattern; or an MCP server's config.
        mcp_tools: With an MCP server, as for :func:`allow`.

    Returns:
        One rule for a tool name; a list of rules for an MCP server.
    """
    if _is_server(tool):
        return _mcp_rules(Decision.DENY, tool, mcp_tools)  # type: ignore[arg-type]
    _refuse_tools_for_name(mcp_tools)
    return PolicyRule(Decision.DENY, tool)  # type: ignore[arg-type]


@overload
def ask_user(
    tool: str, handler: PolicyHandler | None = None, *, reason: str | None = None
) -> PolicyRule: ...


@overload
def ask_user(
    tool: McpServer,
    mcp_tools: Sequence[str] | None = None,
    *,
    handler: PolicyHandler | None = None,
    reason: str | None = None,
) -> list[PolicyRule]: ...


def ask_user(
    tool: str | McpServer,
    *args: Any,
    mcp_tools: Sequence[str] | None = None,
    handler: PolicyHandler | None = None,
    reason: str | None = None,
) -> PolicyRule | list[PolicyRule]:
    """A rule that asks before a matching tool runs.

    ``ask_user("tool", handler)`` for a tool name;
    ``ask_user(server, ["tool", ...], handler=handler)`` for tools of an MCP
    server (every tool of it when the list is left out), as in the SDK.

    Args:
        tool: Tool name or ``fnmatch`` pattern; or an MCP server's config.
        *args: The handler (for a tool name), or the MCP tool names (for a server).
        mcp_tools: The MCP tool names, given by keyword.
        handler: Sync or Trio async callable taking a :class:`ToolRequest` and
            returning True to let the tool run. Sync handlers run in a worker
            thread. None asks the person behind the server: under
            ``agy-trio serve`` the call parks as an approval answered over HTTP;
            with no server, it is denied.
        reason: Why the call needs an answer, shown to whoever is asked.

    Returns:
        One rule for a tool name; a list of rules for an MCP server.
    """
    if len(args) > 1:
        raise TypeError(f"ask_user() takes at most 2 positional arguments ({len(args) + 1} given)")
    second = args[0] if args else None
    if mcp_tools is not None:
        if second is not None:
            raise TypeError("ask_user() got the MCP tool names twice")
        second = mcp_tools
    if _is_server(tool):
        if handler is None and callable(second):
            second, handler = None, second
        rules = _mcp_rules(Decision.ASK_USER, tool, second, handler)  # type: ignore[arg-type]
        return [attrs.evolve(rule, reason=reason) for rule in rules]
    if second is not None:
        if handler is not None:
            raise TypeError("ask_user() got the handler twice")
        handler = second
    return PolicyRule(Decision.ASK_USER, tool, handler, reason)  # type: ignore[arg-type]


def allow_all() -> PolicyRule:
    """A rule that lets every tool run (unless another rule denies or asks)."""
    return allow("*")


def deny_all() -> PolicyRule:
    """A rule that blocks every tool."""
    return deny("*")


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


def _to_rules(rules: Iterable[PolicyRule]) -> tuple[PolicyRule, ...]:
    return tuple(rules)


@attrs.frozen
class PolicySet:
    """The rules that guard an agent's tools, and the decision when none match.

    Attributes:
        rules: The rules; their order does not matter.
        default: The decision for a tool no rule matches (ALLOW or DENY).
    """

    rules: tuple[PolicyRule, ...] = attrs.field(
        default=(), converter=_to_rules, validator=_check_rules
    )
    default: Decision = attrs.field(default=Decision.ALLOW, validator=_check_default)

    def matching(self, tool_name: str) -> tuple[PolicyRule, ...]:
        """The rules that apply to ``tool_name``, in the order they were given."""
        return tuple(rule for rule in self.rules if rule.matches(tool_name))

    def decide(self, tool_name: str) -> Decision:
        """The decision for ``tool_name`` before any handler is asked.

        Returns:
            The strongest decision among the matching rules (deny > ask_user >
            allow), or :attr:`default` when none match.
        """
        decisions = [rule.decision for rule in self.matching(tool_name)]
        if not decisions:
            return self.default
        return max(decisions, key=_STRENGTH.__getitem__)

    async def check(
        self,
        tool_name: str,
        arguments: Mapping[str, Any],
        *,
        handler_timeout: float,
        agent_id: str = "",
        approver: Approver | None = None,
    ) -> None:
        """Return if the tool may run; raise :class:`PolicyDenied` if it may not.

        When the decision is *ask_user*, every matching ``ask_user`` handler is
        consulted in turn, and each must answer ``True``.

        Args:
            tool_name: The tool the model wants to run.
            arguments: Its arguments (handlers see a read-only copy).
            handler_timeout: Seconds each handler has to answer.
            agent_id: The agent making the call, passed on to handlers.
            approver: Who answers ``ask_user`` rules without a handler; None
                denies them (nobody to ask).

        Raises:
            PolicyDenied: A rule denied the tool, or a handler refused, failed,
                answered a non-bool or did not answer in time, or a rule
                without a handler had nobody to ask or was refused.
        """
        decision = self.decide(tool_name)
        if decision is not Decision.ASK_USER:
            # No user code runs on these paths, so the checkpoint is ours to make.
            await trio.lowlevel.checkpoint()
        if decision is Decision.ALLOW:
            return
        if decision is Decision.DENY:
            rules = [rule.tool for rule in self.matching(tool_name) if rule.decision is decision]
            reason = f"denied by rule {rules[0]!r}" if rules else "denied by default policy"
            raise PolicyDenied(tool_name, reason)
        request = ToolRequest(tool_name, arguments, agent_id)
        for rule in self.matching(tool_name):
            if rule.decision is not Decision.ASK_USER:
                continue
            if rule.handler is not None:
                await _ASK_USER.ask(rule.handler, request, tool=tool_name, timeout=handler_timeout)
            elif approver is None:
                await trio.lowlevel.checkpoint()
                raise PolicyDenied(tool_name, NO_APPROVER_REASON.format(rule=rule.tool))
            elif not await approver(request, rule.prompt):
                raise PolicyDenied(tool_name, "refused by the person asked")
