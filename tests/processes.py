"""Running agy_trio (or any Python) in a child process, offline, with its folders under the test's.

The child gets this process's environment minus the Gemini keys, a ``HOME``
and a ``TMPDIR`` of its own (the backend's per-runtime folder, the harnesses'
``HOME``, goes under ``TMPDIR``), and this checkout on its ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def offline_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a child process living under ``home``; ``extra`` set on top."""
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["HOME"] = str(home)
    temp = home / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(temp)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_python(
    *argv: str,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 60,
    check: bool = False,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python ARGV`` to its end; what it printed, captured as text.

    Args:
        *argv: The interpreter's arguments (``-m agy_trio ...``, ``-c PROGRAM ...``).
        env: Its environment, usually :func:`offline_env`'s.
        cwd: Where it runs; its ``HOME`` unless told.
        timeout: Seconds before the child is killed and the test fails.
        check: Fail at once unless it exits 0.
        input: What it reads on stdin.
    """
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or env["HOME"],
        timeout=timeout,
        check=check,
        input=input,
    )
