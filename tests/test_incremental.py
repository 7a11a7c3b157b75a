"""Incremental compile: only documents whose bytes changed are parsed again; the cache lives
outside the tracked tree and never changes what is written."""

from __future__ import annotations

from pathlib import Path

import pytest

import alloy.load._repository as repository_module
from alloy import workspace
from tests.conftest import GitRepo, git, intent_yaml


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the documents the loader really parses (cache misses). The project file is
    always parsed (it is one file, and its content decides whether the cache is valid)."""
    calls: list[str] = []
    real = repository_module.load_document

    def counting(path: str, *args: object, **kwargs: object) -> object:
        if path != ".alloy/alloy.yaml":
            calls.append(path)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(repository_module, "load_document", counting)
    return calls


def _many(repo: GitRepo, n: int) -> None:
    repo.write({f".alloy/intents/i-{k}.yaml": intent_yaml(f"i-{k}") for k in range(n)})
    repo.commit("intents")


def test_only_changed_documents_are_parsed_again(repo: GitRepo, parsed: list[str]) -> None:
    _many(repo, 20)
    first = workspace.compile_repository(repo.path)
    assert len(first.written) == 20
    assert len(parsed) == 20

    parsed.clear()
    second = workspace.compile_repository(repo.path)
    assert parsed == [], "nothing changed, so nothing is parsed"
    assert second.written == []
    assert second.unchanged == 20

    parsed.clear()
    repo.write({".alloy/intents/i-7.yaml": intent_yaml("i-7").replace("print(1)", "print(2)")})
    third = workspace.compile_repository(repo.path)
    assert parsed == [".alloy/intents/i-7.yaml"]
    assert third.written == [".alloy/artifacts/i-7.json"]


def test_cache_is_outside_the_tracked_tree(repo: GitRepo) -> None:
    _many(repo, 2)
    workspace.compile_repository(repo.path)
    cache = Path(repo.path / ".git" / "alloy" / "cache.json")
    assert cache.is_file()
    status = git(repo.path, "status", "--porcelain", "--untracked-files=all")
    assert all(".git/" not in line for line in status.splitlines())
    assert not any("cache" in line for line in status.splitlines())


def test_a_changed_project_drops_the_cache(repo: GitRepo, parsed: list[str]) -> None:
    """Policy and lanes shape every document's result, so a project change re-parses all."""
    _many(repo, 3)
    workspace.compile_repository(repo.path)
    parsed.clear()
    project = (repo.path / ".alloy/alloy.yaml").read_text()
    repo.write({".alloy/alloy.yaml": project + "  lanes:\n    ci: {limit: 2}\n"})
    workspace.compile_repository(repo.path)
    assert sorted(parsed) == [f".alloy/intents/i-{k}.yaml" for k in range(3)]


def test_cached_and_uncached_runs_write_identical_bytes(repo: GitRepo) -> None:
    _many(repo, 5)
    workspace.compile_repository(repo.path)
    with_cache = repo.tree(".alloy/artifacts")
    for path in (repo.path / ".alloy/artifacts").glob("*.json"):
        path.unlink()
    workspace.compile_repository(repo.path, use_cache=False)
    assert repo.tree(".alloy/artifacts") == with_cache


def test_a_hand_edit_is_found_even_when_the_cache_is_warm(repo: GitRepo) -> None:
    _many(repo, 3)
    workspace.compile_repository(repo.path)
    target = repo.path / ".alloy/artifacts/i-1.json"
    target.write_text(target.read_text().replace("print(1)", "print(666)"))
    with pytest.raises(workspace.StaleArtifacts) as caught:
        workspace.compile_repository(repo.path, check_only=True)
    assert caught.value.problems == [
        (
            ".alloy/artifacts/i-1.json: was edited by hand: its digest does not match its content "
            "(.alloy/intents/i-1.yaml)"
        )
    ]


def test_a_corrupt_cache_is_ignored(repo: GitRepo) -> None:
    _many(repo, 2)
    workspace.compile_repository(repo.path)
    (repo.path / ".git/alloy/cache.json").write_text("{not json")
    report = workspace.compile_repository(repo.path)
    assert report.unchanged == 2
    assert report.written == []
