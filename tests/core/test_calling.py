from __future__ import annotations

import functools
import logging
import threading
from typing import Any

import pytest
import trio

from agy_trio.core.calling import Guard, callable_name, is_async_callable, run_callable
from agy_trio.errors import PolicyDenied

LOGGER = logging.getLogger("tests.calling")
STRICT = Guard("approval handler", "refused", LOGGER)
LENIENT = Guard("check hook", "vetoed", LOGGER, none_allows=True)


async def double(x: int) -> int:
    return 2 * x


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        return x


class SyncCallable:
    def __call__(self, x: int) -> int:
        return x


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (double, True),
        (functools.partial(double, 1), True),
        (AsyncCallable(), True),
        (SyncCallable(), False),
        (len, False),
        (lambda: None, False),
        ("not callable", False),
    ],
)
def test_is_async_callable(fn: object, expected: bool) -> None:
    assert is_async_callable(fn) is expected


def test_callable_name_prefers_the_qualified_name() -> None:
    assert callable_name(double) == "double"
    assert callable_name(AsyncCallable.__call__) == "AsyncCallable.__call__"
    assert callable_name(functools.partial(double, 1)).startswith("functools.partial(")


async def test_run_callable_awaits_awaitables_returned_by_sync_callables() -> None:
    async def answer() -> int:
        return 7

    assert await run_callable(lambda: answer()) == 7
    assert await run_callable(lambda: answer(), in_thread=False) == 7
    assert await run_callable(lambda: 3, in_thread=False) == 3


async def test_run_callable_places_sync_code_by_in_thread() -> None:
    threads: list[int] = []

    def where() -> None:
        threads.append(threading.get_ident())

    await run_callable(where)
    await run_callable(where, in_thread=False)
    assert threads[0] != threading.get_ident()
    assert threads[1] == threading.get_ident()


async def test_run_callable_trusts_the_callers_is_async() -> None:
    # A partial of an async __call__ does not look async, but the caller knows.
    partial = functools.partial(AsyncCallable(), 5)
    assert not is_async_callable(partial)
    assert await run_callable(partial, is_async=True) == 5
    assert await run_callable(partial) == 5  # via a worker thread, then awaited in Trio


async def test_run_callable_passes_exceptions_through() -> None:
    def broken() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await run_callable(broken)
    with pytest.raises(KeyError):
        await run_callable(broken, in_thread=False)


# --------------------------------------------------------------------------
# Guard: fail closed
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("guard", "answer", "reason"),
    [
        (STRICT, True, None),
        (STRICT, False, "refused by approval handler"),
        (STRICT, None, "answered None, not True or False"),
        (STRICT, 1, "answered 1, not True or False"),
        (STRICT, "yes", "answered 'yes', not True or False"),
        (LENIENT, True, None),
        (LENIENT, None, None),
        (LENIENT, False, "vetoed by check hook"),
        (LENIENT, 0, "answered 0, not None, True or False"),
        (LENIENT, [], "answered [], not None, True or False"),
    ],
)
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_guard_lets_the_tool_run_only_on_a_clear_yes(
    guard: Guard, answer: object, reason: str | None, kind: str
) -> None:
    def sync_callback(event: object) -> object:
        return answer

    async def async_callback(event: object) -> object:
        return answer

    callback = sync_callback if kind == "sync" else async_callback
    if reason is None:
        await guard.ask(callback, "event", tool="write", timeout=1)
        return
    with pytest.raises(PolicyDenied) as info:
        await guard.ask(callback, "event", tool="write", timeout=1)
    assert info.value.tool == "write"
    assert reason in info.value.reason


async def test_guard_passes_the_event() -> None:
    seen: list[object] = []

    async def record(event: object) -> bool:
        seen.append(event)
        return True

    await STRICT.ask(record, {"path": "x"}, tool="write", timeout=1)
    assert seen == [{"path": "x"}]


async def test_guard_denies_and_logs_when_the_callback_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: object) -> bool:
        raise ValueError("callback bug")

    with (
        caplog.at_level(logging.WARNING, logger="tests.calling"),
        pytest.raises(
            PolicyDenied, match=r"approval handler .*broken raised ValueError: callback bug"
        ),
    ):
        await STRICT.ask(broken, None, tool="write", timeout=1)
    [record] = caplog.records
    assert record.exc_info is not None
    assert "broken" in record.getMessage()


async def test_guard_denies_and_logs_when_the_callback_is_late(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    async def slow(event: object) -> bool:
        await trio.sleep(60)
        return True

    with (
        caplog.at_level(logging.WARNING, logger="tests.calling"),
        pytest.raises(PolicyDenied, match="did not answer within 4 s"),
    ):
        await STRICT.ask(slow, None, tool="write", timeout=4)
    assert trio.current_time() == pytest.approx(4)
    assert any("did not answer" in record.getMessage() for record in caplog.records)


async def test_guard_lets_outer_cancellation_through(autojump_clock: trio.abc.Clock) -> None:
    async def slow(event: object) -> bool:
        await trio.sleep(60)
        return True

    with trio.move_on_after(1) as scope:
        await STRICT.ask(slow, None, tool="write", timeout=10)
    assert scope.cancelled_caught


async def test_guard_messages_name_the_callback() -> None:
    def check_path(event: Any) -> bool:
        return False

    with pytest.raises(PolicyDenied) as info:
        await STRICT.ask(check_path, None, tool="write", timeout=1)
    assert info.value.reason.endswith("check_path")
