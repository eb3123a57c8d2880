"""What chat() and send() accept: every mistake is a ConfigError before anything is sent."""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agy_trio.core.content import BlobPart, TextPart, content_text, normalize_content
from agy_trio.errors import ConfigError

_VALID_TEXT = st.text(st.characters(codec="utf-8"), min_size=1)
_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)


def test_valid_content_becomes_parts() -> None:
    png = BlobPart(b"\x89PNG", "image/png")
    assert normalize_content("hello") == (TextPart("hello"),)
    assert normalize_content(["a", TextPart("b"), png]) == (TextPart("a"), TextPart("b"), png)
    assert normalize_content(("only",)) == (TextPart("only"),)
    assert content_text(normalize_content(["a", png, "b"])) == "a\nb"


@pytest.mark.parametrize("data", [b"hello", bytearray(b"hello"), memoryview(b"hello")])
def test_bytes_are_refused_as_a_whole_with_a_hint(data: Any) -> None:
    with pytest.raises(ConfigError, match=r"BlobPart\(data, mime_type\)") as info:
        normalize_content(data)
    assert info.value.field == "content"
    assert "104" not in str(info.value)  # not read as a list of byte values


def test_bytes_inside_a_list_are_refused_naming_the_item() -> None:
    with pytest.raises(ConfigError, match="BlobPart") as info:
        normalize_content(["look at this:", cast(Any, b"\x89PNG")])
    assert info.value.field == "content[1]"


@pytest.mark.parametrize(
    ("content", "field"),
    [("", "content"), ([], "content"), ([""], "content[0]"), (["a", ""], "content[1]")],
)
def test_empty_text_is_refused_alone_and_in_a_list(content: Any, field: str) -> None:
    with pytest.raises(ConfigError, match="empty") as info:
        normalize_content(content)
    assert info.value.field == field


def test_empty_parts_are_refused_at_construction() -> None:
    with pytest.raises(ConfigError) as info:
        TextPart("")
    assert info.value.field == "text"
    with pytest.raises(ConfigError) as info:
        BlobPart(b"", "image/png")
    assert info.value.field == "data"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("\ud800", "content"),
        ("fine, then \udfff", "content"),
        (["ok", "pair \ud83d\ude00 of surrogates"], "content[1]"),
    ],
)
def test_lone_surrogates_are_refused(content: Any, field: str) -> None:
    with pytest.raises(ConfigError, match="surrogate") as info:
        normalize_content(content)
    assert info.value.field == field


def test_lone_surrogate_in_a_text_part_is_refused() -> None:
    with pytest.raises(ConfigError, match="surrogate") as info:
        TextPart("a\ud800b")
    assert info.value.field == "text"


@given(_VALID_TEXT)
def test_any_valid_unicode_text_is_accepted(text: str) -> None:
    assert normalize_content(text) == (TextPart(text),)
    assert normalize_content([text]) == (TextPart(text),)


@given(st.text(), _SURROGATES, st.text())
def test_any_text_with_a_surrogate_is_refused(before: str, surrogate: str, after: str) -> None:
    with pytest.raises(ConfigError, match="surrogate"):
        normalize_content(before + surrogate + after)


@pytest.mark.parametrize(
    ("content", "field", "says"),
    [
        (None, "content", "NoneType"),
        (42, "content", "int"),
        ({"text": "hi"}, "content", "dict"),
        (["ok", 3], "content[1]", "not a content part"),
        ([["nested"]], "content[0]", "not a content part"),
        (TextPart("x"), "content", "in a list"),
    ],
)
def test_other_things_are_refused_naming_the_item(content: Any, field: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        normalize_content(content)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: TextPart(cast(Any, 3)), "text"),
        (lambda: BlobPart(cast(Any, "not bytes"), "image/png"), "data"),
        (lambda: BlobPart(b"x", "png"), "mime_type"),
        (lambda: BlobPart(b"x", cast(Any, None)), "mime_type"),
    ],
)
def test_bad_parts_are_config_errors(make: Any, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.field == field


def test_blob_accepts_bytes_like_data_as_bytes() -> None:
    assert BlobPart(bytearray(b"ab"), "application/pdf").data == b"ab"
    assert BlobPart(memoryview(b"ab"), "application/pdf") == BlobPart(b"ab", "application/pdf")
