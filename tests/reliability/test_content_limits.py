"""Content the harness would cut or drop is refused before it is sent.

The limits are the harness's, measured (see
:mod:`agy_trio.adapters.antigravity.limits`): 192,000 bytes of wrapped text per
message, and 25 MiB per message for attachments plus twice the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from agy_trio import BlobPart, TextPart
from agy_trio.adapters.antigravity.config import Endpoint
from agy_trio.adapters.antigravity.limits import (
    HARNESS_TEXT_LIMIT,
    MESSAGE_LIMIT,
    TEXT_LIMIT,
    check_content,
)
from agy_trio.core.content import normalize_content
from agy_trio.errors import ConfigError, ContentTooLarge
from agy_trio.testing import ChatRequest, Reply, Responder
from tests.conversations import user_prompts
from tests.sdk_support import local_agent, sdk_agent

OPENAI = Endpoint.OPENAI_COMPATIBLE
PNG = bytes.fromhex("89504e470d0a1a0a")  # a PNG signature is enough for the harness


def test_text_up_to_the_limit_passes_and_one_byte_more_is_refused() -> None:
    check_content(normalize_content("a" * TEXT_LIMIT), OPENAI)
    with pytest.raises(ContentTooLarge) as info:
        check_content(normalize_content("a" * (TEXT_LIMIT + 1)), OPENAI)
    error = info.value
    assert (error.size, error.limit, error.unit, error.field) == (
        TEXT_LIMIT + 1,
        TEXT_LIMIT,
        "bytes",
        "content",
    )
    assert f"{TEXT_LIMIT:,}" in str(error) and f"{HARNESS_TEXT_LIMIT:,}" in str(error)
    assert isinstance(error, ConfigError)


def test_text_is_counted_in_utf8_bytes_over_every_part() -> None:
    check_content(normalize_content("é" * (TEXT_LIMIT // 2)), OPENAI)
    with pytest.raises(ContentTooLarge):
        check_content(normalize_content("é" * (TEXT_LIMIT // 2) + "é"), OPENAI)
    half = "a" * (TEXT_LIMIT // 2 + 1)
    with pytest.raises(ContentTooLarge):
        check_content(normalize_content([half, TextPart(half)]), OPENAI)


@pytest.mark.parametrize("endpoint", list(Endpoint))
def test_attachments_up_to_25_mib_with_the_text_counted_twice(endpoint: Endpoint) -> None:
    text = "look at this"
    framing = 256 + 32 * 2
    room = MESSAGE_LIMIT - 2 * len(text) - framing
    check_content([TextPart(text), BlobPart(PNG + bytes(room - len(PNG)), "image/png")], endpoint)
    with pytest.raises(ContentTooLarge) as info:
        check_content(
            [TextPart(text), BlobPart(PNG + bytes(room - len(PNG) + 1), "image/png")], endpoint
        )
    assert info.value.limit == MESSAGE_LIMIT
    assert f"at most {room:,} bytes" in str(info.value)


@pytest.mark.parametrize("mime_type", ["application/pdf", "text/plain", "video/mp4"])
def test_attachments_an_openai_endpoint_would_drop_are_refused(mime_type: str) -> None:
    parts = [TextPart("read this"), BlobPart(b"data", mime_type)]
    with pytest.raises(ConfigError, match="drop it silently") as info:
        check_content(parts, OPENAI)
    assert not isinstance(info.value, ContentTooLarge)
    check_content(parts, Endpoint.GEMINI)  # the Gemini API takes documents
    check_content([TextPart("hear this"), BlobPart(b"RIFF", "audio/wav")], OPENAI)


# ---------------------------------------------------------------------------- the real harness


def _responder(request: ChatRequest) -> Reply | None:
    # A short answer whatever the prompt: the point is what reached the model.
    return Reply(f"received {len(request.user_request)} characters")


@pytest.fixture
def responder() -> Responder:
    return _responder


def _last_user_message(server: Any) -> str:
    (message,) = [m for m in server.requests[-1].messages if m.get("role") == "user"][-1:]
    content = message["content"]
    assert isinstance(content, str)
    return content


@pytest.mark.sdk
@pytest.mark.usefixtures("offline", "no_harness_left")
async def test_the_largest_text_allowed_reaches_the_model_whole(
    tmp_path: Path, server: Any
) -> None:
    prompt = (
        ("0123456789abcdé" * (TEXT_LIMIT // 16 + 1)).encode()[:TEXT_LIMIT].decode(errors="ignore")
    )
    async with sdk_agent(tmp_path, local_agent(server)) as (agent, _):
        with trio.fail_after(60):
            await (await agent.chat(prompt)).text()
        sent = _last_user_message(server)
        assert "truncated" not in sent
        assert f"<USER_REQUEST>\n{prompt}\n</USER_REQUEST>" in sent
        assert sent.endswith("</ADDITIONAL_METADATA>")


@pytest.mark.sdk
@pytest.mark.usefixtures("offline", "no_harness_left")
async def test_oversized_content_is_refused_before_sending(tmp_path: Path, server: Any) -> None:
    async with sdk_agent(tmp_path, local_agent(server)) as (agent, _):
        await (await agent.chat("first")).text()
        requests = len(server.requests)
        oversized = [
            "x" * 1_000_000,  # the case that was cut to 192,160 characters
            ["a" * (TEXT_LIMIT // 2 + 1), "b" * (TEXT_LIMIT // 2 + 1)],
            [TextPart("see"), BlobPart(PNG + bytes(MESSAGE_LIMIT), "image/png")],
        ]
        for content in oversized:
            with pytest.raises(ContentTooLarge):
                await agent.chat(content)
            with pytest.raises(ContentTooLarge):
                await agent.send(content)
        with pytest.raises(ConfigError, match="drop it silently"):
            await agent.chat([TextPart("read"), BlobPart(b"%PDF-1.4", "application/pdf")])
        # Nothing was sent, nothing entered the history, and the agent goes on.
        assert len(server.requests) == requests
        assert await user_prompts(agent) == ["first"]
        with trio.fail_after(60):
            assert await (await agent.chat("next")).text() == "received 4 characters"
        assert await agent.turn_count() == 2
