"""Custom tools: the ``@tool`` decorator and the :class:`Tool` it makes.

A tool is a plain Python function, sync or Trio async, whose type hints and
Google-style docstring describe it to the model::

    @tool
    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''Look up the current weather.'''

The docstring's text before its first section becomes the tool's description;
its ``Args:`` section describes each parameter (see
:mod:`agy_trio.core.tool_schema` for the types a parameter may have).

Everything that can go wrong with a signature goes wrong at decoration time
(:class:`~agy_trio.errors.ConfigError`), not when the model first calls the
tool. Arguments from the model are checked and converted to the annotated types
before the function runs.

Tools are referred to by import path (``"package.module:qualname"``) when a
configuration is written to disk or a tool is pickled, so a tool must live at
module level to be serialised.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, overload

import attrs
import trio

from agy_trio.core.calling import is_async_callable, run_callable
from agy_trio.core.import_paths import import_path_of, resolve_import_path
from agy_trio.core.tool_schema import ToolSignature, analyse_signature
from agy_trio.errors import ConfigError, ToolArgumentError, ToolNotFound

__all__ = [
    "Tool",
    "ToolArgumentError",
    "ToolNotFound",
    "import_path_of",
    "is_async_callable",
    "resolve_import_path",
    "resolve_tool",
    "run_callable",
    "tool",
]

# Function-calling APIs (Gemini, OpenAI) accept this alphabet and length for names.
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")


@attrs.frozen
class Tool:
    """A function the model may call, with the JSON schema that describes it.

    Create tools with :func:`tool`; do not call this class directly. Two tools
    made from the same function with the same options compare equal.

    Attributes:
        name: The name the model calls the tool by.
        description: What the tool does, for the model.
        parameters: The JSON schema (an ``object`` schema) of the arguments.
            Treat it as read-only.
        function: The original function.
        is_async: Whether ``function`` is a (Trio) coroutine function.
        blocking: Whether a sync ``function`` runs in a worker thread (True) or
            inline on the Trio thread (False, for quick non-blocking code).
    """

    name: str
    description: str
    parameters: dict[str, Any] = attrs.field(hash=False)
    function: Callable[..., Any]
    is_async: bool
    blocking: bool = True
    _signature: ToolSignature = attrs.field(eq=False, hash=False, repr=False, kw_only=True)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the original function directly, as if it had not been decorated."""
        return self.function(*args, **kwargs)

    async def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Check the model's arguments, then run the tool in Trio and return its result.

        Async tools are awaited. Sync tools run in a worker thread unless they
        were declared ``blocking=False``, so a slow tool never stalls Trio (see
        :func:`run_callable` for what happens on cancellation).

        Args:
            arguments: The arguments by name, as decoded from the model's JSON.

        Returns:
            What the function returned.

        Raises:
            ToolArgumentError: An argument is unknown, missing or of the wrong type.
        """
        try:
            kwargs = self._signature.bind(self.name, arguments)
        except ToolArgumentError:
            # A checkpoint on the error path too, as on every other.
            await trio.lowlevel.checkpoint()
            raise
        call = functools.partial(self.function, **kwargs)
        return await run_callable(call, in_thread=self.blocking, is_async=self.is_async)

    @property
    def import_path(self) -> str:
        """The ``"package.module:qualname"`` that :func:`resolve_tool` turns back into this tool.

        Raises:
            ConfigError: The tool cannot be re-created by importing: its function
                is a lambda or a local function that no module-level name holds,
                or the path leads to a tool with other options.
        """
        module_name = getattr(self.function, "__module__", None)
        qualname = getattr(self.function, "__qualname__", None)
        if isinstance(module_name, str) and isinstance(qualname, str):
            path = f"{module_name}:{qualname}"
            with contextlib.suppress(ConfigError):
                if resolve_tool(path) == self:
                    return path
        # `name = tool(fn, name=...)` at module level: the tool is importable
        # under its own variable even though `fn` itself is not.
        module = sys.modules.get(module_name) if isinstance(module_name, str) else None
        for attribute, value in list(vars(module).items()) if module else ():
            if isinstance(value, Tool) and value == self:
                return f"{module_name}:{attribute}"
        import_path_of(self.function)  # raises the precise reason when there is one
        raise ConfigError(
            f"{module_name}:{qualname} imports as a different tool than {self.name!r}; "
            "declare the tool at module level with @tool(...)",
            field=self.name,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The decorator replaces the module attribute with the Tool, so pickle
        # cannot find the bare function by name: pickle the tool by import path
        # when it has one, else rebuild it from the function and its options.
        try:
            return (resolve_tool, (self.import_path,))
        except ConfigError:
            return (_rebuild_tool, (self.function, self.name, self.description, self.blocking))


def _rebuild_tool(
    function: Callable[..., Any], name: str, description: str, blocking: bool
) -> Tool:
    return tool(function, name=name, description=description, blocking=blocking)


def resolve_tool(path: str) -> Tool:
    """Import a tool by ``"package.module:qualname"``.

    Args:
        path: The import path of a :class:`Tool`, or of a plain function that is
            then wrapped with :func:`tool` and its default options.

    Returns:
        The tool.

    Raises:
        ConfigError: The path cannot be imported or names neither a tool nor a function.
    """
    obj: object = resolve_import_path(path)
    if isinstance(obj, Tool):
        return obj
    if callable(obj) and not isinstance(obj, type):
        return tool(obj)
    raise ConfigError(f"{path!r} is neither a Tool nor a function")


@overload
def tool(
    fn: Callable[..., Any],
    /,
    *,
    name: str | None = ...,
    description: str | None = ...,
    blocking: bool | None = ...,
) -> Tool: ...


@overload
def tool(
    fn: None = ...,
    /,
    *,
    name: str | None = ...,
    description: str | None = ...,
    blocking: bool | None = ...,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    blocking: bool | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a function into a :class:`Tool`; use as ``@tool`` or ``@tool(...)``.

    Parameters must be passable by name and carry type hints: ``str``,
    ``int``, ``float``, ``bool``, ``None``, ``Any``, ``X | None``, unions,
    ``list[X]``, ``dict[str, X]``, ``tuple[...]``, ``Literal[...]``, ``Enum``
    subclasses, attrs classes and ``Annotated[X, "description"]``. Parameters
    with defaults are optional.

    Args:
        fn: The function (sync, or a Trio ``async def``), or a :class:`Tool`
            to re-decorate with other options.
        name: The tool's name; defaults to the function's ``__name__``.
        description: What the tool does; defaults to the docstring's text before
            its first section. Per-argument descriptions always come from the
            docstring's ``Args:`` section.
        blocking: For sync functions: run in a worker thread (True or None, the
            default) or inline on the Trio thread (False; only for code that
            never blocks). For a :class:`Tool`, None keeps its setting.

    Returns:
        The tool, or a decorator producing it when ``fn`` is omitted.

    Raises:
        ConfigError: ``fn`` is not callable, or its signature cannot be described
            (``field`` names the offending parameter).
    """

    def decorate(function: Callable[..., Any]) -> Tool:
        if isinstance(function, Tool):
            # Re-decorating keeps the tool's own options unless new ones are given.
            return tool(
                function.function,
                name=function.name if name is None else name,
                description=function.description if description is None else description,
                blocking=function.blocking if blocking is None else blocking,
            )
        if not callable(function) or isinstance(function, type):
            raise ConfigError(f"a tool must be a function, not {function!r}", field=name)
        if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
            raise ConfigError("a tool cannot be a generator", field=name)
        tool_name = name if name is not None else getattr(function, "__name__", None)
        if tool_name is None:
            raise ConfigError(f"{function!r} has no __name__; pass name=...", field="name")
        if not isinstance(tool_name, str) or not _TOOL_NAME.fullmatch(tool_name):
            raise ConfigError(
                f"tool name {tool_name!r} must start with a letter or '_' and hold at most "
                "64 letters, digits, '_', '.' or '-'",
                field="name",
            )
        signature = analyse_signature(function, tool_name)
        return Tool(
            name=tool_name,
            description=signature.description if description is None else description,
            parameters=signature.schema,
            function=function,
            is_async=is_async_callable(function),
            blocking=blocking is not False,
            signature=signature,
        )

    if fn is None:
        return decorate
    return decorate(fn)
