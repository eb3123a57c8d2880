"""Tool policies with the SDK's semantics: ``allow``, ``deny`` and ``ask_user`` rules.

Public face of :mod:`agy_trio.core.policy` and :mod:`agy_trio.core.policy_presets`.
The more specific rule wins over a wildcard (``[deny_all(), allow("view_file")]``
allows ``view_file``), first match within one precedence group; ``when``
predicates, ``reason`` and ``name`` as in ``google.antigravity.hooks.policy``.
A predicate or handler that raises, answers something other than a bool
(handlers), or takes longer than the runtime's ``handler_timeout`` denies.
"""

from agy_trio.core import policy as _rules
from agy_trio.core import policy_presets as _presets

# The face hands on the core modules' names whole: each module lists its
# public names once, in its __all__, and a name added there is exported here.
from agy_trio.core.policy import *  # noqa: F403
from agy_trio.core.policy_presets import *  # noqa: F403

__all__ = [*_rules.__all__, *_presets.__all__]
