"""Every real-SDK end-to-end test runs offline and leaves no harness process behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sdk_support import harness_processes


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_harness_left() -> Iterator[None]:
    assert harness_processes() == []
    yield
    assert harness_processes() == [], "a localharness process outlived its test"
