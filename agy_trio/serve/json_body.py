"""Request bodies as JSON, with their nesting bounded before they are parsed.

:func:`json.loads` recurses once per level of nesting: a small body of
100,000 ``[`` runs it out of stack (``RecursionError``, a 500) after burning
the time to get there. No body of this API nests deeper than a handful of
levels, so anything past :data:`MAX_JSON_DEPTH` is refused as invalid (422)
by a scan that does not recurse.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = ["MAX_JSON_DEPTH", "JsonBodyError", "parse_json"]

MAX_JSON_DEPTH: Final = 100
"""Deepest nesting of arrays and objects a request body may have."""

# A JSON string (its brackets do not nest anything), or one bracket.
_STRING_OR_BRACKET: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class JsonBodyError(ValueError):
    """The body is not JSON, or nests deeper than :data:`MAX_JSON_DEPTH`."""


def _depth(raw: bytes) -> int:
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        token = match[0]
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def parse_json(raw: bytes) -> Any:
    """Parse ``raw`` as JSON, refusing it before parsing if it nests too deep.

    Raises:
        JsonBodyError: Not UTF-8 JSON, or nested deeper than :data:`MAX_JSON_DEPTH`
            (the message says which).
    """
    if _depth(raw) > MAX_JSON_DEPTH:
        raise JsonBodyError(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise JsonBodyError(str(exc)) from None
