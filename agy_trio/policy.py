"""Tool policies: ``allow``, ``deny`` and ``ask_user`` rules with wildcards.

Public face of :mod:`agy_trio.core.policy`. Among the rules that match a tool,
deny wins over ask_user, which wins over allow; an ask_user handler that
raises, answers something other than a bool, or takes longer than the
runtime's ``handler_timeout`` denies (fail closed).
"""

from agy_trio.core.policy import (
    Decision,
    PolicyRule,
    PolicySet,
    ToolRequest,
    allow,
    allow_all,
    ask_user,
    deny,
    deny_all,
)

__all__ = [
    "Decision",
    "PolicyRule",
    "PolicySet",
    "ToolRequest",
    "allow",
    "allow_all",
    "ask_user",
    "deny",
    "deny_all",
]
