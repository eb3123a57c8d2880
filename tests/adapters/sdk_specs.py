"""What the SDK-config tests build from an AgentConfig: the spec one agent's SDK config comes from.

No harness runs: the tests check what the SDK would be given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agy_trio import AgentConfig
from agy_trio.adapters.antigravity.config import SdkAgentSpec, choose_endpoint, resolve_folders

CONVERSATION = "0123456789abcdef0123456789abcdef"


def agent_spec(
    tmp_path: Path, config: AgentConfig, *, resume: bool = False, **kw: Any
) -> SdkAgentSpec:
    """The spec of agent ``test/agent-1`` (Gemini's key in the environment) under ``tmp_path``."""
    endpoint = choose_endpoint(config, {"GEMINI_API_KEY": "env-key"})
    return SdkAgentSpec(
        config=config,
        endpoint=endpoint,
        folders=resolve_folders(config, tmp_path, endpoint),
        conversation_id=CONVERSATION,
        resume=resume,
        owner="test/agent-1",
        **kw,
    )
