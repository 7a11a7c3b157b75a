"""Shared fixtures: real git repositories written from a dict of files, and the real CLIs run
as processes. The environment is pinned so git and caches never touch the user's own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.github_fake import FakeGitHub
from tests.github_prism import GitHubRig, PrismProxy, cleaned_spec

#: The `world` and `daemon_world` fixtures (real remotes for reconcile tests), `browser_page`
#: (headless Chromium through Playwright) and `ui_world` (a repository with every state the web
#: interface shows).
pytest_plugins = [
    "tests.reconcile_support",
    "tests.browser_support",
    "tests.ui_support",
    "tests.sandbox_support",
]

#: Blocks of the suite's repositories run tools of the test machine (this Python, files of the
#: test's temporary directory), which a sandbox rightly hides: they run unsandboxed, as before the
#: sandbox existed. The sandbox is tested on purpose (tests/test_sandbox*.py pass --sandbox or
#: their own options, which this default does not change).
os.environ.setdefault("FOUNDRY_SANDBOX", "none")

PROJECT = """\
apiVersion: alloy.dev/v1
kind: Project
metadata:
  name: test-project
spec:
  owners: [alice]
"""


def intent_yaml(
    name: str,
    *,
    state: str = "active",
    blocks: str | None = None,
    extra_spec: str = "",
    on: str = "{apply: true, request: true}",
) -> str:
    """A valid intent document; `blocks` is YAML indented for `automation.blocks`."""
    blocks = (
        blocks
        if blocks is not None
        else (
            "      - id: build\n"
            "        run: [python, -c, 'print(1)']\n"
            "        effects: none\n"
            "        outputs: [out.txt]\n"
        )
    )
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        f"  name: {name}\n"
        "  owners: [alice]\n"
        "spec:\n"
        f"  state: {state}\n"
        "  goal: Something stays true.\n"
        f"{extra_spec}"
        "  automation:\n"
        f"    on: {on}\n"
        "    blocks:\n"
        f"{blocks}"
    )


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Committer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@example.com")
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file")
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("GIT_WORK_TREE", raising=False)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@dataclass
class GitRepo:
    """A real git repository in a temporary directory."""

    path: Path

    def write(self, files: Mapping[str, str | bytes]) -> None:
        for rel, content in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")

    def commit(self, message: str = "change") -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD").strip()

    def tree(self, under: str = ".alloy") -> dict[str, bytes]:
        """Every file under `under`, as bytes (to assert that nothing changed)."""
        base = self.path / under
        if not base.exists():
            return {}
        return {
            str(p.relative_to(self.path)): p.read_bytes()
            for p in sorted(base.rglob("*"))
            if p.is_file() and not p.is_symlink()
        }


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """An initialized git repository with a valid `.alloy/alloy.yaml`, committed."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    r = GitRepo(path)
    r.write({".alloy/alloy.yaml": PROJECT, ".alloy/intents/.gitkeep": ""})
    r.commit("init")
    return r


@dataclass
class Result:
    """A finished CLI process."""

    code: int
    out: str
    err: str


def run_cli(
    prog: str, *args: str, cwd: Path, stdin: str | None = None, env: Mapping[str, str] | None = None
) -> Result:
    """Run `alloy` or `foundry` as a real process (the installed package, same interpreter)."""
    proc = subprocess.run(
        [sys.executable, "-m", prog, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def alloy(repo: GitRepo) -> object:
    """`alloy(*args)` runs the CLI in the test repository."""

    def call(*args: str, stdin: str | None = None, cwd: Path | None = None) -> Result:
        return run_cli("alloy", *args, cwd=cwd or repo.path, stdin=stdin)

    return call


# ---- A fake GitHub REST API behind Prism (tests/github_fake.py, tests/github_prism.py).
# Session-scoped and lazy: only a test worker that runs a test asking for `github` starts them.


@pytest.fixture(scope="session")
def github_fake() -> FakeGitHub:
    """The fake, its port fixed for the session (Prism forwards to it) but served only while a
    test that asks for `github` runs: a serving thread left in the process would turn off code
    that forks only when no other thread runs (Alloy's parallel loader) in other tests."""
    fake = FakeGitHub().start()
    fake.stop()
    return fake


@pytest.fixture(scope="session")
def github_prism(
    github_fake: FakeGitHub,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> Iterator[PrismProxy]:
    """Prism proxying to the fake, checking both directions against GitHub's description.
    Missing tools fail the tests (never skip them): CI must have installed them."""
    cache = pytestconfig.cache
    cache_dir = (
        Path(cache.mkdir("github-openapi"))
        if cache is not None
        else tmp_path_factory.getbasetemp() / "github-openapi"
    )
    problem = None
    try:
        spec = cleaned_spec(cache_dir)
        prism = PrismProxy(
            spec, github_fake.direct_url, tmp_path_factory.mktemp("prism") / "prism.log"
        ).start()
    except (FileNotFoundError, RuntimeError) as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    try:
        yield prism
    finally:
        prism.stop()


@pytest.fixture
def github(github_fake: FakeGitHub, github_prism: PrismProxy) -> Iterator[GitHubRig]:
    """The fake GitHub, reset, behind Prism: use `.api_url` as the API base URL. A bug in the
    fake itself (an exception while answering) fails the test at teardown."""
    github_fake.reset()
    github_fake.public_url = github_prism.url
    github_fake.start(port=int(github_fake.direct_url.rsplit(":", 1)[1]))
    try:
        yield GitHubRig(
            api_url=github_prism.url,
            direct_url=github_fake.direct_url,
            fake=github_fake,
            prism=github_prism,
        )
    finally:
        github_fake.stop()
    errors = list(github_fake.internal_errors)
    if errors:
        pytest.fail("the fake GitHub failed while answering:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def daemons() -> Iterator[list[Any]]:
    """`foundry daemon` processes a test started (tests.test_daemon.DaemonProcess); killed at
    the end if the test left one running."""
    started: list[Any] = []
    yield started
    for d in started:
        d.kill()
