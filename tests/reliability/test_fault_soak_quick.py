"""The fault soak through `agy-trio serve`, small: no turn lost, no agent stuck (real SDK).

The full run (100 clients, 5 minutes, a harness killed every minute) is
``nice python -m benchmarks.fault_soak``; its figures are in docs/reliability.md.
"""

from __future__ import annotations

import pytest

from benchmarks.fault_soak import run_soak

pytestmark = [pytest.mark.sdk, pytest.mark.usefixtures("offline", "no_harness_left")]


def test_a_short_fault_soak_through_the_server_loses_no_turn() -> None:
    result = run_soak(clients=6, seconds=20.0, kill_every=10.0)
    assert result["lost"] == 0, result["lost_reasons"]
    assert result["stuck_agents"] == 0, result["lost_reasons"]
    assert result["answered"] == result["turns"] > 0
    # The faults did happen, and the clients saw them typed.
    assert result["harnesses_killed"] >= 1
    assert sum(result["faults_injected"].values()) > 0
    assert sum(result["typed_errors"].values()) > 0
    assert result["active_turns_after"] == 0
