"""The harness's own tools: which built-ins an agent may have, which names are taken.

Every tool the harness can run on the agent's behalf goes through the agent's
policies, or is not offered to the model at all. The harness consults the
SDK's pre-tool hook (and so the runtime's policies) before most of its tools,
but not before some that it adds on its own; measured with google-antigravity
0.1.22:

* ``run_command`` brings ``manage_task`` (list, kill, feed input to background
  commands), which runs without any check: it is never offered, so commands
  run in the foreground only;
* ``schedule`` brings ``schedule`` and ``manage_task``, neither checked: the
  built-in is refused;
* ``invoke_subagent`` brings ``define_subagent``, ``manage_subagents`` and
  ``send_message``, none checked, and the subagents it starts run tools
  (shell commands included) without any check: the built-in is refused,
  unless the agent has static ``subagents`` (see
  :mod:`~agy_trio.adapters.antigravity.capabilities`).

A custom tool may not take the name of a tool the harness knows: the harness
would treat it as its own.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from agy_trio.adapters.antigravity.capabilities import SUBAGENT_TOOL
from agy_trio.adapters.antigravity.sdk import load_sdk
from agy_trio.core.settings import AgentConfig
from agy_trio.errors import ConfigError

__all__ = ["UNGUARDED_BUILTINS", "builtin_tool_names", "check_tool_names", "harness_tool_names"]


UNGUARDED_BUILTINS: Mapping[str, str] = {
    "schedule": "it brings the schedule and manage_task tools, which the harness runs "
    "without consulting any policy",
    "invoke_subagent": "it needs AgentConfig.subagents: without static subagents it "
    "serves only define_subagent, manage_subagents and send_message, which the harness "
    "runs without consulting any policy",
}
"""Built-in tools that are refused, with the reason: the harness would run tools unchecked.

``invoke_subagent`` is allowed when the agent has ``subagents``.
"""

# Tools the harness offers the model under names of its own (measured: see
# the module docstring), besides the SDK's BuiltinTools values.
_HARNESS_ONLY_TOOLS = (
    "ask_question",
    "define_subagent",
    "find_by_name",
    "finish",
    "grep_search",
    "list_dir",
    "list_skills",
    "lookup_skill",
    "lookup_skills",
    "manage_subagents",
    "manage_task",
    "multi_replace_file_content",
    "notebook_edit",
    "replace_file_content",
    "schedule",
    "send_message",
    "skill_lookup",
    "write_to_file",
)


@functools.cache
def harness_tool_names() -> frozenset[str]:
    """Every tool name the harness knows: the SDK's built-ins and the names it offers the model."""
    names = set(_HARNESS_ONLY_TOOLS)
    names.update(tool.value for tool in load_sdk().BuiltinTools)
    return frozenset(names)


def check_tool_names(config: AgentConfig) -> None:
    """Refuse custom tools named like a tool of the harness.

    The harness would take such a tool for its own built-in (which it may run
    instead, or under other rules), so the name is refused whether or not the
    built-in is enabled.

    Raises:
        ConfigError: A custom tool takes a harness tool's name.
    """
    taken = harness_tool_names()
    for tool in config.tools:
        if tool.name in taken:
            raise ConfigError(
                f"custom tool {tool.name!r} takes the name of a built-in tool of the SDK "
                "harness; rename it",
                field="tools",
            )


def builtin_tool_names(config: AgentConfig) -> list[Any]:
    """The SDK ``BuiltinTools`` members ``config.builtin_tools`` names.

    Raises:
        ConfigError: A name is not a built-in tool of the SDK, or names one
            whose tools the harness would run without consulting the agent's
            policies (:data:`UNGUARDED_BUILTINS`).
    """
    builtin = load_sdk().BuiltinTools
    chosen: list[Any] = []
    for name in config.builtin_tools:
        reason = UNGUARDED_BUILTINS.get(name)
        if name == SUBAGENT_TOOL and config.subagents:
            reason = None  # static subagents: see adapters.antigravity.capabilities
        if reason is not None:
            raise ConfigError(
                f"built-in tool {name!r} is not supported: {reason}", field="builtin_tools"
            )
        try:
            member = builtin(name)
        except ValueError:
            known = sorted(t.value for t in builtin)
            raise ConfigError(
                f"unknown built-in tool {name!r}; known: {known}", field="builtin_tools"
            ) from None
        if member not in chosen:
            chosen.append(member)
    subagent_tool = builtin(SUBAGENT_TOOL)
    if config.subagents and subagent_tool not in chosen:
        chosen.append(subagent_tool)
    return chosen
