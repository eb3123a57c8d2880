"""The protocol comparisons of the benchmark suite run in --quick mode (timings are not checked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmark_runs import quick


def test_a2a_hosting_measures_both_stacks(tmp_path: Path) -> None:
    data = quick("a2a_hosting", tmp_path)
    rows = {row["key"]: row for row in data["rows"]}
    assert set(rows) == {"trio", "asyncio"}
    for row in rows.values():
        assert row["metrics"]["event_us"]["median"] > 0
    (target,) = data["targets"]
    assert isinstance(target["met"], bool)


@pytest.mark.sdk
def test_protocols_load_completes_every_stream(tmp_path: Path) -> None:
    data = quick("protocols", tmp_path)
    rows = {row["key"]: row for row in data["rows"]}
    assert set(rows) == {"native", "responses", "a2a", "mcp", "ag_ui"}
    for row in rows.values():
        assert row["metrics"]["done_p50_ms"]["median"] > 0
        assert row["metrics"]["cpu_per_event_us"]["n"] >= 1
    completed = data["targets"][0]
    assert completed["met"] is True, completed["detail"]
    assert "## `protocols`" in (tmp_path / "RESULTS.md").read_text()
