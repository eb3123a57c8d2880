"""What the real-SDK tests share: a runtime whose folders live under the test's, leak checks.

Everything runs offline against :mod:`agy_trio.testing.model_server` on
127.0.0.1; every folder the harness touches lives under the test's
``tmp_path``. After each test no ``localharness`` process may remain, and the
backend's temporary folder must be gone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig
from agy_trio.adapters.antigravity import AntigravityBackend

FAST = RuntimeConfig(inter_agent_delay=0, chat_timeout=60)


def harnesses_under(root: Path) -> list[int]:
    """Harness processes whose HOME lies under ``root``: the ones a child process started."""
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "localharness":
            continue
        try:
            home = proc.environ().get("HOME", "")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if home.startswith(str(root)):
            found.append(proc.pid)
    return found


def harness_processes() -> list[psutil.Process]:
    """Every ``localharness`` process descending from this one."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() == "localharness":
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@asynccontextmanager
async def sdk_runtime(
    tmp_path: Path, config: RuntimeConfig = FAST, **backend_options: Any
) -> AsyncIterator[tuple[agy_trio.Runtime, AntigravityBackend]]:
    """A runtime over the real SDK whose folders live under ``tmp_path``."""
    base = tmp_path / "backend"
    backend = AntigravityBackend(base_dir=base, **backend_options)
    async with agy_trio.open_runtime(config, backend=backend) as runtime:
        yield runtime, backend
    assert list(base.iterdir()) == [], "the backend left its temporary folder behind"
    assert backend.harness_pids() == []


def local_agent(server: Any, **changes: Any) -> AgentConfig:
    """An agent config for the local model server."""
    return AgentConfig(model="agy-trio-local", base_url=server.url, **changes)
