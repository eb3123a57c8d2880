"""The plain-asyncio baseline: the scripted backend's own agent objects, driven from asyncio.

The scripted backend keeps each agent's state and plays its turns in asyncio
(``ConversationState``, ``ScriptedAgent``); agy_trio adds the Trio runtime, the
thread crossing and the Trio-side stream on top. To see what those cost, the
baseline runs the very same asyncio objects and the very same turn code, but
feeds the events into an asyncio queue with the same batching and
backpressure as agy_trio's stream bridge, read by an asyncio consumer shaped
like ``ChatResponse``. Nothing crosses a thread and no Trio code runs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

from agy_trio.core.content import normalize_content
from agy_trio.core.events import ChatEvent, TextDelta
from agy_trio.testing.scripted.engine import ConversationState, ScriptedAgent
from agy_trio.testing.scripted.script import Responder, TurnBook


class EndOfStream(Exception):
    """The producer finished and every event was read."""


class AsyncioBridge:
    """StreamBridge's asyncio-only twin: batches, high-water backpressure, no lock, no thread."""

    def __init__(self, high_water: int = 1024, batch_max: int = 256) -> None:
        self._items: deque[ChatEvent] = deque()
        self._high_water = high_water
        self._low_water = high_water // 2
        self._batch_max = batch_max
        self._consumer: asyncio.Future[None] | None = None
        self._producer: asyncio.Future[None] | None = None
        self._finished = False
        self._error: BaseException | None = None

    def _wake_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None and not consumer.done():
            consumer.set_result(None)

    async def put(self, item: ChatEvent) -> None:
        self._items.append(item)
        self._wake_consumer()
        if len(self._items) >= self._high_water:
            self._producer = asyncio.get_running_loop().create_future()
            await self._producer

    def put_nowait(self, item: ChatEvent) -> None:
        if not self._finished:
            self._items.append(item)
            self._wake_consumer()

    def finish(self, error: BaseException | None = None) -> None:
        if not self._finished:
            self._finished = True
            self._error = error
            self._wake_consumer()

    @property
    def finished(self) -> bool:
        return self._finished

    async def receive_batch(self) -> Sequence[ChatEvent]:
        while True:
            items = self._items
            if items:
                if len(items) <= self._batch_max:
                    batch = list(items)
                    items.clear()
                else:
                    batch = [items.popleft() for _ in range(self._batch_max)]
                producer = self._producer
                if producer is not None and len(items) <= self._low_water:
                    self._producer = None
                    if not producer.done():
                        producer.set_result(None)
                return batch
            if self._finished:
                if self._error is not None:
                    raise self._error
                raise EndOfStream
            self._consumer = asyncio.get_running_loop().create_future()
            await self._consumer


class AsyncioResponse:
    """A ChatResponse-shaped reader: ``async for text in response`` over the batches."""

    def __init__(self, bridge: AsyncioBridge, *, yield_each: bool = False) -> None:
        self._bridge = bridge
        self._yield_each = yield_each
        self._pending: deque[ChatEvent] = deque()
        self._text: list[str] = []
        self._done = False
        self.turn: Any = None  # the turn's task, for the backend's own cancel

    def __aiter__(self) -> AsyncioResponse:
        return self

    async def __anext__(self) -> str:
        if self._yield_each:
            await asyncio.sleep(0)
        while True:
            if not self._pending:
                if self._done:
                    raise StopAsyncIteration
                try:
                    self._pending.extend(await self._bridge.receive_batch())
                except EndOfStream:
                    self._done = True
                    raise StopAsyncIteration from None
            event = self._pending.popleft()
            if type(event) is TextDelta:
                self._text.append(event.text)
                return event.text

    def text_batches(self) -> AsyncioTextBatches:
        """The batch reader: each step hands over the text of a whole batch, joined."""
        return AsyncioTextBatches(self)

    async def next_text_batch(self) -> str:
        while True:
            pending = self._pending
            if not pending:
                if self._done:
                    raise StopAsyncIteration
                try:
                    pending.extend(await self._bridge.receive_batch())
                except EndOfStream:
                    self._done = True
                    raise StopAsyncIteration from None
            texts = [event.text for event in pending if type(event) is TextDelta]
            pending.clear()
            if texts:
                text = "".join(texts)
                self._text.append(text)
                return text

    async def text(self) -> str:
        async for _ in self:
            pass
        return "".join(self._text)


class AsyncioTextBatches:
    """``AsyncioResponse.text_batches()``: asyncio's twin of ``ChatResponse.text_batches()``."""

    def __init__(self, response: AsyncioResponse) -> None:
        self._response = response

    def __aiter__(self) -> AsyncioTextBatches:
        return self

    async def __anext__(self) -> str:
        return await self._response.next_text_batch()


class _LocalHost:
    """What ``ScriptedAgent`` needs from a host, with everything running on this loop."""

    name = "asyncio-baseline"

    async def call_trio(self, fn: Any, *args: Any) -> Any:
        return await fn(*args)


class _NoServices:
    """Agent services with nothing to do (no hooks, no tools)."""

    agent_id = "baseline"
    tools = ()
    observes_turns = False

    async def turn_started(self) -> None:
        return None

    async def turn_ended(self) -> None:
        return None


class AsyncioAgents:
    """Creates scripted agents and plays their turns, all in the running asyncio loop."""

    def __init__(
        self,
        script: Responder | None = None,
        *,
        high_water: int = 1024,
        batch_max: int = 256,
        yield_each: bool = False,
    ) -> None:
        self.turns = TurnBook(script)
        self._host = _LocalHost()
        self._services = _NoServices()
        self._high_water = high_water
        self._batch_max = batch_max
        self._yield_each = yield_each
        self._count = 0

    def create(self) -> ScriptedAgent:
        self._count += 1
        state = ConversationState(f"baseline-{self._count}")
        return ScriptedAgent(
            f"agent-{self._count}",
            state,
            self._services,  # type: ignore[arg-type]
            self._host,  # type: ignore[arg-type]
            self.turns,
        )

    async def chat(self, agent: ScriptedAgent, prompt: str) -> AsyncioResponse:
        bridge = AsyncioBridge(self._high_water, self._batch_max)
        turn = await agent.start_turn(normalize_content(prompt), bridge)  # type: ignore[arg-type]
        response = AsyncioResponse(bridge, yield_each=self._yield_each)
        response.turn = turn
        return response
