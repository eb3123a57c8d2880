"""One run in a fresh Python process, so that its memory and what it leaves behind are its own.

The parent runs ``python -m benchmarks.MODULE ARGS...``; the child does one
run and prints its figures as one JSON line on stdout (:func:`print_figures`),
its diagnostics on stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks._worker import ROOT


def run_child(module: str, args: Sequence[str], *, timeout: float) -> tuple[dict[str, Any], str]:
    """Run ``benchmarks.<module>`` with ``args`` in a fresh process; its figures and stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"{module} {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures, proc.stderr


def print_figures(figures: Mapping[str, Any]) -> int:
    """In the child: hand the run's figures to the parent; the exit status."""
    print(json.dumps(figures), flush=True)
    return 0
