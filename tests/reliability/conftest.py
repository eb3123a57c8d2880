"""Fixtures of the reliability suite."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sdk_support import harness_processes


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Gemini or Vertex credentials reach the SDK."""
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_harness_left() -> Any:
    """Fail a test that leaves a harness process behind."""
    assert harness_processes() == []
    yield
    assert harness_processes() == [], "a localharness process outlived its test"
