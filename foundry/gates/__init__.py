"""Gates (DESIGN section 5): approval, check, window, after, command. Each passes, waits or
fails; a gate that expires fails, never passes.

The facts gates need come through ports, filled by `controllers` (the local forge, GitHub) or by
tests: who approved and when the approval landed, which checks are green, when another intent
last succeeded, and a checkout of the default branch for policy commands. Expiry and timeouts
count from when the gate first waited, which the executor reads from the ledger.

Modules: `_ports` (the ports, `Context`), `_evaluator` (each kind judged), `_command` (a policy
command run as a process).
"""

from foundry.gates._command import EX_TEMPFAIL, PolicyUnavailable, confined_like_blocks
from foundry.gates._evaluator import GateEvaluator
from foundry.gates._ports import (
    Approvals,
    ApprovalVote,
    Checks,
    Context,
    History,
    PolicySource,
    StaticApprovals,
    Teams,
    Unavailable,
)

__all__ = [
    "EX_TEMPFAIL",
    "ApprovalVote",
    "Approvals",
    "Checks",
    "Context",
    "GateEvaluator",
    "History",
    "PolicySource",
    "PolicyUnavailable",
    "StaticApprovals",
    "Teams",
    "Unavailable",
    "confined_like_blocks",
]
