"""Where `foundry run` runs policy commands: `--policy DIR`, else the default branch of the
clone (`origin/HEAD`) exported to a temporary directory when a command gate first needs it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


class LocalPolicy:
    def __init__(self, root: Path, given: Path | None) -> None:
        self.given = given.resolve() if given is not None else None
        self.root = root
        self._commit: str | None = None
        self._made: Path | None = None
        if self.given is None:
            from controllers.git import default_branch_commit, toplevel

            top = toplevel(root)
            found = default_branch_commit(top) if top is not None else None
            if top is not None and found is not None:
                self.root, self._commit = top, found[1]

    def known(self) -> bool:
        return self.given is not None or self._commit is not None

    def checkout(self) -> Path:
        if self.given is not None:
            return self.given
        if self._made is None:
            from controllers.git import RevisionError, export_tree
            from foundry.gates import PolicyUnavailable

            assert self._commit is not None
            made = Path(tempfile.mkdtemp(prefix="foundry-policy-"))
            try:
                export_tree(self.root, self._commit, made)
            except (RevisionError, OSError) as exc:
                shutil.rmtree(made, ignore_errors=True)
                raise PolicyUnavailable(str(exc)) from None
            self._made = made
        return self._made

    def close(self) -> None:
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)
            self._made = None
