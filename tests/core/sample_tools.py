"""Importable tools, policy handlers and hooks for the configuration and hook tests.

Configurations refer to callables by import path, so the ones used in round-trip
tests must live at module level in an importable module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from agy_trio.core.hooks import ToolEvent, ToolResultEvent, TurnEvent
from agy_trio.core.policy import ToolRequest
from agy_trio.core.tools import tool


@tool
def echo(text: str) -> str:
    """Return the text unchanged.

    Args:
        text: What to echo.
    """
    return text


@tool
async def add(a: int, b: int = 1) -> int:
    """Add two integers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    await trio.lowlevel.checkpoint()
    return a + b


@tool(name="shout", description="Upper-case some text.", blocking=False)
def shout_text(text: str) -> str:
    return text.upper()


def halve(x: float) -> float:
    """Halve a number (a plain function, wrapped when a config imports it).

    Args:
        x: The number.
    """
    return x / 2


def _double(x: float) -> float:
    return 2 * x


# Importable under its variable name, not under the function's own name.
double = tool(_double, name="double_it")

ALL_TOOLS = (echo, add, shout_text, double)


@tool
def lookup(topic: str) -> str:
    """Look a topic up.

    Args:
        topic: What to look up.
    """
    return f"facts about {topic}"


def approve(request: ToolRequest) -> bool:
    return True


async def approve_async(request: ToolRequest) -> bool:
    await trio.lowlevel.checkpoint()
    return True


def reject(request: ToolRequest) -> bool:
    return False


HANDLERS = (approve, approve_async, reject)


def note_turn(event: TurnEvent) -> None:
    pass


async def note_turn_async(event: TurnEvent) -> None:
    await trio.lowlevel.checkpoint()


def allow_tool(event: ToolEvent) -> bool:
    return True


def note_result(event: ToolResultEvent) -> None:
    pass


HOOKS: tuple[Callable[[Any], Any], ...] = (note_turn, note_turn_async, allow_tool, note_result)
