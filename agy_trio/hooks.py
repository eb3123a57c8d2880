"""Hooks: the SDK's hook points (and agy_trio's own), as sync or Trio async callables.

Public face of :mod:`agy_trio.core.hooks` and :mod:`agy_trio.core.hook_types`
(:mod:`agy_trio.core.hook_points` runs them): ``Hooks(pre_turn=..., pre_tool_call=...,
post_tool_call=..., on_tool_error=..., stop=..., on_interaction=...,
on_compaction=..., on_session_start=..., on_session_end=..., post_turn=...)``
with the SDK's names for what the hooks see and return.
"""

from agy_trio.core import hook_types as _types
from agy_trio.core import hooks as _hooks

# The face hands on the core modules' names whole: each module lists its
# public names once, in its __all__, and a name added there is exported here.
from agy_trio.core.hook_types import *  # noqa: F403
from agy_trio.core.hooks import *  # noqa: F403

__all__ = [*_hooks.__all__, *_types.__all__]
