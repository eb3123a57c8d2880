"""Hooks: the SDK's hook points (and agy_trio's own), as sync or Trio async callables.

Public face of :mod:`agy_trio.core.hooks`, :mod:`agy_trio.core.hook_types`
and :mod:`agy_trio.core.hook_points`: ``Hooks(pre_turn=..., pre_tool_call=...,
post_tool_call=..., on_tool_error=..., stop=..., on_interaction=...,
on_compaction=..., on_session_start=..., on_session_end=..., post_turn=...)``
with the SDK's names for what the hooks see and return.
"""

# `name as name` marks each import as a re-export, for type checkers and linters.
from agy_trio.core.hook_types import AskQuestionEntry as AskQuestionEntry
from agy_trio.core.hook_types import AskQuestionInteractionSpec as AskQuestionInteractionSpec
from agy_trio.core.hook_types import AskQuestionOption as AskQuestionOption
from agy_trio.core.hook_types import HookContext as HookContext
from agy_trio.core.hook_types import HookResult as HookResult
from agy_trio.core.hook_types import QuestionHookResult as QuestionHookResult
from agy_trio.core.hook_types import QuestionResponse as QuestionResponse
from agy_trio.core.hook_types import StopArgs as StopArgs
from agy_trio.core.hook_types import StopDecision as StopDecision
from agy_trio.core.hook_types import StopHookResult as StopHookResult
from agy_trio.core.hooks import SDK_HOOK_POINTS as SDK_HOOK_POINTS
from agy_trio.core.hooks import Hook as Hook
from agy_trio.core.hooks import Hooks as Hooks
from agy_trio.core.hooks import ToolEvent as ToolEvent
from agy_trio.core.hooks import ToolResultEvent as ToolResultEvent
from agy_trio.core.hooks import TurnEvent as TurnEvent

__all__ = [
    "SDK_HOOK_POINTS",
    "AskQuestionEntry",
    "AskQuestionInteractionSpec",
    "AskQuestionOption",
    "Hook",
    "HookContext",
    "HookResult",
    "Hooks",
    "QuestionHookResult",
    "QuestionResponse",
    "StopArgs",
    "StopDecision",
    "StopHookResult",
    "ToolEvent",
    "ToolResultEvent",
    "TurnEvent",
]
