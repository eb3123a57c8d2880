"""Which of the SDK's public names agy_trio has, under which name, and which it refuses, why.

:data:`PARITY` is the one table: every public name of google-antigravity's
surface that agy_trio speaks to (its agent and connection config fields, the
sub-configs they take, the agent and conversation methods, the hook points,
the policy builders, the public enums' members, triggers) is either

* :class:`Mapped` to an agy_trio name (a dotted path under ``agy_trio``),
* :class:`Refused`, with the reason, or
* :class:`Pending`: planned, with the agy_trio name it will have; that name
  must not exist yet (once it does, the entry must become :class:`Mapped`).

:func:`sdk_surface` (from :mod:`~agy_trio.adapters.antigravity.sdk_surface`)
reads the surface from the installed SDK, so a release that adds a field
shows up as :func:`unaccounted` names and fails the parity test.
:func:`render_table` prints the table docs/reference.md shows
(``python -m agy_trio.adapters.antigravity.parity``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import attrs

from agy_trio.adapters.antigravity.builtin_tools import UNGUARDED_BUILTINS
from agy_trio.adapters.antigravity.sdk import load_sdk
from agy_trio.adapters.antigravity.sdk_surface import sdk_surface

__all__ = [
    "PARITY",
    "Mapped",
    "Pending",
    "Refused",
    "render_table",
    "resolve",
    "sdk_surface",
    "stale",
    "unaccounted",
]


@attrs.frozen
class Mapped:
    """The SDK name has an agy_trio name: ``target``, a dotted path under ``agy_trio``."""

    target: str
    note: str = ""


@attrs.frozen
class Refused:
    """agy_trio leaves the SDK name out on purpose, for ``reason``."""

    reason: str


@attrs.frozen
class Pending:
    """Planned: it will be ``target``, which does not exist yet."""

    target: str
    note: str = ""


Entry = Mapped | Refused | Pending

_LITERT = Refused("the on-device LiteRT backend (LiteRTAgentConfig) is not offered")
_ENDPOINT = "agy_trio chooses the endpoint from base_url / vertex_project / api_key"


def _builtin_tool_entries() -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for member in load_sdk().BuiltinTools:
        reason = UNGUARDED_BUILTINS.get(member.value)
        key = f"BuiltinTools.{member.name}"
        if member.value == "invoke_subagent":
            entries[key] = Mapped("AgentConfig.subagents", "on with static subagents")
        elif reason is not None:
            entries[key] = Refused(reason)
        else:
            entries[key] = Mapped("AgentConfig.builtin_tools", f'"{member.value}"')
    return entries


def _same_members(section: str, target: str, names: Iterable[str]) -> dict[str, Entry]:
    return {f"{section}.{name}": Mapped(f"{target}.{name}") for name in names}


_STEP = Refused(
    "agy_trio streams typed events (TextDelta, ThoughtDelta, ToolCall, TurnEnd) and "
    "keeps history as Message objects; the SDK's step addressing is not exposed"
)

PARITY: dict[str, Entry] = {
    # -- agent and connection config fields
    "AgentConfig.system_instructions": Mapped("AgentConfig.system_instructions"),
    "AgentConfig.capabilities": Mapped(
        "AgentConfig.builtin_tools", "enabled_tools; the rest per CapabilitiesConfig below"
    ),
    "AgentConfig.tools": Mapped("AgentConfig.tools"),
    "AgentConfig.policies": Mapped("AgentConfig.policies"),
    "AgentConfig.hooks": Mapped("AgentConfig.hooks"),
    "AgentConfig.triggers": Pending("AgentConfig.triggers"),
    "AgentConfig.mcp_servers": Mapped("AgentConfig.mcp_servers"),
    "AgentConfig.workspaces": Mapped("AgentConfig.workspaces"),
    "AgentConfig.conversation_id": Mapped("AgentConfig.conversation_id"),
    "AgentConfig.session_continuation_mode": Refused(
        "agy_trio creates a new conversation, or resumes conversation_id when it is given"
    ),
    "AgentConfig.save_dir": Mapped("AgentConfig.save_dir"),
    "AgentConfig.app_data_dir": Mapped("AgentConfig.app_data_dir"),
    "AgentConfig.response_schema": Mapped("AgentConfig.response_schema"),
    "AgentConfig.skills_paths": Mapped("AgentConfig.skills_paths"),
    "AgentConfig.inline_skills": Mapped("AgentConfig.inline_skills"),
    "AgentConfig.subagents": Mapped("AgentConfig.subagents"),
    "AgentConfig.debug_config": Refused("a harness debugging switch, not part of agy_trio's API"),
    "AgentConfig.retry_config": Mapped(
        "adapters.antigravity.RetryPolicy", "AntigravityBackend(retry=...): per backend"
    ),
    "AgentConfig.budget_config": Mapped("AgentConfig.budget"),
    "AgentConfig.compaction_config": Mapped("AgentConfig.compaction"),
    "AgentConfig.env": Refused(
        "the harness's environment is agy_trio's (HOME, its owner tag); home_dir sets HOME"
    ),
    "AgentConfig.model": Mapped("AgentConfig.model"),
    "AgentConfig.models": Refused("one model per agent; image models are not offered"),
    "AgentConfig.api_key": Mapped("AgentConfig.api_key"),
    "AgentConfig.vertex": Mapped("AgentConfig.vertex_project", _ENDPOINT),
    "AgentConfig.project": Mapped("AgentConfig.vertex_project"),
    "AgentConfig.location": Mapped("AgentConfig.vertex_location"),
    "AgentConfig.base_url": Mapped("AgentConfig.base_url"),
    **{
        f"AgentConfig.{name}": _LITERT
        for name in (
            "model_path",
            "backend",
            "enable_speculative_decoding",
            "cache_dir",
            "audio_backend",
            "vision_backend",
            "port",
            "download_if_missing",
        )
    },
    # -- CapabilitiesConfig
    "CapabilitiesConfig.enable_subagents": Mapped(
        "AgentConfig.subagents", "on when subagents are given"
    ),
    "CapabilitiesConfig.agent_behavior": Refused(
        "agy_trio's agents run each turn to its end; questions reach Hooks.on_interaction"
    ),
    "CapabilitiesConfig.enabled_tools": Mapped("AgentConfig.builtin_tools"),
    "CapabilitiesConfig.disabled_tools": Refused(
        "nothing is enabled unless builtin_tools names it, so there is nothing to disable"
    ),
    "CapabilitiesConfig.compaction_threshold": Mapped("AgentConfig.compaction"),
    "CapabilitiesConfig.finish_tool_schema_json": Mapped("AgentConfig.response_schema"),
    "CapabilitiesConfig.max_subagent_depth": Mapped("AgentConfig.max_subagent_depth"),
    "CapabilitiesConfig.allowed_subagents": Mapped("AgentConfig.allowed_subagents"),
    "CapabilitiesConfig.run_command_config": Mapped("AgentConfig.run_command"),
    "CapabilitiesConfig.tool_output_truncation_config": Refused(
        "the harness's default truncation is kept; agy_trio bounds what it carries itself"
    ),
    "CapabilitiesConfig.mcp_max_output_bytes": Refused(
        "the harness's default is kept for MCP tool output"
    ),
    # -- sub-configs
    "CompactionConfig.token_threshold": Mapped(
        "core.capabilities.CompactionConfig.token_threshold"
    ),
    **{
        f"RunCommandConfig.{name}": Mapped(f"core.capabilities.RunCommandConfig.{name}")
        for name in ("timeout_seconds", "enable_sandbox")
    },
    "RunCommandConfig.enable_daemons": Mapped(
        "core.capabilities.RunCommandConfig.enable_daemons",
        "refused when True: manage_task, which drives background commands, consults no policy",
    ),
    **{
        f"SubagentConfig.{name}": Mapped(f"core.capabilities.SubagentConfig.{name}")
        for name in ("name", "description", "system_instructions", "tools", "model")
    },
    "SubagentConfig.capabilities": Mapped(
        "core.capabilities.SubagentConfig.builtin_tools",
        "with allowed_subagents and run_command, as fields of the SubagentConfig",
    ),
    "SubagentConfig.skills_config": Refused(
        "subagents inherit the agent's skills (the SDK's default)"
    ),
    "SubagentCapabilities.enabled_tools": Mapped("core.capabilities.SubagentConfig.builtin_tools"),
    "SubagentCapabilities.allowed_subagents": Mapped(
        "core.capabilities.SubagentConfig.allowed_subagents"
    ),
    "SubagentCapabilities.run_command_config": Mapped(
        "core.capabilities.SubagentConfig.run_command"
    ),
    "SubagentCapabilities.agent_behavior": Refused(
        "subagents run autonomously (the SDK's default)"
    ),
    "SubagentCapabilities.disabled_tools": Refused(
        "nothing is enabled unless builtin_tools names it, so there is nothing to disable"
    ),
    **{
        f"InlineSkill.{name}": Mapped(f"core.capabilities.InlineSkill.{name}")
        for name in (
            "name",
            "description",
            "content",
            "allowed_tools",
            "dependent_tools",
            "dependent_skills",
            "metadata",
        )
    },
    **_same_members(
        "BudgetConfig",
        "Budget",
        (
            "max_model_calls",
            "max_tool_calls",
            "max_input_tokens",
            "max_output_tokens",
            "max_total_tokens",
            "scope",
        ),
    ),
    **{
        f"GeminiModelOptions.{name}": Mapped(f"AgentConfig.{name}")
        for name in ("thinking_level", "service_tier", "max_output_tokens")
    },
    "SandboxStatus.available": Mapped("core.capabilities.SandboxStatus.available"),
    "SandboxStatus.unavailable_reason": Mapped(
        "core.capabilities.SandboxStatus.unavailable_reason"
    ),
    **{
        f"StopArgs.{name}": Mapped(f"hooks.StopArgs.{name}")
        for name in (
            "response_text",
            "trajectory_id",
            "continuation_count",
            "stop_reason",
            "error_message",
        )
    },
    "StopHookResult.decision": Mapped("hooks.StopHookResult.decision"),
    "StopHookResult.reason": Mapped("hooks.StopHookResult.reason"),
    "HookResult.allow": Mapped("hooks.HookResult.allow"),
    "HookResult.message": Mapped("hooks.HookResult.message"),
    "HookResult.modified_args": Mapped("hooks.HookResult.modified_args"),
    # -- the agent and its conversation
    "Agent.beta": Refused("agy_trio has no beta namespace (see Agent.beta.run_workflow)"),
    "Agent.beta.run_workflow": Pending("AgentHandle.run_workflow"),
    "Agent.chat": Mapped("AgentHandle.chat"),
    "Agent.is_started": Refused("an AgentHandle exists only once its agent has started"),
    "Agent.conversation": Refused(
        "the AgentHandle is the conversation (see the Conversation rows)"
    ),
    "Agent.conversation_id": Mapped("AgentHandle.conversation_id"),
    "Agent.sandbox_status": Mapped("AgentHandle.sandbox_status"),
    "Conversation.cancel": Mapped("AgentHandle.cancel"),
    "Conversation.chat": Mapped("AgentHandle.chat"),
    "Conversation.clear_history": Mapped("AgentHandle.clear_history"),
    "Conversation.compaction_indices": Mapped("AgentHandle.compaction_indices"),
    "Conversation.connection": Refused("the SDK connection stays inside the backend"),
    "Conversation.conversation_id": Mapped("AgentHandle.conversation_id"),
    "Conversation.create": Mapped("Runtime.create_agent"),
    "Conversation.disconnect": Mapped("AgentHandle.disconnect"),
    "Conversation.get_last_structured_output": Mapped("ChatResponse.structured_output"),
    "Conversation.history": Mapped("AgentHandle.history"),
    "Conversation.is_idle": Mapped("AgentHandle.is_idle"),
    "Conversation.last_response": Mapped("AgentHandle.last_response"),
    "Conversation.last_turn_usage": Mapped("AgentHandle.last_turn_usage"),
    "Conversation.receive_chunks": Mapped("ChatResponse.events"),
    "Conversation.receive_steps": Mapped("ChatResponse.events"),
    "Conversation.sandbox_status": Mapped("AgentHandle.sandbox_status"),
    "Conversation.send": Mapped("AgentHandle.send"),
    "Conversation.total_usage": Mapped("AgentHandle.total_usage"),
    "Conversation.trajectory_usages": Mapped(
        "TurnEnd.trajectory_usages", "per turn, in its TurnEnd; ToolCall.depth marks subagents"
    ),
    "Conversation.turn_count": Mapped("AgentHandle.turn_count"),
    "Conversation.wait_for_idle": Mapped("AgentHandle.wait_for_idle"),
    "Conversation.wait_for_wakeup": Mapped("AgentHandle.wait_for_wakeup"),
    # -- hooks
    "hooks.policy": Mapped("policy"),
    "hooks.HookContext": Mapped("hooks.HookContext", "agent_id, turn, call, state"),
    "hooks.DecideHook": Refused("agy_trio hooks are plain callables, one Hooks field per point"),
    "hooks.InspectHook": Refused("agy_trio hooks are plain callables, one Hooks field per point"),
    "hooks.TransformHook": Refused("agy_trio hooks are plain callables, one Hooks field per point"),
    **{
        f"hooks.{sdk_name}": Mapped(f"Hooks.{field}")
        for sdk_name, field in (
            ("OnCompactionHook", "on_compaction"),
            ("on_compaction", "on_compaction"),
            ("OnInteractionHook", "on_interaction"),
            ("on_interaction", "on_interaction"),
            ("OnSessionEndHook", "on_session_end"),
            ("on_session_end", "on_session_end"),
            ("OnSessionStartHook", "on_session_start"),
            ("on_session_start", "on_session_start"),
            ("OnToolErrorHook", "on_tool_error"),
            ("on_tool_error", "on_tool_error"),
            ("PostToolCallHook", "post_tool_call"),
            ("post_tool_call", "post_tool_call"),
            ("PostTurnHook", "post_turn"),
            ("post_turn", "post_turn"),
            ("PreToolCallDecideHook", "pre_tool_call"),
            ("pre_tool_call_decide", "pre_tool_call"),
            ("PreTurnHook", "pre_turn"),
            ("pre_turn", "pre_turn"),
            ("StopHook", "stop"),
            ("stop", "stop"),
        )
    },
    # -- policy builders
    **_same_members(
        "policy",
        "policy",
        (
            "allow",
            "allow_all",
            "ask_user",
            "auto",
            "confirm_run_command",
            "deny",
            "deny_all",
            "flatten_policies",
            "safe_defaults",
            "workspace_only",
        ),
    ),
    "policy.enforce": Mapped("policy.PolicySet", "AgentConfig(policies=...) enforces them"),
    # -- triggers
    **{
        f"triggers.{name}": Pending(f"triggers.{name}")
        for name in (
            "every",
            "on_file_change",
            "FileChange",
            "FileChangeKind",
            "Trigger",
            "TriggerContext",
            "trigger",
        )
    },
    # -- enums
    **_same_members(
        "ThinkingLevel", "ThinkingLevel", ("MINIMAL", "LOW", "MEDIUM", "HIGH", "EXTRA_HIGH")
    ),
    **_same_members("ServiceTier", "ServiceTier", ("STANDARD", "PRIORITY", "FLEX")),
    **_same_members("BudgetScope", "BudgetScope", ("LIFETIME", "FORWARD_LOOKING")),
    "StopReason.UNSPECIFIED": Mapped("StopReason.END_TURN"),
    **_same_members(
        "StopReason",
        "StopReason",
        (
            "MAX_MODEL_CALLS_EXCEEDED",
            "MAX_TOOL_CALLS_EXCEEDED",
            "MAX_INPUT_TOKENS_EXCEEDED",
            "MAX_OUTPUT_TOKENS_EXCEEDED",
            "MAX_TOTAL_TOKENS_EXCEEDED",
            "QUOTA_EXHAUSTED",
        ),
    ),
    "StopDecision.ALLOW_STOP": Mapped("hooks.StopDecision.ALLOW_STOP"),
    "StopDecision.CONTINUE": Mapped("hooks.StopDecision.CONTINUE"),
    "ModelType.TEXT": Mapped("AgentConfig.model"),
    "ModelType.IMAGE": Refused("image-generation models are not offered"),
    **{
        f"AgentBehavior.{name}": Refused(
            "agy_trio's agents run each turn to its end; questions reach Hooks.on_interaction"
        )
        for name in ("AUTONOMOUS", "INTERACTIVE", "MINIMAL")
    },
    **{
        f"SessionContinuationMode.{name}": Refused(
            "agy_trio creates a new conversation, or resumes conversation_id when it is given"
        )
        for name in ("RESUME", "CREATE_OR_RESUME", "CREATE_ONLY")
    },
    "StepType.TEXT_RESPONSE": Mapped("TextDelta"),
    "StepType.THINKING": Mapped("ThoughtDelta"),
    "StepType.TOOL_CALL": Mapped("ToolCall"),
    "StepType.FINISH": Mapped("TurnEnd"),
    "StepType.COMPACTION": Mapped("AgentHandle.compaction_indices"),
    "StepType.SYSTEM_MESSAGE": _STEP,
    "StepType.UNKNOWN": _STEP,
    **{f"StepSource.{name}": _STEP for name in ("SYSTEM", "USER", "MODEL", "UNKNOWN")},
    **{f"StepTarget.{name}": _STEP for name in ("USER", "ENVIRONMENT", "UNSPECIFIED", "UNKNOWN")},
    **{
        f"StepStatus.{name}": _STEP
        for name in ("ACTIVE", "DONE", "WAITING_FOR_USER", "ERROR", "CANCELED", "UNKNOWN")
    },
    "BuiltinSlashCommandName.PLAN": Refused("slash commands are not among agy_trio's prompt parts"),
}


def _entries() -> dict[str, Entry]:
    return {**PARITY, **_builtin_tool_entries()}


def resolve(target: str, public: ModuleType) -> bool:
    """Whether ``target``, a dotted path under the package ``public``, names something that exists.

    The package is passed in, not imported here: the table describes the
    public API that stands above this adapter, so the caller that checks it
    (the parity test) hands that API down rather than this module reaching up.

    Args:
        target: A dotted path such as ``"AgentConfig.model"``.
        public: The package the path starts in (``agy_trio``).
    """
    node: Any = public
    path = public.__name__
    parts = target.split(".")
    for index, part in enumerate(parts):
        path = f"{path}.{part}"
        last = index == len(parts) - 1
        if last and isinstance(node, type) and attrs.has(node) and part in attrs.fields_dict(node):
            return True  # an attrs field (a slots class has no class attribute for it)
        if hasattr(node, part):
            node = getattr(node, part)
            continue
        try:
            node = importlib.import_module(path)
        except ImportError:
            return False
    return True


def unaccounted(surface: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """SDK names that are in no row of the table (the parity test wants none)."""
    surface = sdk_surface() if surface is None else surface
    entries = _entries()
    return [
        f"{section}.{name}"
        for section, names in surface.items()
        for name in names
        if f"{section}.{name}" not in entries
    ]


def stale(public: ModuleType, surface: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """Rows that do not hold: an SDK name gone, a target missing, a pending one that exists.

    Args:
        public: The package the table's targets are in (``agy_trio``); see :func:`resolve`.
        surface: The SDK's public names; read from the installed SDK when omitted.
    """
    surface = sdk_surface() if surface is None else surface
    known = {f"{section}.{name}" for section, names in surface.items() for name in names}
    problems: list[str] = []
    for key, entry in _entries().items():
        if key not in known:
            problems.append(f"{key}: not in the SDK")
        elif isinstance(entry, Mapped) and not resolve(entry.target, public):
            problems.append(f"{key}: agy_trio.{entry.target} does not exist")
        elif isinstance(entry, Pending) and resolve(entry.target, public):
            problems.append(f"{key}: agy_trio.{entry.target} exists; mark it Mapped")
    return problems


def render_table() -> str:
    """The Markdown table docs/reference.md prints: SDK name, agy_trio name, notes."""
    lines = ["| SDK name | agy_trio | Notes |", "|---|---|---|"]
    for key, entry in sorted(_entries().items()):
        if isinstance(entry, Mapped):
            lines.append(f"| `{key}` | `{entry.target}` | {entry.note} |")
        elif isinstance(entry, Pending):
            lines.append(f"| `{key}` | (planned: `{entry.target}`) | {entry.note} |")
        else:
            lines.append(f"| `{key}` | refused | {entry.reason} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_table(), end="")
