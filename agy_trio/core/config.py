"""Configuration, under its historical import path: the classes and their serialisation.

The classes live in :mod:`agy_trio.core.settings` and reading and writing them
in :mod:`agy_trio.core.serialization`; this module gathers both, so
``from agy_trio.core.config import AgentConfig, to_json`` keeps working.
"""

from agy_trio.core import serialization, settings
from agy_trio.core.serialization import *  # noqa: F403  (the facade re-exports both modules whole)
from agy_trio.core.settings import *  # noqa: F403

# The two lists are the modules' own, so a name added there is exported here too.
__all__ = [*settings.__all__, *serialization.__all__]
