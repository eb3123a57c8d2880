"""Classes users receive but never build: the runtime creates them with ``_create``."""

from __future__ import annotations

from abc import ABCMeta
from typing import Any, TypeVar

__all__ = ["NoPublicConstructor"]

T = TypeVar("T")


class NoPublicConstructor(ABCMeta):
    """Metaclass: calling the class raises TypeError; the library uses ``cls._create``.

    The same device as Trio's own ``NoPublicConstructor``: the public API hands
    out these objects (runtimes, agent handles, responses) already wired to
    their owner, so building one by hand could only produce a broken object.
    It derives from ``ABCMeta`` so such a class can also be one of Trio's
    abstract resources (:class:`trio.abc.AsyncResource`).
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        """Refuse: the runtime builds these objects."""
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} has no public constructor; "
            "the runtime creates it for you"
        )

    def _create(cls: type[T], *args: Any, **kwargs: Any) -> T:
        instance: T = super().__call__(*args, **kwargs)  # type: ignore[misc]
        return instance
