"""Examples and exit codes of every `alloy` command, kept in one table and written into each
command's `--help` (its epilog) by `apply`. A new command needs an entry here; the test
tests/test_cli_convention.py fails for a command without examples or exit codes."""

from __future__ import annotations

from collections.abc import Iterator

import click

#: The codes every command shares (docs/cli.md); a command's entry adds to them or replaces one.
COMMON: dict[int, str] = {
    0: "fine",
    1: "the input is wrong (the message names the file, line and fix; nothing is written)",
    2: "usage (an unknown option or a missing argument)",
    3: "internal error (the message gives the path of a crash log)",
    130: "interrupted",
}

#: Per command (its path below `alloy`): examples as (command line, what it does), and the exit
#: codes whose meaning differs from COMMON.
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "": (
        ("alloy init --owner alice", "start: .alloy/ in this repository"),
        ("alloy check", "every problem in every document"),
        ("alloy -C ../other status", "another repository"),
    ),
    "init": (
        ("alloy init --owner alice", "this directory's name as the project's"),
        ("alloy init --name shop --owner team:platform --default-branch trunk", ""),
        ("alloy init --owner alice --format json", "what was created, as data"),
    ),
    "new": (("alloy new intent release-notes", "asks for what is not given"),),
    "new intent": (
        ("alloy new intent release-notes", "asks for goal, rationale, owners, criteria"),
        ('alloy new intent nightly --goal "The build is green" --owner alice --no-input', ""),
        ('alloy new intent nightly --goal "The build is green" --no-input --format json', ""),
    ),
    "check": (
        ("alloy check", "every problem, as path:line:col: message"),
        ("alloy check --format json | jq .errors", "for a script"),
        ("alloy check --format github", "annotations in a GitHub workflow step"),
    ),
    "compile": (
        ("alloy compile", "write .alloy/artifacts/"),
        ("alloy compile --check", "in CI: exit 1 naming every stale artifact"),
        ("alloy compile --format json", "what was written, removed, left"),
    ),
    "explain": (
        ("alloy explain weekly-report", "what, why, who, what runs when"),
        ("alloy explain weekly-report --format json", "the same as data"),
    ),
    "request": (
        ('alloy request release-notes --input version=1.2 --reason "hotfix"', ""),
        ("alloy request nightly --reason rerun --name nightly-rerun", "a chosen file name"),
        ("alloy request nightly --reason rerun --format json | jq -r .path", "the file to commit"),
    ),
    "schema": (
        ("alloy schema", "the kinds there are"),
        ("alloy schema intent", "the JSON Schema of Intent"),
        ("alloy schema --out schemas/", "every kind's schema into a directory"),
    ),
    "approve": (
        ('alloy approve exe-0123456789abcdef --gate deploy/1 --comment "Notes read; go."', ""),
        ('alloy approve exe-0123456789abcdef --gate deploy --reject --comment "Not Friday."', ""),
        ('alloy approve exe-0123456789abcdef --gate migrate --resolve --comment "Done."', ""),
        ('alloy approve exe-0123456789abcdef --gate deploy --comment "Go." --format json', ""),
    ),
    "status": (
        ("alloy status", "each intent, its executions and evidence"),
        ("git fetch && alloy status --all", "every execution, after a fetch"),
        ("alloy status --format json", "the same as data"),
    ),
    "review": (
        ("alloy review --base origin/main", "the branch checked out against main"),
        ("alloy review --base HEAD --staged --format github", "a pre-commit hook"),
        ("alloy review --base main --head feature --format json", ""),
    ),
    "critique": (
        ("alloy critique", "every intent"),
        ("alloy critique weekly-report --no-assistant", "one intent, no external assistant"),
        ("alloy critique --format json", "the findings as data"),
    ),
    "demo": (
        ("alloy demo", "an example repository in alloy-demo/"),
        ("alloy demo /tmp/try", "somewhere else"),
    ),
    "ui": (
        ("alloy ui", "this clone's origin, on 127.0.0.1:8780"),
        ("alloy ui --repo ../team-a --repo https://git.example.com/b.git --open", ""),
        ("alloy ui --listen 0.0.0.0:8780 --token-file /etc/alloy/ui-tokens", ""),
    ),
}

EXIT_CODES: dict[str, dict[int, str]] = {
    "init": {1: "this directory, or one above it, is initialized already, or a name is no slug"},
    "new intent": {
        1: "NAME is taken or no slug, or a given value is refused (nothing is written)",
        2: "--goal missing with --no-input, or no input left to answer a question",
    },
    "check": {0: "every document is valid (warnings allowed)", 1: "a document is invalid"},
    "compile": {
        0: "written (or, with --check, up to date)",
        1: "a document is invalid, or with --check an artifact is stale, missing or extra",
    },
    "explain": {1: "no such intent, or it is not valid"},
    "request": {1: "no such intent, its artifact is missing or stale, or an input is wrong"},
    "schema": {2: "an unknown kind"},
    "approve": {1: "a malformed execution id, an empty comment, or a file with other content"},
    "status": {1: "--ref names no commit, or .alloy/ cannot be read"},
    "review": {0: "nothing blocking", 1: "blocking findings, or a revision does not exist"},
    "critique": {0: "findings or none (it advises)", 1: "NAME does not exist or is not valid"},
    "demo": {1: "DIRECTORY holds other files"},
    "ui": {0: "stopped", 1: "bad options, or no repository can be read"},
}


def walk(
    group: click.Group, prefix: str = "", *, load: bool = False
) -> Iterator[tuple[str, click.Command]]:
    """Every command below `group` (groups too) with its path (`new intent`), `group` first: those
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
