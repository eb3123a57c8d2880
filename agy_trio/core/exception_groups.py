"""Exception groups from nurseries, seen the way a caller expects them."""

from __future__ import annotations

__all__ = ["leaves", "raise_lone_leaf", "raise_unwrapped"]


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


def raise_lone_leaf(group: BaseExceptionGroup[BaseException]) -> None:
    """Raise the one exception inside ``group`` (nested groups flattened), if it holds one.

    For a context manager whose own tasks end cleanly: a group with a single
    exception then carries its body's, which goes back to the caller as the
    body raised it (its ``__context__`` kept).
    """
    found = leaves(group)
    if len(found) == 1:
        error = found[0]
        context = error.__context__
        try:
            raise error
        finally:
            error.__context__ = context
