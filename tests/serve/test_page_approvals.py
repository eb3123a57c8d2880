"""Approvals on the web page, in a real browser: a card per parked tool call, Approve and Deny."""

from __future__ import annotations

import functools
from pathlib import Path

import trio

import agy_trio
from agy_trio.adapters.scripted import ScriptedBackend
from agy_trio.serve import serve
from tests.serve import sample_tools
from tests.serve._browser import CHROMIUM, open_page
from tests.serve._helpers import FAST, TOKEN
from tests.serve.test_approvals import RULE_REASON, lending, lending_profile


def approve_then_deny_on_the_page(url: str) -> list[str]:
    """A person lends one book and refuses another; returns the console errors seen."""
    from playwright.sync_api import expect

    with open_page() as (page, problems):
        page.goto(f"{url}/#token={TOKEN}")
        expect(page.locator("#connection")).to_have_text("connected")
        expect(page.locator("#approvals-box")).to_be_hidden()
        page.click("#create")
        expect(page.locator("tr.agent")).to_have_count(1)

        page.fill("#prompt", "Dune")
        page.click("#send")
        card = page.locator(".approval")
        expect(card).to_have_count(1)
        expect(page.locator("#approvals-box")).to_be_visible()
        expect(card.locator(".what")).to_contain_text('lend({"book":"Dune"})')
        expect(card.locator(".why")).to_have_text(RULE_REASON)
        card.locator("button.approve").click()
        expect(page.locator("#chat-status")).to_contain_text("done (end_turn")
        expect(page.locator(".turn.agent .tool").nth(2)).to_contain_text('-> "lent Dune"')
        expect(page.locator("#approvals-box")).to_be_hidden()

        page.fill("#prompt", "Emma")
        page.click("#send")
        expect(card).to_have_count(1)
        expect(card.locator(".what")).to_contain_text("Emma")
        card.locator("button.deny").click()
        expect(page.locator("#chat-status")).to_contain_text("done (end_turn")
        refusal = page.locator(".turn.agent").nth(1).locator(".tool").last
        expect(refusal).to_contain_text('lend({"book":"Emma"}) -> error: ')
        expect(refusal).to_contain_text(RULE_REASON)
        expect(page.locator(".approval")).to_have_count(0)
    return problems


async def test_a_person_approves_and_denies_tool_calls_on_the_page(tmp_path: Path) -> None:
    # Not skipped when missing: the set-up script installs it (apt-get install chromium).
    assert CHROMIUM is not None, "the browser test needs Debian's chromium package"
    sample_tools.LENT.clear()
    async with (
        agy_trio.open_runtime(FAST, backend=ScriptedBackend(lending)) as runtime,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(
            functools.partial(serve, runtime, port=0, token=TOKEN, profile=lending_profile())
        )
        problems = await trio.to_thread.run_sync(approve_then_deny_on_the_page, address.url)
        assert problems == []
        nursery.cancel_scope.cancel()
    assert sample_tools.LENT == ["Dune"]
