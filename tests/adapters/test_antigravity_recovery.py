"""Reopening a dead SDK session: on the same harness, asking again when the harness refuses."""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agy_trio.adapters.antigravity import recovery as recovery_module
from agy_trio.adapters.antigravity.context import Counters
from agy_trio.adapters.antigravity.recovery import Recovery
from agy_trio.errors import AgentNotFound, BackendError, ChannelClosed


class FakeConversation:
    """Records what the recovery does; ``open`` fails with the queued errors first."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls: list[str] = []
        self.agent_id = "agent-1"
        self.context = types.SimpleNamespace(counters=Counters())
        self.conv: Any = None
        self.launcher = types.SimpleNamespace(holding=self._holding)

    @contextlib.asynccontextmanager
    async def _holding(self) -> AsyncIterator[None]:
        self.calls.append("hold")
        yield
        self.calls.append("let go")

    async def close(self) -> None:
        self.calls.append("close")

    async def open(self, *, resume: bool) -> None:
        self.calls.append(f"open resume={resume}")
        if self.failures:
            raise self.failures.pop(0)
        self.conv = object()


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery_module, "_RESUME_BACKOFF", 0.001)


def _recover(conversation: FakeConversation) -> Recovery:
    recovery = Recovery(conversation)  # type: ignore[arg-type]

    async def main() -> None:
        recovery.start(RuntimeError("the session died"))
        await recovery.finish()

    asyncio.run(main())
    return recovery


def test_the_session_is_reopened_in_resume_mode_while_holding_its_harness() -> None:
    conversation = FakeConversation([])
    recovery = _recover(conversation)
    assert conversation.calls == ["hold", "close", "open resume=True", "let go"]
    assert recovery.dead is None
    assert conversation.context.counters.reopens == 1


def test_a_refused_resume_is_asked_again() -> None:
    refused = BackendError("the SDK harness failed to start: Failed to initialize conversation")
    conversation = FakeConversation([refused, refused])
    recovery = _recover(conversation)
    assert conversation.calls.count("open resume=True") == 3
    assert recovery.dead is None and conversation.conv is not None


def test_the_resume_gives_up_after_its_attempts() -> None:
    refused = BackendError("Failed to initialize conversation")
    conversation = FakeConversation([refused] * 10)
    recovery = _recover(conversation)
    assert conversation.calls.count("open resume=True") == recovery_module._RESUME_ATTEMPTS
    assert isinstance(recovery.dead, ChannelClosed)


def test_a_missing_conversation_is_not_asked_again() -> None:
    conversation = FakeConversation([AgentNotFound("gone")])
    recovery = _recover(conversation)
    assert conversation.calls.count("open resume=True") == 1
    assert isinstance(recovery.dead, ChannelClosed)
