"""The web page at ``/``, driven in a real browser: Debian's chromium under Playwright."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import httpx
import trio

import agy_trio
from agy_trio.adapters.scripted import CallTool, Say, ScriptedBackend, Think, Turn, default_turn
from agy_trio.serve import serve
from tests.serve._browser import CHROMIUM, WIDTH, open_page
from tests.serve._helpers import FAST, TOKEN

STORY = " ".join(f"Once upon a time, agent number {n} started a turn." for n in range(1, 80))


# Screenshots of the page tests, kept after the run for people to look at.
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "page"


@agy_trio.tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def page_script(agent_id: str, prompt: str, index: int) -> Turn:
    if "weather" in prompt:
        return Turn(
            [Think("Let me look it up."), CallTool("weather", {"city": "Oslo"}), Say("Sunny.")]
        )
    if "story" in prompt:
        # About a minute of streaming: the test cancels it long before the end.
        return Turn([Say(STORY, chunks=1200, delay=0.05)])
    return default_turn(prompt)


def drive_the_page(url: str, screenshot: Path) -> list[str]:
    """Everything a person does on the page; returns the console errors seen."""
    from playwright.sync_api import expect

    with open_page() as (page, problems):
        # The token rides in the URL's fragment, which is never sent to the server.
        page.goto(f"{url}/#token={TOKEN}")
        expect(page.locator("#connection")).to_have_text("connected")
        expect(page.locator("#no-agents")).to_be_visible()

        page.fill("#agent-name", "helper")
        page.click("#create")
        expect(page.locator("tr.agent")).to_have_count(1)
        expect(page.locator("#chat-title")).to_have_text("Chat with helper-1")

        page.fill("#prompt", "hello from the browser")
        page.click("#send")
        answers = page.locator(".turn.agent .text")
        expect(answers.nth(0)).to_have_text("You said: hello from the browser")
        expect(page.locator("#chat-status")).to_contain_text("done (end_turn")
        expect(page.locator("tr.agent td").nth(2)).to_have_text("1")  # turns

        page.fill("#prompt", "tell me a long story")
        page.click("#send")
        expect(answers.nth(1)).to_contain_text("Once upon a time, agent number 2")
        expect(page.locator("tr.agent .state-busy")).to_have_text("busy")
        expect(page.locator("#cancel")).to_be_enabled()
        page.click("#cancel")
        expect(page.locator("#chat-status")).to_have_text("cancelled")
        expect(page.locator("tr.agent .state-idle")).to_have_text("idle")
        cut_short = answers.nth(1).inner_text()
        assert 0 < len(cut_short) < len(STORY)
        assert STORY.startswith(cut_short)

        page.screenshot(path=str(screenshot))
        assert screenshot.read_bytes().startswith(b"\x89PNG")

        # The agent's history survives a reload of the page.
        page.reload()
        page.click("tr.agent")
        expect(page.locator(".turn.user .text").nth(0)).to_have_text("hello from the browser")
    return problems


async def test_a_person_creates_an_agent_chats_and_cancels_in_a_browser(tmp_path: Path) -> None:
    # Not skipped when missing: .ci/run installs it (apt-get install chromium).
    assert CHROMIUM is not None, "the browser test needs Debian's chromium package"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = Path(os.environ.get("AGY_TRIO_SERVE_SCREENSHOT") or ARTEFACTS / "serve.png")
    backend = ScriptedBackend(page_script)
    async with (
        agy_trio.open_runtime(FAST, backend=backend) as runtime,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(functools.partial(serve, runtime, port=0, token=TOKEN))
        problems = await trio.to_thread.run_sync(drive_the_page, address.url, screenshot)
        assert problems == []
        (handle,) = runtime.agents
        assert await handle.turn_count() == 1  # the cancelled turn never completed
        async with httpx.AsyncClient(base_url=address.url) as client:
            page = await client.get("/")
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'sha256-" in page.headers["content-security-policy"]
        nursery.cancel_scope.cancel()


def drive_the_corners(url: str) -> list[str]:
    """A wrong token, thoughts and tool calls, a very long line, Delete; screenshots on the way."""
    from playwright.sync_api import expect

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with open_page(console_errors=False) as (page, problems):
        # A wrong token says so, and the right one then works.
        page.goto(f"{url}/#token=not-the-token")
        expect(page.locator("#connection")).to_have_text("token refused")
        expect(page.locator("#token-message")).to_contain_text("refused this token")
        page.screenshot(path=str(ARTEFACTS / "wrong-token.png"))
        page.fill("#token-input", TOKEN)
        page.click("#token-form button")
        expect(page.locator("#connection")).to_have_text("connected")
        expect(page.locator("#token-box")).to_be_hidden()

        page.fill("#agent-name", "corners")
        page.click("#create")
        expect(page.locator("tr.agent")).to_have_count(1)
        # Thoughts, tool calls and usage, each shown apart from the answer.
        page.fill("#prompt", "what is the weather in Oslo?")
        page.click("#send")
        answer = page.locator(".turn.agent").nth(0)
        expect(answer.locator(".text")).to_have_text("Sunny.")
        expect(answer.locator(".thought")).to_have_text("Let me look it up.")
        expect(answer.locator(".tool")).to_have_text(
            'tool weather({"city":"Oslo"}) -> "sunny in Oslo"'
        )
        expect(answer.locator(".usage")).to_contain_text("end_turn")
        expect(answer.locator(".usage")).to_contain_text(" out tokens")
        page.screenshot(path=str(ARTEFACTS / "thoughts-and-tools.png"))

        # 300 KB without a space: it wraps, and the chat stays on the screen.
        line = "x" * 300_000
        page.fill("#prompt", line)
        page.click("#send")
        expect(page.locator("#chat-status")).to_contain_text("done (end_turn", timeout=30_000)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        box = page.locator("#transcript").bounding_box()
        assert box is not None and box["x"] + box["width"] <= WIDTH
        assert page.locator(".turn.agent .text").nth(1).inner_text().endswith("x" * 100)
        page.screenshot(path=str(ARTEFACTS / "long-line.png"))

        # Delete asks first: dismissed, nothing happens; accepted, the agent goes.
        questions: list[str] = []

        def answer_with(accept: bool) -> None:
            def handle(dialog: Any) -> None:
                questions.append(dialog.message)
                dialog.accept() if accept else dialog.dismiss()

            page.once("dialog", handle)

        answer_with(False)
        page.click("tr.agent button.danger")
        expect(page.locator("tr.agent")).to_have_count(1)
        answer_with(True)
        page.click("tr.agent button.danger")
        expect(page.locator("tr.agent")).to_have_count(0)
        assert (
            questions
            == [
                "Delete corners-1 and its conversation? This cannot be undone.",
            ]
            * 2
        )
    return problems


async def test_the_pages_corners_in_a_browser() -> None:
    assert CHROMIUM is not None, "the browser test needs Debian's chromium package"
    backend = ScriptedBackend(page_script)
    defaults = agy_trio.AgentConfig(tools=[weather])
    async with (
        agy_trio.open_runtime(FAST, backend=backend) as runtime,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(
            functools.partial(serve, runtime, port=0, token=TOKEN, defaults=defaults)
        )
        problems = await trio.to_thread.run_sync(drive_the_corners, address.url)
        # The wrong token's 401s are the browser's console errors; nothing else.
        assert problems == []
        assert runtime.agents == []
        nursery.cancel_scope.cancel()
