"""A page in a real browser for the web UI tests: Debian's chromium under Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTH = 1180
HEIGHT = 720


@contextmanager
def open_page(*, console_errors: bool = True) -> Iterator[tuple[Page, list[str]]]:
    """A page of its own browser, and the list its errors are appended to as they happen.

    Args:
        console_errors: Whether the console's errors count as well as uncaught
            script errors (a test that provokes failed requests says False).

    Yields:
        The page, and the errors seen so far (the list keeps growing until the
        browser closes on leaving).
    """
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.on("pageerror", lambda error: problems.append(str(error)))
            if console_errors:
                page.on(
                    "console",
                    lambda message: (
                        problems.append(message.text) if message.type == "error" else None
                    ),
                )
            yield page, problems
        finally:
            browser.close()
