"""Exception groups from nurseries, seen the way a caller expects them."""

from __future__ import annotations

__all__ = ["leaves", "raise_unwrapped"]


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """Every exception inside ``group``, nested groups flattened, in order."""
    found: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseExceptionGroup):
            stack.extend(reversed(item.exceptions))
        else:
            found.append(item)
    return found


def raise_unwrapped(group: BaseExceptionGroup[BaseException], error: BaseException) -> None:
    """Raise ``error`` itself if ``group`` holds nothing else; otherwise return.

    A nursery wraps what its body raised in an exception group; a context
    manager that owns nurseries should give its caller back the exception the
    caller's own code raised, not a group around it.
    """
    if leaves(group) == [error]:
        raise error from None
