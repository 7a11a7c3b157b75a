"""The one error boundary of a CLI: user errors exit 1 without a traceback, usage errors 2,
bugs 3 with a crash log, Ctrl-C 130."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

import click

from alloy.diagnostics import render
from alloy.errors import InvalidDocuments, StaleArtifacts, UserError

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def crash_log(prog: str, exc: BaseException) -> str:
    import datetime
    import tempfile
    import traceback

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    fd, path = tempfile.mkstemp(prefix=f"{prog}-crash-{stamp}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"{prog} {' '.join(sys.argv[1:])}\n\n")
        fh.write("".join(traceback.format_exception(exc)))
    return path


def run(
    command: click.Command,
    prog: str,
    argv: Sequence[str] | None = None,
    extra_user_errors: tuple[type[BaseException], ...] = (),
) -> NoReturn:
    """Run a click command inside the boundary and exit with the documented code."""
    try:
        code = command.main(args=argv, prog_name=prog, standalone_mode=False)
        sys.exit(code if isinstance(code, int) else EXIT_OK)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if isinstance(exc, click.UsageError) else EXIT_USER)
    except click.Abort as exc:
        # click raises Abort `from None` on end of input, so the EOFError is only the context.
        if isinstance(exc.__cause__ or exc.__context__, EOFError):
            click.echo(f"{prog}: no input; pass the values as options (see --help)", err=True)
            sys.exit(EXIT_USAGE)
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except InvalidDocuments as exc:
        click.echo(render(exc.diagnostics, "text"), err=True)
        click.echo(f"{prog}: {exc}", err=True)
        sys.exit(EXIT_USER)
    except StaleArtifacts as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        click.echo(f"{prog}: {exc}; run `alloy compile` and commit the result", err=True)
        sys.exit(EXIT_USER)
    except UserError as exc:
        click.echo(f"{prog}: error: {exc}", err=True)
        sys.exit(EXIT_USER)
    except extra_user_errors as exc:
        click.echo(f"{prog}: error: {exc}", err=True)
        sys.exit(EXIT_USER)
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    except Exception as exc:  # noqa: BLE001 - the boundary: every bug becomes exit 3 + crash log
        path = crash_log(prog, exc)
        click.echo(
            f"{prog}: internal error ({type(exc).__name__}: {exc}). This is a bug; "
            f"the crash log is at {path}",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)


Runner = Callable[[Sequence[str] | None], NoReturn]
