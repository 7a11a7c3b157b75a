"""The `alloy` command line: a thin shell over the library, behind one error boundary.

The commands' modules are imported when a command is asked for (`alloy.cli._root`), so that
`alloy --version` and shell completion start without loading the Alloy core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from alloy.cli import _help
from alloy.cli._boundary import run
from alloy.cli._root import cli

_help.apply(cli)  # the group's own examples and exit codes; each command's when it is loaded


def main(argv: Sequence[str] | None = None) -> NoReturn:
    run(cli, "alloy", argv)


__all__ = ["cli", "main"]
