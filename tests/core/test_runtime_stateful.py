"""A hypothesis state machine drives a live runtime and checks it against a model.

The runtime runs in its own Trio run on a background thread; each rule crosses
into it with ``trio.from_thread.run``. After every step the invariants check
that the runtime's answers match the model and that nothing is left running
on the asyncio host loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import hypothesis.strategies as st
import trio
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig
from agy_trio.adapters.scripted import Hang, Say, ScriptedBackend, Turn, default_turn
from agy_trio.errors import AgentNotFound

T = TypeVar("T")
WORDS = st.text(alphabet="abcdefgh ", min_size=1, max_size=12).filter(str.strip)


def script(agent_id: str, prompt: str, index: int) -> Turn:
    if prompt.startswith("hang"):
        return Turn([Say("partial", chunks=1), Hang()])
    return default_turn(prompt)


class _ModelAgent:
    def __init__(self) -> None:
        self.user_messages: list[str] = []
        self.assistant_messages: list[str] = []
        self.turns = 0

    def answered(self, text: str) -> None:
        """A whole turn: the prompt, the scripted echo, one more turn counted."""
        self.user_messages.append(text)
        self.assistant_messages.append(f"You said: {text}")
        self.turns += 1


class RuntimeMachine(RuleBasedStateMachine):
    agents = Bundle("agents")

    def __init__(self) -> None:
        super().__init__()
        self.backend = ScriptedBackend(script)
        self.model: dict[str, _ModelAgent] = {}
        self.handles: dict[str, agy_trio.AgentHandle] = {}
        self._ready: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._thread.start()
        self.token, self.rt, self._stop = self._ready.get(timeout=30)

    async def _main(self) -> None:
        stop = trio.Event()
        config = RuntimeConfig(inter_agent_delay=0)
        async with agy_trio.open_runtime(config, backend=self.backend) as rt:
            self._ready.put((trio.lowlevel.current_trio_token(), rt, stop))
            await stop.wait()

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            with trio.fail_after(30):
                return await fn()

        return trio.from_thread.run(run, trio_token=self.token)

    # ------------------------------------------------------------------ rules

    @rule(target=agents, name=st.sampled_from(["alpha", "beta", "gamma"]))
    def create_agent(self, name: str) -> str:
        handle = self.call(lambda: self.rt.create_agent(AgentConfig(name=name)))
        self.model[handle.agent_id] = _ModelAgent()
        self.handles[handle.agent_id] = handle
        return handle.agent_id

    @precondition(lambda self: bool(self.model))
    @rule(agent_id=agents, text=WORDS, wait=st.sampled_from(["for the answer", "for idle"]))
    def whole_turn(self, agent_id: str, text: str, wait: str) -> None:
        """A turn run to its end: a chat read to its answer, or a send then waiting for idle."""
        if agent_id not in self.model:
            return
        handle = self.handles[agent_id]

        async def chat() -> str:
            return await (await handle.chat(text)).text()

        async def send_then_wait() -> None:
            await handle.send(text)
            await handle.wait_for_idle()

        if wait == "for the answer":
            assert self.call(chat) == f"You said: {text}"
        else:
            self.call(send_then_wait)
        self.model[agent_id].answered(text)

    @rule(agent_id=agents)
    def cancel_mid_turn(self, agent_id: str) -> None:
        if agent_id not in self.model:
            return
        handle = self.handles[agent_id]

        async def go() -> list[str]:
            seen: list[str] = []
            with trio.CancelScope() as scope:
                async for delta in await handle.chat("hang on"):
                    seen.append(delta)
                    scope.cancel()
            return seen

        assert self.call(go) == ["partial"]
        assert self.call(handle.is_idle)
        # The cancelled turn left its prompt and what it had produced (both
        # marked interrupted, checked below) and did not count.
        self.model[agent_id].user_messages.append("hang on")
        self.model[agent_id].assistant_messages.append("partial")
        history = self.call(handle.history)
        assert [(m.text, m.interrupted) for m in history[-2:]] == [
            ("hang on", True),
            ("partial", True),
        ]

    @rule(agent_id=agents)
    def clear_history(self, agent_id: str) -> None:
        if agent_id not in self.model:
            return
        self.call(self.handles[agent_id].clear_history)
        self.model[agent_id].user_messages.clear()
        self.model[agent_id].assistant_messages.clear()

    @rule(agent_id=consumes(agents))
    def shutdown_agent(self, agent_id: str) -> None:
        if agent_id not in self.model:
            return
        handle = self.handles.pop(agent_id)
        del self.model[agent_id]
        self.call(handle.shutdown)

        async def gone() -> bool:
            try:
                await handle.history()
            except AgentNotFound:
                return True
            return False

        assert self.call(gone)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def answers_match_the_model(self) -> None:
        for agent_id, model in self.model.items():
            handle = self.handles[agent_id]
            history = self.call(handle.history)
            assert [m.text for m in history if m.role == "user"] == model.user_messages
            assert [m.text for m in history if m.role == "assistant"] == model.assistant_messages
            assert self.call(handle.turn_count) == model.turns
        stats = self.rt.statistics()
        assert stats.agents == len(self.model)
        assert stats.in_flight == 0

    @invariant()
    def nothing_left_on_the_host_loop(self) -> None:
        async def count() -> int:
            return len(asyncio.all_tasks()) - 1

        host = self.backend.host
        assert self.call(lambda: host.run(count)) == 0

    def teardown(self) -> None:
        trio.from_thread.run_sync(self._stop.set, trio_token=self.token)
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()
        assert not any(t.name == self.backend.host.name for t in threading.enumerate())


RuntimeMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_runtime_state_machine = RuntimeMachine.TestCase
