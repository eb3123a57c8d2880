from __future__ import annotations

import enum
import pickle
import threading
from typing import Annotated, Any, Literal

import attrs
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import agy_trio
from agy_trio.core import calling, import_paths
from agy_trio.core import tools as core_tools
from agy_trio.core.import_paths import import_path_of, resolve_import_path
from agy_trio.core.tools import Tool, resolve_tool, tool
from agy_trio.errors import AgyError, ConfigError, ToolArgumentError, ToolNotFound
from tests.core import sample_tools


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Point:
    """A point on a grid."""

    x: int
    y: int = 0


POINT_SCHEMA = {
    "type": "object",
    "title": "Point",
    "description": "A point on a grid.",
    "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
    "required": ["x"],
    "additionalProperties": False,
}


def _tool_for(annotation: Any) -> Tool:
    """A tool with one parameter ``value`` of the given annotation."""

    def probe(value):  # type: ignore[no-untyped-def]
        return value

    probe.__annotations__ = {"value": annotation}
    return tool(probe)


# --------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "schema"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (Any, {}),
        (int | None, {"type": ["integer", "null"]}),
        (str | int, {"type": ["string", "integer"]}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (list, {"type": "array"}),
        (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
        (dict, {"type": "object"}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (
            tuple[int, str],
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "minItems": 2,
                "maxItems": 2,
            },
        ),
        (Literal["a", "b"], {"enum": ["a", "b"], "type": "string"}),
        (Literal[1, "a"], {"enum": [1, "a"]}),
        (Color, {"enum": ["red", "blue"], "type": "string"}),
        (Level, {"enum": [1, 2], "type": "integer"}),
        (Annotated[int, "How many."], {"type": "integer", "description": "How many."}),
        (Point, POINT_SCHEMA),
        (
            list[Point] | None,
            {"anyOf": [{"type": "array", "items": POINT_SCHEMA}, {"type": "null"}]},
        ),
    ],
)
def test_schema_of_each_supported_type(annotation: Any, schema: dict[str, Any]) -> None:
    made = _tool_for(annotation)
    assert made.parameters == {
        "type": "object",
        "properties": {"value": schema},
        "required": ["value"],
        "additionalProperties": False,
    }


def test_defaults_make_parameters_optional_and_show_in_schema() -> None:
    @tool
    def search(
        query: str,
        limit: int = 10,
        color: Color = Color.RED,
        tags: list[str] | None = None,
        scale: float = float("inf"),
    ) -> None:
        pass

    props = search.parameters["properties"]
    assert search.parameters["required"] == ["query"]
    assert props["limit"] == {"type": "integer", "default": 10}
    assert props["color"]["default"] == "red"
    assert props["tags"]["default"] is None
    # inf has no JSON spelling, so it is left out rather than written invalidly.
    assert "default" not in props["scale"]


def test_keyword_only_parameters_are_supported() -> None:
    @tool
    def f(a: int, *, b: str) -> None:
        pass

    assert f.parameters["required"] == ["a", "b"]


def test_google_docstring_gives_description_and_argument_descriptions() -> None:
    @tool
    def fetch(url: str, retries: int = 3, verbose: bool = False) -> str:
        """Fetch a page.

        Follows redirects.

        Args:
            url (str): The address
                to fetch.
            retries: How often to retry.
            undocumented_name: Ignored, no such parameter.

        Returns:
            The body.

        Raises:
            ValueError: never.
        """
        return url

    assert fetch.name == "fetch"
    assert fetch.description == "Fetch a page.\n\nFollows redirects."
    props = fetch.parameters["properties"]
    assert props["url"]["description"] == "The address to fetch."
    assert props["retries"]["description"] == "How often to retry."
    assert "description" not in props["verbose"]
    assert "undocumented_name" not in props


def test_docstring_without_sections_and_no_docstring() -> None:
    @tool
    def documented(x: int) -> int:
        """Only a summary."""
        return x

    @tool
    def bare(x: int) -> int:
        return x

    assert documented.description == "Only a summary."
    assert bare.description == ""
    assert "description" not in bare.parameters["properties"]["x"]


def test_other_sections_stay_out_of_the_description() -> None:
    @tool
    def f(x: int, *, limit: int = 1) -> int:
        """Summary line
        continued.

        Note:
            Not for the model.

        Args:
            x: The x.

        Keyword Args:
            limit: At most
                this many.

        Example:
            >>> f(1)
        """
        return x

    assert f.description == "Summary line\ncontinued."
    props = f.parameters["properties"]
    assert props["x"]["description"] == "The x."
    assert props["limit"]["description"] == "At most this many."


def test_malformed_args_section_does_not_break_the_tool() -> None:
    @tool
    def f(x: int) -> int:
        """Do something.

        Args:
            an entry without a colon
        """
        return x

    # The prose still describes the tool; no argument description is guessed.
    assert f.description == "Do something."
    assert "description" not in f.parameters["properties"]["x"]


def test_annotated_description_wins_over_docstring() -> None:
    @tool
    def f(x: Annotated[int, "From the annotation."]) -> None:
        """F.

        Args:
            x: From the docstring.
        """

    assert f.parameters["properties"]["x"]["description"] == "From the annotation."


def test_decorator_options() -> None:
    @tool(name="lookup", description="Find things.")
    def find(q: str) -> str:
        """Not this."""
        return q

    assert find.name == "lookup"
    assert find.description == "Find things."
    assert find.blocking is True
    assert not find.is_async


def test_call_passes_through_to_the_function() -> None:
    assert sample_tools.echo("hi") == "hi"
    assert sample_tools.shout_text("hi") == "HI"


async def test_call_passes_through_for_async_functions() -> None:
    assert await sample_tools.add(2, b=3) == 5


# --------------------------------------------------------------------------
# Bad signatures
# --------------------------------------------------------------------------


def test_var_positional_is_rejected() -> None:
    def f(*items: int) -> None:
        pass

    with pytest.raises(ConfigError) as info:
        tool(f)
    assert info.value.field == "items"


def test_var_keyword_is_rejected() -> None:
    def f(a: int, **extra: int) -> None:
        pass

    with pytest.raises(ConfigError) as info:
        tool(f)
    assert info.value.field == "extra"


def test_missing_type_hint_is_rejected() -> None:
    def f(a: int, b) -> None:  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(ConfigError) as info:
        tool(f)
    assert info.value.field == "b"


def test_positional_only_is_rejected() -> None:
    def f(a: int, /, b: int) -> None:
        pass

    with pytest.raises(ConfigError) as info:
        tool(f)
    assert info.value.field == "a"


@pytest.mark.parametrize(
    "annotation",
    [set[int], object, bytes, dict[int, str], Literal[b"x"], list[set[int]]],
)
def test_unsupported_type_is_rejected(annotation: Any) -> None:
    with pytest.raises(ConfigError) as info:
        _tool_for(annotation)
    assert info.value.field == "value"


@attrs.frozen
class Node:
    child: Node | None = None


def test_recursive_attrs_type_is_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        _tool_for(Node)
    assert "recursive" in str(info.value)


def test_unresolvable_forward_reference_is_rejected() -> None:
    def f(a: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ConfigError):
        tool(f)


@pytest.mark.parametrize("thing", [42, "text", Point])
def test_non_callable_or_class_is_rejected(thing: Any) -> None:
    with pytest.raises(ConfigError):
        tool(thing)


def test_generators_are_rejected() -> None:
    def gen(x: int):  # type: ignore[no-untyped-def]
        yield x

    async def agen(x: int):  # type: ignore[no-untyped-def]
        yield x

    for fn in (gen, agen):
        with pytest.raises(ConfigError):
            tool(fn)


@pytest.mark.parametrize("name", ["", "1abc", "has space", "x" * 65])
def test_invalid_names_are_rejected(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        tool(name=name)(sample_tools.halve)
    assert info.value.field == "name"


# --------------------------------------------------------------------------
# Invocation
# --------------------------------------------------------------------------


async def test_invoke_converts_arguments_to_annotated_types() -> None:
    seen: dict[str, Any] = {}

    @tool
    def record(
        color: Color,
        level: Level,
        point: Point,
        pair: tuple[int, str],
        many: tuple[float, ...],
        points: list[Point],
        table: dict[str, Point],
        ratio: float,
    ) -> str:
        seen.update(locals())
        return "ok"

    result = await record.invoke(
        {
            "color": "blue",
            "level": 2,
            "point": {"x": 1},
            "pair": [3, "z"],
            "many": [1, 2.5],
            "points": [{"x": 1, "y": 2}],
            "table": {"a": {"x": 5}},
            "ratio": 2,
        }
    )
    assert result == "ok"
    assert seen["color"] is Color.BLUE
    assert seen["level"] is Level.HIGH
    assert seen["point"] == Point(1, 0)
    assert seen["pair"] == (3, "z")
    assert seen["many"] == (1.0, 2.5)
    assert seen["points"] == [Point(1, 2)]
    assert seen["table"] == {"a": Point(5)}
    assert seen["ratio"] == 2.0
    assert isinstance(seen["ratio"], float)


async def test_invoke_applies_the_function_defaults() -> None:
    assert await sample_tools.add.invoke({"a": 41}) == 42


async def test_integral_float_is_accepted_for_int() -> None:
    assert await sample_tools.add.invoke({"a": 1.0, "b": 2}) == 3


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ({}, "a"),
        ({"a": 1, "c": 2}, "c"),
        ({"a": "1"}, "a"),
        ({"a": True}, "a"),
        ({"a": 1.5}, "a"),
        ({"a": None}, "a"),
    ],
)
async def test_invalid_arguments_raise_tool_argument_error(
    arguments: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ToolArgumentError) as info:
        await sample_tools.add.invoke(arguments)
    assert info.value.tool == "add"
    assert info.value.argument == argument


async def test_nested_argument_errors_name_the_path() -> None:
    @tool
    def f(points: list[Point], mode: Literal["a", "b"] = "a") -> None:
        pass

    with pytest.raises(ToolArgumentError) as info:
        await f.invoke({"points": [{"x": 1}, {"x": "no"}]})
    assert info.value.argument == "points[1].x"
    with pytest.raises(ToolArgumentError) as info:
        await f.invoke({"points": [{"z": 1}]})
    assert info.value.argument == "points[0]"
    with pytest.raises(ToolArgumentError):
        await f.invoke({"points": [], "mode": "c"})
    with pytest.raises(ToolArgumentError):
        await f.invoke({"points": "not a list"})


async def test_literal_and_enum_compare_types_too() -> None:
    @tool
    def f(flag: Literal[1], level: Level = Level.LOW) -> None:
        pass

    with pytest.raises(ToolArgumentError):
        await f.invoke({"flag": True})
    with pytest.raises(ToolArgumentError):
        await f.invoke({"flag": 1, "level": True})
    await f.invoke({"flag": 1, "level": 1})


async def test_optional_accepts_null_and_the_type() -> None:
    @tool
    def f(x: int | None) -> int | None:
        return x

    assert await f.invoke({"x": None}) is None
    assert await f.invoke({"x": 4}) == 4
    with pytest.raises(ToolArgumentError):
        await f.invoke({"x": "4"})


async def test_arguments_must_be_a_mapping() -> None:
    with pytest.raises(ToolArgumentError):
        await sample_tools.echo.invoke(["text"])  # type: ignore[arg-type]


async def test_async_tool_is_awaited_in_trio() -> None:
    @tool
    async def wait_and_return(x: int) -> int:
        await trio.lowlevel.checkpoint()
        return x * 2

    assert wait_and_return.is_async
    assert await wait_and_return.invoke({"x": 4}) == 8


async def test_sync_tool_runs_off_the_trio_thread() -> None:
    threads: list[int] = []

    @tool
    def where(x: int) -> int:
        threads.append(threading.get_ident())
        return x

    assert await where.invoke({"x": 1}) == 1
    assert threads[0] != threading.get_ident()


async def test_non_blocking_sync_tool_runs_inline() -> None:
    threads: list[int] = []

    @tool(blocking=False)
    def where(x: int) -> int:
        threads.append(threading.get_ident())
        return x

    await where.invoke({"x": 1})
    assert threads == [threading.get_ident()]


async def test_cancelling_a_stuck_sync_tool_does_not_hang(autojump_clock: trio.abc.Clock) -> None:
    release = threading.Event()

    @tool
    def stuck() -> str:
        release.wait(10)
        return "late"

    try:
        with trio.move_on_after(5) as scope:
            await stuck.invoke({})
        assert scope.cancelled_caught
        assert trio.current_time() == pytest.approx(5)
    finally:
        release.set()


async def test_tool_exceptions_propagate() -> None:
    @tool
    def broken() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await broken.invoke({})


@given(st.text(), st.integers(min_value=-(2**62), max_value=2**62))
def test_valid_arguments_reach_the_function_unchanged(text: str, number: int) -> None:
    @tool(blocking=False)
    def f(text: str, number: int) -> tuple[str, int]:
        return text, number

    assert trio.run(f.invoke, {"text": text, "number": number}) == (text, number)


# --------------------------------------------------------------------------
# Import paths and pickling
# --------------------------------------------------------------------------


def test_import_path_of_decorated_function() -> None:
    assert sample_tools.echo.import_path == "tests.core.sample_tools:echo"
    assert resolve_tool("tests.core.sample_tools:echo") is sample_tools.echo


def test_import_path_of_renamed_module_level_tool() -> None:
    assert sample_tools.double.import_path == "tests.core.sample_tools:double"
    assert resolve_tool(sample_tools.double.import_path) is sample_tools.double


def test_plain_function_path_is_wrapped_with_defaults() -> None:
    halve = resolve_tool("tests.core.sample_tools:halve")
    assert halve == tool(sample_tools.halve)
    assert halve.import_path == "tests.core.sample_tools:halve"


def test_local_and_lambda_tools_have_no_import_path() -> None:
    def local(x: int) -> int:
        return x

    with pytest.raises(ConfigError, match="local function"):
        _ = tool(local).import_path
    with pytest.raises(ConfigError, match="lambda"):
        import_path_of(lambda: None)


def test_wrapped_function_with_other_options_has_no_import_path() -> None:
    renamed = tool(sample_tools.halve, name="other")
    with pytest.raises(ConfigError, match="different tool"):
        _ = renamed.import_path


@pytest.mark.parametrize("path", ["no_colon", ":x", "x:", "no.such.module:x", "os:no_such_thing"])
def test_bad_import_paths(path: str) -> None:
    with pytest.raises(ConfigError):
        resolve_import_path(path)


def test_resolve_tool_rejects_non_functions() -> None:
    with pytest.raises(ConfigError):
        resolve_tool("tests.core.sample_tools:ALL_TOOLS")


def test_tools_pickle_by_import_path() -> None:
    for made in sample_tools.ALL_TOOLS:
        assert pickle.loads(pickle.dumps(made)) is made


def test_tools_of_plain_functions_pickle_by_value() -> None:
    made = tool(sample_tools.halve, name="halve_it")
    assert pickle.loads(pickle.dumps(made)) == made


def test_errors_pickle() -> None:
    error = ToolArgumentError("t", "bad", argument="x")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.tool, copy.argument) == (str(error), "t", "x")
    original = ToolNotFound("t", ["b", "a"])
    missing = pickle.loads(pickle.dumps(original))
    assert (missing.tool, missing.known, str(missing)) == ("t", ("a", "b"), str(original))


def test_names_keep_their_old_import_locations() -> None:
    assert core_tools.ToolArgumentError is ToolArgumentError is agy_trio.ToolArgumentError
    assert core_tools.ToolNotFound is ToolNotFound is agy_trio.ToolNotFound
    assert core_tools.run_callable is calling.run_callable
    assert core_tools.is_async_callable is calling.is_async_callable
    assert core_tools.import_path_of is import_paths.import_path_of
    assert core_tools.resolve_import_path is import_paths.resolve_import_path
    assert agy_trio.tool is tool and agy_trio.Tool is Tool
    assert issubclass(ToolArgumentError, AgyError) and issubclass(ToolNotFound, AgyError)


def test_equal_tools_from_the_same_function() -> None:
    assert tool(sample_tools.halve) == tool(sample_tools.halve)
    assert hash(tool(sample_tools.halve)) == hash(tool(sample_tools.halve))
    assert tool(sample_tools.halve) != tool(sample_tools.halve, name="x")
    assert tool(sample_tools.echo) == sample_tools.echo


def test_redecorating_a_tool_keeps_its_options_unless_given() -> None:
    assert tool(sample_tools.shout_text) == sample_tools.shout_text
    renamed = tool(name="louder")(sample_tools.shout_text)
    assert (renamed.name, renamed.description, renamed.blocking) == (
        "louder",
        "Upper-case some text.",
        False,
    )
    assert tool(sample_tools.shout_text, blocking=True).blocking is True


class Multiplier:
    """Multiply by a fixed factor."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: int) -> int:
        """Multiply.

        Args:
            x: The number.
        """
        return self.factor * x


async def test_callable_objects_become_tools() -> None:
    triple = tool(Multiplier(3), name="triple")
    assert triple.parameters["properties"]["x"] == {"type": "integer", "description": "The number."}
    assert triple.description == "Multiply by a fixed factor."
    assert await triple.invoke({"x": 2}) == 6
    with pytest.raises(ConfigError) as info:
        tool(Multiplier(3))
    assert info.value.field == "name"
