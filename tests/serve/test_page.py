"""The web page at ``/``, driven in a real browser: Debian's chromium under Playwright."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import httpx
import trio

import agy_trio
from agy_trio.adapters.scripted import Say, ScriptedBackend, Turn, default_turn
from agy_trio.serve import serve
from tests.serve._helpers import FAST, TOKEN

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STORY = " ".join(f"Once upon a time, agent number {n} started a turn." for n in range(1, 80))


def page_script(agent_id: str, prompt: str, index: int) -> Turn:
    if "story" in prompt:
        # About a minute of streaming: the test cancels it long before the end.
        return Turn([Say(STORY, chunks=1200, delay=0.05)])
    return default_turn(prompt)


def drive_the_page(url: str, screenshot: Path) -> list[str]:
    """Everything a person does on the page; returns the console errors seen."""
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1180, "height": 720})
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type == "error" else None,
            )
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
        finally:
            browser.close()
    return problems


async def test_a_person_creates_an_agent_chats_and_cancels_in_a_browser(tmp_path: Path) -> None:
    # Not skipped when missing: .ci/run installs it (apt-get install chromium).
    assert CHROMIUM is not None, "the browser test needs Debian's chromium package"
    screenshot = Path(os.environ.get("AGY_TRIO_SERVE_SCREENSHOT") or tmp_path / "serve.png")
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
