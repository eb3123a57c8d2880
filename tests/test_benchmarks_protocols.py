"""The protocol comparisons of the benchmark suite run in --quick mode (timings are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quick(name: str, output: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", name, "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data: dict[str, Any] = json.loads((output / f"{name}.json").read_text())
    assert data["quick"] is True
    assert data["skipped"] is None
    return data


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
