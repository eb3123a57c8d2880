"""agy_trio: a Trio-native structured-concurrency runtime for asyncio-only agent SDKs.

Quick start::

    import agy_trio, trio

    async def main():
        async with agy_trio.open_runtime() as rt:
            async with rt.open_agent(agy_trio.AgentConfig(name="helper")) as agent:
                response = await agent.chat("hello")
                async for delta in response:
                    print(delta, end="")

    trio.run(main)
"""

from agy_trio import errors, hooks, policy
from agy_trio._open import open_runtime
from agy_trio.core.agent import AgentHandle
from agy_trio.core.budget import Budget, BudgetScope
from agy_trio.core.content import BlobPart, Content, TextPart
from agy_trio.core.events import (
    ChatEvent,
    Message,
    StopReason,
    TextDelta,
    ThoughtDelta,
    ToolCall,
    TurnEnd,
    Usage,
)
from agy_trio.core.hooks import Hooks
from agy_trio.core.mcp import McpHttpServer, McpStdioServer, McpStreamableHttpServer
from agy_trio.core.model_options import ServiceTier, ThinkingLevel
from agy_trio.core.quota import QuotaRegistry, QuotaState
from agy_trio.core.runtime import CommandStatistics, Runtime, RuntimeStatistics
from agy_trio.core.settings import AgentConfig, RuntimeConfig
from agy_trio.core.streaming import ChatResponse
from agy_trio.core.structured import ResponseSchema
from agy_trio.core.tools import Tool, tool
from agy_trio.errors import (
    AgentNotFound,
    AgyError,
    BackendError,
    ChannelClosed,
    ConfigError,
    ContentTooLarge,
    EndpointUnreachable,
    MaxTokensReached,
    McpServerError,
    OperationTimeout,
    PolicyDenied,
    QuotaExceeded,
    RuntimeClosed,
    SafetyBlocked,
    StructuredOutputError,
    ToolArgumentError,
    ToolError,
    ToolNotFound,
    TurnVetoed,
    WrongThread,
)

__version__ = "0.1.0"

__all__ = [
    "AgentConfig",
    "AgentHandle",
    "AgentNotFound",
    "AgyError",
    "BackendError",
    "BlobPart",
    "Budget",
    "BudgetScope",
    "ChannelClosed",
    "ChatEvent",
    "ChatResponse",
    "CommandStatistics",
    "ConfigError",
    "Content",
    "ContentTooLarge",
    "EndpointUnreachable",
    "Hooks",
    "MaxTokensReached",
    "McpHttpServer",
    "McpServerError",
    "McpStdioServer",
    "McpStreamableHttpServer",
    "Message",
    "OperationTimeout",
    "PolicyDenied",
    "QuotaExceeded",
    "QuotaRegistry",
    "QuotaState",
    "ResponseSchema",
    "Runtime",
    "RuntimeClosed",
    "RuntimeConfig",
    "RuntimeStatistics",
    "SafetyBlocked",
    "ServiceTier",
    "StopReason",
    "StructuredOutputError",
    "TextDelta",
    "TextPart",
    "ThinkingLevel",
    "ThoughtDelta",
    "Tool",
    "ToolArgumentError",
    "ToolCall",
    "ToolError",
    "ToolNotFound",
    "TurnEnd",
    "TurnVetoed",
    "Usage",
    "WrongThread",
    "__version__",
    "errors",
    "hooks",
    "open_runtime",
    "policy",
    "tool",
]
