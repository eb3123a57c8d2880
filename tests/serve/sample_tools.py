"""Tools a served profile names by import path (``tests.serve.sample_tools:lend``)."""

from __future__ import annotations

LENT: list[str] = []
"""The books :func:`lend` lent, in order: what a test checks to know the tool ran."""


def lend(book: str) -> str:
    """Lend a book from the library."""
    LENT.append(book)
    return f"lent {book}"
