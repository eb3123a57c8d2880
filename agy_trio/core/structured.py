"""Structured output: the schema an agent's final answer must fit, and reading that answer back.

``AgentConfig(response_schema=...)`` takes what the SDK takes, and attrs
classes too: an attrs class, a pydantic model class, a JSON-schema dict, or a
JSON string (in a config file, a class is written as its import path
``"package.module:Name"``). The backend hands the JSON schema to the model as
the arguments of its ``finish`` tool;
:func:`~agy_trio.core.serialization.read_structured_output` turns what the
model sent into an instance of the class (with the project's cattrs converter
for attrs classes, ``model_validate`` for pydantic ones) or, for a plain
schema, leaves it as parsed JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from agy_trio.core.import_paths import import_path_of, resolve_import_path
from agy_trio.errors import ConfigError

__all__ = ["FINISH_TOOL", "ResponseSchema"]

FINISH_TOOL = "finish"
"""The name of the tool through which the harness's model hands over a structured answer."""


def _is_pydantic_model(value: object) -> bool:
    # Duck-typed, so that pydantic stays an optional dependency.
    return isinstance(value, type) and all(
        callable(getattr(value, name, None)) for name in ("model_json_schema", "model_validate")
    )


def _schema_of_class(cls: type) -> dict[str, Any]:
    if attrs.has(cls):
        from agy_trio.core.tool_schema import json_schema_of

        try:
            return json_schema_of(cls)
        except ConfigError as exc:
            raise ConfigError(str(exc)) from None
    if _is_pydantic_model(cls):
        schema = cls.model_json_schema()  # type: ignore[attr-defined]
        if isinstance(schema, dict):
            return schema
    raise ConfigError(
        f"a response_schema class must be an attrs class or a pydantic model, got {cls!r}"
    )


def _schema_from_text(text: str) -> dict[str, Any]:
    try:
        schema = json.loads(text)
    except ValueError:
        raise ConfigError(
            f"a response_schema string must be a JSON schema object, got {text[:80]!r}"
        ) from None
    if not isinstance(schema, dict):
        raise ConfigError(f"a response_schema must be a JSON object, got {text[:80]!r}")
    return schema


@attrs.frozen
class ResponseSchema:
    """What an agent's structured answer must look like, and what it becomes.

    Build one with :meth:`of` (``AgentConfig`` does that for you).

    Attributes:
        json_schema: The JSON schema the model's answer is checked against.
        target: The attrs or pydantic class the answer becomes, or None to
            keep the parsed JSON.
    """

    json_schema: dict[str, Any] = attrs.field(hash=False)
    target: type | None = None

    @classmethod
    def of(cls, value: object) -> ResponseSchema:
        """A schema from what ``AgentConfig(response_schema=...)`` accepts.

        Args:
            value: A :class:`ResponseSchema`; an attrs class or pydantic model
                class; a JSON-schema dict; a JSON string; or the import path
                of a class (``"package.module:Name"``), as config files hold it.

        Raises:
            ConfigError: ``value`` is none of these, or its class has a field
                with no JSON equivalent.
        """
        if isinstance(value, ResponseSchema):
            return value
        if isinstance(value, type):
            return cls(_schema_of_class(value), value)
        if isinstance(value, Mapping):
            try:
                schema = json.loads(json.dumps(dict(value), allow_nan=False))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"a response_schema dict must be plain JSON: {exc}") from None
            return cls(schema)
        if isinstance(value, str):
            if value.lstrip().startswith("{"):
                return cls(_schema_from_text(value))
            try:
                found = resolve_import_path(value)
            except ConfigError as exc:
                raise ConfigError(
                    f"a response_schema string must be a JSON schema or a class's import "
                    f"path: {exc}"
                ) from None
            if not isinstance(found, type):
                raise ConfigError(f"{value!r} is not a class")
            return cls(_schema_of_class(found), found)
        raise ConfigError(
            "expected an attrs class, a pydantic model class, a JSON-schema dict or a JSON "
            f"string, got {value!r}"
        )

    @property
    def text(self) -> str:
        """The JSON schema as JSON text (what the SDK takes)."""
        return json.dumps(self.json_schema)

    def to_data(self) -> str | dict[str, Any]:
        """What a config file holds: the class's import path, else the JSON schema.

        Raises:
            ConfigError: The class cannot be imported again by its path (a local class).
        """
        if self.target is not None:
            return import_path_of(self.target)
        return self.json_schema
