"""A thousand real SDK agents on one machine: two turns each, every answer exact.

About 30 s on a 2-CPU machine and ~2.5 GiB of memory; it is part of the
default run (``-m "not scale"`` leaves it out). The model server runs in a
process of its own, as a real endpoint would. Folders and HOME live under
``tmp_path``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.antigravity  # noqa: F401  (the README set-up installs the SDK)
import psutil
import pytest
import trio

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig
from agy_trio.adapters.antigravity import AntigravityBackend
from benchmarks._offline import ModelServerProcess
from tests.sdk_support import harness_processes

pytestmark = [pytest.mark.sdk, pytest.mark.scale]

AGENTS = 1000
PSS_LIMIT_MIB = 6 * 1024


@pytest.fixture
def model_server_url() -> Iterator[str]:
    server = ModelServerProcess()
    try:
        yield server.url
    finally:
        server.close()


def _pss_mib() -> float:
    total = psutil.Process().memory_full_info().pss
    for harness in harness_processes():
        total += harness.memory_full_info().pss
    return float(total) / 2**20


async def test_a_thousand_agents_two_turns_each(
    tmp_path: Path, model_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    assert harness_processes() == []
    backend = AntigravityBackend(base_dir=tmp_path / "backend")
    config = RuntimeConfig(inter_agent_delay=0, chat_timeout=600)
    handles: list[Any] = [None] * AGENTS
    answers: dict[tuple[int, int], str] = {}
    errors: list[BaseException] = []
    with trio.fail_after(900):
        async with agy_trio.open_runtime(config, backend=backend) as rt:

            async def start(i: int) -> None:
                handles[i] = await rt.create_agent(
                    AgentConfig(name=f"a{i}", model="agy-trio-local", base_url=model_server_url)
                )

            async with trio.open_nursery() as nursery:
                for i in range(AGENTS):
                    nursery.start_soon(start, i)

            async def two_turns(i: int) -> None:
                for k in range(2):
                    try:
                        answers[i, k] = await (await handles[i].chat(f"agent {i} turn {k}")).text()
                    except agy_trio.AgyError as exc:
                        errors.append(exc)

            async with trio.open_nursery() as nursery:
                for i in range(AGENTS):
                    nursery.start_soon(two_turns, i)
            pss = _pss_mib()
            stats = backend.statistics()
        assert errors == []
        assert answers == {
            (i, k): f"You said: agent {i} turn {k}" for i in range(AGENTS) for k in range(2)
        }
        assert pss <= PSS_LIMIT_MIB, f"{pss:.0f} MiB of PSS"
        assert sum(n for _, n in stats.harness_loads) == AGENTS
        assert len(stats.harness_loads) < AGENTS / 100  # shared harnesses, not one each
    assert harness_processes() == [], "a harness outlived the runtime"
    assert backend.harness_pids() == []
