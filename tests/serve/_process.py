"""Running ``agy-trio serve`` (or a program that embeds serve()) as a child process."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from benchmarks._child import start_server


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


@contextmanager
def server_process(
    argv: Sequence[str], env: dict[str, str], *, header_lines: int = 1
) -> Iterator[ServerProcess]:
    """Start a server process; wait for its ``Serving on URL`` line (and the next ones)."""
    process, url, lines = start_server(
        argv, env=env, cwd=Path(env["HOME"]), stderr=subprocess.PIPE, header_lines=header_lines
    )
    try:
        yield ServerProcess(process, url, lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
