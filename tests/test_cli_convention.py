"""One convention for both CLIs (docs/cli.md): every command, found by walking the click groups
(a new command is covered by itself), has examples and exit codes in its `--help`; every command
with `--format json` prints a document that its schema under docs/schemas/ accepts, on a
repository a real reconcile ran on (the commands that write: on a clone of it, or a new one);
the versions have one shape; docs/cli.md is what the commands say; the pre-commit hooks work as
pre-commit calls them; `rich` is never loaded to start."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import jsonschema
import pytest
import yaml

from alloy.cli import _help as alloy_help
from alloy.cli import cli as alloy_cli
from foundry.cli import _help as foundry_help
from foundry.cli import cli as foundry_cli
from tests.conftest import GitRepo, git, intent_yaml, run_cli
from tests.reconcile_support import World

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "docs" / "schemas"
BIN = Path(sys.executable).parent

#: Commands whose --format json is a document format of its own, not the CLI's convention: the
#: Trace document itself (no schemaVersion; schemas/alloy.dev/v1/trace.schema.json).
DOCUMENT_FORMATS = {"foundry traces export"}


def _commands() -> Iterator[tuple[str, str, click.Command]]:
    for prog, group in GROUPS.items():
        for path, command in HELPS[prog].walk(group, load=True):
            yield prog, path, command


GROUPS: dict[str, click.Group] = {"alloy": alloy_cli, "foundry": foundry_cli}
HELPS: dict[str, ModuleType] = {"alloy": alloy_help, "foundry": foundry_help}


COMMANDS = [(prog, path) for prog, path, _ in _commands()]
BY_NAME = {f"{prog} {path}".strip(): command for prog, path, command in _commands()}


def _options(command: click.Command) -> set[str]:
    names = {"-h", "--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def _example_args(line: str, name: str) -> list[str]:
    """The arguments an example gives to command `name` (up to a pipe or `&&`)."""
    words = shlex.split(line)
    head = name.split()
    for i in range(len(words)):
        if words[i : i + len(head)] == head:
            rest = words[i + len(head) :]
            for j, word in enumerate(rest):
                if word in ("|", "&&", ">", ";"):
                    return rest[:j]
            return rest
    raise AssertionError(f"the example {line!r} does not run {name}")


@pytest.mark.parametrize(("prog", "path"), COMMANDS, ids=[f"{p} {c}".strip() for p, c in COMMANDS])
def test_every_help_has_examples_and_exit_codes(prog: str, path: str, tmp_path: Path) -> None:
    name = f"{prog} {path}".strip()
    result = run_cli(prog, *path.split(), "--help", cwd=tmp_path)
    assert result.code == 0, result.err
    assert "Examples:" in result.out, f"{name}: add its examples to {prog}/cli/_help.py"
    assert "Exit codes:" in result.out, f"{name}: no exit codes in --help"
    examples, _, codes = result.out.split("Examples:", 1)[1].partition("Exit codes:")
    lines = [line.strip() for line in examples.splitlines() if line.strip()]
    runs = [line for line in lines if re.search(rf"(^|[|&] ){prog}( |$)", line)]
    assert runs, f"{name}: no example runs it"
    numbers = {int(m) for m in re.findall(r"^\s+(\d+)\s+\S", codes, re.M)}
    assert {0, 1, 2, 3, 130} <= numbers, (name, codes)
    command = BY_NAME[name]
    if path and not isinstance(command, click.Group):
        # Every example runs this very command, with options it has.
        for line, _what in HELPS[prog].EXAMPLES[path]:
            args = _example_args(line, name)
            unknown = {a.split("=")[0] for a in args if a.startswith("-") and a != "-"} - _options(
                command
            )
            assert not unknown, f"{name}: example {line!r} uses {sorted(unknown)}"


def test_versions_have_one_shape(tmp_path: Path) -> None:
    from alloy._version import __version__ as alloy_version
    from foundry._version import __version__ as foundry_version

    alloy = run_cli("alloy", "--version", cwd=tmp_path)
    foundry = run_cli("foundry", "--version", cwd=tmp_path)
    assert alloy.out == f"alloy {alloy_version} (writes alloy.dev/v1)\n"
    assert foundry.out == f"foundry {foundry_version} (reads alloy.dev/v1)\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["alloy", "--version"],
        ["foundry", "--version"],
        ["alloy", "schema"],
        ["alloy", "schema", "--format", "json"],
    ],
)
def test_rich_is_not_imported_to_start_or_when_piped(argv: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    assert "click" in modules  # not vacuous: importtime reported the imports
    assert not [m for m in modules if m.split(".")[0] in ("rich", "markdown_it", "pygments")]


def test_version_loads_no_command_module(tmp_path: Path) -> None:
    """`alloy --version` answers from the group alone: no command module, and so neither the
    Alloy core's models nor pydantic, is imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "alloy", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "alloy.cli._root" in modules  # not vacuous
    loaded = {m for m in modules if m.startswith(("pydantic", "alloy.model", "alloy.cli._c"))}
    assert not loaded, sorted(loaded)


def test_every_alloy_command_is_where_the_lazy_group_looks() -> None:
    from alloy.cli._root import COMMAND_MODULES

    registered = {
        name: command.callback.__module__.rsplit(".", 1)[-1]
        for name, command in alloy_cli.commands.items()
        if command.callback is not None
    }
    assert registered == COMMAND_MODULES  # walk(load=True) above loaded every module


def test_docs_cli_md_is_what_the_commands_say() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli-docs"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr


def test_shell_completion_is_documented_and_works(tmp_path: Path) -> None:
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert "_ALLOY_COMPLETE=bash_source alloy" in docs
    assert "_FOUNDRY_COMPLETE=bash_source foundry" in docs
    env = {
        "COMP_WORDS": "foundry traces li",
        "COMP_CWORD": "2",
        "_FOUNDRY_COMPLETE": "bash_complete",
    }
    done = run_cli("foundry", cwd=tmp_path, env=env)
    assert done.out.split() == ["plain,list"], done
    env = {
        "COMP_WORDS": "alloy check --format ",
        "COMP_CWORD": "3",
        "_ALLOY_COMPLETE": "bash_complete",
    }
    done = run_cli("alloy", cwd=tmp_path, env=env)
    assert done.out.split() == ["plain,text", "plain,json", "plain,github"], done


# --- every data command's JSON, against its documented schema -------------------------------


def _data_commands() -> set[str]:
    found = set()
    for name, command in BY_NAME.items():
        for param in command.params:
            if (
                param.name == "format"
                and isinstance(param.type, click.Choice)
                and "json" in param.type.choices
            ):
                found.add(name)
    return found - DOCUMENT_FORMATS


def _reconciled(world: World) -> str:
    """The world's remote after one real reconcile of an intent with evidence: its execution."""
    world.add_intent("build")
    world.merge("add build")
    run = world.reconcile()
    assert run.code == 0, run.result.err
    git(world.work.path, "fetch", "-q", "origin")
    [execution] = run.report["started"]
    return str(execution)


def _cases(world: World, execution: str) -> dict[str, tuple[list[str], set[int]]]:
    state = ["--state", str(world.state())]
    return {
        "alloy check": (["check"], {0}),
        "alloy compile": (["compile"], {0}),
        "alloy explain": (["explain", "build"], {0}),
        "alloy status": (["status", "--all"], {0}),
        "alloy critique": (["critique", "--no-assistant"], {0}),
        "alloy review": (["review", "--base", "HEAD~1", "--head", "HEAD"], {0, 1}),
        "alloy schema": (["schema"], {0}),
        "foundry plan": (["plan", *state], {0}),
        "foundry traces list": (["traces", "list", *state], {0}),
        "foundry traces show": (["traces", "show", execution, *state], {0}),
        "foundry checks list": (["checks", "list", "--repo", world.url], {0}),
        "foundry checks show": (["checks", "show", execution, "--repo", world.url], {0}),
        "foundry reconcile": (["reconcile", "--repo", world.url, "--once", *state], {0}),
        "foundry status": (["status", "--repo", world.url], {0}),
        "foundry run": (["run", "--artifact", "build", "--state", str(world.tmp / "run")], {0}),
    }


def _writes(world: World, execution: str) -> dict[str, tuple[list[str], set[int], Path]]:
    """The commands that write a document, each with where it runs: `alloy init` in a new git
    repository; the others in a second clone of the world's remote, with an intent that takes
    requests compiled there (the first clone stays as the commands that read see it)."""
    fresh = world.tmp / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q", "-b", "main")
    clone = world.tmp / "second"
    git(world.tmp, "clone", "-q", world.url, str(clone))
    (clone / ".alloy/intents/asked.yaml").write_text(intent_yaml("asked"), encoding="utf-8")
    assert run_cli("alloy", "compile", "-q", cwd=clone).code == 0
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "add asked")
    new = ["--goal", "It is green", "--owner", "alice", "--acceptance", "CI passes", "--no-input"]
    return {
        "alloy init": (["init", "--owner", "alice"], {0}, fresh),
        "alloy new intent": (["new", "intent", "later", *new], {0}, clone),
        "alloy request": (["request", "asked", "--reason", "rerun"], {0}, clone),
        "alloy approve": (
            ["approve", execution, "--gate", "work", "--comment", "go", "--approver", "alice"],
            {0},
            clone,
        ),
    }


def _documents(name: str, out: str) -> list[Any]:
    if name == "foundry reconcile":  # JSON Lines: one document per pass
        return [json.loads(line) for line in out.splitlines() if line.strip()]
    return [json.loads(out)]


def test_every_data_command_prints_json_its_schema_accepts(world: World) -> None:
    execution = _reconciled(world)
    cases = {
        **{
            name: (args, codes, world.work.path)
            for name, (args, codes) in _cases(world, execution).items()
        },
        **_writes(world, execution),
    }
    commands = _data_commands()
    missing = sorted(commands - set(cases))
    assert not missing, f"add a case (and docs/schemas/<command>.schema.json) for {missing}"
    assert {"alloy explain", "alloy init", "alloy approve", "foundry traces list"} <= commands
    problems = []
    for name in sorted(commands):
        args, codes, cwd = cases[name]
        schema_path = SCHEMAS / f"{name.replace(' ', '-')}.schema.json"
        if not schema_path.is_file():
            problems.append(f"{name}: no {schema_path.relative_to(ROOT)}")
            continue
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        result = run_cli(name.split()[0], *args, "--format", "json", cwd=cwd)
        if result.code not in codes:
            problems.append(f"{name}: exit {result.code}: {result.err[-500:]}")
            continue
        for document in _documents(name, result.out):
            errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document), key=str)
            problems += [f"{name}: {list(e.absolute_path)}: {e.message}" for e in errors[:3]]
            if document.get("schemaVersion") != 1:
                problems.append(f"{name}: schemaVersion is not first-class: {document!r:.200}")
    assert not problems, "\n".join(problems)


def test_the_old_json_flags_still_work(world: World) -> None:
    execution = _reconciled(world)
    status = run_cli("alloy", "status", "--json", cwd=world.work.path)
    assert json.loads(status.out)["intents"][0]["executions"][0]["id"] == execution
    listed = run_cli("foundry", "checks", "list", "--repo", world.url, "--json", cwd=world.tmp)
    assert [r["external_id"] for r in json.loads(listed.out)] == [execution]  # the bare list
    plan = run_cli("foundry", "plan", "--json", "--state", str(world.state()), cwd=world.work.path)
    assert json.loads(plan.out)["plan"][0]["execution"] == execution
    for name in ("alloy status", "foundry plan", "foundry checks list", "foundry reconcile"):
        assert "--json" not in run_cli(*name.split(), "--help", cwd=world.tmp).out  # hidden


# --- pre-commit ---------------------------------------------------------------------------


def _hook_run(hook: dict[str, Any], repo: Path) -> subprocess.CompletedProcess[str]:
    """Run `hook` as pre-commit does: its entry with the staged files its `files` pattern
    matches (appended when pass_filenames is not false); skipped (None) when none match."""
    staged = git(repo, "diff", "--cached", "--name-only").split()
    files = [f for f in staged if re.search(hook.get("files", ""), f)]
    assert files, f"{hook['id']} would be skipped for {staged}"
    argv = shlex.split(hook["entry"]) + list(hook.get("args", []))
    if hook.get("pass_filenames", True):
        argv += files
    return subprocess.run(
        argv,
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        check=False,
    )


def test_pre_commit_hooks_run_as_pre_commit_calls_them(repo: GitRepo) -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert {"alloy-check", "alloy-compile-check"} <= set(hooks)
    for hook in hooks.values():
        assert hook["language"] == "python", hook  # pre-commit installs this package for it
        assert re.search(hook["files"], ".alloy/intents/x.yaml")
        assert not re.search(hook["files"], "README.md")
        assert not re.search(hook["files"], "src/.alloy.py")
    # A broken intent: both hooks fail, naming the file.
    repo.write(
        {".alloy/intents/a.yaml": intent_yaml("a").replace("effects: none", "effects: nope")}
    )
    git(repo.path, "add", "-A")
    broken = _hook_run(hooks["alloy-check"], repo.path)
    assert broken.returncode == 1, broken
    assert ".alloy/intents/a.yaml:" in broken.stdout + broken.stderr
    assert _hook_run(hooks["alloy-compile-check"], repo.path).returncode == 1
    # Valid but not compiled: check passes, compile --check names the missing artifact.
    repo.write({".alloy/intents/a.yaml": intent_yaml("a")})
    git(repo.path, "add", "-A")
    assert _hook_run(hooks["alloy-check"], repo.path).returncode == 0
    stale = _hook_run(hooks["alloy-compile-check"], repo.path)
    assert stale.returncode == 1
    assert ".alloy/artifacts/a.json" in stale.stderr + stale.stdout
    assert not (repo.path / ".alloy/artifacts/a.json").exists()  # a check writes nothing
    # Compiled and staged: both pass.
    assert run_cli("alloy", "compile", cwd=repo.path).code == 0
    git(repo.path, "add", "-A")
    for hook in (hooks["alloy-check"], hooks["alloy-compile-check"]):
        done = _hook_run(hook, repo.path)
        assert done.returncode == 0, (hook["id"], done.stdout, done.stderr)
    # The review of what is staged: a new intent that starts active blocks; proposed does not.
    review = _hook_run(hooks["alloy-review"], repo.path)
    assert review.returncode == 1, review
    assert "lifecycle-move-disallowed" in review.stdout
    assert "\x1b[" not in review.stdout
    assert "**" not in review.stdout
    git(repo.path, "rm", "-q", "-r", "--cached", ".alloy/artifacts")
    repo.write({".alloy/intents/a.yaml": intent_yaml("a", state="proposed")})
    git(repo.path, "add", ".alloy/intents/a.yaml")
    review = _hook_run(hooks["alloy-review"], repo.path)
    assert review.returncode == 0, review.stdout


def test_the_review_hook_runs_on_a_repository_without_commits(tmp_path: Path) -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    git(tmp_path, "init", "-q", "-b", "main")
    assert run_cli("alloy", "init", "--owner", "alice", cwd=tmp_path).code == 0
    (tmp_path / ".alloy/intents/a.yaml").write_text(intent_yaml("a", state="proposed"))
    git(tmp_path, "add", "-A")
    review = _hook_run(hooks["alloy-review"], tmp_path)
    assert "no such revision" not in review.stderr, review.stderr
    assert "Review of staged against HEAD" in review.stdout
    assert "added Intent a" in review.stdout  # everything staged is new


def test_both_clis_print_through_the_same_output_module() -> None:
    """alloy and foundry may not import each other, so each CLI has its own output module;
    they stay the same text but for the CLI's name, so the convention cannot drift apart."""
    root = Path(__file__).resolve().parent.parent
    alloy_text = (root / "alloy/cli/_output.py").read_text()
    foundry_text = (root / "foundry/cli/_output.py").read_text()
    assert foundry_text.replace("foundry", "alloy") == alloy_text
