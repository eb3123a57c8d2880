"""The harness process as the SDK sees it: a view per conversation, and taking it back.

The SDK's connection treats "its" process as its own: it kills it when a
start-up step fails, reads its stderr to the end, starts a thread to drain
that stderr, and at shutdown closes its stdin and waits for it (with a
blocking ``Popen.wait`` on the loop). On a harness that serves other
conversations too, each of these would hurt the others. So the SDK gets a
:class:`ConversationProcess` instead, and :func:`detach_process` takes it
away again before the SDK's shutdown; the conversation's
:class:`~agy_trio.adapters.antigravity.launcher.HarnessLauncher` does the rest
off the loop.
"""

from __future__ import annotations

import functools
import io
import subprocess
import threading
from collections.abc import Callable
from typing import IO, Any

__all__ = [
    "ConversationProcess",
    "EmptyStderr",
    "detach_process",
    "skip_empty_stderr_readers",
]


class EmptyStderr(io.BytesIO):
    """The stderr of a :class:`ConversationProcess`: always empty (the pool drains the real one)."""


def skip_empty_stderr_readers() -> bool:
    """Spare the SDK's connections a reader thread for an :class:`EmptyStderr`.

    The SDK's ``LocalConnection`` starts a thread to drain its process's
    stderr (``_start_stderr_reader``, local_connection.py:545), one per
    conversation, on the asyncio loop. ``Thread.start`` waits until the new
    thread runs, which takes a hand-over of the GIL: measured with ten agents
    starting at once, that wait was a third of the loop's time in a
    conversation's start-up, time every other agent on the loop waits too.
    For a :class:`ConversationProcess` there is nothing to drain, so this
    wraps the method, once for the process, to skip such a stream and leave
    every other stream to the SDK as it is. Idempotent.

    Returns:
        Whether the wrapper is in place (False: not the SDK this was written for).
    """
    from google.antigravity.connections.local import local_connection

    connection_class = getattr(local_connection, "LocalConnection", None)
    original = getattr(connection_class, "_start_stderr_reader", None)
    if connection_class is None or not callable(original):
        return False
    if getattr(original, "_agy_trio_skips_empty_stderr", False):
        return True

    @functools.wraps(original)
    def start_stderr_reader(self: Any, stderr_stream: Any) -> None:
        if isinstance(stderr_stream, EmptyStderr):
            self._stderr_thread = None
            return
        original(self, stderr_stream)

    start_stderr_reader._agy_trio_skips_empty_stderr = True  # type: ignore[attr-defined]
    connection_class._start_stderr_reader = start_stderr_reader
    return True


class ConversationProcess:
    """What the SDK sees as a conversation's harness process: a view, not the process.

    The SDK's connection treats "its" process as its own: it kills it when a
    start-up step fails, reads its stderr to the end, starts a thread that
    drains that stderr, and at shutdown closes its stdin and waits for it. On a
    harness that carries other conversations each of these would hurt the
    others, so the SDK gets this stand-in instead: killing it cuts only this
    conversation's WebSocket, its stderr is empty (the SDK's reader thread
    ends at once; the pool drains the real stderr), it has no stdin, and
    waiting for it never blocks.

    Args:
        process: The harness process.
        abort: Cuts this conversation's WebSocket (any thread).
    """

    def __init__(self, process: subprocess.Popen[bytes], abort: Callable[[], None]) -> None:
        self.process = process
        self.pid = process.pid
        self.args = process.args
        self.stdin: IO[bytes] | None = None
        self.stdout: IO[bytes] | None = None
        self.stderr: IO[bytes] = EmptyStderr()
        self._abort = abort

    @property
    def returncode(self) -> int | None:
        """The harness process's exit status, once it exited."""
        return self.process.returncode

    def poll(self) -> int | None:
        """The harness process's exit status, or None while it runs."""
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """Never blocks: the harness's life is the pool's business, not the conversation's."""
        return self.process.poll()

    def kill(self) -> None:
        """Cut this conversation off its harness (the process goes on for the others)."""
        self._abort()

    terminate = kill

    def send_signal(self, sig: int) -> None:
        """Cut this conversation off its harness, whatever ``sig``."""
        self._abort()


def detach_process(connection: Any) -> tuple[Any, threading.Thread | None]:
    """Take the harness process away from an SDK ``LocalConnection`` before its ``disconnect``.

    The SDK's ``disconnect`` (local_connection.py:571-630) closes the
    WebSocket, then the harness's stdin, then waits for the process with a
    blocking ``Popen.wait`` (up to 180 s) and joins its stderr reader, all on
    the asyncio loop. Without the process it does only the first part, which
    is asynchronous; the conversation's launcher then gives its place on the
    harness back off the loop (:meth:`HarnessLauncher.retire_async`). Only this
    one connection object changes.

    Returns:
        The process (a :class:`ConversationProcess`, or the SDK's own
        ``Popen`` if the SDK started it) and the SDK's stderr reader thread.

    Raises:
        LookupError: The connection is not the SDK version this was written
            for (no process to take); the caller leaves the SDK alone then.
    """
    process = getattr(connection, "_process", None)
    if not isinstance(process, subprocess.Popen | ConversationProcess) or not hasattr(
        connection, "_stderr_thread"
    ):
        raise LookupError("not a LocalConnection with a harness process")
    thread = connection._stderr_thread
    connection._process = None
    return process, thread if isinstance(thread, threading.Thread) else None
