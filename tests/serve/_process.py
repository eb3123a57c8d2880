"""Running ``agy-trio serve`` (or a program that embeds serve()) as a child process."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import attrs


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
