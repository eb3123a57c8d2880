"""Tools the worker processes import by path (tools run on the workers)."""

from __future__ import annotations

from pathlib import Path

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
