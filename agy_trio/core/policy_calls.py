"""How one policy rule decides a call: its predicate, its handler, in the SDK's words.

:func:`decide_rule` is the body of the SDK evaluator's loop
(``_PolicyDecideHook.run``), run in Trio: user code is called through
:func:`~agy_trio.core.calling.run_callable` (sync callables in a worker
thread) within ``handler_timeout``, and everything but a clear answer denies.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import trio

from agy_trio.core.calling import callable_name, is_async_callable, run_callable
from agy_trio.core.policy_types import Approver, Decision, PolicyRule, ToolRequest, Verdict

__all__ = ["PATH_ARGUMENT_KEYS", "decide_rule", "outside_workspaces"]

logger = logging.getLogger("agy_trio.policy")

PATH_ARGUMENT_KEYS = frozenset(
    {
        "AbsolutePath",
        "DirectoryPath",
        "SearchPath",
        "TargetFile",
        "directory_path",
        "file_path",
        "output_path",
        "path",
        "script_path",
        "ScriptPath",
    }
)
"""Argument names that hold a path, for ``workspace_only`` (the SDK's wire path keys and more)."""

_NO_ANSWER = object()


class _Unanswered(Exception):
    """User code did not answer in time, or answered the wrong type."""


async def _answer(fn: Callable[..., Any], args: tuple[Any, ...], timeout: float, what: str) -> Any:
    result: Any = _NO_ANSWER
    with trio.move_on_after(timeout):
        result = await run_callable(fn, *args)
    if result is _NO_ANSWER:
        logger.warning("%s %s did not answer within %g s", what, callable_name(fn), timeout)
        raise _Unanswered(f"{what} {callable_name(fn)} did not answer within {timeout:g} s")
    return result


def _first_annotation(fn: Callable[..., Any], param: inspect.Parameter) -> Any:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return param.annotation
    return hints.get(param.name, param.annotation)


def _predicate_call(rule: PolicyRule, request: ToolRequest) -> tuple[Callable[..., Any], tuple]:  # type: ignore[type-arg]
    """The predicate and its argument, chosen from its first parameter as the SDK does."""
    when = rule.when
    assert when is not None
    try:
        params = list(inspect.signature(when).parameters.values())
    except (TypeError, ValueError):
        return when, (request.arguments,)
    if not params:
        return when, ()
    annotation = _first_annotation(when, params[0])
    if isinstance(annotation, type):
        if issubclass(annotation, ToolRequest):
            return when, (request,)
        validate = getattr(annotation, "model_validate", None)
        if validate is not None:
            if annotation.__name__ == "ToolCall":
                # The SDK's own ToolCall: built from the call, not from its arguments.
                # (An MCP tool called start_subagent makes it warn of the old name.)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    call = validate(
                        {"name": request.tool, "args": dict(request.arguments)}
                        | ({"server_name": request.server_name} if request.server_name else {})
                    )
                return when, (call,)
            return when, (validate(dict(request.arguments)),)
    return when, (request.arguments,)


def _handler_call(
    handler: Callable[..., Any], request: ToolRequest, reason: str
) -> Callable[..., Any]:
    """The handler with ``reason`` bound the way its signature takes it (the SDK's order)."""
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return handler
    try:
        signature.bind(request, reason=reason)
    except TypeError:
        pass
    else:
        return functools.partial(handler, reason=reason)
    try:
        signature.bind(request, reason)
    except TypeError:
        return handler
    return functools.partial(_with_second, handler, reason)


def _with_second(handler: Callable[..., Any], second: Any, first: Any) -> Any:
    return handler(first, second)


async def _ask(
    rule: PolicyRule, request: ToolRequest, timeout: float, approver: Approver | None
) -> Verdict:
    label = rule.label
    reason = request.reason or rule.reason
    asked = ToolRequest(
        request.tool, request.arguments, request.agent_id, request.server_name, reason, label
    )
    logger.info("Policy %r requesting user approval for tool %r.", label, request.tool)
    if rule.handler is None:
        if approver is None:
            # The SDK harness's words, and why agy_trio had nobody to ask either.
            message = (
                f"Policy '{label}' requires ask_user handler, but none was provided, "
                "and there is no server to ask (serve the agent with agy-trio serve)."
            )
            logger.error(message)
            return Verdict(False, message, rule)
        # No handler_timeout here: a person may take a while, and the approver
        # bounds the wait itself (agy-trio serve: --approval-timeout).
        answer = await run_callable(approver, asked)
    else:
        call = _handler_call(rule.handler, asked, reason)
        is_async = is_async_callable(rule.handler)
        result: Any = _NO_ANSWER
        with trio.move_on_after(timeout):
            result = await run_callable(call, asked, is_async=is_async)
        if result is _NO_ANSWER:
            name = callable_name(rule.handler)
            logger.warning("ask_user handler %s did not answer within %g s", name, timeout)
            raise _Unanswered(f"ask_user handler {name} did not answer within {timeout:g} s")
        answer = result
    if answer is True:
        return Verdict(True, "", rule)
    if answer is not False:
        raise _Unanswered(f"ask_user answered {answer!r}, not True or False")
    message = rule.reason or f"User denied tool '{request.tool}' (policy '{label}')."
    return Verdict(False, message, rule)


def outside_workspaces(arguments: Mapping[str, Any], workspaces: tuple[str, ...]) -> str | None:
    """The first path argument that lies outside every workspace, or None.

    Relative paths are read against the first workspace; ``file://`` URIs
    are read as paths. Links are resolved, so a link out of a workspace is outside.
    """
    roots = [os.path.realpath(w) for w in workspaces]
    for key in PATH_ARGUMENT_KEYS:
        value = arguments.get(key)
        if not isinstance(value, str) or not value:
            continue
        path = value.removeprefix("file://")
        if not os.path.isabs(path):
            path = os.path.join(roots[0] if roots else os.getcwd(), path)
        real = os.path.realpath(path)
        if not any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots):
            return value
    return None


async def decide_rule(
    rule: PolicyRule, request: ToolRequest, timeout: float, approver: Approver | None
) -> Verdict | None:
    """What ``rule`` decides about ``request``; None when it does not match (go on).

    Args:
        rule: A rule whose target matches the call.
        request: The call.
        timeout: Seconds its predicate and its handler each have.
        approver: Who answers a handler-less ``ask_user`` rule.
    """
    label = rule.label
    if rule.evaluated_elsewhere:
        # The SDK leaves these to the harness; agy_trio checks workspace paths too.
        if rule.workspaces is not None and rule.decision is Decision.DENY:
            outside = outside_workspaces(request.arguments, rule.workspaces)
            if outside is not None:
                logger.info("Policy %r denied tool %r: %s", label, request.tool, outside)
                return Verdict(False, f"Path {outside!r} is outside the workspaces.", rule)
        return None
    try:
        if rule.when is not None:
            when, args = _predicate_call(rule, request)
            if not await _answer(when, args, timeout, "predicate"):
                return None
        if rule.when is None:
            # A checkpoint on every path, whether user code ran or not.
            await trio.lowlevel.checkpoint()
        if rule.decision is Decision.DENY:
            logger.info("Policy %r denied tool %r.", label, request.tool)
            return Verdict(False, rule.reason or f"Denied by policy '{label}'.", rule)
        if rule.decision is Decision.ALLOW:
            logger.info("Policy %r approved tool %r.", label, request.tool)
            return Verdict(True, "", rule)
        return await _ask(rule, request, timeout, approver)
    except Exception as exc:
        # Trio's Cancelled is a BaseException: outer cancellation still propagates.
        logger.error(
            "Exception during policy %r evaluation — failing closed.", label, exc_info=True
        )
        detail = str(exc) if isinstance(exc, _Unanswered) else repr(exc)
        return Verdict(False, f"Policy evaluation failed for policy '{label}': {detail}", rule)
