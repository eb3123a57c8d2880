"""Shutting a runtime down: let work finish within a grace, fail or cancel the rest, end agents.

New commands get :class:`~agy_trio.errors.RuntimeClosed` at once; work in
flight gets ``shutdown_timeout`` to finish on its own, then is cancelled and
its callers get ``RuntimeClosed``; every agent left is shut down, all within
the same bound.
"""

from __future__ import annotations

import logging

import trio
import trio.lowlevel

from agy_trio.core.command_loop import CommandLoop
from agy_trio.core.commands import CancelReason
from agy_trio.core.fan_out import each_within
from agy_trio.core.lifecycle import agent_logger, cancel_stream
from agy_trio.core.runtime_state import AgentRecord, RuntimeState
from agy_trio.errors import RuntimeClosed

__all__ = ["shut_down"]

log = logging.getLogger("agy_trio.runtime")


async def shut_down(state: RuntimeState, loop: CommandLoop) -> None:
    """Shut the runtime down (see :meth:`Runtime.aclose`); call once."""
    state.closing = True
    loop.close()
    timeout = state.config.shutdown_timeout
    with trio.move_on_after(timeout):
        # Let queued commands start, and work in flight finish on its own.
        await _wait_quiet(state, loop)
    state.closed_reason = RuntimeClosed("the runtime shut down before the command finished")
    # Commands still queued never started: fail them without running them.
    loop.fail_queued()
    for command in list(state.running):
        command.cancel(CancelReason.SHUTDOWN)
    turns = list(state.turns)
    for turn in turns:
        response = turn.reader()
        if response is not None:
            response._force_error(state.closed_error())
    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            for turn in turns:
                nursery.start_soon(cancel_stream, turn.stream, timeout)
        await _wait_quiet(state, loop)
    await _shutdown_agents(state, timeout)


async def _wait_quiet(state: RuntimeState, loop: CommandLoop) -> None:
    """Wait until no command, queued command or turn is left."""
    while True:
        if state.busy():
            # Created only while shutdown waits: commands pay nothing for it.
            if state.quiet is None:
                state.quiet = trio.Event()
            await state.quiet.wait()
        elif loop.has_queued():
            await trio.lowlevel.checkpoint()  # the dispatch loop starts them
        else:
            await trio.lowlevel.checkpoint()
            return


async def _shutdown_agents(state: RuntimeState, timeout: float) -> None:
    records = list(state.agents.values())
    state.agents.clear()

    async def end(record: AgentRecord) -> None:
        try:
            await record.session.end("shutdown")
        except Exception:
            agent_logger(record.agent_id, "shutdown_agent").exception("agent shutdown failed")

    if not await each_within(timeout, end, records):
        log.error("agents did not shut down within %g s", timeout)
