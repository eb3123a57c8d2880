"""The real SDK offline: no API key, temporary folders, local servers in processes of their own.

Every benchmark of the real SDK runs against the local model server
(``python -m agy_trio.testing.model_server``); ``GEMINI_API_KEY`` and
``GOOGLE_API_KEY`` are unset, and every folder the harness touches (``HOME``,
save_dir, app_data_dir, workspace) is a temporary folder. A server the
benchmark measures from outside (``agy-trio serve``) runs in its own process,
so that it shares neither its event loop nor its CPU thread with the clients.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks._child import start_server, stop
from benchmarks._worker import ROOT

API_KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


def sdk_missing() -> str | None:
    """Why the real SDK cannot run here, or None."""
    try:
        import google.antigravity  # noqa: F401
        import psutil  # noqa: F401
    except ImportError:
        return "google-antigravity is not installed (pip install 'agy-trio[antigravity]')"
    try:
        from agy_trio.adapters.antigravity import AntigravityBackend  # noqa: F401
    except ImportError as exc:
        return f"agy_trio.adapters.antigravity.AntigravityBackend is not available: {exc}"
    return None


@contextlib.contextmanager
def without_api_keys() -> Iterator[None]:
    """The API keys unset in this process meanwhile (put back after)."""
    saved = {k: os.environ.pop(k) for k in API_KEYS if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a child process: no API key, ``HOME`` at ``home``, the benchmarks
    importable, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in API_KEYS}
    env.update(HOME=str(home), **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def offline_env(prefix: str, **extra: str) -> Iterator[tuple[dict[str, str], Path]]:
    """A temporary folder, and a child's environment with ``HOME`` and ``TMPDIR`` in it."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    (root / "tmp").mkdir()
    try:
        yield child_env(root, TMPDIR=str(root / "tmp"), **extra), root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------- the model server


class ModelServerProcess:
    """The local model server in a child process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agy_trio.testing.model_server", "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        self.url = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            match = re.search(r"(http://\S+/v1)", line)
            if match:
                self.url = match.group(1)
                break
        if not self.url:
            self.close()
            raise RuntimeError("the local model server did not start")
        self.root = self.url.rsplit("/v1", 1)[0]

    def add_fault(self, fault: dict[str, Any]) -> None:
        """Queue a fault (the control API's JSON form) for the requests it matches."""
        request = urllib.request.Request(
            f"{self.root}/control/faults",
            data=json.dumps(fault).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def close(self) -> None:
        stop(self.process, signal.SIGINT, timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def offline_world() -> Iterator[tuple[ModelServerProcess, Path]]:
    """A fresh model server and a temporary folder; the API keys unset meanwhile."""
    root = Path(tempfile.mkdtemp(prefix="agy-trio-bench-sdk-"))
    with without_api_keys():
        server = ModelServerProcess()
        try:
            yield server, root
        finally:
            server.close()
            shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------- agy-trio serve


@contextlib.contextmanager
def serve_process(
    backend: str, *options: str, stop_timeout: float = 60.0, **env: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``agy-trio serve --backend BACKEND OPTIONS... --port 0`` in a child process, offline.

    Yields its URL and its process; ``env``: more of the child's environment.
    """
    with offline_env("agy-trio-bench-serve-", **env) as (child, root):
        command = ["-m", "agy_trio", "serve", "--backend", backend, *options, "--port", "0"]
        process, url, _ = start_server(command, env=child, cwd=root, stderr=subprocess.DEVNULL)
        try:
            yield url, process
        finally:
            stop(process, timeout=stop_timeout)
            if process.stdout is not None:
                process.stdout.close()
