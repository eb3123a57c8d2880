"""Configuration: :class:`RuntimeConfig` and :class:`AgentConfig`, under their usual path.

The runtime's settings are in :mod:`agy_trio.core.runtime_config`, an
agent's in :mod:`agy_trio.core.agent_config`; writing them to JSON or TOML
and reading them back is :mod:`agy_trio.core.serialization`'s job.
"""

from agy_trio.core import agent_config, runtime_config
from agy_trio.core.agent_config import *  # noqa: F403  (the facade re-exports both modules whole)
from agy_trio.core.runtime_config import *  # noqa: F403

# The two lists are the modules' own, so a name added there is exported here too.
__all__ = [*runtime_config.__all__, *agent_config.__all__]
