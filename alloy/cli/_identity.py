"""Who the user is, by one rule for every document that names a person (a Request's
`requestedBy`, an Approval's `approver`): the git identity of the repository (`git config
user.name` as git resolves it there), else the OS user; when neither is known, an error that
says which option to pass."""

from __future__ import annotations

import getpass
from pathlib import Path

from alloy.errors import UserError


def who(root: Path, option: str) -> str:
    """The name that `alloy request` and `alloy approve` record when `option` is not given."""
    from controllers import git as gitctl

    name = gitctl.config_value(root, "user.name")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user entry (some containers)
        raise UserError(
            f"cannot tell who you are; pass {option} NAME (or set `git config user.name`)"
        ) from None
