"""Who the user is, by one rule for every document that names a person (a Request's
`requestedBy`, an Approval's `approver`, what `alloy ui` records): the git identity of the repository (`git config
user.name` as git resolves it there), else the OS user; when neither is known, an error that
says which option to pass."""

from __future__ import annotations

import getpass
from pathlib import Path

from alloy.errors import UserError


def who(root: Path, option: str, *, unknown: str | None = None) -> str:
    """The name that `alloy request`, `alloy approve` and `alloy ui` record when `option` is
    not given; `unknown` (if given) when no one can be told, instead of an error."""
    from controllers import git as gitctl

    name = gitctl.config_value(root, "user.name")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user entry (some containers)
        if unknown is not None:
            return unknown
        raise UserError(
            f"cannot tell who you are; pass {option} NAME (or set `git config user.name`)"
        ) from None
