"""The guard around every stdio MCP server: the server never outlives the harness that started it.

The Go harness starts a stdio MCP server as its child and stops it when the
conversation ends. When the harness itself dies without that chance (SIGKILL,
a crash, the out-of-memory killer), the server would live on, orphaned, for
as long as it does not notice its closed stdin, and some never read it. So
agy_trio gives the harness this guard as the server's command instead, run by
the same Python with ``-I -S`` (the standard library only, no site-packages,
so it starts in milliseconds), and the real command after ``--``::

    python -I -S .../mcp_guard.py --lease agy-trio-mcp-1f2e... -- npx -y some-mcp-server

The guard:

* starts the server with the guard's own stdin, stdout and stderr (the MCP
  bytes flow between the harness and the server directly; the guard copies
  nothing), in a process group of its own, and with the kernel's
  parent-death signal set, so that the server is SIGKILLed should the guard
  itself be killed;
* watches the harness through a pidfd (``os.pidfd_open``, Linux 5.3): when the
  harness exits, for whatever reason, the guard sends SIGTERM to the server's
  process group, and SIGKILL after :data:`TERM_GRACE` seconds;
* with ``--lease NAME``, holds a connection to the agent's lease, an abstract
  Unix socket (``@NAME``) the agent listens on while it lives: when the agent
  closes its conversation (on a harness that serves others and so stays up),
  or its Python process dies, the connection breaks and the guard ends the
  server the same way;
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
import socket
import subprocess
import sys
from collections.abc import Sequence

TERM_GRACE = 2.0
"""Seconds the server has to exit after SIGTERM before its process group is SIGKILLed."""

_PR_SET_PDEATHSIG = 1
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _prctl(option: int, value: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _die_with(guard_pid: int) -> None:
    # Runs in the server's process between fork and exec: ask the kernel for
    # SIGKILL when the guard dies, then make sure it had not died already.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
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


def _hold_lease(name: str) -> socket.socket | None:
    """Connect to the agent's lease; None when the agent is gone already."""
    lease = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lease.connect("\0" + name)
    except OSError:
        lease.close()
        return None
    return lease


def run(command: Sequence[str], lease_name: str | None = None) -> int:
    """Run ``command`` under the guard; returns the exit status to exit with.

    Args:
        command: The server's command line.
        lease_name: The agent's lease to hold (see the module docstring), if any.
    """
    # Were the harness to have the kernel kill the guard with it, the server's
    # helpers would be left: the guard outlives the harness on purpose, long
    # enough to end the server's whole process group.
    _prctl(_PR_SET_PDEATHSIG, 0)
    harness = os.getppid()
    try:
        harness_fd = os.pidfd_open(harness)
    except (OSError, AttributeError) as exc:
        print(f"agy_trio MCP guard: cannot watch the harness: {exc}", file=sys.stderr)
        return 70
    if os.getppid() != harness:
        return 70  # the harness died before the watch began
    watched = [harness_fd]
    if lease_name is not None:
        lease = _hold_lease(lease_name)
        if lease is None:
            print("agy_trio MCP guard: the agent is gone; not starting", file=sys.stderr)
            return 70
        watched.append(lease.fileno())
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
        ready, _, _ = select.select([child_fd, *watched, wake_read], [], [])
        if child_fd in ready:
            status = _status(child.wait())
            # The server is done; helpers it left in its group go with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            return status
        if any(fd in ready for fd in watched):
            # The harness or the agent is gone (the lease only ever breaks).
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
    """The command line: ``mcp_guard.py [--lease NAME] -- COMMAND [ARG...]``."""
    args = list(argv)
    lease_name = None
    if args[:1] == ["--lease"] and len(args) >= 2:
        lease_name, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: mcp_guard.py [--lease NAME] -- COMMAND [ARG...]", file=sys.stderr)
        return 64
    return run(args, lease_name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
