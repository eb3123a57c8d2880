"""The per-turn event log: ids, replay from any point, live following, retention, the grace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest
import trio
import trio.testing

from agy_trio.core.events import StopReason, TextDelta, TurnEnd, Usage
from agy_trio.errors import ConfigError, TurnNotFound
from agy_trio.serve.turn_log import (
    EventKind,
    Text,
    Thought,
    ToolFinished,
    TurnFailed,
    TurnFinished,
    TurnLog,
    TurnLogs,
)
from agy_trio.serve.turns import TurnRunner
from agy_trio.serve.wire import Redactor, native_event, sse_for


async def collect(log: TurnLog, after: int = 0) -> list[int]:
    async with log.attach(after) as reader:
        return [event.id async for event in reader]


async def test_events_get_increasing_ids_and_one_terminal_event() -> None:
    log = TurnLog("agent-1")
    first = log.record(Text("Hel"))
    log.record(Thought("hmm"))
    log.record(Text("lo"))
    end = log.record(TurnFinished(StopReason.END_TURN, log.text, Usage(1, 2)))
    assert [e.id for e in log.events] == [1, 2, 3, 4]
    assert first.turn_id == log.turn_id and first.kind is EventKind.TEXT
    assert log.finished and log.end == end.payload
    assert log.text == "Hello"
    with pytest.raises(RuntimeError):
        log.record(Text("late"))
    assert [e.id for e in log.events_after(2)] == [3, 4]
    assert await collect(log) == [1, 2, 3, 4]
    assert await collect(log, 3) == [4]
    assert await collect(log, 10) == []


async def test_a_reader_replays_then_follows_live_and_stops_after_the_end() -> None:
    log = TurnLog("agent-1")
    log.record(Text("a"))
    seen: list[int] = []
    got_one = trio.Event()

    async def follow() -> None:
        async with log.attach() as reader:
            async for event in reader:
                seen.append(event.id)
                got_one.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        await got_one.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [1] and log.readers == 1
        log.record(Text("b"))
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [1, 2]
        log.record(TurnFailed("BackendError", "boom"))
    assert seen == [1, 2, 3]
    assert log.readers == 0


async def test_attach_refuses_a_bad_position() -> None:
    log = TurnLog("agent-1")
    for bad in (-1, "3", True, 1.5):
        with pytest.raises(ConfigError):
            log.attach(bad)  # type: ignore[arg-type]
    assert log.readers == 0


payloads = st.lists(
    st.one_of(
        st.builds(Text, st.text(max_size=5)),
        st.builds(Thought, st.text(max_size=5)),
        st.builds(
            ToolFinished,
            st.just("call-1"),
            st.sampled_from(["add", "read"]),
            st.dictionaries(st.sampled_from("xy"), st.integers()),
        ),
    ),
    max_size=12,
)


@hypothesis.given(
    payloads=payloads,
    attach_points=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 14)), max_size=5),
)
@hypothesis.settings(deadline=None, max_examples=60)
def test_every_reader_gets_each_event_after_its_point_once_in_order(
    payloads: list[Any], attach_points: list[tuple[int, int]]
) -> None:
    """Readers attach while events are being recorded, from arbitrary points."""

    async def main() -> None:
        log = TurnLog("agent-1")
        results: dict[int, list[int]] = {}

        async def read(index: int, after: int) -> None:
            results[index] = await collect(log, after)

        async with trio.open_nursery() as nursery:
            for step, payload in enumerate([*payloads, None]):
                for index, (when, after) in enumerate(attach_points):
                    if when == step:
                        nursery.start_soon(read, index, after)
                await trio.testing.wait_all_tasks_blocked()
                if payload is None:
                    log.record(TurnFinished(StopReason.END_TURN, log.text))
                else:
                    log.record(payload)
        total = len(payloads) + 1
        for index, (when, after) in enumerate(attach_points):
            if when <= len(payloads):
                assert results[index] == list(range(after + 1, total + 1))
        assert log.readers == 0

    trio.run(main)


async def test_finished_turns_are_kept_for_a_bounded_time_and_count(
    mock_clock: trio.testing.MockClock,
) -> None:
    logs = TurnLogs(keep_seconds=60, keep_count=2)
    live = logs.new("agent-0")
    ended = []
    for number in range(3):
        log = logs.new(f"agent-{number + 1}")
        log.record(TurnFinished(StopReason.END_TURN, ""))
        logs.ended(log)
        ended.append(log)
        mock_clock.jump(10)
    # Only the two newest finished turns are kept; the live one always is.
    with pytest.raises(TurnNotFound):
        logs.get(ended[0].turn_id)
    assert logs.get(ended[1].turn_id) is ended[1]
    assert logs.current("agent-2") is None and logs.current("agent-0") is live
    mock_clock.jump(35)  # ended[1] finished 50 s ago, ended[2] 40 s ago
    assert logs.get(ended[2].turn_id) is ended[2]
    mock_clock.jump(11)
    with pytest.raises(TurnNotFound):
        logs.get(ended[1].turn_id)
    mock_clock.jump(3600)
    with pytest.raises(TurnNotFound):
        logs.get(ended[2].turn_id)
    assert logs.get(live.turn_id) is live
    assert len(logs) == 1


async def test_native_rendering_names_the_turn_and_carries_the_id() -> None:
    log = TurnLog("agent-1")
    event = log.record(Text("hi"))
    assert native_event(event) == ("delta", {"text": "hi", "turn_id": log.turn_id})
    body = sse_for(event)
    assert body is not None
    assert body.startswith(b"id: 1\nevent: delta\ndata: ")


# ---------------------------------------------------------------------------- the grace


class _Turn:
    """A chat turn the test moves on by hand: each ``step`` lets one delta through."""

    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[str | None](100)
        self.cancelled = False
        self.usage = Usage(1, 1)
        self.stop_reason = StopReason.END_TURN

    async def __aenter__(self) -> _Turn:
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await trio.lowlevel.checkpoint()

    async def events(self) -> AsyncIterator[TextDelta | TurnEnd]:
        try:
            async for text in self.receive:
                if text is None:
                    yield TurnEnd(self.usage)
                    return
                yield TextDelta(text)
        except trio.Cancelled:
            self.cancelled = True
            raise


class _Handle:
    agent_id = "agent-1"

    def __init__(self) -> None:
        self.turn = _Turn()

    async def chat(self, prompt: str) -> _Turn:
        await trio.lowlevel.checkpoint()
        return self.turn


async def _started(
    nursery: trio.Nursery, handle: _Handle, *, grace: float
) -> tuple[TurnRunner, TurnLog, Any]:
    """A runner with ``grace``, and the turn it started for ``handle``: its log, its reader."""
    runner = TurnRunner(TurnLogs(), Redactor(lambda: ()), reattach_grace=grace)
    await nursery.start(runner.run)
    log, reader = await runner.start(handle, "hi")  # type: ignore[arg-type]
    return runner, log, reader


@asynccontextmanager
async def _left_by_its_reader() -> AsyncIterator[tuple[TurnRunner, TurnLog, _Handle]]:
    """A turn (grace 5 s) that streamed "a" to its only reader, who has just gone away."""
    handle = _Handle()
    async with trio.open_nursery() as nursery:
        runner, log, reader = await _started(nursery, handle, grace=5)
        await handle.turn.send.send("a")
        await trio.testing.wait_all_tasks_blocked()
        reader.close()
        yield runner, log, handle
        nursery.cancel_scope.cancel()


async def test_a_turn_without_readers_is_cancelled_when_the_grace_runs_out(
    mock_clock: trio.testing.MockClock,
) -> None:
    async with _left_by_its_reader() as (runner, log, handle):
        left_at = trio.current_time()
        mock_clock.jump(4.9)
        await trio.testing.wait_all_tasks_blocked()
        assert not log.finished  # still inside the grace
        mock_clock.jump(0.2)
        await trio.testing.wait_all_tasks_blocked()
        assert log.finished
        assert trio.current_time() - left_at == pytest.approx(5.1)
        end = log.end
        assert isinstance(end, TurnFinished) and end.stop_reason is StopReason.CANCELLED
        assert end.text == "a"
        assert handle.turn.cancelled
        assert runner.current("agent-1") is None


async def test_a_reader_back_within_the_grace_keeps_the_turn(
    mock_clock: trio.testing.MockClock,
) -> None:
    async with _left_by_its_reader() as (_, log, handle):
        mock_clock.jump(4)
        again = log.attach(1)
        mock_clock.jump(60)  # a reader is attached: no grace runs
        await trio.testing.wait_all_tasks_blocked()
        assert not log.finished
        again.close()
        mock_clock.jump(3)
        # The grace starts again from the second departure.
        await trio.testing.wait_all_tasks_blocked()
        assert not log.finished
        log.park()  # an approval: no reader by design, never cancelled by the grace
        mock_clock.jump(3600)
        await trio.testing.wait_all_tasks_blocked()
        assert not log.finished
        log.unpark()
        await handle.turn.send.send("b")
        await handle.turn.send.send(None)
        await trio.testing.wait_all_tasks_blocked()
        end = log.end
        assert isinstance(end, TurnFinished) and end.stop_reason is StopReason.END_TURN
        assert end.text == "ab" and not handle.turn.cancelled


async def test_no_grace_cancels_as_soon_as_the_last_reader_leaves() -> None:
    handle = _Handle()
    async with trio.open_nursery() as nursery:
        _, log, reader = await _started(nursery, handle, grace=0)
        second = log.attach()
        reader.close()
        await trio.testing.wait_all_tasks_blocked()
        assert not log.finished  # one reader is still there
        second.close()
        with trio.fail_after(1):
            while not log.finished:
                await log.wait_changed()
        assert isinstance(log.end, TurnFinished)
        assert log.end.stop_reason is StopReason.CANCELLED
        nursery.cancel_scope.cancel()


async def test_closing_the_runner_records_runtime_closed() -> None:
    handle = _Handle()
    async with trio.open_nursery() as nursery:
        runner, log, _reader = await _started(nursery, handle, grace=5)
        await runner.close(grace=1)
        assert isinstance(log.end, TurnFailed) and log.end.type == "RuntimeClosed"
        with pytest.raises(Exception, match="shutting down"):
            await runner.start(handle, "again")  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()
