"""The guard around every stdio MCP server: the server never outlives the harness that started it.

The Go harness starts a stdio MCP server as its child and stops it when the
conversation ends. When the harness itself dies without that chance (SIGKILL,
a crash, the out-of-memory killer), the server would live on, orphaned, for
as long as it does not notice its closed stdin, and some never read it. So
agy_trio gives the harness this guard as the server's command instead, run by
the same Python with ``-I -S`` (the standard library only, no site-packages,
so it starts in milliseconds), and the real command after ``--``::

    python -I -S .../mcp_guard.py -- npx -y some-mcp-server

The guard:

* starts the server with the guard's own stdin, stdout and stderr (the MCP
  bytes flow between the harness and the server directly; the guard copies
  nothing), in a process group of its own, and with the kernel's
  parent-death signal set, so that the server is SIGKILLed should the guard
  itself be killed;
* watches the harness through a pidfd (``os.pidfd_open``, Linux 5.3): when the
  harness exits, for whatever reason, the guard sends SIGTERM to the server's
  process group, and SIGKILL after :data:`TERM_GRACE` seconds;
* passes SIGTERM, SIGINT and SIGHUP it receives on to the server's group;
* exits with the server's exit status once the server is gone.

It must stay importable with nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
from collections.abc import Sequence

TERM_GRACE = 2.0
"""Seconds the server has to exit after SIGTERM before its process group is SIGKILLed."""

_PR_SET_PDEATHSIG = 1
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _die_with(guard_pid: int) -> None:
    # Runs in the server's process between fork and exec: ask the kernel for
    # SIGKILL when the guard dies, then make sure it had not died already.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != guard_pid:
        os._exit(70)


def _stop_group(child: subprocess.Popen[bytes], child_fd: int) -> None:
    """SIGTERM the server's process group, then SIGKILL it if the server is not gone in time."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        if wait is None:
            return
        ready, _, _ = select.select([child_fd], [], [], wait)
        if ready:
            # The server is gone; whatever else stayed in its group goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            return


def run(command: Sequence[str]) -> int:
    """Run ``command`` under the guard; returns the exit status to exit with."""
    harness = os.getppid()
    try:
        harness_fd = os.pidfd_open(harness)
    except (OSError, AttributeError) as exc:
        print(f"agy_trio MCP guard: cannot watch the harness: {exc}", file=sys.stderr)
        return 70
    if os.getppid() != harness:
        return 70  # the harness died before the watch began
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        with contextlib.suppress(BlockingIOError):
            os.write(wake_write, b"!")

    for sig in _FORWARDED:
        signal.signal(sig, on_signal)
    guard = os.getpid()
    try:
        child = subprocess.Popen(
            list(command), process_group=0, preexec_fn=lambda: _die_with(guard)
        )
    except OSError as exc:
        print(f"agy_trio MCP guard: cannot start {command[0]!r}: {exc}", file=sys.stderr)
        return 127
    child_fd = os.pidfd_open(child.pid)
    # The server has the pipes now: the guard lets go of them, so that the
    # harness sees their end as soon as the server is gone.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    while True:
        ready, _, _ = select.select([child_fd, harness_fd, wake_read], [], [])
        if child_fd in ready:
            return _status(child.wait())
        if harness_fd in ready:
            _stop_group(child, child_fd)
            return _status(child.wait())
        os.read(wake_read, 64)
        while received:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, received.pop(0))


def _status(returncode: int) -> int:
    # A server killed by a signal exits the guard as a shell would report it.
    return 128 - returncode if returncode < 0 else returncode


def main(argv: Sequence[str]) -> int:
    """The command line: ``mcp_guard.py -- COMMAND [ARG...]``."""
    args = list(argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: mcp_guard.py -- COMMAND [ARG...]", file=sys.stderr)
        return 64
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
