"""The contenders of the round-trip comparisons: ways for Trio code to await asyncio code.

Every contender answers the same question, the cheapest possible asyncio
coroutine (``probe``: is an event set?), ``callers`` times in parallel, each
caller ``per_caller`` times in a row. agy_trio answers it through its public
API (``agent.is_idle()`` on the scripted backend), which runs exactly such a
coroutine on its asyncio host. Each function sets its world up, warms it up,
measures, tears it down, and returns wall and CPU microseconds per call.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import trio

from benchmarks._common import Measure
from benchmarks._rounds import Contender, Timer, timer_metrics
from benchmarks._runtime import on_runtime, on_scripted

Call = Callable[[int], Awaitable[Any]]
Measurer = Callable[[Call, int, int, int], Awaitable[Measure]]

# What each round-trip comparison measures of its contenders.
METRICS = timer_metrics("call")


async def probe(flag: asyncio.Event) -> bool:
    """The asyncio work of one round trip: as small as an ``is_idle`` query."""
    return flag.is_set()


async def _make_event() -> asyncio.Event:
    return asyncio.Event()


# ---------------------------------------------------------------------------- measuring


async def _in_nursery(one: Call, callers: int) -> None:
    async with trio.open_nursery() as nursery:
        for i in range(callers):
            nursery.start_soon(one, i)


async def _in_gather(one: Call, callers: int) -> None:
    await asyncio.gather(*(one(i) for i in range(callers)))


def _measurer(in_parallel: Callable[[Call, int], Awaitable[None]]) -> Measurer:
    """How a loop measures a call: ``in_parallel`` runs its ``callers`` at once."""

    async def measure(call: Call, callers: int, per_caller: int, warmup: int) -> Measure:
        async def calls(count: int) -> None:
            async def one(i: int) -> None:
                for _ in range(count):
                    await call(i)

            if callers == 1:
                await one(0)
            else:
                await in_parallel(one, callers)

        await calls(warmup)
        with Timer() as t:
            await calls(per_caller)
        return t.figures(callers * per_caller)

    return measure


# ``callers`` tasks at once, each awaiting ``call(its number)`` ``per_caller`` times in a row,
# after ``warmup`` calls each: the wall and CPU µs per call, in Trio and in asyncio.
trio_measure = _measurer(_in_nursery)
asyncio_measure = _measurer(_in_gather)


# ---------------------------------------------------------------------------- agy_trio


async def _is_idle_calls(rt: Any, callers: int, per_caller: int, warmup: int) -> Measure:
    """``agent.is_idle()`` through the public API, one agent per caller."""
    agents = [await rt.create_agent() for _ in range(callers)]
    return await trio_measure(lambda i: agents[i].is_idle(), callers, per_caller, warmup)


def agy_thread(callers: int, per_caller: int, warmup: int) -> Measure:
    """agy_trio with its default thread host: ``agent.is_idle()`` through the public API."""
    return on_scripted(lambda rt, _: _is_idle_calls(rt, callers, per_caller, warmup))


def agy_guest(callers: int, per_caller: int, warmup: int) -> Measure:
    """agy_trio in guest mode: Trio is a guest of the asyncio loop, same thread."""
    return on_scripted(lambda rt, _: _is_idle_calls(rt, callers, per_caller, warmup), guest=True)


class _NoServices:
    """The runtime's services for an agent that has no tools and no hooks."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.tools = ()
        self.observes_turns = False

    async def call_tool(self, name: str, arguments: Any) -> Any:
        raise LookupError(name)

    async def authorize(self, name: str, arguments: Any) -> bool:
        return False

    async def turn_started(self) -> None:
        return None

    async def turn_ended(self) -> None:
        return None


async def _ask_session(session: Any, agent_id: str) -> Any:
    """One ``is_idle`` command handed straight to a backend session (the backend protocol)."""
    from agy_trio.core.commands import IS_IDLE, Command

    command = Command(IS_IDLE, agent_id)
    command.start()
    session.submit(command)
    return await command.wait()


async def _sessions_measure(backend: Any, callers: int, per_caller: int, warmup: int) -> Measure:
    """Measure ``is_idle`` on sessions created through the backend protocol, no runtime."""
    import agy_trio

    async with trio.open_nursery() as nursery:
        await backend.start(nursery)
        try:
            ids = [f"agent-{i}" for i in range(callers)]
            config = agy_trio.AgentConfig()
            sessions = [await backend.create_agent(a, config, _NoServices(a)) for a in ids]
            return await trio_measure(
                lambda i: _ask_session(sessions[i], ids[i]), callers, per_caller, warmup
            )
        finally:
            await backend.aclose()
            nursery.cancel_scope.cancel()


def agy_session_direct(callers: int, per_caller: int, warmup: int) -> Measure:
    """The scripted backend's sessions answering commands directly, without the runtime."""
    from agy_trio.testing.scripted import ScriptedBackend

    return trio.run(_sessions_measure, ScriptedBackend(), callers, per_caller, warmup)


def aiohost_run(callers: int, per_caller: int, warmup: int, *, host_cls: Any = None) -> Measure:
    """``AioHost.run(probe)`` alone: the host's crossing without runtime or backend."""
    from agy_trio.adapters.aio_host import AioHost

    async def main() -> Measure:
        async with trio.open_nursery() as nursery:
            host = (host_cls or AioHost)("bench-aio-host")
            await host.start(nursery)
            flag = await host.run(_make_event)
            try:
                return await trio_measure(
                    lambda i: host.run(probe, flag), callers, per_caller, warmup
                )
            finally:
                await host.aclose()
                nursery.cancel_scope.cancel()

    return trio.run(main)


# ---------------------------------------------------------------------------- the others


class _LoopThread:
    """A bare asyncio loop on its own thread, with the probe's event made there."""

    def __enter__(self) -> _LoopThread:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-loop", daemon=True)
        self.thread.start()
        self.flag = asyncio.run_coroutine_threadsafe(_make_event(), self.loop).result()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def raw_primitive(callers: int, per_caller: int, warmup: int) -> Measure:
    """The floor for crossing threads: one call_soon_threadsafe there, one run_sync_soon back."""

    async def main() -> Measure:
        token = trio.lowlevel.current_trio_token()
        with _LoopThread() as there:
            loop, flag = there.loop, there.flag

            async def call(_: int) -> Any:
                task = trio.lowlevel.current_task()

                def done(t: asyncio.Task[Any]) -> None:
                    token.run_sync_soon(trio.lowlevel.reschedule, task, outcome.capture(t.result))

                def submit() -> None:
                    loop.create_task(probe(flag)).add_done_callback(done)

                loop.call_soon_threadsafe(submit)
                return await trio.lowlevel.wait_task_rescheduled(
                    lambda _: trio.lowlevel.Abort.FAILED
                )

            return await trio_measure(call, callers, per_caller, warmup)

    return trio.run(main)


def trio_asyncio_contender(callers: int, per_caller: int, warmup: int) -> Measure:
    """trio-asyncio: an asyncio loop running inside Trio (same thread), ``aio_as_trio``."""
    import trio_asyncio

    async def main() -> Measure:
        async with trio_asyncio.open_loop():
            flag = asyncio.Event()
            wrapped = trio_asyncio.aio_as_trio(probe)
            return await trio_measure(lambda i: wrapped(flag), callers, per_caller, warmup)

    return trio.run(main)


def anyio_portal(callers: int, per_caller: int, warmup: int) -> Measure:
    """anyio's BlockingPortal (an asyncio loop on a thread), reached through ``trio.to_thread``."""
    from anyio.from_thread import start_blocking_portal

    async def main() -> Measure:
        with start_blocking_portal("asyncio") as portal:
            flag = portal.call(_make_event)

            async def call(_: int) -> Any:
                return await trio.to_thread.run_sync(portal.call, probe, flag)

            return await trio_measure(call, callers, per_caller, warmup)

    return trio.run(main)


def naive_to_thread(callers: int, per_caller: int, warmup: int) -> Measure:
    """The naive bridge: a worker thread blocks on ``run_coroutine_threadsafe(...).result()``."""

    async def main() -> Measure:
        with _LoopThread() as there:
            loop, flag = there.loop, there.flag

            def blocking() -> Any:
                return asyncio.run_coroutine_threadsafe(probe(flag), loop).result()

            return await trio_measure(
                lambda i: trio.to_thread.run_sync(blocking), callers, per_caller, warmup
            )

    return trio.run(main)


def asyncio_in_loop(callers: int, per_caller: int, warmup: int) -> Measure:
    """The floor: plain asyncio awaiting a new task on its own loop (create_task + await)."""

    async def main() -> Measure:
        loop = asyncio.get_running_loop()
        flag = asyncio.Event()
        return await asyncio_measure(
            lambda i: loop.create_task(probe(flag)), callers, per_caller, warmup
        )

    return asyncio.run(main())


def trio_asyncio_isolated(callers: int, per_caller: int, warmup: int) -> Measure:
    """trio-asyncio, run in the helper process: importing it patches asyncio process-wide."""
    from benchmarks._worker import worker

    result: Measure = worker().call(
        "benchmarks._crossing:trio_asyncio_contender", callers, per_caller, warmup
    )
    return result


ONE_CPU = hasattr(os, "sched_setaffinity")


def on_one_cpu(key: str, callers: int, per_caller: int, warmup: int) -> Measure:
    """Run contender ``key`` with the process (so both of its threads) on one CPU.

    Linux only. Threads inherit the affinity of the thread that starts them.
    """
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(everywhere)})
    try:
        measured: Measure = CONTENDERS[key].run(callers, per_caller, warmup)
    finally:
        os.sched_setaffinity(0, everywhere)
    return measured


def one_cpu_isolated(key: str) -> Callable[[int, int, int], Measure]:
    """``key`` on one CPU, in a helper process of its own (the affinity is process state)."""

    def run(callers: int, per_caller: int, warmup: int) -> Measure:
        from benchmarks._worker import worker

        result: Measure = worker("one-cpu").call(
            "benchmarks._crossing:on_one_cpu", key, callers, per_caller, warmup
        )
        return result

    return run


def null_runtime(callers: int, per_caller: int, warmup: int) -> Measure:
    """The runtime over :class:`NullBackend` (answers at once in Trio): its own cost alone."""
    from agy_trio.testing import NullBackend

    return on_runtime(NullBackend, lambda rt, _: _is_idle_calls(rt, callers, per_caller, warmup))


def null_session_direct(callers: int, per_caller: int, warmup: int) -> Measure:
    """:class:`NullBackend`'s sessions answering commands directly, without the runtime."""
    from agy_trio.testing import NullBackend

    return trio.run(_sessions_measure, NullBackend(), callers, per_caller, warmup)


def bare_checkpoint(callers: int, per_caller: int, warmup: int) -> Measure:
    """A bare Trio loop: each call is one checkpoint, the least any Trio async call costs."""

    checkpoint = trio.lowlevel.checkpoint
    return trio.run(trio_measure, lambda i: checkpoint(), callers, per_caller, warmup)


# Each called with (callers, calls per caller, warm-up calls).
CONTENDERS: dict[str, Contender] = {
    "agy_thread": Contender(
        "agy_trio, thread host",
        "agy",
        agy_thread,
        "agent.is_idle() through the public API; asyncio loop on its own thread",
    ),
    "agy_guest": Contender(
        "agy_trio, guest mode",
        "agy",
        agy_guest,
        "agent.is_idle(); Trio as a guest of the asyncio loop, one thread",
    ),
    "raw": Contender(
        "raw primitive",
        "baseline",
        raw_primitive,
        "call_soon_threadsafe to submit, TrioToken.run_sync_soon to wake",
    ),
    "trio_asyncio": Contender(
        "trio-asyncio aio_as_trio",
        "baseline",
        trio_asyncio_isolated,
        "asyncio loop inside Trio, same thread (own process: it patches asyncio)",
    ),
    "anyio_portal": Contender(
        "anyio BlockingPortal via trio.to_thread",
        "baseline",
        anyio_portal,
        "worker thread blocks on portal.call",
    ),
    "naive": Contender(
        "to_thread + run_coroutine_threadsafe",
        "baseline",
        naive_to_thread,
        "worker thread blocks on .result()",
    ),
    "asyncio": Contender(
        "asyncio in-loop (floor)",
        "baseline",
        asyncio_in_loop,
        "create_task + await on the same loop; no Trio, no crossing",
    ),
    "agy_session": Contender(
        "scripted session, no runtime layer",
        "prototype",
        agy_session_direct,
        "the backend session's is_idle() called directly: the runtime's command layer removed",
    ),
    "aiohost": Contender(
        "AioHost.run alone",
        "prototype",
        aiohost_run,
        "the thread host's crossing without runtime or backend",
    ),
    "null_runtime": Contender(
        "experiment: runtime over NullBackend",
        "prototype",
        null_runtime,
        "is_idle() through the public API; agy_trio.testing.NullBackend answers at once in "
        "Trio (no host, no thread)",
    ),
    "null_session": Contender(
        "experiment: NullBackend session, no runtime",
        "prototype",
        null_session_direct,
        "an is_idle command handed straight to the backend session (Command, submit, wait)",
    ),
    "bare": Contender(
        "experiment: bare Trio loop",
        "prototype",
        bare_checkpoint,
        "one trio.lowlevel.checkpoint() per call: the floor of every row above",
    ),
}

if ONE_CPU:
    # Which CPUs the two threads land on changes what a crossing costs from one
    # round to the next; on one CPU the thread host and the raw primitive are
    # compared without that noise.
    CONTENDERS["agy_thread_1cpu"] = Contender(
        "experiment: thread host, process on one CPU",
        "prototype",
        one_cpu_isolated("agy_thread"),
        "agy_trio, thread host with the Trio and asyncio threads on the same CPU (affinity)",
    )
    CONTENDERS["raw_1cpu"] = Contender(
        "experiment: raw primitive, process on one CPU",
        "prototype",
        one_cpu_isolated("raw"),
        "the raw primitive with both threads on the same CPU (affinity)",
    )
