r"""What a user sends to an agent: text, or a list of parts (text, images, documents).

Content is checked before anything is sent, so a mistake is a
:class:`~agy_trio.errors.ConfigError` at the call, the same on every
backend:

- Empty content is refused, whether ``""``, ``[]`` or a list holding an empty
  text part such as ``[""]``.
- Text must be valid Unicode: a lone surrogate such as ``"\ud800"`` cannot be
  encoded for the wire.
- Bytes are refused as a whole rather than read as a list of numbers: binary
  content goes in a :class:`BlobPart` with its MIME type, and text is decoded
  to ``str`` first.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any, TypeAlias

import attrs

from agy_trio.core.validation import unicode_text
from agy_trio.errors import ConfigError

__all__ = ["BlobPart", "Content", "Part", "TextPart", "content_text", "normalize_content"]

_BYTES_TYPES = (bytes, bytearray, memoryview)

_WRAP_BYTES = (
    "bytes are not content: wrap binary data in BlobPart(data, mime_type), "
    "e.g. BlobPart(data, 'image/png'), or decode text to str"
)


def _check_text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    unicode_text(value, attribute.name)
    if not value:
        raise ConfigError("must not be empty", field=attribute.name)


@attrs.frozen
class TextPart:
    """A piece of plain text.

    Attributes:
        text: The text itself: a non-empty string of valid Unicode.
    """

    text: str = attrs.field(validator=_check_text)


def _as_bytes(value: bytes | bytearray | memoryview) -> bytes:
    # bytearray and memoryview are accepted and frozen into bytes; anything
    # else is left for the validator to reject by field name.
    return bytes(value) if isinstance(value, bytearray | memoryview) else value


def _check_data(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bytes):
        raise ConfigError(f"must be bytes, got {type(value).__name__}", field=attribute.name)
    if not value:
        raise ConfigError("must not be empty", field=attribute.name)


def _check_mime(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    kind, _, sub = value.partition("/") if isinstance(value, str) else ("", "", "")
    if not kind or not sub:
        raise ConfigError(f"not a MIME type such as 'image/png': {value!r}", field=attribute.name)


@attrs.frozen
class BlobPart:
    """Binary content such as an image or a document.

    Attributes:
        data: The raw bytes (not empty; a bytearray or memoryview is copied
            into bytes).
        mime_type: Their MIME type, for example ``"image/png"`` or ``"application/pdf"``.
    """

    data: bytes = attrs.field(converter=_as_bytes, validator=_check_data, repr=False)
    mime_type: str = attrs.field(validator=_check_mime)


Part: TypeAlias = TextPart | BlobPart
Content: TypeAlias = str | Sequence[Part | str]


def normalize_content(content: Content) -> tuple[Part, ...]:
    """Turn user content into a tuple of parts.

    Args:
        content: A string, or a sequence of parts (plain strings count as text parts).

    Returns:
        The content as a non-empty tuple of parts.

    Raises:
        ConfigError: The content is empty or holds an empty text, is bytes,
            holds something that is not a part, or holds text that is not
            valid Unicode. ``field`` is ``content``, or ``content[i]`` for the
            i-th item.
    """
    if isinstance(content, str):
        return (_text_part(content, "content"),)
    if isinstance(content, _BYTES_TYPES):
        raise ConfigError(_WRAP_BYTES, field="content")
    if isinstance(content, TextPart | BlobPart):
        raise ConfigError(
            "a single part must be passed in a list: [part]",
            field="content",
        )
    if not isinstance(content, Sequence):
        raise ConfigError(
            f"must be str or a sequence of parts, got {type(content).__name__}", field="content"
        )
    parts: list[Part] = []
    for index, item in enumerate(content):
        where = f"content[{index}]"
        if isinstance(item, str):
            parts.append(_text_part(item, where))
        elif isinstance(item, TextPart | BlobPart):
            parts.append(item)
        elif isinstance(item, _BYTES_TYPES):
            raise ConfigError(_WRAP_BYTES, field=where)
        else:
            raise ConfigError(
                f"not a content part (str, TextPart or BlobPart): {reprlib.repr(item)}",
                field=where,
            )
    if not parts:
        raise ConfigError("must not be empty", field="content")
    return tuple(parts)


def _text_part(text: str, field: str) -> TextPart:
    try:
        return TextPart(text)
    except ConfigError as exc:
        # Name the content item rather than TextPart's own field.
        message = str(exc).removeprefix(f"{exc.field}: ")
        raise ConfigError(message, field=field) from None


def content_text(parts: Sequence[Part]) -> str:
    """Join the text parts of some content, for logs and for text-only backends."""
    return "\n".join(p.text for p in parts if isinstance(p, TextPart))
