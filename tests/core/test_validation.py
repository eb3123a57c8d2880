from __future__ import annotations

import math
from typing import Any

import pytest

from agy_trio.core.validation import positive_number
from agy_trio.errors import ConfigError


@pytest.mark.parametrize(("value", "expected"), [(1, 1.0), (0.25, 0.25), (math.inf, math.inf)])
def test_positive_numbers_come_back_as_floats(value: float, expected: float) -> None:
    result = positive_number(value, "timeout")
    assert result == expected
    assert isinstance(result, float)


@pytest.mark.parametrize("value", [0, -1, -0.5, math.nan, -math.inf, True, False, "5", None])
def test_other_values_are_refused_with_the_field(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        positive_number(value, "timeout")
    assert info.value.field == "timeout"
    assert repr(value) in str(info.value)


def test_finite_refuses_infinity() -> None:
    assert positive_number(3, "rate", finite=True) == 3.0
    with pytest.raises(ConfigError, match="finite positive number"):
        positive_number(math.inf, "rate", finite=True)
