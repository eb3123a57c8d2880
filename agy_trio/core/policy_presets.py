"""The SDK's ready-made policy lists: ``safe_defaults()``, ``confirm_run_command()``, ...

Each builds the same rules, with the same names, as its namesake in
``google.antigravity.hooks.policy``, so a list copied from SDK code decides
the same in agy_trio. The SDK's tool groups they use are spelled out here
(core never imports the SDK); a parity test holds them equal to the SDK's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from agy_trio.core.policy import PolicyRule, allow, ask_user, deny
from agy_trio.core.policy_types import (
    WILDCARD,
    WORKSPACE_ONLY_POLICY_NAME,
    AskUserHandler,
    Decision,
)

__all__ = [
    "DEPRECATED_TOOLS",
    "FILE_TOOLS",
    "READ_ONLY_TOOLS",
    "RUN_COMMAND",
    "auto",
    "confirm_run_command",
    "safe_defaults",
    "workspace_only",
]

RUN_COMMAND = "run_command"
"""The SDK's shell-command tool (``BuiltinTools.RUN_COMMAND``)."""

READ_ONLY_TOOLS = ("view_file", "read_url_content", "schedule", "finish")
"""``BuiltinTools.read_only()``: tools that only read state."""

DEPRECATED_TOOLS = ("list_directory", "search_directory", "find_file")
"""``BuiltinTools.deprecated()``: legacy read tools, off unless enabled by name."""

FILE_TOOLS = ("view_file", "create_file", "edit_file")
"""``BuiltinTools.file_tools()``: tools that take a file path."""


def safe_defaults(handler: AskUserHandler | None = None) -> list[PolicyRule]:
    """Allow the read-only tools, ask ``handler`` about every other call.

    Args:
        handler: Asked for every tool that is not read-only. The SDK requires
            one; without it, agy_trio asks the person behind the runtime if it
            has a way to, else denies.
    """
    rules: list[PolicyRule] = [allow(name) for name in (*READ_ONLY_TOOLS, *DEPRECATED_TOOLS)]
    rules.append(ask_user(WILDCARD, handler=handler))
    return rules


def confirm_run_command(handler: AskUserHandler | None = None) -> list[PolicyRule]:
    """Every tool may run but ``run_command``, which ``handler`` is asked about (or is denied).

    This is the SDK's own default for ``LocalAgentConfig``. agy_trio's
    default is safer still: with no policies, no write or exec tool is even
    offered (``AgentConfig.builtin_tools`` is empty).

    Args:
        handler: Asked before each ``run_command``; None denies it outright.
    """
    if handler is not None:
        return [
            ask_user(RUN_COMMAND, handler=handler, name="confirm_run_command"),
            allow(WILDCARD, name="confirm_run_command"),
        ]
    return [
        deny(RUN_COMMAND, name="confirm_run_command"),
        allow(WILDCARD, name="confirm_run_command"),
    ]


def workspace_only(workspaces: Sequence[str | os.PathLike[str]]) -> list[PolicyRule]:
    """Keep the file tools inside ``workspaces``.

    As in the SDK, the rules are named ``workspace_only`` and skipped by the
    evaluation order (the harness contains file tools itself); agy_trio also
    checks the path arguments of every file tool call in Trio, and denies one
    outside every workspace. Other tools are unaffected.

    Args:
        workspaces: Absolute paths of the folders file tools may touch.
    """
    folders = tuple(os.fspath(folder) for folder in workspaces)
    return [
        PolicyRule(Decision.DENY, name, name=WORKSPACE_ONLY_POLICY_NAME, workspaces=folders)
        for name in FILE_TOOLS
    ]


def auto(
    *,
    name: str = "auto",
    handler: AskUserHandler | None = None,
    model: str | None = None,
) -> PolicyRule:
    """Switch on the harness's safety assessment of risky calls (the SDK's ``AutoPolicy``).

    The harness assesses shell commands and URL fetches with a model and
    blocks flagged ones, or asks ``handler``. agy_trio's own evaluation skips
    the rule (as the SDK's does); the SDK backend hands it to the harness.

    Args:
        name: Label for logs.
        handler: Asked about flagged calls; None denies them.
        model: The model that assesses; None: the harness's default.
    """
    decision = Decision.ASK_USER if handler is not None else Decision.DENY
    return PolicyRule(decision, WILDCARD, handler, name=name, auto=True, model=model)
