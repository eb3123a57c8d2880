"""One policy rule: :class:`PolicyRule`, a decision for the tool calls its target matches.

Kept apart from :mod:`agy_trio.core.policy` (the builders and the rule set) so
that :mod:`agy_trio.core.policy_calls`, which decides one rule, can name the
class without an import cycle.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

import attrs

from agy_trio.core.policy_types import (
    WILDCARD,
    WORKSPACE_ONLY_POLICY_NAME,
    Decision,
    PolicyHandler,
    Predicate,
    normalize_tool_name,
)
from agy_trio.core.validation import attrs_validator, instance_of
from agy_trio.errors import ConfigError

__all__ = ["Policy", "PolicyRule"]


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
