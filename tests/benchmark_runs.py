"""Running the benchmark suite (``python -m benchmarks``) from a test, in a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_benchmarks(*args: str, output: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks ARGS... --output OUTPUT`` to its end, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args, "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def quick(name: str, output: Path, *, timeout: float = 600) -> dict[str, Any]:
    """Run the comparison ``name`` in --quick mode; the results it wrote, checked to be a run."""
    proc = run_benchmarks("--quick", "--only", name, output=output, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    data: dict[str, Any] = json.loads((output / f"{name}.json").read_text())
    assert data["quick"] is True
    assert data["skipped"] is None
    return data
