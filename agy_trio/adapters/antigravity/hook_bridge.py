"""The SDK's hook points, answered by the agent's hooks in Trio.

The harness calls the SDK's hooks (``hooks=`` of the SDK config) at its
hook points; each hook built here converts the SDK's data to agy_trio's
(:mod:`agy_trio.core.hook_types`), crosses into Trio through the agent's
host (:meth:`~agy_trio.adapters.aio_host.AioHost.call_trio`), runs the
agent's hooks there (:class:`~agy_trio.core.dispatch.ToolDispatcher`) and
converts the answer back. Only the points the agent has hooks for are
registered, so the harness never waits on a point nobody listens to.

``pre_turn`` is not among them: the runtime runs it before the prompt leaves
Trio (it may rewrite the prompt, which the SDK's own point cannot). The tool
points skip the agent's custom tools, whose hooks the runtime runs around the
tool itself (``call_tool``); here they cover the harness's built-in and MCP tools.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Collection
from typing import Any

from agy_trio.adapters.aio_host import AioHost
from agy_trio.adapters.antigravity.events import tool_name
from agy_trio.core.dispatch import ToolDispatcher
from agy_trio.core.hook_types import (
    AskQuestionEntry,
    AskQuestionInteractionSpec,
    AskQuestionOption,
    StopArgs,
)
from agy_trio.core.hooks import ToolResultEvent
from agy_trio.errors import ToolError

__all__ = ["sdk_hooks"]

log = logging.getLogger("agy_trio.antigravity")


class _Shared:
    """Mixin: the SDK deep-copies its config; a hook is shared, never copied.

    A copy would drag the host (its loop, threads and locks) along.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self

    def __copy__(self) -> Any:
        return self


def _stop_reason(value: Any) -> str:
    name = getattr(value, "name", None)
    return str(name) if name is not None else str(value or "")


def _spec(sdk_spec: Any) -> AskQuestionInteractionSpec:
    return AskQuestionInteractionSpec(
        tuple(
            AskQuestionEntry(
                entry.question,
                tuple(AskQuestionOption(option.id, option.text) for option in entry.options),
                entry.is_multi_select,
            )
            for entry in sdk_spec.questions
        )
    )


def sdk_hooks(host: AioHost, services: object, custom_tools: Collection[str]) -> list[Any]:
    """The SDK hook objects for the agent's hook points (none when it has no hooks).

    Args:
        host: The agent's host (the SDK calls the hooks on its loop).
        services: The agent's services; only a
            :class:`~agy_trio.core.dispatch.ToolDispatcher` runs SDK hook points.
        custom_tools: The agent's custom tool names (their tool hooks run in ``call_tool``).
    """
    if not isinstance(services, ToolDispatcher):
        return []
    points = set(services.hooks.sdk_points) - {"pre_turn"}
    if not points:
        return []
    sdk_hooks_module = importlib.import_module("google.antigravity.hooks")
    types = importlib.import_module("google.antigravity.types")
    call = host.call_trio

    def builtin(tc: Any) -> bool:
        return bool(getattr(tc, "server_name", None)) or tool_name(tc.name) not in custom_tools

    made: list[Any] = []

    def register(point: str, base: Any, run: Callable[..., Any]) -> None:
        if point in points:
            hook_class = type(f"Trio{base.__name__}", (_Shared, base), {"run": run})
            made.append(hook_class())

    # The SDK calls run(context=..., data=...): the parameters keep its names.
    async def pre_tool(self: Any, context: Any, data: Any) -> Any:
        tc = data
        if not builtin(tc):
            return types.HookResult(allow=True)
        decision = await call(
            services.pre_tool_call, tool_name(tc.name), dict(tc.args), tc.server_name
        )
        if not decision.allowed:
            return types.HookResult(allow=False, message=decision.message)
        modified = dict(decision.arguments) if decision.modified else None
        return types.HookResult(allow=True, modified_args=modified)

    async def post_tool(self: Any, context: Any, data: Any) -> None:
        result = data
        if not builtin(result):
            return
        error = ToolError(tool_name(result.name), result.error) if result.error else None
        event = ToolResultEvent(
            services.agent_id, tool_name(result.name), {}, result=result.result, error=error
        )
        await call(functools.partial(services.tool_ran, event, post_tool_call_only=True))

    async def tool_error(self: Any, context: Any, data: Any) -> Any:
        error = data
        name = tool_name(getattr(error, "tool_name", "") or "")
        server = getattr(error, "server_name", None)
        if not server and name in custom_tools:
            return None  # call_tool ran these hooks already
        failure = ToolError(name, str(error), server)
        return await call(services.tool_failed, failure, name)

    async def stop(self: Any, context: Any, data: Any) -> Any:
        args = data
        answer = await call(
            services.stop,
            StopArgs(
                args.response_text or "",
                args.trajectory_id or "",
                args.continuation_count or 0,
                _stop_reason(args.stop_reason),
                args.error_message or "",
            ),
        )
        return types.StopHookResult(
            decision=types.StopDecision(answer.decision.value), reason=answer.reason
        )

    async def interaction(self: Any, context: Any, data: Any) -> Any:
        answer = await call(services.interaction, _spec(data))
        if answer is None:
            return None
        return types.QuestionHookResult(
            responses=[
                types.QuestionResponse(
                    selected_option_ids=list(r.selected_option_ids)
                    if r.selected_option_ids is not None
                    else None,
                    freeform_response=r.freeform_response,
                    skipped=r.skipped,
                )
                for r in answer.responses
            ],
            cancelled=answer.cancelled,
        )

    async def compaction(self: Any, context: Any, data: Any) -> None:
        await call(services.compacted, str(getattr(data, "content", "") or ""))

    async def post_turn(self: Any, context: Any, data: Any) -> None:
        await call(services.post_turn, str(data or ""))

    async def session_start(self: Any, context: Any, data: Any) -> None:
        await call(services.session_started)

    async def session_end(self: Any, context: Any, data: Any) -> None:
        await call(services.session_ended)

    register("pre_tool_call", sdk_hooks_module.PreToolCallDecideHook, pre_tool)
    register("post_tool_call", sdk_hooks_module.PostToolCallHook, post_tool)
    register("on_tool_error", sdk_hooks_module.OnToolErrorHook, tool_error)
    register("stop", sdk_hooks_module.StopHook, stop)
    register("on_interaction", sdk_hooks_module.OnInteractionHook, interaction)
    register("on_compaction", sdk_hooks_module.OnCompactionHook, compaction)
    register("post_turn", sdk_hooks_module.PostTurnHook, post_turn)
    register("on_session_start", sdk_hooks_module.OnSessionStartHook, session_start)
    register("on_session_end", sdk_hooks_module.OnSessionEndHook, session_end)
    return made
