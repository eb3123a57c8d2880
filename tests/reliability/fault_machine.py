"""A hypothesis state machine that drives a live runtime through faults.

The runtime runs in its own Trio run on a thread of its own; every rule
reaches it from the test's thread through :meth:`Runtime.from_thread`, so the
supported way in from other threads is exercised by every step. The rules chat
with and without faults (quota 429, server 5xx, a cut stream, a hang past
``chat_timeout``), cancel callers at random points, drop responses unread,
call from another Trio run and shut agents down from another thread; a world
(scripted backend, or the real SDK with the local model server) supplies the
backend and arranges the faults, and may add its own (a killed harness).

After every step the invariants check that:

* every agent's history holds exactly the prompts its callers were told were
  sent (a caller whose ``chat()`` returned a response sent it; a caller told
  ``Cancelled`` or any error by ``chat()`` did not), and every answer a caller
  received whole;
* nothing is left running: no command, no turn, no asyncio task beyond what
  the live agents hold, no thread but the runtime's own, and whatever the
  world checks (harness processes).

At teardown the runtime is left, and nothing it started may remain.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, TypeVar

import attrs
import hypothesis.strategies as st
import trio
import trio.lowlevel
from hypothesis import event
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import agy_trio
from agy_trio import AgentConfig
from agy_trio.errors import (
    AgentNotFound,
    AgyError,
    BackendError,
    ChannelClosed,
    OperationTimeout,
    QuotaExceeded,
    WrongThread,
)

T = TypeVar("T")

HANG = 60  # bounds work that takes well under a second; only a hang reaches it
KINDS = ("ok", "ok", "ok", "long", "quota", "server", "cut", "hang")


class World:
    """What one backend brings to the machine. Subclasses fill it in."""

    #: Errors a turn of each faulty kind ends with, read whole.
    expected: ClassVar[dict[str, tuple[type[BaseException], ...]]] = {
        "quota": (QuotaExceeded,),
        "server": (BackendError,),
        "cut": (ChannelClosed, BackendError),
        "hang": (OperationTimeout,),
    }
    max_agents = 3

    def open(self) -> AbstractAsyncContextManager[agy_trio.Runtime]:
        """Open the runtime (and whatever the world needs) in the runtime's Trio run."""
        raise NotImplementedError

    def agent_config(self, name: str) -> AgentConfig:
        """The configuration of a new agent."""
        raise NotImplementedError

    def answer(self, kind: str, prompt: str) -> str:
        """The whole answer to a turn of kind ``ok`` or ``long``."""
        raise NotImplementedError

    async def arrange(self, kind: str, prompt: str) -> None:
        """Make the turn of ``prompt`` behave as ``kind`` (in the runtime's run)."""
        await trio.lowlevel.checkpoint()

    async def settle(self) -> None:
        """Undo whatever :meth:`arrange` left unused (in the runtime's run)."""
        await trio.lowlevel.checkpoint()

    async def check_running(self, rt: agy_trio.Runtime, live_agents: int) -> None:
        """Check what the world can see while the runtime runs (in the runtime's run)."""
        await trio.lowlevel.checkpoint()

    def check_closed(self) -> None:
        """Check that nothing the world started is left (test thread)."""


@attrs.define
class ModelAgent:
    """What the callers of one agent were told."""

    handle: agy_trio.AgentHandle
    sent: list[str] = attrs.Factory(list)
    answers: list[str] = attrs.Factory(list)
    # Prompts (and their expected answers) of turns that were still running,
    # unread, when their harness was killed: the SDK keeps such a prompt in
    # the resumed conversation only if the harness had saved it (see
    # docs/reliability.md). Either way is a truthful history.
    killed_in_flight: set[str] = attrs.Factory(set)


@attrs.frozen
class ChatResult:
    """What one caller of ``chat()`` saw."""

    sent: bool
    text: str | None
    error: BaseException | None
    cancelled: bool


def _is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(item == candidate for candidate in it) for item in needles)


def _runtime_threads() -> set[threading.Thread]:
    # Trio's idle worker threads are a cache that outlives any one caller.
    return {t for t in threading.enumerate() if not t.name.startswith("Trio thread")}


class FaultMachine(RuleBasedStateMachine):
    """Chats, faults, cancellations and thread crossings against one runtime."""

    world_factory: ClassVar[Callable[[], World]]

    def __init__(self) -> None:
        super().__init__()
        self.world = type(self).world_factory()
        self.threads_before = _runtime_threads()
        self.model: dict[str, ModelAgent] = {}
        self.numbers = itertools.count()
        ready: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(
            target=self._run, args=(ready,), name="fault-machine-runtime", daemon=True
        )
        self.thread.start()
        started = ready.get(timeout=HANG)
        if isinstance(started, BaseException):
            raise started
        self.rt, self.stop = started

    def _run(self, ready: queue.Queue[Any]) -> None:
        async def main() -> None:
            stop = trio.Event()
            try:
                async with self.world.open() as rt:
                    ready.put((rt, stop))
                    await stop.wait()
            except BaseException as exc:
                ready.put(exc)
                raise

        trio.run(main)

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` in the runtime's Trio run, from this thread, within a time limit."""

        async def bounded() -> T:
            with trio.fail_after(HANG):
                return await fn()

        return self.rt.from_thread(bounded)

    def prompt(self, kind: str) -> str:
        return f"{kind} <{next(self.numbers)}>"  # a unique marker: "<3>" is not in "<31>"

    # ------------------------------------------------------------------ rules

    def pick(self, index: int) -> ModelAgent:
        """A live agent, chosen by a drawn index."""
        return self.model[sorted(self.model)[index % len(self.model)]]

    @initialize()
    def first_agent(self) -> None:
        self.create_agent()

    @precondition(lambda self: len(self.model) < self.world.max_agents)
    @rule()
    def create_agent(self) -> None:
        name = f"a{next(self.numbers)}"
        handle = self.call(lambda: self.rt.create_agent(self.world.agent_config(name)))
        self.model[handle.agent_id] = ModelAgent(handle)

    @precondition(lambda self: bool(self.model))
    @rule(
        index=st.integers(min_value=0, max_value=7),
        kind=st.sampled_from(KINDS),
        read=st.sampled_from(["all", "all", "part", "none"]),
        cancel_after=st.none() | st.none() | st.integers(min_value=0, max_value=40),
    )
    def chat(self, index: int, kind: str, read: str, cancel_after: int | None) -> None:
        agent = self.pick(index)
        prompt = self.prompt(kind)
        result = self.call(lambda: self._chat(agent.handle, kind, prompt, read, cancel_after))
        outcome = (
            type(result.error).__name__
            if result.error
            else "cancelled"
            if result.cancelled
            else "ok"
        )
        event(f"chat {kind}, read {read}: {'sent' if result.sent else 'not sent'}, {outcome}")
        if result.sent:
            agent.sent.append(prompt)
        if result.text is not None:
            agent.answers.append(result.text)
        # Abandoned (closed or left unread) or cancelled: the turn is interrupted,
        # its partial answer (if any) marked so; or it had ended already.
        if result.error is not None:
            # chat() itself refused: only when the caller gave up or a time ran out.
            assert isinstance(result.error, AgyError), repr(result.error)
        whole = read == "all" and cancel_after is None and result.sent
        if whole and kind in ("ok", "long"):
            assert result.text is not None, repr(result.error)
        if whole and kind in self.world.expected:
            assert isinstance(result.error, self.world.expected[kind]), repr(result.error)

    async def _chat(
        self,
        handle: agy_trio.AgentHandle,
        kind: str,
        prompt: str,
        read: str,
        cancel_after: int | None,
    ) -> ChatResult:
        await self.world.arrange(kind, prompt)
        sent = False
        text: str | None = None
        error: BaseException | None = None
        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as scope:
                if cancel_after is not None:
                    nursery.start_soon(_cancel_after, scope, cancel_after)
                try:
                    response = await handle.chat(prompt)
                    sent = True
                    if read == "all":
                        text = await response.text()
                    elif read == "part":
                        async for _ in response:
                            break  # the loop left early abandons the turn
                    else:
                        await response.aclose()  # closed unread
                    del response
                except AgyError as exc:
                    error = exc
            nursery.cancel_scope.cancel()
        await self.world.settle()
        return ChatResult(sent, text, error, scope.cancelled_caught)

    @precondition(lambda self: bool(self.model))
    @rule(index=st.integers(min_value=0, max_value=7))
    def send_in_the_background(self, index: int) -> None:
        agent = self.pick(index)
        prompt = self.prompt("ok")
        self.call(lambda: agent.handle.send(prompt))
        agent.sent.append(prompt)

    @precondition(lambda self: bool(self.model))
    @rule(index=st.integers(min_value=0, max_value=7))
    def call_from_another_trio_run(self, index: int) -> None:
        agent = self.pick(index)
        prompt = self.prompt("ok")
        caught: list[BaseException] = []

        async def foreign() -> None:
            for call in (agent.handle.history, lambda: agent.handle.chat(prompt)):
                with trio.fail_after(HANG):
                    try:
                        await call()
                    except AgyError as exc:
                        caught.append(exc)

        thread = threading.Thread(target=trio.run, args=(foreign,), name="foreign-trio-run")
        thread.start()
        thread.join(HANG)
        assert not thread.is_alive()
        assert [type(e) for e in caught] == [WrongThread, WrongThread]

    @precondition(lambda self: bool(self.model))
    @rule(index=st.integers(min_value=0, max_value=7))
    def try_shutdown_from_this_thread(self, index: int) -> None:
        agent = self.model.pop(self.pick(index).handle.agent_id)
        agent.handle.try_shutdown()  # not the runtime's thread: queued through its token
        self.call(lambda: until_gone(agent.handle))
        self.call(lambda: _quiet(self.rt))

    @precondition(lambda self: bool(self.model))
    @rule(index=st.integers(min_value=0, max_value=7))
    def shutdown(self, index: int) -> None:
        agent = self.model.pop(self.pick(index).handle.agent_id)
        self.call(agent.handle.shutdown)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def callers_were_told_the_truth_and_nothing_is_left_running(self) -> None:
        self.call(lambda: _quiet(self.rt))
        self.history_holds_what_callers_were_told()
        self.nothing_is_left_running()

    def history_holds_what_callers_were_told(self) -> None:
        for agent_id, agent in self.model.items():
            history = self.call(lambda a=agent: _settled_history(a.handle))  # type: ignore[misc]
            users = [m.text for m in history if m.role == "user"]
            expected = [p for p in agent.sent if p in users or p not in agent.killed_in_flight]
            assert users == expected, f"{agent_id}: {users} != {agent.sent}"
            answers = [m.text for m in history if m.role == "assistant"]
            wanted = [a for a in agent.answers if a in answers or a not in agent.killed_in_flight]
            assert _is_subsequence(wanted, answers), f"{agent_id}: {answers}"

    def nothing_is_left_running(self) -> None:
        stats = self.rt.statistics()
        assert stats.agents == len(self.model)
        assert stats.in_flight == 0, stats
        assert stats.active_turns == 0, stats
        assert stats.queued == 0, stats
        extra = {t.name for t in _runtime_threads() - self.threads_before}
        assert all(self.allowed_thread(name) for name in extra), extra
        self.call(lambda: self.world.check_running(self.rt, len(self.model)))

    def allowed_thread(self, name: str) -> bool:
        """Whether the runtime may run a thread of this name (its own, its backend's)."""
        return name == "fault-machine-runtime"

    def teardown(self) -> None:
        if self.thread.is_alive():
            trio.from_thread.run_sync(self.stop.set, trio_token=self.rt.trio_token)
            self.thread.join(HANG)
        assert not self.thread.is_alive(), "leaving the runtime hung"
        assert _runtime_threads() <= self.threads_before, _runtime_threads() - self.threads_before
        self.world.check_closed()


async def _cancel_after(scope: trio.CancelScope, checkpoints: int) -> None:
    for _ in range(checkpoints):
        await trio.lowlevel.checkpoint()
    scope.cancel()


async def until_gone(handle: agy_trio.AgentHandle) -> None:
    """Return once the runtime answers AgentNotFound for ``handle`` (each try is a command)."""
    while True:
        try:
            await handle.is_idle()
        except AgentNotFound:
            return


async def _quiet(rt: agy_trio.Runtime) -> None:
    """Return once no command and no turn is running (a shutdown may still be finishing)."""
    while True:
        stats = rt.statistics()
        if not (stats.in_flight or stats.active_turns or stats.queued):
            return
        await trio.sleep(0.005)


async def settled(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until ``check()`` holds: work that is over may take a moment to unwind.

    A leak never settles, and fails the step when the machine's time limit runs out.
    """
    with trio.move_on_after(HANG / 2):
        # Polling: the state lives on other threads, which set no Trio event.
        while not await check():  # noqa: ASYNC110
            await trio.sleep(0.005)
        return
    raise AssertionError(f"never settled: {what}")


async def _settled_history(handle: agy_trio.AgentHandle) -> list[agy_trio.Message]:
    await handle.wait_for_idle()
    return await handle.history()
