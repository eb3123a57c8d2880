"""The harness processes' standard error, drained by one thread for all of them.

A harness writes a few lines to its stderr (start-up notes, errors). Someone
must read them, or a harness that writes more than a pipe holds (64 KiB)
blocks. The SDK reads each harness's stderr with a thread of its own; with
many harnesses that is one thread per process, and with agents sharing a
harness it would be one reader per conversation on the same pipe.

A :class:`StderrCollector` reads every harness pipe of a backend from one
thread, with ``selectors``: it keeps each harness's last lines (for the
message when a harness dies) and logs them at debug level. A pipe leaves the
collector when it reaches end-of-file, which happens when its harness exits.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import selectors
import threading
from typing import IO

__all__ = ["StderrCollector"]

log = logging.getLogger("agy_trio.antigravity.harness")

_READ_SIZE = 65536


class StderrCollector:
    """Drains the stderr pipes of many harness processes on one thread; thread-safe.

    The thread starts with the first pipe handed over and ends with :meth:`close`.

    Args:
        lines: How many of its last lines to keep per harness.
    """

    def __init__(self, lines: int = 100) -> None:
        self._lines = lines
        self._lock = threading.Lock()
        self._tails: dict[str, collections.deque[str]] = {}
        self._partial: dict[str, bytes] = {}
        self._pending: list[tuple[str, IO[bytes]]] = []
        self._selector: selectors.BaseSelector | None = None
        self._wake_read = self._wake_write = -1
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, name: str, stream: IO[bytes]) -> None:
        """Drain ``stream`` (a harness's stderr) from now on, filing its lines under ``name``.

        The collector owns the stream from then on and closes it at end-of-file.
        """
        with self._lock:
            if self._closed:
                with contextlib.suppress(OSError):
                    stream.close()
                return
            self._tails.setdefault(name, collections.deque(maxlen=self._lines))
            self._pending.append((name, stream))
            if self._thread is None:
                self._selector = selectors.DefaultSelector()
                self._wake_read, self._wake_write = os.pipe()
                os.set_blocking(self._wake_read, False)
                self._selector.register(self._wake_read, selectors.EVENT_READ, None)
                self._thread = threading.Thread(
                    target=self._run, name="agy-trio-harness-stderr", daemon=True
                )
                self._thread.start()
        self._wake()

    def tail(self, name: str) -> list[str]:
        """The last lines the harness ``name`` wrote (still kept after it exited)."""
        with self._lock:
            return list(self._tails.get(name, ()))

    def forget(self, name: str) -> None:
        """Drop what is kept of the harness ``name`` (once it is gone for good)."""
        with self._lock:
            self._tails.pop(name, None)

    def close(self) -> None:
        """Stop the thread and close every pipe still open (blocking, briefly)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self._wake()
        thread.join(timeout=5.0)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        try:
            while True:
                with self._lock:
                    if self._closed:
                        break
                    pending, self._pending = self._pending, []
                for name, stream in pending:
                    os.set_blocking(stream.fileno(), False)
                    selector.register(stream, selectors.EVENT_READ, name)
                for key, _ in selector.select():
                    if key.data is None:
                        with contextlib.suppress(OSError):
                            while os.read(self._wake_read, _READ_SIZE):
                                pass
                    else:
                        self._read(selector, key.fileobj, key.data)  # type: ignore[arg-type]
        finally:
            for key in list(selector.get_map().values()):
                if key.data is not None:
                    with contextlib.suppress(OSError):
                        key.fileobj.close()  # type: ignore[union-attr]
            selector.close()
            for fd in (self._wake_read, self._wake_write):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _read(self, selector: selectors.BaseSelector, stream: IO[bytes], name: str) -> None:
        try:
            data = os.read(stream.fileno(), _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # end-of-file: the harness exited
            selector.unregister(stream)
            with contextlib.suppress(OSError):
                stream.close()
            data, ended = self._partial.pop(name, b""), True
        else:
            data, ended = self._partial.pop(name, b"") + data, False
        *lines, rest = data.split(b"\n")
        if ended and rest:
            lines.append(rest)
        elif rest:
            self._partial[name] = rest[-_READ_SIZE:]
        if not lines:
            return
        text = [line.decode("utf-8", errors="replace").rstrip() for line in lines]
        with self._lock:
            tail = self._tails.setdefault(name, collections.deque(maxlen=self._lines))
            tail.extend(text)
        for line in text:
            log.debug("harness %s: %s", name, line)
