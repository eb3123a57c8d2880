"""json_safe: what a JSON wire can carry goes as it is, anything else as its repr."""

from __future__ import annotations

from agy_trio.core.events import json_safe


def test_json_values_pass_unchanged() -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": []}}
    assert json_safe(value) is value


def test_what_json_cannot_carry_becomes_its_repr() -> None:
    marker = object()
    assert json_safe(marker) == repr(marker)
    assert json_safe({1, 2}) == repr({1, 2})
    assert json_safe({"nested": marker}) == repr({"nested": marker})
