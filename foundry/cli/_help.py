"""Examples and exit codes of every `foundry` command, kept in one table and written into each
command's `--help` (its epilog) by `apply`. A new command needs an entry here; the test
tests/test_cli_convention.py fails for a command without examples or exit codes."""

from __future__ import annotations

from collections.abc import Iterator

import click

#: The codes every command shares (docs/foundry.md); a command's entry adds or replaces some.
COMMON: dict[int, str] = {
    0: "fine",
    1: "the input is wrong (a refused artifact, a bad input, a remote that cannot be read)",
    2: "usage (an unknown option or a missing argument)",
    3: "internal error (the message gives the path of a crash log)",
    130: "interrupted",
}
#: What an execution's end means as an exit code (`foundry run`, `reconcile --once`).
_EXECUTION: dict[int, str] = {
    0: "succeeded",
    4: "the execution failed",
    5: "waiting (on a gate, or queued in its lane: run again later)",
    6: "indeterminate (waiting for an approval after an interruption)",
    7: "not run (its lane rejected it, or a newer execution superseded it)",
}

#: Per command (its path below `foundry`): examples as (command line, what it does).
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "": (
        ("foundry plan", "what would start now, and why not"),
        ("foundry run --artifact weekly-report", "run an artifact of this checkout"),
        ("foundry reconcile --repo ../shop --once", "one pass over a remote"),
    ),
    "run": (
        ("foundry run --artifact weekly-report", "this checkout"),
        ("foundry run ../shop --artifact release --input version=1.2", ""),
        ("foundry run --artifact weekly-report --dry-run", "only blocks without effects"),
    ),
    "plan": (
        ("foundry plan", "this checkout"),
        ("foundry plan ../shop --format json", "for a script"),
    ),
    "traces": (
        ("foundry traces list", "every execution of this checkout"),
        ("foundry traces show", "the latest execution's summary"),
    ),
    "traces list": (
        ("foundry traces list", "every execution of this checkout"),
        ("foundry traces list --format json", "the same as data"),
    ),
    "traces show": (
        ("foundry traces show", "the latest execution"),
        ("foundry traces show exe-0123456789abcdef", "one execution"),
        ("foundry traces show --format markdown > trace.md", "the Markdown itself"),
    ),
    "traces export": (
        ("foundry traces export exe-0123456789abcdef", "the Trace document (JSON)"),
        ("foundry traces export exe-0123456789abcdef --format otlp", "OTLP/JSON spans"),
    ),
    "traces convert": (
        ("foundry traces convert --format markdown --trace trace.json", ""),
        ("cat trace.json | foundry traces convert --format otlp --trace -", ""),
    ),
    "reconcile": (
        ("foundry reconcile --repo ../shop --once", "one pass, then exit"),
        ("foundry reconcile --repo git://git.example.com/shop.git", "a pass every minute"),
        ("foundry reconcile --repo ../shop --once --format json", "one JSON report per pass"),
    ),
    "checks": (
        ("foundry checks list --repo ../shop", "every check run"),
        ("foundry checks show weekly-report --repo ../shop", "one check run"),
    ),
    "checks list": (
        ("foundry checks list --repo ../shop", "by commit, then name"),
        ("foundry checks list --repo ../shop --format json", "the same as data"),
    ),
    "checks show": (
        ("foundry checks show weekly-report --repo ../shop", "by artifact name"),
        ("foundry checks show exe-0123456789abcdef --repo ../shop", "by execution"),
    ),
    "daemon": (
        ("foundry daemon --config /etc/foundry/daemon.yaml", "until SIGTERM"),
        ("foundry daemon --config daemon.yaml --check", "check the config and exit"),
    ),
    "action": (
        ("foundry action", "in a GitHub Actions job (the Action runs this)"),
        ("foundry action --mode review", "review the pull request whatever the event"),
    ),
    "status": (
        ("foundry status", "this clone's remote"),
        ("foundry status --repo ../shop --watch", "again whenever it changes"),
        ("foundry status --format json", "the same as data"),
    ),
    "cancel": (('foundry cancel exe-0123456789abcdef --reason "wrong input"', ""),),
    "pause": (
        ('foundry pause weekly-report --reason "incident 42" --until 2h', ""),
        ('foundry pause --all --reason "incident 42"', "nothing new starts anywhere"),
    ),
    "resume": (
        ("foundry resume weekly-report", ""),
        ("foundry resume --all", ""),
    ),
}

EXIT_CODES: dict[str, dict[int, str]] = {
    "run": {**_EXECUTION, 1: "the artifact or an input is refused"},
    "plan": {1: "an artifact or request is refused (each is named)"},
    "reconcile": {
        **_EXECUTION,
        0: "with --once: nothing failed",
        1: "the remote could not be read or written (what was not published waits in the outbox)",
    },
    "traces show": {1: "no such execution, or none yet"},
    "traces export": {1: "no such execution, or nothing to attest"},
    "checks show": {1: "no check run for WHICH"},
    "daemon": {
        0: "drained after SIGTERM/SIGINT, or --check found the config valid",
        1: "the config file is wrong (the message names the line and the fix)",
    },
    "action": {1: "a blocking review, a failed execution or an error"},
    "status": {
        0: "shown",
        1: "the remote could not be read",
        130: "--watch ended by Ctrl-C (or interrupted)",
    },
    "cancel": {
        1: "not an execution id, no such execution, or it has ended; or the remote could not "
        "be written"
    },
    "pause": {1: "an empty --reason, a --until in the past, or the remote could not be written"},
    "resume": {1: "nothing of that name is paused, or the remote could not be written"},
}


def walk(
    group: click.Group, prefix: str = "", *, load: bool = False
) -> Iterator[tuple[str, click.Command]]:
    """Every command below `group` (groups too) with its path (`traces list`), `group` first: those
    registered so far, or with `load` every command there is (their modules are imported)."""
    yield prefix, group
    ctx = click.Context(group)
    for name in group.list_commands(ctx) if load else sorted(group.commands):
        command = group.get_command(ctx, name) if load else group.commands[name]
        if command is None:
            continue
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            yield from walk(command, path, load=load)
        else:
            yield path, command


def epilog(path: str) -> str | None:
    """The examples and exit codes of the command at `path`; None when it has no examples."""
    examples = EXAMPLES.get(path)
    if not examples:
        return None
    width = max(len(line) for line, _ in examples)
    lines = ["\b", "Examples:"]
    for line, what in examples:
        if width <= 50:
            lines.append(f"  {line.ljust(width)}  {what}".rstrip())
        else:  # long command lines: what they do below each
            lines += [f"  {line}", *([f"      {what}"] if what else [])]
    codes = {**COMMON, **EXIT_CODES.get(path, {})}
    lines += ["", "\b", "Exit codes:"]
    lines += [f"  {code:<3}  {codes[code]}" for code in sorted(codes)]
    return "\n".join(lines)


def apply(group: click.Group) -> None:
    """Write the examples and exit codes into every command's help."""
    for path, command in walk(group):
        command.epilog = epilog(path)
