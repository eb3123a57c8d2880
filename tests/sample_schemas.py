"""A checked response class for the structured-output tests.

It lives at module level in an importable module: the Temporal workers, in
other processes, import it by path.
"""

from __future__ import annotations

import attrs


def _at_most_ten(_instance: object, _attribute: object, value: int) -> None:
    if value > 10:
        raise ValueError(f"a rating is at most 10, got {value}")


@attrs.frozen
class Rating:
    """A checked rating."""

    item: str
    stars: int = attrs.field(validator=_at_most_ten)
