"""Child processes: one run in a fresh Python process, waiting for a child's word, stopping it.

A run in a child of its own has its memory, and what it leaves behind, to
itself. The parent runs ``python -m benchmarks.MODULE ARGS...``; the child
does one run and prints its figures as one JSON line on stdout
(:func:`print_figures`), its diagnostics on stderr.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
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


def stop(
    process: subprocess.Popen[Any], how: int | None = signal.SIGTERM, timeout: float = 60.0
) -> None:
    """Ask ``process`` to end with the signal ``how`` (None: it was asked already); kill it
    if it is not gone in ``timeout`` seconds."""
    if process.poll() is not None:
        return
    if how is not None:
        process.send_signal(how)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_line(
    path: Path, needle: str, process: subprocess.Popen[Any], *, timeout: float = 120.0
) -> str:
    """The first line of the log at ``path`` with ``needle`` in it, once ``process`` writes it.

    A server or worker that logs to a file says it is ready with a line of its
    own (``listening``, ``ready:``); the log is read again until that line is
    there.

    Raises:
        RuntimeError: ``process`` exited first (with the log's last lines), or
            the line did not come within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        for line in text.splitlines():
            if needle in line:
                return line
        if process.poll() is not None:
            raise RuntimeError(f"{path.name}: exited with {process.returncode}:\n{text[-4000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{path.name}: no {needle!r} within {timeout:g} s")
