"""The benchmark suite runs and writes well-formed results (timings are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_round_trip_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--only",
            "round_trip",
            "--output",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    data = json.loads((tmp_path / "round_trip.json").read_text())
    assert data["name"] == "round_trip"
    assert data["quick"] is True
    assert data["skipped"] is None
    assert {"python", "trio", "os", "cpu", "date"} <= data["environment"].keys()
    rows = {row["key"]: row for row in data["rows"]}
    assert {
        "agy_thread",
        "agy_guest",
        "raw",
        "trio_asyncio",
        "anyio_portal",
        "naive",
        "asyncio",
    } <= rows.keys()
    for row in rows.values():
        for metric in ("wall_us", "cpu_us"):
            summary = row["metrics"][metric]
            assert summary["n"] >= 1
            assert 0 < summary["min"] <= summary["median"] <= summary["max"]
            assert summary["q1"] <= summary["median"] <= summary["q3"]
    assert data["targets"], "the round trip targets are evaluated"
    assert all(isinstance(t["met"], bool) for t in data["targets"])

    markdown = (tmp_path / "RESULTS.md").read_text()
    assert "## `round_trip`" in markdown
    assert "| agy_trio, thread host |" in markdown
    assert "Python" in markdown and "Trio" in markdown
    assert "![" in markdown

    png = (tmp_path / "round_trip.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_unknown_comparison_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nope", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "unknown comparison" in proc.stderr
