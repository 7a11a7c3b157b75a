"""The `foundry` command line. The engine's commands arrive with the engine; today it reports
its version and the boundary version it reads."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from foundry._version import BOUNDARY_VERSION, __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, prog_name="foundry", message=f"%(prog)s %(version)s (reads {BOUNDARY_VERSION})"
)
def cli() -> None:
    """Foundry: runs Alloy artifacts through events, task blocks, gates, throttle and traces."""


def main(argv: Sequence[str] | None = None) -> NoReturn:
    try:
        cli.main(args=argv, prog_name="foundry", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else 1)
    sys.exit(0)
