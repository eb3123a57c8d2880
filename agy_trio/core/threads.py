"""Reaching a runtime from other threads (and telling when code is not in its run)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
import trio.lowlevel

from agy_trio.errors import RuntimeClosed, WrongThread

__all__ = ["call_soon_in_run", "run_from_thread", "running_trio_token"]

T = TypeVar("T")


def running_trio_token() -> trio.lowlevel.TrioToken | None:
    """The token of the Trio run the calling code runs in, or None outside any."""
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None


def _nothing() -> None:
    """A callback that does nothing (probes whether a Trio run still takes callbacks)."""


def run_from_thread(
    token: trio.lowlevel.TrioToken,
    run_thread: int,
    fn: Callable[..., Awaitable[T]],
    *args: Any,
) -> T:
    """From another thread: run ``fn(*args)`` in the run of ``token`` and return its result.

    Args:
        token: The runtime's Trio run.
        run_thread: The id of the thread that run lives on.
        fn: The async function to run there.
        *args: Its arguments.

    Raises:
        WrongThread: Called from Trio code (in that run or another), or on the
            run's own thread outside a task: blocking there would stop a run.
        RuntimeClosed: The run has finished.
    """
    if running_trio_token() is not None:
        raise WrongThread(
            "Runtime.from_thread blocks its thread and was called from Trio code: "
            "in the runtime's own run await the call; in another run use "
            "trio.to_thread.run_sync(rt.from_thread, ...)"
        )
    if threading.get_ident() == run_thread:
        # Not in a Trio task, yet on the run's thread (asyncio code hosting
        # a guest run): blocking here would stop the run for good.
        try:
            token.run_sync_soon(_nothing)
        except trio.RunFinishedError:
            raise RuntimeClosed("the runtime's Trio run has finished") from None
        raise WrongThread(
            "Runtime.from_thread blocks its thread and was called on the thread of the "
            "runtime's own Trio run"
        )
    try:
        return trio.from_thread.run(fn, *args, trio_token=token)
    except trio.RunFinishedError:
        raise RuntimeClosed("the runtime's Trio run has finished") from None


def call_soon_in_run(token: trio.lowlevel.TrioToken, fn: Callable[..., object], *args: Any) -> bool:
    """Have the run of ``token`` call ``fn(*args)`` soon, from any thread; False if it ended."""
    try:
        token.run_sync_soon(fn, *args)
    except trio.RunFinishedError:
        return False
    return True
