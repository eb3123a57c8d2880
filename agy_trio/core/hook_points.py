"""Running the SDK's hook points in Trio, with their powers and the SDK's failure rules.

Each function runs the hooks of one point, one after the other in the order
given, each within ``handler_timeout``, through
:func:`~agy_trio.core.calling.run_callable` (sync hooks in a worker thread,
so a slow hook holds up only the call it is about, never another agent). A
hook takes the point's data, and the :class:`~agy_trio.core.hook_types.HookContext`
too when it has a parameter named ``context`` (or annotated ``HookContext``),
as in the SDK; session hooks take only the context, or nothing.

Where the SDK fails closed, so do these: a ``pre_turn`` or ``pre_tool_call``
hook that raises or overruns its time vetoes; a failing ``stop`` hook lets
the turn stop, a failing ``on_interaction`` hook cancels the question, and a
failing ``on_tool_error`` hook leaves the error as it was. Observers
(``post_turn``, ``post_tool_call``, ``on_compaction``, session hooks) only
log their failures. Every failure is logged on ``agy_trio.hooks``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import trio

from agy_trio.core.calling import callable_name, is_async_callable, run_callable
from agy_trio.core.hook_types import (
    AskQuestionInteractionSpec,
    HookContext,
    HookResult,
    QuestionHookResult,
    QuestionResponse,
    StopArgs,
    StopDecision,
    StopHookResult,
)

__all__ = [
    "ToolDecision",
    "call_hook",
    "observe",
    "run_on_interaction",
    "run_on_tool_error",
    "run_pre_tool_call",
    "run_pre_turn",
    "run_stop",
]

logger = logging.getLogger("agy_trio.hooks")

_NO_ANSWER = object()


class HookFailed(Exception):
    """A hook raised or did not return in time (the message says which)."""


def _context_parameter(hook: Callable[..., Any]) -> tuple[int, str] | None:
    """Where ``hook`` takes the context, as the SDK finds it: (position, name), or None."""
    try:
        params = list(inspect.signature(hook).parameters.values())
    except (TypeError, ValueError):
        return None
    for index, param in enumerate(params):
        annotation = param.annotation
        named = param.name == "context"
        annotated = annotation is HookContext or (
            isinstance(annotation, str) and annotation.split(".")[-1] == "HookContext"
        )
        if named or annotated:
            return index, param.name
    return None


def _bound(hook: Callable[..., Any], context: HookContext, data: Any, with_data: bool) -> Any:
    where = _context_parameter(hook)
    if not with_data:
        return hook if where is None else functools.partial(hook, context)
    if where is None:
        return functools.partial(hook, data)
    index, name = where
    params = len(inspect.signature(hook).parameters)
    if params < 2:
        return functools.partial(hook, context)
    if index == 0:
        return functools.partial(hook, context, data)
    return functools.partial(hook, data, **{name: context})


async def call_hook(
    hook: Callable[..., Any],
    context: HookContext,
    data: Any,
    *,
    kind: str,
    timeout: float,
    with_data: bool = True,
) -> Any:
    """Call one hook with the point's data (and the context, if it takes it).

    Raises:
        HookFailed: The hook raised, or did not return within ``timeout``
            (logged); outer cancellation still propagates.
    """
    name = callable_name(hook)
    call = _bound(hook, context, data, with_data)
    result: Any = _NO_ANSWER
    try:
        with trio.move_on_after(timeout):
            result = await run_callable(call, is_async=is_async_callable(hook))
    except Exception as exc:
        logger.warning("%s hook %s raised", kind, name, exc_info=True)
        raise HookFailed(f"{kind} hook {name} raised {type(exc).__name__}: {exc}") from exc
    if result is _NO_ANSWER:
        logger.warning("%s hook %s did not return within %g s", kind, name, timeout)
        raise HookFailed(f"{kind} hook {name} did not return within {timeout:g} s")
    return result


async def observe(
    hooks: Sequence[Callable[..., Any]],
    context: HookContext,
    data: Any,
    *,
    kind: str,
    timeout: float,
    with_data: bool = True,
) -> None:
    """Run observing hooks; a failure is logged and the next hook runs."""
    if not hooks:
        await trio.lowlevel.checkpoint()
    for hook in hooks:
        try:
            await call_hook(hook, context, data, kind=kind, timeout=timeout, with_data=with_data)
        except HookFailed:
            continue  # logged; observers never break what they observe


async def run_pre_turn(
    hooks: Sequence[Callable[..., Any]], context: HookContext, prompt: Any, *, timeout: float
) -> tuple[bool, str, Any]:
    """Run the ``pre_turn`` hooks: each may veto the prompt or rewrite it.

    A hook returns None or True (go on), False or ``HookResult(allow=False,
    message=...)`` (veto), or new content (a string or a list of parts: the
    prompt from then on; the next hook sees it).

    Returns:
        (allowed, the veto's message, the prompt to send).
    """
    if not hooks:
        await trio.lowlevel.checkpoint()
    for hook in hooks:
        try:
            answer = await call_hook(hook, context, prompt, kind="pre_turn", timeout=timeout)
        except HookFailed as exc:
            return False, str(exc), prompt
        if answer is None or answer is True:
            continue
        if answer is False:
            return False, f"vetoed by pre_turn hook {callable_name(hook)}", prompt
        if isinstance(answer, HookResult):
            if not answer.allow:
                return False, answer.message or f"vetoed by {callable_name(hook)}", prompt
            continue
        prompt = answer
    return True, "", prompt


@attrs.frozen
class ToolDecision:
    """What the ``pre_tool_call`` hooks decided about one call.

    Attributes:
        allowed: Whether the tool may run.
        message: Why not (the model reads it).
        arguments: The arguments to run it with (rewritten, or as they came).
        modified: Whether a hook changed them.
    """

    allowed: bool
    message: str
    arguments: Mapping[str, Any]
    modified: bool = False


async def run_pre_tool_call(
    hooks: Sequence[Callable[..., Any]],
    context: HookContext,
    request: Any,
    *,
    timeout: float,
) -> ToolDecision:
    """Run the ``pre_tool_call`` hooks on a :class:`~agy_trio.core.policy.ToolRequest`.

    A hook returns None or True (go on), False (deny), a mapping (arguments
    to merge in), or a :class:`HookResult` (deny with its message, or allow
    with ``modified_args`` merged in, as the SDK's ``HookRunner`` merges).
    Later hooks see the merged arguments.
    """
    arguments: dict[str, Any] = dict(request.arguments)
    modified = False
    if not hooks:
        await trio.lowlevel.checkpoint()
    for hook in hooks:
        try:
            answer = await call_hook(hook, context, request, kind="pre_tool_call", timeout=timeout)
        except HookFailed as exc:
            return ToolDecision(False, str(exc), arguments, modified)
        if answer is None or answer is True:
            continue
        if answer is False:
            name = callable_name(hook)
            return ToolDecision(False, f"denied by pre_tool_call hook {name}", arguments, modified)
        changes: Mapping[str, Any] | None
        if isinstance(answer, HookResult):
            if not answer.allow:
                message = answer.message or f"denied by {callable_name(hook)}"
                return ToolDecision(False, message, arguments, modified)
            changes = answer.modified_args
        elif isinstance(answer, Mapping):
            changes = answer
        else:
            message = f"pre_tool_call hook {callable_name(hook)} answered {answer!r}"
            logger.warning("%s; denied", message)
            return ToolDecision(False, message, arguments, modified)
        if changes:
            arguments.update(changes)
            modified = True
            request = attrs.evolve(request, arguments=arguments)
    return ToolDecision(True, "", arguments, modified)


async def run_on_tool_error(
    hooks: Sequence[Callable[..., Any]], context: HookContext, error: Exception, *, timeout: float
) -> str | None:
    """Run the ``on_tool_error`` hooks; the first non-empty string is the model's message.

    Returns:
        The message to give the model instead of the error, or None to keep it
        (also when a hook fails: the SDK then keeps the default error too).
    """
    if not hooks:
        await trio.lowlevel.checkpoint()
    for hook in hooks:
        try:
            answer = await call_hook(hook, context, error, kind="on_tool_error", timeout=timeout)
        except HookFailed:
            return None
        if answer is not None:
            return answer.strip() if isinstance(answer, str) and answer.strip() else None
    return None


async def run_stop(
    hooks: Sequence[Callable[..., Any]], context: HookContext, args: StopArgs, *, timeout: float
) -> StopHookResult:
    """Run the ``stop`` hooks; the first CONTINUE with a reason wins.

    A hook returns a :class:`StopHookResult`, a string (continue with it as
    the instruction) or None (stop). A failing hook lets the turn stop.
    """
    if not hooks:
        await trio.lowlevel.checkpoint()
    for hook in hooks:
        try:
            answer = await call_hook(hook, context, args, kind="stop", timeout=timeout)
        except HookFailed:
            continue
        if isinstance(answer, str) and answer.strip():
            return StopHookResult(StopDecision.CONTINUE, answer.strip())
        if (
            isinstance(answer, StopHookResult)
            and answer.decision is StopDecision.CONTINUE
            and answer.reason.strip()
        ):
            return answer
    return StopHookResult()


async def run_on_interaction(
    hooks: Sequence[Callable[..., Any]],
    context: HookContext,
    spec: AskQuestionInteractionSpec,
    *,
    timeout: float,
) -> QuestionHookResult | None:
    """Run the ``on_interaction`` hooks; the first answer wins.

    A hook returns a :class:`QuestionHookResult`, a list of answers (strings
    are free-form answers), or None (leave it to the next hook).

    Returns:
        The answers, or None when no hook answered (the question is then
        cancelled, as in the SDK); a failing hook cancels it too.
    """
    if not hooks:
        await trio.lowlevel.checkpoint()
    for hook in hooks:
        try:
            answer = await call_hook(hook, context, spec, kind="on_interaction", timeout=timeout)
        except HookFailed:
            return QuestionHookResult(cancelled=True)
        if answer is None:
            continue
        if isinstance(answer, QuestionHookResult):
            return answer
        if isinstance(answer, str):
            answer = [answer]
        if not isinstance(answer, list | tuple):
            logger.warning("on_interaction hook answered %r; the question is cancelled", answer)
            return QuestionHookResult(cancelled=True)
        return QuestionHookResult(
            tuple(
                item if isinstance(item, QuestionResponse) else QuestionResponse(None, str(item))
                for item in answer
            )
        )
    return None
