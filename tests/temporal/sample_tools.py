"""Tools the worker processes import by path (tools run on the workers)."""

from __future__ import annotations

from pathlib import Path

import trio

import agy_trio


@agy_trio.tool
def record_visit(path: str, visitor: str) -> str:
    """Append a line to a file: a tool with a side effect.

    Args:
        path: The file.
        visitor: Who visited.
    """
    with Path(path).open("a") as out:
        out.write(f"{visitor}\n")
    return f"recorded {visitor}"


@agy_trio.tool
async def slow_visit(path: str, visitor: str) -> str:
    """Append a line to a file, then never answer (its worker dies meanwhile).

    Args:
        path: The file.
        visitor: Who visited.
    """
    async with await trio.open_file(path, "a") as out:
        await out.write(f"{visitor}\n")
    await trio.sleep_forever()
    return "unreachable"
