"""The SDK's public surface, read from the installed google-antigravity: :func:`sdk_surface`.

The names the parity table (:mod:`~agy_trio.adapters.antigravity.parity`)
must account for, section by section: the agent and connection config
fields, the sub-configs they take, the agent and conversation methods, the
hook points, the policy builders, the public enums' members, the triggers.
Read from the SDK itself, so a release that adds a name shows up.
"""

from __future__ import annotations

import enum
import importlib
import inspect
from collections.abc import Iterable
from typing import Any

from agy_trio.adapters.antigravity.sdk import load_sdk

__all__ = ["sdk_surface"]


def _fields(model: Any) -> list[str]:
    return list(getattr(model, "model_fields", {}))


def _public(cls: type[Any]) -> list[str]:
    return [name for name in vars(cls) if not name.startswith("_")]


def sdk_surface(*, agent_configs: Iterable[type[Any]] | None = None) -> dict[str, list[str]]:
    """The SDK's public surface, by section: section -> its names.

    Args:
        agent_configs: The agent config classes to read (default: the SDK's
            ``AgentConfig``, ``LocalAgentConfig``, ``LocalOpenAIAgentConfig``
            and ``LiteRTAgentConfig``); a test passes a copy with a field added.
    """
    sdk = load_sdk()
    types = sdk.types
    hooks = importlib.import_module("google.antigravity.hooks")
    policy = importlib.import_module("google.antigravity.hooks.policy")
    triggers = importlib.import_module("google.antigravity.triggers")
    conversation = importlib.import_module("google.antigravity.conversation.conversation")
    configs = (
        list(agent_configs)
        if agent_configs is not None
        else [
            sdk.AgentConfig,
            sdk.LocalAgentConfig,
            sdk.LocalOpenAIAgentConfig,
            sdk.LiteRTAgentConfig,
        ]
    )
    surface: dict[str, list[str]] = {
        "AgentConfig": sorted({name for cls in configs for name in _fields(cls)}),
        "Agent": sorted([*_public(sdk.Agent), *(f"beta.{n}" for n in dir(sdk.Agent.beta))]),
        "Conversation": sorted(
            name
            for name, _ in inspect.getmembers(conversation.Conversation)
            if not name.startswith("_")
        ),
        "hooks": sorted(hooks.__all__),
        "policy": sorted(
            name
            for name, value in vars(policy).items()
            if inspect.isfunction(value)
            and value.__module__ == policy.__name__
            and not name.startswith("_")
        ),
        "triggers": sorted(triggers.__all__),
    }
    for name in (
        "CapabilitiesConfig",
        "CompactionConfig",
        "RunCommandConfig",
        "SubagentConfig",
        "SubagentCapabilities",
        "InlineSkill",
        "BudgetConfig",
        "GeminiModelOptions",
        "SandboxStatus",
        "StopArgs",
        "StopHookResult",
        "HookResult",
    ):
        surface[name] = _fields(getattr(types, name))
    for name in types.__all__:
        value = getattr(types, name)
        if isinstance(value, type) and issubclass(value, enum.Enum):
            surface[name] = [member.name for member in value]
    return surface
