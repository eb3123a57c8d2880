"""The served profile: what every agent a client asks for is made from.

A server serves one profile: a name (``agy`` by default), a description, and
the :class:`~agy_trio.AgentConfig` new agents start from (its model endpoint,
tools, policies, hooks... everything an ``AgentConfig`` holds). The agent
protocols name it: ``/v1/models`` and the OpenAI ``model`` field, the A2A card
(its skills are the profile's tools), MCP's ``list_profiles``. ``agy-trio serve
--config FILE`` reads it from TOML::

    name = "librarian"
    description = "Looks things up in the library."

    [agent]                      # any AgentConfig field, as from_toml reads them
    model = "agy-trio-local"
    tools = ["my_tools:look_up", "my_tools:lend"]
    policies = [
        { decision = "ask_user", tool = "lend", reason = "lending needs a librarian" },
    ]

Tools, handlers and hooks are import paths (``package.module:name``). An
``ask_user`` rule without a handler asks the person behind the server (see
:mod:`agy_trio.serve.approvals`). Without an ``[agent]`` table, every key but
``name`` and ``description`` is an ``AgentConfig`` field.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs

from agy_trio.core.serialization import structure
from agy_trio.core.settings import AgentConfig
from agy_trio.core.validation import attrs_validator, instance_of
from agy_trio.errors import ConfigError

__all__ = ["DEFAULT_PROFILE_NAME", "ServedProfile", "load_profile", "profile_from_toml"]

DEFAULT_PROFILE_NAME = "agy"
"""The served profile's name when none is given."""


def _check_name(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip() or "/" in value:
        raise ConfigError(
            f"must be a non-empty string without '/', got {value!r}", field=attribute.name
        )


@attrs.frozen
class ServedProfile:
    """The profile a server makes its agents from.

    Attributes:
        name: How clients name it (``model`` in OpenAI's API, the A2A card's name).
        description: What its agents are for (the A2A card, ``/v1/models``).
        config: The configuration every new agent starts from.
    """

    name: str = attrs.field(default=DEFAULT_PROFILE_NAME, validator=_check_name)
    description: str = attrs.field(default="", validator=attrs_validator(instance_of(str)))
    config: AgentConfig = attrs.field(
        factory=AgentConfig, validator=attrs_validator(instance_of(AgentConfig))
    )

    @property
    def tool_names(self) -> list[str]:
        """The names of its agents' custom tools."""
        return [tool.name for tool in self.config.tools]


def profile_from_toml(text: str, base: AgentConfig | None = None) -> ServedProfile:
    """Read a :class:`ServedProfile` from TOML (see the module docstring for the layout).

    Args:
        text: The TOML.
        base: The configuration the file's ``AgentConfig`` fields are applied
            over (e.g. the model endpoint the command line chose); fields the
            file leaves out keep ``base``'s values.

    Raises:
        ConfigError: The text is not valid TOML or not a valid profile; the
            error's ``field`` names the offending key (``agent.tools[0]``...).
    """
    try:
        data = tomllib.loads(text)
    except RecursionError as exc:
        raise ConfigError("not valid TOML: nested too deeply") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from exc
    name = data.pop("name", DEFAULT_PROFILE_NAME)
    description = data.pop("description", "")
    if "agent" in data:
        agent = data.pop("agent")
        if data:
            raise ConfigError(
                "unknown profile key beside [agent]", field=sorted(data)[0]
            )  # pragma: no branch
        if not isinstance(agent, dict):
            raise ConfigError("must be a table of AgentConfig fields", field="agent")
        prefix = "agent."
    else:
        agent, prefix = data, ""
    try:
        config = structure(agent, AgentConfig)
        if base is not None:
            config = base.replace(**{key: getattr(config, key) for key in agent})
    except ConfigError as exc:
        field = f"{prefix}{exc.field}" if exc.field else prefix.rstrip(".") or None
        raise ConfigError(str(exc), field=field) from None
    return ServedProfile(name, description, config)


def load_profile(path: str | Path, base: AgentConfig | None = None) -> ServedProfile:
    """Read the profile in the TOML file at ``path`` (``base`` as for :func:`profile_from_toml`).

    Raises:
        ConfigError: The file cannot be read or is not a valid profile.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the profile {str(path)!r}: {exc}", field="config") from exc
    return profile_from_toml(text, base)
