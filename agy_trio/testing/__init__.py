"""Public test helpers: a local OpenAI-compatible model server, its scripts and faults.

The names are loaded on first use (PEP 562) rather than at import: that keeps
``python -m agy_trio.testing.model_server`` from importing its own module twice,
which Python would warn about.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agy_trio.testing.null_backend import NullBackend as NullBackend

if TYPE_CHECKING:
    from agy_trio.testing.model_server import (
        ChatRequest,
        CompletionUsage,
        Fault,
        FaultKind,
        ModelServer,
        ModelServerStatistics,
        Reply,
        Responder,
        ToolCallSpec,
        default_reply,
        open_model_server,
        reply_from_json,
        run_model_server,
    )

__all__ = [
    "ChatRequest",
    "CompletionUsage",
    "Fault",
    "FaultKind",
    "ModelServer",
    "ModelServerStatistics",
    "Reply",
    "Responder",
    "ToolCallSpec",
    "default_reply",
    "open_model_server",
    "reply_from_json",
    "run_model_server",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module("agy_trio.testing.model_server"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
