"""Running ``agy-trio serve`` (or a program that embeds serve()) as a child process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]


@attrs.define
class ServerProcess:
    process: subprocess.Popen[str]
    url: str
    lines: list[str]

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Send ``sig``; return the exit code and the rest of stdout and stderr."""
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, out, err


def offline_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["HOME"] = str(home)
    # The backend's per-runtime folder (the harnesses' HOME) goes under here.
    temp = home / "tmp"
    temp.mkdir(exist_ok=True)
    env["TMPDIR"] = str(temp)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@contextmanager
def server_process(
    argv: Sequence[str], env: dict[str, str], *, header_lines: int = 1
) -> Iterator[ServerProcess]:
    """Start a server process; wait for its ``Serving on URL`` line (and the next ones)."""
    process = subprocess.Popen(
        [sys.executable, *argv],
        cwd=env["HOME"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(header_lines)]
        match = re.fullmatch(r"Serving on (http://\S+)\n", lines[0])
        if match is None:
            process.kill()
            out, err = process.communicate()
            raise AssertionError(f"no 'Serving on' line: {lines!r} {out!r} {err!r}")
        yield ServerProcess(process, match.group(1), lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
