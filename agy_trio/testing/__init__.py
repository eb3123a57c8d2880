"""Public test helpers: a local OpenAI-compatible model server, its scripts and faults.

The names are loaded on first use (PEP 562) rather than at import: the
``agy-trio`` command line imports this package for its ``serve-model``
command, and the server's web stack (Starlette, hypercorn) is worth loading
only when a server is wanted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agy_trio._lazy import lazy_names
from agy_trio.testing.null_backend import NullBackend as NullBackend

if TYPE_CHECKING:
    from agy_trio.testing.app import ModelServer, open_model_server, run_model_server
    from agy_trio.testing.model_state import ModelServerStatistics
    from agy_trio.testing.replies import Responder, default_reply
    from agy_trio.testing.script import (
        CompletionUsage,
        Fault,
        FaultKind,
        Reply,
        ToolCallSpec,
        reply_from_json,
    )
    from agy_trio.testing.wire import ChatRequest

# Each public name, and the module that defines it.
_HOMES = {
    "ChatRequest": "wire",
    "CompletionUsage": "script",
    "Fault": "script",
    "FaultKind": "script",
    "ModelServer": "app",
    "ModelServerStatistics": "model_state",
    "Reply": "script",
    "Responder": "replies",
    "ToolCallSpec": "script",
    "default_reply": "replies",
    "open_model_server": "app",
    "reply_from_json": "script",
    "run_model_server": "app",
}

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


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals(), __all__)
