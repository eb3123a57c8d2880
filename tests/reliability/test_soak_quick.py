"""The soak's scripted part, small: nothing lost, nothing leaked (memory is the benchmark's)."""

from __future__ import annotations

import pytest

from benchmarks.soak import scripted_child


# The soak drops some responses unread on purpose (their turns must not hold
# the agent): each one collected is the ResourceWarning that says so.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function ChatResponse.__del__"
    ":pytest.PytestUnraisableExceptionWarning"
)
def test_a_small_scripted_soak_loses_and_leaks_nothing() -> None:
    result = scripted_child(agents=50, commands=3_000)
    assert result["commands"] == 3_000
    assert result["turns_lost"] == 0
    assert result["failed_turns"] > 0  # the faults did happen
    assert result["leaks"] == {
        "commands": 0,
        "turns": 0,
        "agents": 0,
        "asyncio_tasks": 0,
        "threads": 0,
    }
