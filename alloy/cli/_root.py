"""The `alloy` group: its own options (`-C`, `--version`) and its commands, each imported when
it is first asked for. `alloy --version`, and the shell's completion of a command name, import
none of them, so none of the Alloy core (models, loader, compiler) is loaded to answer them."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from alloy._version import API_VERSION, __version__
from alloy.errors import NotFound

#: The module (in alloy.cli) that registers each command. tests/test_cli_convention.py fails
#: when a command is registered by a module this table does not name for it.
COMMAND_MODULES: dict[str, str] = {
    "approve": "_commands",
    "check": "_commands",
    "compile": "_commands",
    "critique": "_critique",
    "demo": "_demo",
    "explain": "_commands",
    "init": "_commands",
    "new": "_commands",
    "request": "_commands",
    "review": "_review",
    "schema": "_commands",
    "status": "_commands",
    "ui": "_ui",
}


class Context:
    """Options shared by every command."""

    def __init__(self, repo: Path | None) -> None:
        self._repo = repo

    def root(self) -> Path:
        from alloy import workspace

        if self._repo is not None and not self._repo.is_dir():
            # Else find_root would climb from the missing path into an enclosing repository.
            raise NotFound(f"-C {self._repo}: no such directory")
        return workspace.find_root(self._repo)

    def cwd(self) -> Path:
        return (self._repo or Path.cwd()).resolve()


pass_ctx = click.make_pass_decorator(Context)


class LazyGroup(click.Group):
    """A group whose commands are registered by their modules when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_MODULES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            module = COMMAND_MODULES.get(cmd_name)
            for name in [module] if module else sorted(set(COMMAND_MODULES.values())):
                importlib.import_module(f"alloy.cli.{name}")
            from alloy.cli import _help

            _help.apply(self)  # the examples and exit codes of what was just registered
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    help="Repository to work on (default: the nearest directory at or above the current one "
    "that holds .alloy/).",
)
@click.version_option(
    __version__, prog_name="alloy", message=f"%(prog)s %(version)s (writes {API_VERSION})"
)
@click.pass_context
def cli(ctx: click.Context, repo: Path | None) -> None:
    """Alloy: engineering intent kept as files under .alloy/, checked and compiled."""
    ctx.obj = Context(repo)
