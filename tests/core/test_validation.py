"""The shared checks for numeric settings."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agy_trio.core.validation import (
    attrs_validator,
    non_negative_number,
    optional,
    positive_int,
    positive_number,
    unicode_text,
)
from agy_trio.errors import ConfigError

_NOT_NUMBERS = [True, False, None, "1", b"1", [1], math.nan, math.inf, -math.inf, 1j]


@pytest.mark.parametrize("value", [*_NOT_NUMBERS, 0, 0.0, -1, -1e-9])
def test_positive_number_refuses(value: Any) -> None:
    with pytest.raises(ConfigError, match="greater than 0") as info:
        positive_number(value, "timeout")
    assert info.value.field == "timeout"


@pytest.mark.parametrize("value", [*_NOT_NUMBERS, -1, -1e-9])
def test_non_negative_number_refuses(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        non_negative_number(value, "delay")
    assert info.value.field == "delay"


@pytest.mark.parametrize("value", [*_NOT_NUMBERS, 0, -3, 1.0, 2.5])
def test_positive_int_refuses(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        positive_int(value, "threads")
    assert info.value.field == "threads"


@given(st.integers(min_value=1) | st.floats(min_value=1e-300, allow_infinity=False))
def test_positive_values_come_back_as_float(value: float) -> None:
    result = positive_number(value, "x")
    assert type(result) is float and result == float(value)
    assert non_negative_number(value, "x") == result


def test_zero_is_non_negative_and_counts_are_ints() -> None:
    assert non_negative_number(0, "x") == 0.0
    assert positive_int(3, "x") == 3


def test_optional_lets_none_through() -> None:
    check = optional(positive_number)
    assert check(None, "x") is None
    assert check(2, "x") == 2.0
    with pytest.raises(ConfigError):
        check(0, "x")


def test_unicode_text() -> None:
    assert unicode_text("héllo 😀", "prompt") == "héllo 😀"
    for value in ("\ud800", "a\udfffb", 3):
        with pytest.raises(ConfigError) as info:
            unicode_text(value, "prompt")
        assert info.value.field == "prompt"


def test_attrs_validator_names_the_field() -> None:
    @attrs.frozen
    class Limits:
        timeout: float = attrs.field(validator=attrs_validator(positive_number))
        delay: float | None = attrs.field(
            default=None, validator=attrs_validator(optional(non_negative_number))
        )

    assert Limits(1.5).timeout == 1.5
    with pytest.raises(ConfigError) as info:
        Limits(0)
    assert info.value.field == "timeout"
    with pytest.raises(ConfigError) as info:
        Limits(1, delay=-1)
    assert info.value.field == "delay"
