"""Model options: how hard a Gemini model thinks, which queue serves it, how long it answers.

The values are the SDK's (``google.antigravity.models``). They reach Gemini
and Vertex AI endpoints; the harness's OpenAI-compatible endpoint takes only
its URL (and always asks for ``max_completion_tokens: 65535``), so an agent
with a ``base_url`` refuses them.
"""

from __future__ import annotations

import enum

__all__ = ["MAX_OUTPUT_TOKENS_LIMIT", "ServiceTier", "ThinkingLevel"]

MAX_OUTPUT_TOKENS_LIMIT = 2**31 - 1
"""The largest ``max_output_tokens`` the SDK accepts."""


class ThinkingLevel(enum.Enum):
    """How much a Gemini model reasons before it answers (the SDK's ``ThinkingLevel``)."""

    MINIMAL = "minimal"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    EXTRA_HIGH = "extra_high"


class ServiceTier(enum.Enum):
    """The Gemini inference queue (the SDK's ``ServiceTier``)."""

    STANDARD = "standard"
    PRIORITY = "priority"
    FLEX = "flex"
