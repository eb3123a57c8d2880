"""Tool policies with the SDK's semantics: ``allow``, ``deny`` and ``ask_user`` rules.

Public face of :mod:`agy_trio.core.policy` and :mod:`agy_trio.core.policy_presets`.
The more specific rule wins over a wildcard (``[deny_all(), allow("view_file")]``
allows ``view_file``), first match within one precedence group; ``when``
predicates, ``reason`` and ``name`` as in ``google.antigravity.hooks.policy``.
A predicate or handler that raises, answers something other than a bool
(handlers), or takes longer than the runtime's ``handler_timeout`` denies.
"""

# `name as name` marks each import as a re-export, for type checkers and linters.
from agy_trio.core.policy import DEPRECATED_START_SUBAGENT as DEPRECATED_START_SUBAGENT
from agy_trio.core.policy import WILDCARD as WILDCARD
from agy_trio.core.policy import WORKSPACE_ONLY_POLICY_NAME as WORKSPACE_ONLY_POLICY_NAME
from agy_trio.core.policy import Approver as Approver
from agy_trio.core.policy import AskUserHandler as AskUserHandler
from agy_trio.core.policy import Decision as Decision
from agy_trio.core.policy import McpServerLike as McpServerLike
from agy_trio.core.policy import Policy as Policy
from agy_trio.core.policy import PolicyHandler as PolicyHandler
from agy_trio.core.policy import PolicyRule as PolicyRule
from agy_trio.core.policy import PolicySet as PolicySet
from agy_trio.core.policy import Predicate as Predicate
from agy_trio.core.policy import ToolRequest as ToolRequest
from agy_trio.core.policy import Verdict as Verdict
from agy_trio.core.policy import allow as allow
from agy_trio.core.policy import allow_all as allow_all
from agy_trio.core.policy import ask_user as ask_user
from agy_trio.core.policy import deny as deny
from agy_trio.core.policy import deny_all as deny_all
from agy_trio.core.policy import flatten_policies as flatten_policies
from agy_trio.core.policy_presets import auto as auto
from agy_trio.core.policy_presets import confirm_run_command as confirm_run_command
from agy_trio.core.policy_presets import safe_defaults as safe_defaults
from agy_trio.core.policy_presets import workspace_only as workspace_only

__all__ = [
    "DEPRECATED_START_SUBAGENT",
    "WILDCARD",
    "WORKSPACE_ONLY_POLICY_NAME",
    "Approver",
    "AskUserHandler",
    "Decision",
    "McpServerLike",
    "Policy",
    "PolicyHandler",
    "PolicyRule",
    "PolicySet",
    "Predicate",
    "ToolRequest",
    "Verdict",
    "allow",
    "allow_all",
    "ask_user",
    "auto",
    "confirm_run_command",
    "deny",
    "deny_all",
    "flatten_policies",
    "safe_defaults",
    "workspace_only",
]
