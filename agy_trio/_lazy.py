"""Names a package loads on first use (PEP 562), from the modules that define them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package whose names load on first use.

    A package's ``__init__.py`` ends with
    ``__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals(), __all__)``.

    Args:
        package: The package's ``__name__``.
        homes: Each lazily loaded name, and the submodule (relative to
            ``package``) that defines it.
        namespace: The package's ``globals()``: a name, once loaded, is kept
            there, so it is looked up only once.
        public: The package's ``__all__``, which ``dir()`` lists too.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(public))

    return __getattr__, __dir__
