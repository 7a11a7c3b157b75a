"""The `alloy` command line: a thin shell over the library, behind one error boundary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from alloy.cli import (
    _critique,  # noqa: F401 - registers `alloy critique`
    _demo,  # noqa: F401 - registers `alloy demo`
    _help,
    _review,  # noqa: F401 - registers `alloy review`
    _ui,  # noqa: F401 - registers `alloy ui`
)
from alloy.cli._boundary import run
from alloy.cli._commands import cli

_help.apply(cli)  # every command's examples and exit codes, after every command is registered


def main(argv: Sequence[str] | None = None) -> NoReturn:
    run(cli, "alloy", argv)


__all__ = ["cli", "main"]
