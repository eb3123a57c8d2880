"""Shared test settings, and the fixtures of every test that drives the real SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import hypothesis
import pytest

from agy_trio.testing import ModelServer, Responder, open_model_server
from tests.sdk_support import harness_processes

# Timing belongs to benchmarks/, not to tests: on a shared 2-core machine an
# example can be slow for reasons that have nothing to do with the code.
hypothesis.settings.register_profile(
    "agy_trio",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("agy_trio")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Gemini or Vertex credentials reach the SDK."""
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_harness_left() -> Iterator[None]:
    """Fail a test that starts with a harness process around, or leaves one behind."""
    assert harness_processes() == []
    yield
    assert harness_processes() == [], "a localharness process outlived its test"


@pytest.fixture
def responder() -> Responder | None:
    """How the ``server`` fixture's model answers; a module overrides it with its own script."""
    return None


@pytest.fixture
async def server(responder: Responder | None) -> AsyncIterator[ModelServer]:
    """The local model server on a free loopback port, answering as ``responder`` says."""
    async with open_model_server(responder) as model_server:
        yield model_server
