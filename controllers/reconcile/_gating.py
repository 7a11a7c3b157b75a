"""What the gates of a running execution ask the reconciler: who started it (`forbidSelf`),
when its intent last succeeded (`after`), the state of a check on its commit (`check`), and a
fresh checkout of the default branch for policy commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controllers.forge import Forge, ForgeError
from controllers.gitops import GitError, Mirror
from controllers.reconcile._files import _hand_over_worktree
from controllers.reconcile._model import Settings, TraceInfo
from controllers.reconcile._work import Work


class Gating:
    """The gates' sources of a `Reconciler` (its state lives there)."""

    settings: Settings
    mirror: Mirror
    state: Path
    forge: Forge
    _authors: dict[str, tuple[str, ...]]
    #: The default branch's head the pass read (policy commands run from it).
    _head: str

    def _policy_checkout(self, where: Path) -> Path:
        """A fresh checkout of the default branch's head as this pass read it, for policy
        commands: never a pull request's, never the artifact's own (older) commit. Fresh for
        every command: what an earlier command (or a killed pass's) wrote there decides
        nothing."""
        from foundry.gates import PolicyUnavailable

        try:
            self.mirror.add_worktree(where, self._head)  # replaces whatever is there
        except GitError as exc:
            raise PolicyUnavailable(str(exc)) from None
        user = self.settings.run_as
        if user is not None:  # it runs as the blocks' user
            sandbox = self.settings.sandbox
            if sandbox is not None and sandbox.isolated:
                # In its own sandbox no other block of the repository sees it: its own.
                _hand_over_worktree(where, self.state, user, self.mirror.path)
            else:
                # Without one, blocks of other executions run as the same user: the checkout
                # stays this process's (read, never written, by the user), so none of them
                # can change the policy a gate runs.
                from foundry.sandbox import let_pass

                let_pass(where, self.state, user)
        return where

    def _starters(self, work: Work) -> tuple[str, ...]:
        """Who started an execution that no Request started, for `forbidSelf` (asked only when
        an approval gate is judged): the author of the change that brought the artifact's
        version to the default branch (the merged pull request's author where the forge knows
        one, else the commit's author) — and for a push, of the pushed commit too. When that
        cannot be known now, the gate waits (`Unavailable`): nobody's approval is counted on a
        guess."""
        from foundry.gates import Unavailable

        if work.event.type == "request":
            return ()  # its requester started it (`initiator`)
        path = f".alloy/artifacts/{work.artifact.metadata.name}.json"
        try:
            commits = {work.commit, self.mirror.last_change(work.commit, path)}
            return tuple(dict.fromkeys(who for c in sorted(commits) for who in self._author(c)))
        except (GitError, ForgeError) as exc:
            raise Unavailable(f"who started it is unknown: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - GitPython raises its own error types
            raise Unavailable(f"who started it is unknown: {type(exc).__name__}: {exc}") from None

    def _author(self, commit: str) -> tuple[str, ...]:
        if commit not in self._authors:
            who = self.forge.identity(commit)
            if who is not None and who.pull:
                self._authors[commit] = (who.author,)
            else:
                self._authors[commit] = self.mirror.authors(commit)
        return self._authors[commit]


class _History:
    def __init__(self, traces: dict[str, TraceInfo]) -> None:
        self.last: dict[str, float] = {}
        for info in traces.values():
            if info.status == "succeeded" and info.finished_at is not None:
                self.last[info.intent] = max(self.last.get(info.intent, 0.0), info.finished_at)

    def last_success(self, intent: str) -> float | None:
        return self.last.get(intent)


class _Checks:
    def __init__(self, forge: Forge, commit: str) -> None:
        self.forge, self.commit = forge, commit

    def state(self, name: str) -> Any:
        return self.forge.check_state(self.commit, name)
