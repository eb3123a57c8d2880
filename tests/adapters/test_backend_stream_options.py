"""Every backend checks its stream sizes when it is built, not when the first chat runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agy_trio.errors import ConfigError


def _antigravity(**options: Any) -> object:
    from agy_trio.adapters.antigravity import AntigravityBackend

    return AntigravityBackend(**options)


def _scripted(**options: Any) -> object:
    from agy_trio.adapters.scripted import ScriptedBackend

    return ScriptedBackend(**options)


def _temporal(**options: Any) -> object:
    from agy_trio.adapters.temporal import TemporalBackend

    return TemporalBackend(**options)


BACKENDS = pytest.mark.parametrize("build", [_antigravity, _scripted, _temporal])


@BACKENDS
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("stream_high_water", 0),
        ("stream_high_water", -3),
        ("stream_high_water", 2.5),
        ("stream_high_water", True),
        ("stream_batch_max", 0),
        ("stream_batch_max", -1),
        ("stream_batch_max", "8"),
    ],
)
def test_a_bad_stream_size_fails_the_construction(
    build: Callable[..., object], option: str, value: object
) -> None:
    with pytest.raises(ConfigError) as info:
        build(**{option: value})
    assert info.value.field == option


@BACKENDS
def test_the_smallest_stream_sizes_are_accepted(build: Callable[..., object]) -> None:
    build(stream_high_water=1, stream_batch_max=1)
