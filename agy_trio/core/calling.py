"""Calling user code from Trio: sync or Trio async, in a worker thread or inline.

Tools, policy handlers and hooks are all user callables that may be plain
functions or Trio ``async def`` functions. :func:`run_callable` calls any of
them without ever blocking the Trio thread, and is a Trio checkpoint on every
path even when the user code itself never yields.

A :class:`Guard` asks a user callback whether a tool may run and fails closed:
anything but a timely, clear answer (an exception, a timeout, an answer of the
wrong type) denies the call with :class:`~agy_trio.errors.PolicyDenied`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import attrs
import trio

from agy_trio.errors import PolicyDenied

__all__ = ["Guard", "callable_name", "is_async_callable", "run_callable"]


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns a coroutine (``async def`` function or ``__call__``).

    Args:
        fn: Any object.

    Returns:
        True for coroutine functions, partials of them and objects whose
        ``__call__`` is a coroutine function.
    """
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 (we ask about __call__ itself, not callability)
    )


def callable_name(fn: object) -> str:
    """A short name for ``fn`` in log lines and error messages (its qualified name)."""
    return str(getattr(fn, "__qualname__", None) or repr(fn))


async def run_callable(
    fn: Callable[..., Any], *args: Any, in_thread: bool = True, is_async: bool | None = None
) -> Any:
    """Call user code from Trio without ever blocking the Trio thread.

    Trio async callables are awaited. Sync callables run in a worker thread
    (unless ``in_thread`` is False). If the caller is cancelled while a worker
    thread runs, the thread is abandoned: it finishes in the background and its
    result is dropped, so a stuck callback can never hold up a cancellation or a
    timeout. A sync callable that returns an awaitable has it awaited in Trio.

    This is a checkpoint on every path: a caller that is already cancelled gets
    :class:`trio.Cancelled` before ``fn`` starts, and other tasks get to run
    even when ``fn`` itself never yields.

    Args:
        fn: The callable.
        *args: Positional arguments for ``fn``.
        in_thread: Run a sync callable in a worker thread (True) or inline.
        is_async: Whether ``fn`` returns a coroutine, when the caller already
            knows; None asks :func:`is_async_callable`.

    Returns:
        What ``fn`` returned.
    """
    if is_async is None:
        is_async = is_async_callable(fn)
    if in_thread and not is_async:

        def call_boxed() -> tuple[Any]:
            # Boxed: Trio rejects a coroutine returned straight from a worker thread.
            return (fn(*args),)

        # A full checkpoint of its own: cancellable before the thread starts,
        # and the task sleeps while the thread runs.
        (result,) = await trio.to_thread.run_sync(call_boxed, abandon_on_cancel=True)
        if inspect.isawaitable(result):
            result = await result
        return result
    # Inline, the user code may never yield. Check for cancellation before it
    # runs (so a cancelled caller never starts it) and add the schedule point
    # after it, shielded so that a result already computed is not thrown away.
    await trio.lowlevel.checkpoint_if_cancelled()
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    await trio.lowlevel.cancel_shielded_checkpoint()
    return result


@attrs.frozen
class Guard:
    """One kind of user callback that decides whether a tool may run, asked fail-closed.

    Attributes:
        role: What the callback is, for messages (``"ask_user handler"``).
        refusal: The verb for an explicit no (``"refused"`` gives
            ``"refused by ask_user handler check_path"``).
        logger: Where failures and timeouts are logged as warnings.
        none_allows: Whether an answer of None lets the tool run (as True does)
            instead of denying it as an answer of the wrong type.
    """

    role: str
    refusal: str
    logger: logging.Logger
    none_allows: bool = False

    async def ask(
        self, callback: Callable[[Any], Any], event: object, *, tool: str, timeout: float
    ) -> None:
        """Call ``callback(event)``; return only if it lets ``tool`` run.

        The callback runs through :func:`run_callable` (sync callbacks in a
        worker thread). Cancellation from outside still propagates as
        :class:`trio.Cancelled`; it is never turned into a denial.

        Args:
            callback: The sync or Trio async callable to ask.
            event: Its one argument.
            tool: The tool the answer is about.
            timeout: Seconds the callback has to answer.

        Raises:
            PolicyDenied: The callback answered False, answered something other
                than a bool (or None, when :attr:`none_allows`), raised, or did
                not answer within ``timeout``.
        """
        name = callable_name(callback)
        answer: object = None
        try:
            with trio.move_on_after(timeout) as scope:
                answer = await run_callable(callback, event)
        except Exception as exc:
            # Trio's Cancelled is a BaseException, so outer cancellation still propagates.
            self.logger.warning("%s %s failed for tool %r", self.role, name, tool, exc_info=True)
            raise PolicyDenied(
                tool, f"{self.role} {name} raised {type(exc).__name__}: {exc}"
            ) from exc
        if scope.cancelled_caught:
            self.logger.warning(
                "%s %s did not answer for tool %r within %g s", self.role, name, tool, timeout
            )
            raise PolicyDenied(tool, f"{self.role} {name} did not answer within {timeout:g} s")
        if answer is True or (answer is None and self.none_allows):
            return
        if answer is False:
            raise PolicyDenied(tool, f"{self.refusal} by {self.role} {name}")
        expected = "None, True or False" if self.none_allows else "True or False"
        raise PolicyDenied(tool, f"{self.role} {name} answered {answer!r}, not {expected}")
