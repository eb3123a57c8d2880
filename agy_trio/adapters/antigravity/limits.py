"""What the harness delivers whole in one user message, and the check made before sending.

The harness does not refuse content it cannot take: it cuts it or drops it,
and the turn then ends normally. Measured against the harness of
google-antigravity 0.1.22 (``localharness``), offline, with the local model
server recording what reached the model:

* **Text.** The harness wraps the user's text (every text part, joined with
  nothing between them) in ``<USER_REQUEST>`` ... ``</USER_REQUEST>`` and an
  ``<ADDITIONAL_METADATA>`` block (125 bytes with a UTC clock, 130 with a
  zone offset, up to about 250 when attachments are described), then keeps
  the first **192,000 bytes** (UTF-8) of the result and appends
  ``<truncated N bytes>`` and a note. A 191,875-byte prompt arrived whole;
  191,876 bytes lost the end of the metadata block, and every byte more cuts
  into the prompt itself.
* **Attachments.** The whole user input (blobs, plus the text, which the
  harness stores twice, plus about 221 bytes of framing and 17 more per extra
  part) must fit in **25 MiB** (26,214,400 bytes). One more byte and the harness
  drops the message entirely: the turn fails with "trajectory converted to
  zero chat messages".
* **Documents on an OpenAI-compatible endpoint.** Images go out as
  ``image_url`` parts and audio as ``input_audio``; documents (PDF, JSON,
  plain text, CSV, ...) and video are dropped without a word, and the model
  answers as if nothing had been attached.

:func:`check_content` refuses such content with
:class:`~agy_trio.errors.ContentTooLarge` (or
:class:`~agy_trio.errors.ConfigError` for an attachment the endpoint
would drop) before anything is sent, so nothing is ever cut silently and the
prompt never enters the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from agy_trio.adapters.antigravity.config import Endpoint
from agy_trio.core.content import BlobPart, Part, TextPart
from agy_trio.errors import ConfigError, ContentTooLarge

__all__ = [
    "HARNESS_MESSAGE_LIMIT",
    "HARNESS_TEXT_LIMIT",
    "MESSAGE_LIMIT",
    "TEXT_LIMIT",
    "check_content",
]

HARNESS_TEXT_LIMIT: Final = 192_000
"""Bytes of the wrapped user message the harness keeps; it cuts the rest."""

_WRAPPER_RESERVE: Final = 512
"""Room left for the harness's wrapper around the text (at most ~250 bytes measured)."""

TEXT_LIMIT: Final = HARNESS_TEXT_LIMIT - _WRAPPER_RESERVE
"""The most text (UTF-8 bytes, all text parts together) one message may carry: 191,488."""

HARNESS_MESSAGE_LIMIT: Final = 25 * 1024 * 1024
"""Bytes of one user input as the harness stores it; a larger one is dropped whole."""

MESSAGE_LIMIT: Final = HARNESS_MESSAGE_LIMIT
"""What :func:`check_content` holds attachments plus twice the text plus framing to."""

# Framing measured at 221 bytes plus 17 per extra part: rounded up.
_FRAMING_BASE: Final = 256
_FRAMING_PER_PART: Final = 32

# What the harness passes on to an OpenAI-compatible endpoint; it drops the rest.
_OPENAI_MEDIA: Final = ("image/", "audio/")


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def check_content(parts: Sequence[Part], endpoint: Endpoint) -> None:
    """Refuse content the harness would cut or drop, before it is sent.

    Args:
        parts: The message's content.
        endpoint: The endpoint the agent talks to.

    Raises:
        ContentTooLarge: The text exceeds :data:`TEXT_LIMIT` bytes, or the
            attachments with the text exceed the harness's 25 MiB per message.
        ConfigError: An attachment the endpoint would never see (a document or
            video sent to an OpenAI-compatible endpoint).
    """
    text_size = 0
    blob_size = 0
    for part in parts:
        if isinstance(part, TextPart):
            text_size += _utf8_size(part.text)
        elif isinstance(part, BlobPart):
            blob_size += len(part.data)
            if endpoint is Endpoint.OPENAI_COMPATIBLE and not part.mime_type.startswith(
                _OPENAI_MEDIA
            ):
                raise ConfigError(
                    f"the harness does not pass {part.mime_type} attachments to an "
                    "OpenAI-compatible endpoint (it would drop it silently); "
                    "send images or audio, or put the document's text in the message",
                    field="content",
                )
    if text_size > TEXT_LIMIT:
        raise ContentTooLarge(
            f"{text_size:,} bytes of text (UTF-8) is over the limit of {TEXT_LIMIT:,} bytes "
            f"per message: the harness would cut its wrapped message at "
            f"{HARNESS_TEXT_LIMIT:,} bytes; split it over several messages",
            size=text_size,
            limit=TEXT_LIMIT,
        )
    if blob_size:
        framing = _FRAMING_BASE + _FRAMING_PER_PART * len(parts)
        stored = blob_size + 2 * text_size + framing
        if stored > MESSAGE_LIMIT:
            room = max(MESSAGE_LIMIT - 2 * text_size - framing, 0)
            raise ContentTooLarge(
                f"{blob_size:,} bytes of attachments is over the limit: the harness takes "
                f"{MESSAGE_LIMIT:,} bytes (25 MiB) per message, attachments plus twice the "
                f"text, and drops a larger one; with this text at most {room:,} bytes of "
                "attachments fit",
                size=stored,
                limit=MESSAGE_LIMIT,
            )
