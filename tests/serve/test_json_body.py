"""Request bodies parsed with their nesting bounded first."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agy_trio.serve.json_body import MAX_JSON_DEPTH, JsonBodyError, parse_json

TEXT = st.text(alphabet=st.sampled_from('ab[]{}"\\\n é'), max_size=12)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=30,
)


@given(VALUES)
def test_any_shallow_json_parses_as_json_loads_does(value: object) -> None:
    raw = json.dumps(value).encode()
    assert parse_json(raw) == json.loads(raw)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
def test_the_limit_is_exact(depth: int) -> None:
    raw = b"[" * depth + b"]" * depth
    if depth <= MAX_JSON_DEPTH:
        assert parse_json(raw) is not None
    else:
        with pytest.raises(JsonBodyError, match="nests deeper than 100 levels"):
            parse_json(raw)


def test_invalid_json_is_a_json_body_error() -> None:
    for raw in (b"{not json", b"\xff\xfe", b""):
        with pytest.raises(JsonBodyError):
            parse_json(raw)
