"""Tool policies: ``allow``, ``deny`` and ``ask_user`` rules with wildcards.

Public face of :mod:`agy_trio.core.policy`. Among the rules that match a tool,
deny wins over ask_user, which wins over allow; an ask_user handler that
raises, answers something other than a bool, or takes longer than the
runtime's ``handler_timeout`` denies (fail closed).
"""

# `name as name` marks each import as a re-export, for type checkers and linters.
from agy_trio.core.policy import Approver as Approver
from agy_trio.core.policy import Decision as Decision
from agy_trio.core.policy import PolicyHandler as PolicyHandler
from agy_trio.core.policy import PolicyRule as PolicyRule
from agy_trio.core.policy import PolicySet as PolicySet
from agy_trio.core.policy import ToolRequest as ToolRequest
from agy_trio.core.policy import __all__ as __all__
from agy_trio.core.policy import allow as allow
from agy_trio.core.policy import allow_all as allow_all
from agy_trio.core.policy import ask_user as ask_user
from agy_trio.core.policy import deny as deny
from agy_trio.core.policy import deny_all as deny_all
