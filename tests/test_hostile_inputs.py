"""Hostile inputs (issue 12): what a pull request or a checkout can put under `.alloy/` to make
the tools crash, hang, follow a file they should not, or write something.

Two parts. First the failures reported in the issue, one test each, written before the fix:
symbolic-link loops and FIFOs under `.alloy/`, a state directory that cannot be created, and a
chain of symbolic links that `alloy check` and `alloy review` read differently. Then a corpus,
made by hand here: malformed YAML of every kind, links (loops, chains, out of the repository,
to devices, to directories), FIFOs, sockets, unreadable files, huge and deeply nested documents.
Each case goes through `alloy check`, `alloy compile`, `alloy review` (the case committed as the
head of a pull request, where git can carry it) and `foundry plan` (where the case is an
artifact or a request), each a real process under a timeout of a few seconds: a hang fails the
test instead of blocking it. Every run must exit 1, name the file, print no traceback, and
write nothing: the work tree, the parse cache and Foundry's state directory are compared before
and after. A case git can carry says the same words in `alloy check` and `alloy review`, and a
case about what a file is says them in `foundry plan` too; a last test holds Alloy's and
Foundry's implementations of the rules (Foundry never imports Alloy) to the same answers on
thousands of generated trees. Unreadable files are tried as root too, with the capabilities
that let root read anything dropped (`setpriv`), and skipped only where that is not possible.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT, Result, intent_yaml, run_cli
from tests.reconcile_support import World, lines, only_execution

#: Seconds one command of the corpus may take before it counts as hung (a timeout, never a
#: timing assertion); the tests of single failures allow twice as much.
HANG = 5.0
#: For commands that are not under test (setting a case up): only a real hang stops them.
SETUP = 120.0
#: How many symbolic links in a row the loader follows (one number for check and review).
MAX_LINKS = 40
FIFO_YAML = "a named pipe (FIFO), not a regular file; replace it with a regular YAML file"
REQUEST = ".alloy/requests/r.yaml"
INTENT = ".alloy/intents/x.yaml"
PROJECT_FILE = ".alloy/alloy.yaml"
ARTIFACT = ".alloy/artifacts/good.json"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


# --- running the tools ---------------------------------------------------------------------------


def unprivileged() -> list[str] | None:
    """A command prefix that takes away root's power to read and write any file (the two file
    permission capabilities, dropped with `setpriv`), so that `chmod 000` means something; no
    prefix for anyone else; None when running as root without a way to drop them."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    return prefix if probe.returncode == 0 else None


def run(
    prog: str,
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 2 * HANG,
    prefix: list[str] | None = None,
) -> Result:
    """`prog` as a real process; a run longer than `timeout` seconds fails the test as a hang."""
    command = [*(prefix or []), sys.executable, "-m", prog, *args]
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            env={**os.environ, **(env or {})},
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{prog} {' '.join(args)}` hung (still running after {timeout:.0f} s)")
    return Result(proc.returncode, proc.stdout, proc.stderr)


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout


def commit(root: Path, message: str) -> None:
    sh(root, "add", "-A")
    sh(root, "commit", "-q", "--allow-empty", "-m", message)


def state_of(root: Path) -> dict[str, Any]:
    """Every entry under `root` but `.git/`, looked at without following or opening anything
    that is not a regular file: what "nothing written" is checked against."""
    out: dict[str, Any] = {}
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (top == str(root) and d == ".git")]
        for name in dirs + files:
            path = os.path.join(top, name)
            info = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(info.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                try:
                    with open(path, "rb") as fh:
                        out[rel] = ("file", fh.read())
                except PermissionError:
                    out[rel] = ("file", info.st_size, info.st_mtime_ns)
            else:
                out[rel] = (stat.S_IFMT(info.st_mode), info.st_mtime_ns)
    return out


def cache_of(root: Path) -> bytes | None:
    cache = root / ".git" / "alloy" / "cache.json"
    return cache.read_bytes() if cache.exists() else None


def assert_no_crash(result: Result) -> None:
    output = result.out + result.err
    assert "Traceback" not in output, output
    assert "internal error" not in output, output


def assert_user_error(result: Result, path: str, what: str) -> None:
    output = result.out + result.err
    assert "Traceback" not in output, f"{what}:\n{output}"
    assert "internal error" not in output, f"{what}:\n{output}"
    assert result.code == 1, f"{what} exited {result.code}:\n{output}"
    assert path in output, f"{what} does not name {path}:\n{output}"


def report_lines(result: Result, path: str) -> list[str]:
    """What `alloy check` prints about `path`: `line:col: message` of each `path:line:col:
    message` line."""
    return [
        line[len(path) + 1 :]
        for line in (result.out + result.err).splitlines()
        if line.startswith(path + ":")
    ]


DRIVER = Path(__file__).resolve().parent / "hostile_driver.py"


def run_all(
    commands: list[tuple[str, ...]], cwd: Path, scratch: Path, prefix: list[str] | None = None
) -> list[Result]:
    """Each command in a process of its own, forked from one interpreter that imported both
    command lines once (tests/hostile_driver.py); one still running after HANG seconds is
    killed and fails the test as hung."""
    scratch.mkdir(exist_ok=True)
    proc = subprocess.run(
        [
            *(prefix or []),
            sys.executable,
            str(DRIVER),
            str(scratch),
            str(HANG),
            json.dumps(commands),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG * len(commands) + 30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = []
    for command, got in zip(commands, json.loads(proc.stdout), strict=True):
        if got["hung"]:
            pytest.fail(f"`{' '.join(command)}` hung (still running after {HANG:.0f} s)")
        out.append(Result(got["code"], got["out"], got["err"]))
    return out


def review(root: Path) -> tuple[Result, dict[str, Any]]:
    result = run("alloy", "review", "--base", "main", "--head", "pr", "--format", "json", cwd=root)
    data = json.loads(result.out) if result.out.startswith("{") else {}
    return result, data


def invalid(data: dict[str, Any]) -> dict[str, str]:
    return {
        f["path"]: f["message"]
        for f in data.get("findings", [])
        if f["kind"] in ("invalid-document",)
    }


# --- the repository every case starts from ---------------------------------------------------


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository on `main` with a valid project, one valid active intent `good` that
    accepts requests, and its artifact: compiled, committed, checked (so the cache is warm)."""
    root = tmp_path_factory.mktemp("hostile-template") / "repo"
    root.mkdir()
    sh(root, "init", "-q", "-b", "main")
    (root / ".alloy/intents").mkdir(parents=True)
    (root / ".alloy/requests").mkdir()
    (root / ".alloy/alloy.yaml").write_text(PROJECT, encoding="utf-8")
    (root / ".alloy/intents/good.yaml").write_text(intent_yaml("good"), encoding="utf-8")
    (root / ".alloy/requests/.gitkeep").write_text("", encoding="utf-8")
    env = {"HOME": str(root.parent), "XDG_CACHE_HOME": str(root.parent / "cache"), **GIT_ENV}
    compiled = subprocess.run(
        [sys.executable, "-m", "alloy", "compile"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr
    commit(root, "a valid intent and its artifact")
    checked = subprocess.run(
        [sys.executable, "-m", "alloy", "check"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    assert checked.returncode == 0, checked.stderr  # and the parse cache is warm
    return root


@pytest.fixture
def work(template: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the template (links copied as links), on a new branch `pr`."""
    root = tmp_path / "repo"
    shutil.copytree(template, root, symlinks=True)
    sh(root, "checkout", "-q", "-b", "pr")
    yield root
    # chmod 000 files and directories would stop pytest from removing the tmp dir.
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)


# --- the failures of the issue, one by one ---------------------------------------------------


def _link(root: Path, rel: str, target: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


LOOPS = {
    "link-to-itself": (
        [(INTENT, "x.yaml")],
        INTENT,
        ".alloy/intents/x.yaml -> .alloy/intents/x.yaml",
    ),
    "a-b-a": (
        [(INTENT, "y.yaml"), (".alloy/intents/y.yaml", "x.yaml")],
        INTENT,
        ".alloy/intents/x.yaml -> .alloy/intents/y.yaml -> .alloy/intents/x.yaml",
    ),
    "project-file": (
        [(PROJECT_FILE, "alloy.yaml")],
        PROJECT_FILE,
        ".alloy/alloy.yaml -> .alloy/alloy.yaml",
    ),
}


@pytest.mark.parametrize("case", sorted(LOOPS))
def test_a_symbolic_link_loop_is_refused_not_a_crash(case: str, work: Path) -> None:
    links, path, chain = LOOPS[case]
    if path == PROJECT_FILE:
        (work / PROJECT_FILE).unlink()
    for rel, target in links:
        _link(work, rel, target)
    before, cache = state_of(work), cache_of(work)
    for command in ("check", "compile"):
        result = run("alloy", command, cwd=work)
        assert_user_error(result, path, f"alloy {command}")
        said = report_lines(result, path)
        assert (
            f"1:1: a symbolic-link loop ({chain}); replace the link with the file itself" in said
        ), said
        assert state_of(work) == before, f"alloy {command} wrote into the work tree"
        assert cache_of(work) == cache, f"alloy {command} changed the parse cache"


@pytest.mark.parametrize("path", [INTENT, PROJECT_FILE])
def test_a_fifo_is_refused_not_opened(path: str, work: Path) -> None:
    if (work / path).exists():
        (work / path).unlink()
    os.mkfifo(work / path)
    before, cache = state_of(work), cache_of(work)
    for command in ("check", "compile"):
        result = run("alloy", command, cwd=work)
        assert_user_error(result, path, f"alloy {command}")
        assert f"1:1: {FIFO_YAML}" in report_lines(result, path), result.err
        assert state_of(work) == before, f"alloy {command} wrote into the work tree"
        assert cache_of(work) == cache, f"alloy {command} changed the parse cache"


BAD_STATE = "/dev/null/x"


def _assert_state_error(result: Result, what: str) -> None:
    output = result.out + result.err
    assert result.code == 1, f"{what} exited {result.code}:\n{output}"
    assert_no_crash(result)
    for part in (BAD_STATE, "/dev/null is not a directory", "--state", "FOUNDRY_STATE"):
        assert part in result.err, output


@pytest.mark.parametrize(
    "args",
    [
        ("run", ".", "--artifact", "good"),
        ("plan", "."),
        ("traces", "list"),
        ("traces", "show"),
    ],
    ids=["run", "plan", "traces-list", "traces-show"],
)
def test_a_state_directory_that_cannot_be_created_is_a_user_error(
    args: tuple[str, ...], work: Path
) -> None:
    before = state_of(work)
    by_env = run("foundry", *args, cwd=work, env={"FOUNDRY_STATE": BAD_STATE})
    _assert_state_error(by_env, f"FOUNDRY_STATE={BAD_STATE} foundry {' '.join(args)}")
    by_option = run("foundry", *args, "--state", BAD_STATE, cwd=work)
    _assert_state_error(by_option, f"foundry {' '.join(args)} --state {BAD_STATE}")
    assert state_of(work) == before


def test_reconcile_with_a_state_directory_that_cannot_be_created_is_a_user_error(
    work: Path,
) -> None:
    result = run(
        "foundry", "reconcile", "--repo", str(work), "--once", "--state", BAD_STATE, cwd=work
    )
    _assert_state_error(result, "foundry reconcile --state")
    by_env = run(
        "foundry",
        "reconcile",
        "--repo",
        str(work),
        "--once",
        cwd=work,
        env={"FOUNDRY_STATE": BAD_STATE},
    )
    _assert_state_error(by_env, "FOUNDRY_STATE=… foundry reconcile")


def test_a_state_directory_that_is_a_file_is_a_user_error(work: Path, tmp_path: Path) -> None:
    state = tmp_path / "state-file"
    state.write_text("not a directory")
    result = run("foundry", "run", ".", "--artifact", "good", "--state", str(state), cwd=work)
    assert result.code == 1, result
    assert_no_crash(result)
    for part in (str(state), "not a directory"):
        assert part in result.err, result.err


def test_a_state_directory_that_cannot_be_written_or_read_is_a_user_error(
    work: Path, tmp_path: Path
) -> None:
    prefix = unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: root writes into a read-only directory")
    state = tmp_path / "read-only"
    state.mkdir()
    state.chmod(0o555)
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    unreadable.chmod(0o000)
    try:
        result = run(
            "foundry", "run", ".", "--artifact", "good", "--state", str(state), cwd=work,
            prefix=prefix,
        )  # fmt: skip
        listed = run(
            "foundry", "traces", "list", "--state", str(unreadable), cwd=work, prefix=prefix
        )
    finally:
        state.chmod(0o755)
        unreadable.chmod(0o755)
    assert result.code == 1, result
    assert_no_crash(result)
    for part in (str(state), "cannot be written"):
        assert part in result.err, result.err
    assert listed.code == 1, listed
    assert_no_crash(listed)
    for part in (str(unreadable), "cannot be read"):
        assert part in listed.err, listed.err


def _chain(root: Path, links: int, text: bytes) -> list[str]:
    """`.alloy/intents/x.yaml` read through `links` symbolic links in a row: x.yaml -> .l1 ->
    ... -> x.md (neither dot files without `.yaml` nor notes are documents: the loader
    welcomes them). Returns the paths of the links, first to last."""
    intents = root / ".alloy/intents"
    (intents / "x.md").write_bytes(text)
    names = ["x.yaml", *[f".l{i}" for i in range(1, links)]]
    if (intents / "x.yaml").exists() or (intents / "x.yaml").is_symlink():
        (intents / "x.yaml").unlink()
    for name, target in zip(names, [*names[1:], "x.md"], strict=True):
        os.symlink(target, intents / name)
    return [f".alloy/intents/{n}" for n in names]


def test_a_chain_of_ten_links_reads_the_same_in_check_and_review(work: Path) -> None:
    """Check and review follow the same chain the same way; a finding about the document is
    anchored at the file that holds its text, not at a link."""
    sh(work, "checkout", "-q", "main")
    (work / INTENT).write_text(intent_yaml("x"), encoding="utf-8")
    assert run("alloy", "compile", cwd=work, timeout=SETUP).code == 0
    commit(work, "intent x")
    sh(work, "checkout", "-q", "-B", "pr")
    changed = intent_yaml("x").replace("print(1)", "print(2)")
    _chain(work, 10, changed.encode())
    check = run("alloy", "check", cwd=work)
    assert check.code == 0, check.err + check.out
    assert run("alloy", "compile", cwd=work, timeout=SETUP).code == 0
    commit(work, "x read through ten links, its command changed")
    result, data = review(work)
    assert "Traceback" not in result.err
    assert invalid(data) == {}, invalid(data)
    [finding] = [f for f in data["findings"] if f["kind"] == "run-changed"]
    line = changed.splitlines().index("      - id: build") + 2  # `run:` follows the block's id
    assert changed.splitlines()[line - 1].strip().startswith("run:")
    assert (finding["path"], finding["line"]) == (".alloy/intents/x.md", line), finding
    # A problem in its text is placed in that file too, by check and review alike.
    broken = changed.replace("effects: none", "effects: maybe")
    (work / ".alloy/intents/x.md").write_text(broken, encoding="utf-8")
    check = run("alloy", "check", cwd=work)
    assert check.code == 1, check
    at = broken.splitlines().index("        effects: maybe") + 1
    [said] = report_lines(check, ".alloy/intents/x.md")
    assert said.startswith(f"{at}:"), said
    assert said.endswith(" (read through the symbolic link .alloy/intents/x.yaml)"), said
    commit(work, "x's command effects misspelt")
    _, data = review(work)
    [found] = [f for f in data["findings"] if f["kind"] == "invalid-document"]
    assert (found["path"], found["line"]) == (".alloy/intents/x.md", at), found
    assert said.split(": ", 1)[1] == found["message"]


def test_a_chain_longer_than_the_limit_is_refused_the_same_way_by_check_and_review(
    work: Path,
) -> None:
    links = _chain(work, MAX_LINKS + 1, intent_yaml("x").encode())
    check = run("alloy", "check", cwd=work)
    assert_user_error(check, INTENT, "alloy check")
    said = report_lines(check, INTENT)
    message = (
        f"symbolic link to '.l1' starts a chain of more than {MAX_LINKS} symbolic links; link "
        "to the file itself"
    )
    assert f"1:1: {message}" in said, said
    # Every other link of the chain is short enough (dot files, not documents: no finding).
    assert not [line for line in check.err.splitlines() if any(f"{p}:" in line for p in links[1:])]
    commit(work, "a long chain")
    result, data = review(work)
    assert result.code == 1, result.err
    assert invalid(data) == {INTENT: message}, invalid(data)


def test_reconcile_reads_links_by_the_same_rules_and_in_the_same_words_as_check(
    world: World,
) -> None:
    """The default branch as a pass reads it: a request read through a link to a file inside
    `.alloy/` runs; a link loop is refused, reported in the words of `alloy check`."""
    inputs = "    inputs:\n      who: {type: string, default: nobody}\n"
    mark = world.add_intent("greet", on="{request: true}", inputs=inputs)
    world.merge("a request-only intent")
    world.alloy("request", "greet", "--input", "who=bob", "--reason", "r", "--name", "hi-bob")
    requests = world.work.path / ".alloy/requests"
    (requests / "hi-bob.yaml").rename(requests / "hi-bob.md")
    os.symlink("hi-bob.md", requests / "hi-bob.yaml")
    os.symlink("loop.yaml", requests / "loop.yaml")
    check = run_cli("alloy", "check", cwd=world.work.path)
    [said] = report_lines(check, ".alloy/requests/loop.yaml")
    world.merge("a linked request and a link loop", compile_=False)
    run = world.reconcile()
    assert "Traceback" not in run.result.err
    assert run.report["refused"] == [f".alloy/requests/loop.yaml: {said.removeprefix('1:1: ')}"]
    execution = only_execution(run)
    assert world.trace(execution)["event"]["key"].startswith("hi-bob@")
    assert lines(mark) == [f"{execution} 1 bob"]


# --- the corpus ------------------------------------------------------------------------------

#: The envelope of a request for `good` (its digest is not pinned: the cases break before that).
REQUEST_HEAD = "apiVersion: alloy.dev/v1\nkind: Request\nmetadata:\n  name: r\nspec:\n"
REQUEST_OK = (
    REQUEST_HEAD + "  artifact: good@sha256:" + "0" * 64 + "\n  reason: r\n  requestedBy: alice\n"
)


def laughs(levels: int = 9, fan: int = 9) -> str:
    """A "billion laughs": `levels` levels of `fan` aliases each."""
    text = REQUEST_HEAD + '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels):
        text += f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]\n"
    return text


def quadratic() -> str:
    """Few aliases, each to a very large value: expansion without many alias uses."""
    big = ", ".join(f'"{i:06d}"' for i in range(20_000))
    return REQUEST_HEAD + f"  a: &a [{big}]\n  b: [{', '.join(['*a'] * 60)}]\n"


Make = Callable[[Path], None]


def content(rel: str, data: bytes | str) -> Make:
    def make(root: Path) -> None:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        target.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))

    return make


def link(rel: str, target: str | Callable[[Path], str]) -> Make:
    def make(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        os.symlink(target(root) if callable(target) else target, path)

    return make


def steps(*makes: Make) -> Make:
    def make(root: Path) -> None:
        for step in makes:
            step(root)

    return make


def fifo(rel: str) -> Make:
    def make(root: Path) -> None:
        path = root / rel
        if path.exists() or path.is_symlink():
            path.unlink()
        os.mkfifo(path)

    return make


def unix_socket(rel: str) -> Make:
    def make(root: Path) -> None:
        path = root / rel
        if path.exists() or path.is_symlink():
            path.unlink()
        # A socket's path is limited to ~100 bytes: bind from inside its directory.
        here = os.getcwd()
        os.chdir(path.parent)
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path.name)
            sock.close()  # the socket file stays
        finally:
            os.chdir(here)

    return make


def unreadable(rel: str, data: str = REQUEST_OK) -> Make:
    def make(root: Path) -> None:
        content(rel, data)(root)
        (root / rel).chmod(0o000)

    return make


def unreadable_dir(rel: str) -> Make:
    def make(root: Path) -> None:
        content(rel + "/r.yaml", REQUEST_OK)(root)
        (root / rel).chmod(0o000)

    return make


def outside(root: Path) -> str:
    """A valid request outside the repository (next to it in the test's tmp dir)."""
    path = root.parent / "outside" / "r.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(REQUEST_OK, encoding="utf-8")
    return str(path)


def outside_dir(root: Path) -> str:
    path = root.parent / "outside-dir"
    path.mkdir(exist_ok=True)
    (path / "r.yaml").write_text(REQUEST_OK, encoding="utf-8")
    return str(path)


def deep_block(levels: int) -> str:
    """`levels` block sequences nested on one line (`- - - … x`)."""
    return REQUEST_HEAD + "  inputs:\n    v:\n      " + "- " * levels + "x\n"


@dataclass(frozen=True)
class Case:
    id: str
    path: str  # the file the reports must name
    make: Make
    git: bool = True  # git can carry it (reviewed as the head of a pull request)
    alloy: bool = True  # `alloy check` and `alloy compile` refuse it (artifacts are not checked)
    needs_non_root: bool = False

    @property
    def foundry(self) -> bool:
        return self.path.startswith((".alloy/requests/", ".alloy/artifacts/"))


R = REQUEST
CASES = [
    # --- malformed YAML -----------------------------------------------------------------------
    Case("tab-indentation", R, content(R, REQUEST_OK.replace("  reason", "\treason"))),
    Case("unclosed-double-quote", R, content(R, REQUEST_OK.replace("reason: r", 'reason: "r'))),
    Case("unclosed-single-quote", R, content(R, REQUEST_OK.replace("reason: r", "reason: 'r"))),
    Case("unclosed-flow-sequence", R, content(R, REQUEST_HEAD + "  inputs: {v: [1, 2}\n")),
    Case("unclosed-flow-mapping", R, content(R, REQUEST_HEAD + "  inputs: {v: 1\n")),
    Case("duplicate-keys", R, content(R, REQUEST_OK + "  reason: again\n")),
    Case("duplicate-top-level-keys", R, content(R, REQUEST_OK + "kind: Intent\n")),
    Case("merge-key", R, content(R, REQUEST_HEAD + "  base: &b {reason: r}\n  <<: *b\n")),
    Case("alias-to-itself", R, content(R, REQUEST_HEAD + "  inputs: &a {v: *a}\n")),
    Case("billion-laughs", R, content(R, laughs())),
    Case("quadratic-blowup", R, content(R, quadratic())),
    Case(
        "many-aliases",
        R,
        content(R, REQUEST_HEAD + "  a: &a x\n" + "".join(f"  b{i}: *a\n" for i in range(500))),
    ),
    Case(
        "python-object-tag",
        R,
        content(R, REQUEST_OK + "  x: !!python/object/apply:os.system ['touch pwned']\n"),
    ),
    Case("python-name-tag", R, content(R, REQUEST_OK + "  x: !!python/name:os.system\n")),
    Case("binary-tag", R, content(R, REQUEST_OK + "  x: !!binary aGVsbG8=\n")),
    Case("custom-tag", R, content(R, REQUEST_OK + "  x: !foo bar\n")),
    Case("set-tag", R, content(R, REQUEST_OK + "  x: !!set {a, b}\n")),
    Case("huge-scalar", R, content(R, REQUEST_OK + "  x: " + "a" * (3 * 1024 * 1024) + "\n")),
    Case(
        "huge-document", R, content(R, REQUEST_OK + "".join(f"  k{i}: v\n" for i in range(400_000)))
    ),
    Case("huge-integer", R, content(R, REQUEST_HEAD + "  inputs: {v: " + "9" * 100_000 + "}\n")),
    Case(
        "deep-flow-sequence",
        R,
        content(R, REQUEST_HEAD + "  x: " + "[" * 10_000 + "]" * 10_000 + "\n"),
    ),
    Case(
        "deep-flow-mapping",
        R,
        content(R, REQUEST_HEAD + "  x: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n"),
    ),
    Case("deep-block-sequence", R, content(R, deep_block(10_000))),
    Case("invalid-utf8", R, content(R, REQUEST_OK.encode() + b"  x: \xff\xfe\x80\n")),
    Case("utf16-with-bom", R, content(R, REQUEST_OK.encode("utf-16"))),
    Case("utf32-with-bom", R, content(R, REQUEST_OK.encode("utf-32"))),
    Case("utf8-bom-inside-a-key", R, content(R, REQUEST_OK.replace("reason:", "rea\ufeffson:"))),
    Case("nul-byte", R, content(R, REQUEST_OK.replace("reason: r", "reason: r\x00r"))),
    Case("control-character", R, content(R, REQUEST_OK.replace("reason: r", "reason: r\x07"))),
    Case("multiple-documents", R, content(R, REQUEST_OK + "---\n" + REQUEST_OK)),
    Case("document-end-then-garbage", R, content(R, REQUEST_OK + "...\n]]]\n")),
    Case("root-is-a-list", R, content(R, "- " + REQUEST_OK.replace("\n", "\n  "))),
    Case("root-is-a-string", R, content(R, "just a string\n")),
    Case("root-is-a-number", R, content(R, "42\n")),
    Case("root-is-null", R, content(R, "null\n")),
    Case("empty", R, content(R, "")),
    Case("only-a-comment", R, content(R, "# nothing\n")),
    Case("non-string-key", R, content(R, REQUEST_OK + "  ? [a, b]\n  : c\n")),
    Case("float-where-int", R, content(R, REQUEST_HEAD + "  inputs: {v: 1.5e308}\n")),
    Case(
        "directive-and-tag",
        R,
        content(
            R, "%YAML 1.1\n%TAG !e! tag:evil.example,2000:\n---\n" + REQUEST_OK + "  x: !e!x 1\n"
        ),
    ),
    Case("intent-malformed", INTENT, content(INTENT, intent_yaml("x") + "  goal: [unclosed\n")),
    Case(
        "intent-python-tag",
        INTENT,
        content(
            INTENT,
            intent_yaml("x").replace(
                "Something stays true.", "!!python/object/apply:os.system [id]"
            ),
        ),
    ),
    Case("project-malformed", PROJECT_FILE, content(PROJECT_FILE, PROJECT + "  owners: [\n")),
    Case(
        "project-laughs",
        PROJECT_FILE,
        content(PROJECT_FILE, laughs().replace("kind: Request", "kind: Project")),
    ),
    Case("project-not-a-mapping", PROJECT_FILE, content(PROJECT_FILE, "[]\n")),
    # --- symbolic links -----------------------------------------------------------------------
    Case("link-to-itself", R, link(R, "r.yaml")),
    Case("link-loop-a-b-a", R, steps(link(R, "s.yaml"), link(".alloy/requests/s.yaml", "r.yaml"))),
    Case(
        "link-loop-through-a-directory",
        R,
        steps(link(".alloy/requests/d", "d"), link(R, "d/r.yaml")),
    ),
    Case(
        "link-chain-too-long",
        R,
        steps(
            *[
                link(
                    f".alloy/requests/{'r.yaml' if i == 0 else f'.l{i}'}",
                    f".l{i + 1}" if i < MAX_LINKS else ".target",
                )
                for i in range(MAX_LINKS + 1)
            ],
            content(".alloy/requests/.target", REQUEST_OK),
        ),
    ),
    Case("link-out-of-repo-absolute", R, link(R, outside)),
    Case("link-out-of-repo-relative", R, link(R, "../../../outside/r.yaml")),
    Case("link-to-dev-zero", R, link(R, "/dev/zero")),
    Case("link-to-dev-null", R, link(R, "/dev/null")),
    Case("link-to-dev-stdin", R, link(R, "/dev/stdin")),
    Case("link-to-proc", R, link(R, "/proc/self/environ")),
    Case("link-to-a-directory-inside", R, link(R, "../intents")),
    Case("link-to-a-directory-outside", R, link(R, outside_dir)),
    Case("link-to-the-repository-root", R, link(R, "../..")),
    Case("link-dangling", R, link(R, "nowhere.yaml")),
    Case(
        "link-outside-alloy",
        R,
        steps(content("src/r.yaml", REQUEST_OK), link(R, "../../src/r.yaml")),
    ),
    Case(
        "link-through-a-link-out",
        R,
        steps(link(".alloy/requests/up", "../../.."), link(R, "up/etc/hostname")),
    ),
    Case("intent-link-loop", INTENT, link(INTENT, "x.yaml")),
    Case("project-link-loop", PROJECT_FILE, link(PROJECT_FILE, "alloy.yaml")),
    Case("project-link-to-dev-zero", PROJECT_FILE, link(PROJECT_FILE, "/dev/zero")),
    Case("artifact-link-loop", ARTIFACT, link(ARTIFACT, "good.json")),
    Case("artifact-link-to-dev-zero", ARTIFACT, link(ARTIFACT, "/dev/zero")),
    Case(
        "alloy-dir-links-out",
        ".alloy",
        steps(lambda root: shutil.rmtree(root / ".alloy"), link(".alloy", "/")),
    ),
    # --- what git cannot carry: pipes, sockets, devices, unreadable files ------------------------
    Case("fifo-request", R, fifo(R), git=False),
    Case("fifo-intent", INTENT, fifo(INTENT), git=False),
    Case("fifo-project", PROJECT_FILE, fifo(PROJECT_FILE), git=False),
    Case("fifo-artifact", ARTIFACT, fifo(ARTIFACT), git=False),
    Case("fifo-note", ".alloy/intents/notes.md", fifo(".alloy/intents/notes.md"), git=False),
    Case("link-to-a-fifo", R, steps(fifo(".alloy/requests/.pipe"), link(R, ".pipe")), git=False),
    Case("socket-request", R, unix_socket(R), git=False),
    Case("socket-project", PROJECT_FILE, unix_socket(PROJECT_FILE), git=False),
    Case(
        "link-to-a-socket",
        R,
        steps(unix_socket(".alloy/requests/.sock"), link(R, ".sock")),
        git=False,
    ),
    Case("unreadable-request", R, unreadable(R), git=False, needs_non_root=True),
    Case(
        "unreadable-project",
        PROJECT_FILE,
        unreadable(PROJECT_FILE, PROJECT),
        git=False,
        needs_non_root=True,
    ),
    Case(
        "unreadable-directory",
        ".alloy/requests",
        unreadable_dir(".alloy/requests"),
        git=False,
        needs_non_root=True,
    ),
    # --- artifacts Foundry reads (alloy check does not read artifacts; compile rewrites them) ----
    Case(
        "artifact-deep-json",
        ARTIFACT,
        content(ARTIFACT, "[" * 100_000 + "]" * 100_000),
        alloy=False,
    ),
    Case("artifact-invalid-utf8", ARTIFACT, content(ARTIFACT, b'{"a": "\xff"}'), alloy=False),
    Case(
        "artifact-huge",
        ARTIFACT,
        content(ARTIFACT, '{"a": "' + "x" * (2 * 1024 * 1024) + '"}'),
        alloy=False,
    ),
    Case("artifact-duplicate-keys", ARTIFACT, content(ARTIFACT, '{"a": 1, "a": 2}'), alloy=False),
    Case("artifact-nan", ARTIFACT, content(ARTIFACT, '{"a": NaN}'), alloy=False),
]


def test_the_corpus_covers_every_kind_of_hostile_input() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 70
    for word in ("tab", "quote", "flow", "duplicate", "alias", "laughs", "tag", "huge", "deep",
                 "utf8", "bom", "nul", "multiple-documents", "root-is", "link-to-itself",
                 "loop", "chain", "out-of-repo", "dev-zero", "dev-null", "directory", "fifo",
                 "socket", "unreadable"):  # fmt: skip
        assert any(word in i for i in ids), word


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_hostile_input_is_refused_naming_the_file_and_nothing_is_written(
    case: Case, work: Path, tmp_path: Path
) -> None:
    prefix = unprivileged() if case.needs_non_root else []
    if prefix is None:
        pytest.skip("running as root without setpriv: chmod 000 does not stop root from reading")
    case.make(work)
    if case.git:
        commit(work, f"hostile: {case.id}")
    before, cache = state_of(work), cache_of(work)
    state = tmp_path / "foundry-state"
    commands: list[tuple[str, ...]] = []
    if case.alloy:
        commands += [("alloy", "check"), ("alloy", "compile")]
    if case.git:
        commands.append(("alloy", "review", "--base", "main", "--head", "pr", "--format", "json"))
    if case.foundry:
        commands.append(("foundry", "plan", ".", "--state", str(state)))
    results = run_all(commands, work, tmp_path / "scratch", prefix)
    messages: dict[str, list[str]] = {}
    for command, result in zip(commands, results, strict=True):
        what = " ".join(command[:2])
        assert_user_error(result, case.path, what)
        if command[1] == "check":
            messages["check"] = report_lines(result, case.path)
        if command[1] == "review":
            found = invalid(json.loads(result.out)) if result.out.startswith("{") else {}
            messages["review"] = [found[case.path]] if case.path in found else []
        if command[0] == "foundry":
            messages["foundry"] = result.out.splitlines()
    assert state_of(work) == before, "something was written into the work tree"
    assert cache_of(work) == cache, "the parse cache changed"
    assert not state.exists(), "Foundry state was written"
    if "check" in messages and "review" in messages and case.path != ".alloy":
        # The same case, the same words, whether the tree is read from disk or from git.
        said = [m.removeprefix("1:1: ") for m in messages["check"]]
        assert messages["review"], f"review has no finding at {case.path}"
        if any("symbolic" in m for m in said):
            assert messages["review"][0] in said, (said, messages["review"])
    if case.id.startswith(FILE_CASES) and "foundry" in messages and "check" in messages:
        # Foundry (which never imports Alloy) reads a checkout by the same rules, in the same
        # words: what a file is, and where a link leads.
        [check_said] = [m.removeprefix("1:1: ") for m in messages["check"]]
        assert f"refused  {case.path}: {check_said}" in messages["foundry"], messages


#: The corpus cases about what a file is (not about its content).
FILE_CASES = ("link-", "fifo-", "socket-", "artifact-link-", "unreadable-")


# --- Alloy's and Foundry's implementations of the rules agree ---------------------------------

#: Link texts a generated tree draws from: inside and outside `.alloy/`, up, absolute, dangling,
#: to directories, to files and to other links.
TEXTS = (
    "a.yaml", "b.yaml", "c", ".d", "sub/a.yaml", "sub", "../requests/a.yaml", "../intents/x.yaml",
    "..", ".", "../..", "../../src/x", "../../../x", "/etc/passwd", "nowhere.yaml",
    "sub/../a.yaml", "c/a.yaml", "./b.yaml", "../requests", "m",
)  # fmt: skip
NAMES = (
    ".alloy/requests/a.yaml", ".alloy/requests/b.yaml", ".alloy/requests/c",
    ".alloy/requests/.d", ".alloy/requests/sub/a.yaml", ".alloy/requests/m",
    ".alloy/intents/x.yaml", ".alloy/artifacts/good.json", ".alloy/alloy.yaml",
)  # fmt: skip


def generated_trees(count: int, seed: int = 12) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """`count` trees as git lists them (path -> mode) with the texts of their links."""
    import random

    rng = random.Random(seed)  # noqa: S311 - shapes of trees, not secrets
    for _ in range(count):
        modes: dict[str, str] = {}
        links: dict[str, str] = {}
        for name in rng.sample(NAMES, rng.randint(1, len(NAMES))):
            if any(other.startswith(name + "/") or name.startswith(other + "/") for other in modes):
                continue
            mode = rng.choice(("100644", "120000", "120000", "120000", "160000"))
            modes[name] = mode
            if mode == "120000":
                links[name] = rng.choice(TEXTS)
        yield modes, links


def test_alloy_and_foundry_read_a_tree_by_the_same_rules_in_the_same_words() -> None:
    from alloy.load import _files as alloy_files
    from alloy.load import git_sources as alloy_sources
    from foundry.boundary import _files as foundry_files
    from foundry.boundary import git_sources as foundry_sources

    seen: set[str] = set()
    for modes, links in generated_trees(3000):
        ours = {p: (s.path, s.refusal) for p, s in alloy_sources(modes, links).items()}
        theirs = {p: (s.path, s.refusal) for p, s in foundry_sources(modes, links).items()}
        assert ours == theirs, (modes, links)
        seen |= {refusal.split("(")[0][:40] for _, refusal in ours.values() if refusal}
    assert len(seen) >= 10, seen  # the trees reach most refusals
    assert alloy_files.MAX_LINKS == foundry_files.MAX_LINKS
    for kind in (*alloy_files.WHAT, "other"):
        for path in (REQUEST, ARTIFACT, ".alloy/intents/notes.md"):
            assert alloy_files.not_a_file(path, kind) == foundry_files.not_a_file(path, kind)
    for words in ("unreadable", "too_large", "cannot_follow", "alloy_dir_leaves"):
        args: tuple[Any, ...] = {
            "unreadable": ("Permission denied",),
            "too_large": (70_000_000,),
            "cannot_follow": ("x", "Permission denied"),
            "alloy_dir_leaves": ("/",),
        }[words]
        assert getattr(alloy_files, words)(*args) == getattr(foundry_files, words)(*args)
    for words in ("not_in_repository", "changed_while_read", "artifact_link", "alloy_dir_in_git"):
        assert getattr(alloy_files, words)() == getattr(foundry_files, words)()


# --- the corpus ------------------------------------------------------------------------------
