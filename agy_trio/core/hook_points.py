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
from typing import Any, Generic, TypeAlias, TypeVar

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

_D = TypeVar("_D")
_R = TypeVar("_R")


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


@attrs.frozen
class _Next(Generic[_D]):
    """A reader's answer for "ask the next hook", with the data it is to see."""

    data: _D


_Hook: TypeAlias = Callable[..., Any]


@attrs.frozen
class _Point(Generic[_D, _R]):
    """One hook point's rules: how it reads an answer, and a hook that failed.

    Attributes:
        read: ``(hook, answer, data)`` -> the point's result, or :class:`_Next`
            to ask the next hook (with the data it is to see: a rewritten
            prompt, merged arguments).
        failed: ``(failure, data)`` -> the same, for a hook that raised or overran.
    """

    read: Callable[[_Hook, Any, _D], _R | _Next[_D]]
    failed: Callable[[HookFailed, _D], _R | _Next[_D]]

    async def run(
        self,
        hooks: Sequence[_Hook],
        context: HookContext,
        data: _D,
        *,
        kind: str,
        timeout: float,
        with_data: bool = True,
    ) -> _R | _Next[_D]:
        """Ask the hooks one after the other until one's answer (or failure) decides.

        Args:
            hooks: The point's hooks, in order.
            context: What each hook may take besides the data.
            data: What the first hook sees.
            kind: The point's name, for the log and the failures.
            timeout: Seconds each hook has.
            with_data: Whether the hooks take the data (session hooks do not).

        Returns:
            The result that decided, or :class:`_Next` with the last data when
            every hook let it pass.
        """
        if not hooks:
            await trio.lowlevel.checkpoint()
        outcome: _R | _Next[_D] = _Next(data)
        for hook in hooks:
            try:
                answer = await call_hook(
                    hook, context, data, kind=kind, timeout=timeout, with_data=with_data
                )
            except HookFailed as exc:
                outcome = self.failed(exc, data)
            else:
                outcome = self.read(hook, answer, data)
            if not isinstance(outcome, _Next):
                return outcome
            data = outcome.data
        return outcome


def _go_on(_failure: HookFailed, data: _D) -> _Next[_D]:
    return _Next(data)


def _look_only(_hook: _Hook, _answer: Any, data: _D) -> _Next[_D]:
    return _Next(data)


_PreTurn: TypeAlias = tuple[bool, str, Any]


def _read_pre_turn(hook: _Hook, answer: Any, prompt: Any) -> _PreTurn | _Next[Any]:
    if answer is None or answer is True:
        return _Next(prompt)
    if answer is False:
        return False, f"vetoed by pre_turn hook {callable_name(hook)}", prompt
    if isinstance(answer, HookResult):
        if not answer.allow:
            return False, answer.message or f"vetoed by {callable_name(hook)}", prompt
        return _Next(prompt)
    return _Next(answer)  # new content: the prompt from then on


def _pre_turn_failed(failure: HookFailed, prompt: Any) -> _PreTurn:
    return False, str(failure), prompt


@attrs.frozen
class _Denied:
    """A ``pre_tool_call`` veto, and the call as the hooks had left it."""

    message: str
    request: Any


def _read_pre_tool_call(
    hook: Callable[..., Any], answer: Any, request: Any
) -> _Denied | _Next[Any]:
    if answer is None or answer is True:
        return _Next(request)
    if answer is False:
        return _Denied(f"denied by pre_tool_call hook {callable_name(hook)}", request)
    changes: Mapping[str, Any] | None
    if isinstance(answer, HookResult):
        if not answer.allow:
            return _Denied(answer.message or f"denied by {callable_name(hook)}", request)
        changes = answer.modified_args
    elif isinstance(answer, Mapping):
        changes = answer
    else:
        message = f"pre_tool_call hook {callable_name(hook)} answered {answer!r}"
        logger.warning("%s; denied", message)
        return _Denied(message, request)
    if not changes:
        return _Next(request)
    # The next hook sees the merged arguments.
    return _Next(attrs.evolve(request, arguments={**request.arguments, **changes}))


def _pre_tool_call_failed(failure: HookFailed, request: Any) -> _Denied:
    return _Denied(str(failure), request)


def _read_on_tool_error(
    _hook: Callable[..., Any], answer: Any, error: Any
) -> str | _Next[Any] | None:
    if answer is None:
        return _Next(error)
    return answer.strip() if isinstance(answer, str) and answer.strip() else None


def _keep_the_error(_failure: HookFailed, _error: Any) -> None:
    return None  # as the SDK does: the default error stands


def _read_stop(
    _hook: Callable[..., Any], answer: Any, args: StopArgs
) -> StopHookResult | _Next[StopArgs]:
    if isinstance(answer, str) and answer.strip():
        return StopHookResult(StopDecision.CONTINUE, answer.strip())
    if (
        isinstance(answer, StopHookResult)
        and answer.decision is StopDecision.CONTINUE
        and answer.reason.strip()
    ):
        return answer
    return _Next(args)


def _read_on_interaction(
    _hook: Callable[..., Any], answer: Any, spec: AskQuestionInteractionSpec
) -> QuestionHookResult | _Next[AskQuestionInteractionSpec]:
    if answer is None:
        return _Next(spec)
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


def _cancel_the_question(_failure: HookFailed, _spec: Any) -> QuestionHookResult:
    return QuestionHookResult(cancelled=True)


# Each point's rules, as the module docstring says them: observers go on
# whatever a hook does; the others stop at the first answer that decides.
_OBSERVE: _Point[Any, None] = _Point(_look_only, _go_on)
_PRE_TURN: _Point[Any, _PreTurn] = _Point(_read_pre_turn, _pre_turn_failed)
_PRE_TOOL_CALL: _Point[Any, _Denied] = _Point(_read_pre_tool_call, _pre_tool_call_failed)
_ON_TOOL_ERROR: _Point[Any, str | None] = _Point(_read_on_tool_error, _keep_the_error)
_STOP: _Point[StopArgs, StopHookResult] = _Point(_read_stop, _go_on)
_ON_INTERACTION: _Point[AskQuestionInteractionSpec, QuestionHookResult] = _Point(
    _read_on_interaction, _cancel_the_question
)


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
    await _OBSERVE.run(hooks, context, data, kind=kind, timeout=timeout, with_data=with_data)


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
    outcome = await _PRE_TURN.run(hooks, context, prompt, kind="pre_turn", timeout=timeout)
    return (True, "", outcome.data) if isinstance(outcome, _Next) else outcome


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
    outcome = await _PRE_TOOL_CALL.run(
        hooks, context, request, kind="pre_tool_call", timeout=timeout
    )
    if isinstance(outcome, _Next):
        final, allowed, message = outcome.data, True, ""
    else:
        final, allowed, message = outcome.request, False, outcome.message
    # A hook's changes make a new request, so an unchanged call is the very same one.
    return ToolDecision(allowed, message, dict(final.arguments), final is not request)


async def run_on_tool_error(
    hooks: Sequence[Callable[..., Any]], context: HookContext, error: Exception, *, timeout: float
) -> str | None:
    """Run the ``on_tool_error`` hooks; the first non-empty string is the model's message.

    Returns:
        The message to give the model instead of the error, or None to keep it
        (also when a hook fails: the SDK then keeps the default error too).
    """
    outcome = await _ON_TOOL_ERROR.run(hooks, context, error, kind="on_tool_error", timeout=timeout)
    return None if isinstance(outcome, _Next) else outcome


async def run_stop(
    hooks: Sequence[Callable[..., Any]], context: HookContext, args: StopArgs, *, timeout: float
) -> StopHookResult:
    """Run the ``stop`` hooks; the first CONTINUE with a reason wins.

    A hook returns a :class:`StopHookResult`, a string (continue with it as
    the instruction) or None (stop). A failing hook lets the turn stop.
    """
    outcome = await _STOP.run(hooks, context, args, kind="stop", timeout=timeout)
    return StopHookResult() if isinstance(outcome, _Next) else outcome


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
    outcome = await _ON_INTERACTION.run(
        hooks, context, spec, kind="on_interaction", timeout=timeout
    )
    return None if isinstance(outcome, _Next) else outcome
