"""The benchmark suite runs and writes well-formed results (timings are not checked)."""

from __future__ import annotations

from pathlib import Path

from tests.benchmark_runs import quick, run_benchmarks


def test_quick_round_trip_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    data = quick("round_trip", tmp_path, timeout=120)
    assert data["name"] == "round_trip"
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
    proc = run_benchmarks("--only", "nope", output=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "unknown comparison" in proc.stderr
