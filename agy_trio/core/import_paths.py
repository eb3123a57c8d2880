"""Import paths: naming a module-level object as ``"package.module:qualname"``.

Configurations written to disk and pickled tools refer to functions by import
path, so the same object can be found again in another process.
"""

from __future__ import annotations

import importlib
from typing import Any

from agy_trio.errors import ConfigError

__all__ = ["import_path_of", "resolve_import_path"]


def resolve_import_path(path: str) -> Any:
    """Import the object named by ``"package.module:qualname"``.

    Args:
        path: The import path.

    Returns:
        The object.

    Raises:
        ConfigError: The path is malformed, the module cannot be imported or has
            no such attribute.
    """
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        raise ConfigError(f"not an import path of the form 'package.module:qualname': {path!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} for {path!r}: {exc}") from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{path!r}: {module_name!r} has no attribute {qualname!r}") from None
    return obj


def import_path_of(obj: object) -> str:
    """The ``"package.module:qualname"`` under which ``obj`` can be imported again.

    Args:
        obj: A module-level function, class or other named object.

    Returns:
        The import path; :func:`resolve_import_path` maps it back to ``obj``.

    Raises:
        ConfigError: ``obj`` is a lambda, a local (nested) function, or otherwise
            cannot be found again under its module and qualified name.
    """
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise ConfigError(f"{obj!r} has no module and qualified name, so it cannot be serialized")
    if "<lambda>" in qualname:
        raise ConfigError(
            f"a lambda ({module}:{qualname}) cannot be serialized; use a module-level function"
        )
    if "<locals>" in qualname:
        raise ConfigError(
            f"a local function ({module}:{qualname}) cannot be serialized; "
            "define it at module level"
        )
    path = f"{module}:{qualname}"
    try:
        found = resolve_import_path(path)
    except ConfigError as exc:
        raise ConfigError(f"{obj!r} cannot be imported back from {path!r}: {exc}") from exc
    # Bound methods are recreated on each attribute access, hence == and not only `is`.
    if found is not obj and found != obj:
        raise ConfigError(f"{path!r} names a different object than {obj!r}")
    return path
