"""How the `alloy` commands print (docs/cli.md#output): one set of options, one decision.

Every command that prints data takes `--format text|json` (`--json` is a hidden alias kept for
old scripts), `-q/--quiet` (no notes on stderr) and `-v/--verbose` (more notes). JSON is one
document with `schemaVersion` first (docs/schemas/). Text is rich (colour, tables, rendered
Markdown) on a terminal and plain when piped, with `NO_COLOR` or `TERM=dumb`; the decision is
`rich_wanted`. `rich` is imported only when it is used, so start-up stays fast.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any, TypeVar

import click

#: The version of every JSON document the commands print (changes only incompatibly).
SCHEMA_VERSION = 1
_KEY = "alloy.output"
F = TypeVar("F", bound=Callable[..., Any])


def rich_wanted(stream: IO[str], fmt: str) -> bool:
    """Whether text for `stream` is rich: `--format text`, a terminal, no `NO_COLOR` (any
    non-empty value, no-color.org) and a terminal that is not `TERM=dumb`."""
    if fmt != "text" or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


class Output:
    """What the output options said, and the ways a command prints."""

    def __init__(self) -> None:
        self.fmt = "text"
        self.json_alias = False
        self.quiet = False
        self.verbose = False

    @property
    def format(self) -> str:
        return "json" if self.json_alias else self.fmt

    @property
    def rich(self) -> bool:
        return rich_wanted(sys.stdout, self.format)

    def json(self, data: dict[str, Any]) -> None:
        """One JSON document, `schemaVersion` first."""
        import json

        click.echo(json.dumps({"schemaVersion": SCHEMA_VERSION, **data}, indent=2))

    def json_line(self, data: dict[str, Any]) -> None:
        """One JSON document on one line (JSON Lines), `schemaVersion` first."""
        import json

        body = {"schemaVersion": SCHEMA_VERSION, **dict(sorted(data.items()))}
        click.echo(json.dumps(body, separators=(", ", ": ")))

    def note(self, message: str) -> None:
        """A note on stderr (not with --quiet)."""
        if not self.quiet:
            click.echo(message, err=True)

    def detail(self, message: str) -> None:
        """A note on stderr only with --verbose."""
        if self.verbose and not self.quiet:
            click.echo(message, err=True)

    def text(self, text: str) -> None:
        """Lines of text; on a terminal the words that say how something went are coloured."""
        if not self.rich:
            click.echo(text, nl=False)
            return
        from rich.text import Text

        shown = Text(text)
        shown.highlight_regex(r"(?m)^\S+?:\d+:\d+:", "bold")  # path:line:col of a problem
        for style, words in _WORDS.items():
            shown.highlight_regex(rf"(?<![\w-])({words})(?![\w-])", style)
        _console().print(shown, end="", soft_wrap=True)

    def markdown(self, text: str) -> None:
        """Markdown rendered on a terminal; as plain text (no HTML) when piped."""
        if self.rich:
            from rich.markdown import Markdown

            _console().print(Markdown(_without_html(text)))
        else:
            click.echo(plain_markdown(text).rstrip("\n"))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Rows under headers: a rich table on a terminal (a cell too wide ends in `…`), else
        columns padded to their widest cell, nothing cut."""
        if self.rich:
            from rich.table import Table

            table = Table(*headers, box=None, header_style="bold", pad_edge=False)
            for row in rows:
                table.add_row(*row)
            for column in table.columns:
                column.overflow = "ellipsis"
                column.no_wrap = True
            _console().print(table)
            return
        click.echo(plain_table(headers, rows), nl=False)


#: The words coloured on a terminal (statuses, severities, evidence).
_WORDS = {
    "green": "succeeded|produced|ok|current|success|PASS",
    "red": "failed|error|MISSING|missing|blocking|invalid|failure|FAIL|refused",
    "yellow": "waiting|queued|indeterminate|stale|STALE|warning|paused|high|WARN",
    "dim": "skipped|cancelled|superseded",
}


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False, highlight=False)


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = []
    for row in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)]
        lines.append("  ".join(cells).rstrip())
    return "".join(line + "\n" for line in lines)


# Compiled when first used (re caches them), not at start-up.
_TAG = r"</?[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?>"
_ESCAPE = r"\\([\\`*_{}\[\]()#+\-.!|<>~])"
_INLINE = r"\*\*(?=\S)(.+?)(?<=\S)\*\*|(?<![`\\])`([^`\n]+)`(?!`)"


def plain_markdown(text: str) -> str:
    """Markdown as text to read: HTML tags dropped (`<summary>X</summary>` keeps X), bold and
    code marks dropped, entities and backslash escapes undone; code blocks are left as they
    are."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append(line)
            continue
        out.append(line if fenced else _plain_line(line))
    return "".join(line + "\n" for line in out)


def _without_html(text: str) -> str:
    """Markdown for the terminal's renderer, which shows no HTML: a `<summary>` becomes a bold
    line, the other tags go (code blocks are left as they are)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        kept = line
        if not fenced and "<" in line:
            kept = re.sub(_TAG, "", re.sub(r"<summary>(.*?)</summary>", r"\n**\1**\n", line))
        out.append(kept)
    return "\n".join(out)


def _plain_line(line: str) -> str:
    import html

    line = re.sub(_INLINE, lambda m: m.group(1) or m.group(2), re.sub(_TAG, "", line))
    return html.unescape(re.sub(_ESCAPE, r"\1", line))


def output() -> Output:
    """The output options of the running command."""
    ctx = click.get_current_context()
    found = ctx.meta.get(_KEY)
    return found if isinstance(found, Output) else Output()


def _setter(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        out = ctx.meta.setdefault(_KEY, Output())
        if value is not None:
            setattr(out, attr, value)

    return store


def output_options(
    *formats: str,
    default: str = "text",
    json_alias: bool = False,
    help_format: str = "",
    with_format: bool = True,
) -> Callable[[F], F]:
    """`--format` (of `formats`, text and json unless given), `-q`, `-v`; with `json_alias` the
    hidden `--json` of older versions; without `with_format`, only `-q` and `-v` (a command
    with a --format of its own). The command reads them with `output()`."""
    choices = list(formats or ("text", "json"))

    def decorate(func: F) -> F:
        func = click.option(
            "-v", "--verbose", is_flag=True, expose_value=False, callback=_setter("verbose"),
            help="More notes on stderr: what was read, from where, and how long it took.",
        )(func)  # fmt: skip
        func = click.option(
            "-q", "--quiet", is_flag=True, expose_value=False, callback=_setter("quiet"),
            help="Print only the data: no notes or summaries on stderr.",
        )(func)  # fmt: skip
        if not with_format:
            return func
        if json_alias:
            func = click.option(
                "--json", is_flag=True, hidden=True, expose_value=False,
                callback=_setter("json_alias"), help="Same as --format json (deprecated).",
            )(func)  # fmt: skip
        return click.option(
            "--format", type=click.Choice(choices), default=default, show_default=True,
            expose_value=False, callback=_setter("fmt"),
            help=help_format or "text: for people (rich on a terminal, plain when piped); "
            "json: one document with schemaVersion (docs/schemas/).",
        )(func)  # fmt: skip

    return decorate
