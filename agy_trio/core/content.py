"""What a user sends to an agent: text, or a list of parts (text, images, documents)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import attrs

from agy_trio.core.errors import ConfigError

__all__ = ["BlobPart", "Content", "Part", "TextPart", "normalize_content"]


@attrs.frozen
class TextPart:
    """A piece of plain text.

    Attributes:
        text: The text itself.
    """

    text: str = attrs.field(validator=attrs.validators.instance_of(str))


def _check_mime(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    kind, _, sub = value.partition("/")
    if not kind or not sub:
        raise ConfigError(f"not a MIME type: {value!r}", field=attribute.name)


@attrs.frozen
class BlobPart:
    """Binary content such as an image or a document.

    Attributes:
        data: The raw bytes.
        mime_type: Their MIME type, for example ``"image/png"`` or ``"application/pdf"``.
    """

    data: bytes = attrs.field(validator=attrs.validators.instance_of(bytes), repr=False)
    mime_type: str = attrs.field(validator=[attrs.validators.instance_of(str), _check_mime])


Part: TypeAlias = TextPart | BlobPart
Content: TypeAlias = str | Sequence[Part | str]


def normalize_content(content: Content) -> tuple[Part, ...]:
    """Turn user content into a tuple of parts.

    Args:
        content: A string, or a sequence of parts (plain strings count as text parts).

    Returns:
        The content as a non-empty tuple of parts.

    Raises:
        ConfigError: The content is empty or holds something that is not a part.
    """
    if isinstance(content, str):
        if not content:
            raise ConfigError("content must not be empty", field="content")
        return (TextPart(content),)
    if not isinstance(content, Sequence):
        raise ConfigError(f"content must be str or a sequence of parts, got {type(content)!r}")
    parts: list[Part] = []
    for item in content:
        if isinstance(item, str):
            parts.append(TextPart(item))
        elif isinstance(item, TextPart | BlobPart):
            parts.append(item)
        else:
            raise ConfigError(f"not a content part: {item!r}", field="content")
    if not parts:
        raise ConfigError("content must not be empty", field="content")
    return tuple(parts)


def content_text(parts: Sequence[Part]) -> str:
    """Join the text parts of some content, for logs and for text-only backends."""
    return "\n".join(p.text for p in parts if isinstance(p, TextPart))
