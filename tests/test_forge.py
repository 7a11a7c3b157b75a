"""The local forge: check runs and comments on `refs/alloy/forge` of a real remote."""

from __future__ import annotations

from pathlib import Path

from controllers.forge import REF, CheckRun, LocalForge
from controllers.gitops import Mirror
from tests.conftest import GitRepo, git


def _remote(repo: GitRepo, tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo.path), str(remote))
    return remote


def _run(commit: str, name: str, conclusion: str | None, status: str = "completed") -> CheckRun:
    return CheckRun(
        commit=commit,
        name=name,
        status=status,  # type: ignore[arg-type]
        conclusion=conclusion,  # type: ignore[arg-type]
        title=f"{name}: {conclusion}",
        summary="**summary**",
        external_id="exe-0123456789abcdef",
    )


def _ref(remote: Path) -> str:
    return git(remote, "rev-parse", "--verify", "-q", REF).strip()


def test_check_runs_are_recorded_once_and_read_back_by_any_clone(
    repo: GitRepo, tmp_path: Path
) -> None:
    remote = _remote(repo, tmp_path)
    commit = git(remote, "rev-parse", "HEAD").strip()
    forge = LocalForge(Mirror(str(remote), tmp_path / "a" / "mirror.git"))
    assert forge.checks() == []
    assert forge.check_state(commit, "lint") is None

    assert forge.publish_check(_run(commit, "lint", None, status="in_progress")) is True
    assert forge.check_state(commit, "lint") == "pending"
    assert forge.publish_check(_run(commit, "lint", "success")) is True
    tip = _ref(remote)
    assert forge.publish_check(_run(commit, "lint", "success")) is False, "unchanged: not re-sent"
    assert _ref(remote) == tip

    other = LocalForge(Mirror(str(remote), tmp_path / "b" / "mirror.git"))
    assert other.check_state(commit, "lint") == "success"
    assert other.publish_check(_run(commit, "tests", "failure")) is True
    assert forge.check_state(commit, "tests") == "failure"
    assert [r.name for r in forge.checks(commit)] == ["lint", "tests"]
    # The history of the forge ref keeps every change (nothing is rewritten).
    assert len(git(remote, "rev-list", REF).split()) == 3


def test_comments_are_kept_up_to_date_not_reposted(repo: GitRepo, tmp_path: Path) -> None:
    remote = _remote(repo, tmp_path)
    forge = LocalForge(Mirror(str(remote), tmp_path / "m" / "mirror.git"))
    assert forge.comment("review/main", "first") is True
    assert forge.comment("review/main", "first") is False
    assert forge.comment("review/main", "second") is True
    names = git(remote, "ls-tree", "-r", "--name-only", REF).split()
    assert names == ["comments/review-main.md"]
    assert git(remote, "cat-file", "-p", f"{REF}:comments/review-main.md") == "second"


def test_two_writers_racing_both_land(repo: GitRepo, tmp_path: Path) -> None:
    """A compare-and-swap push that loses is rebuilt on the winner's commit and retried."""
    remote = _remote(repo, tmp_path)
    commit = git(remote, "rev-parse", "HEAD").strip()
    first = LocalForge(Mirror(str(remote), tmp_path / "1" / "mirror.git"))
    second = LocalForge(Mirror(str(remote), tmp_path / "2" / "mirror.git"))
    first.publish_check(_run(commit, "a", "success"))
    real_push = second.mirror.push
    results = []

    def push_after_someone_else(updates: list[tuple[str | None, str, str | None]]) -> object:
        if not results:  # the first time: another writer gets in between read and push
            first.publish_check(_run(commit, "b", "success"))
        result = real_push(updates)
        results.append(result.ok)
        return result

    second.mirror.push = push_after_someone_else  # type: ignore[method-assign,assignment]
    assert second.publish_check(_run(commit, "c", "success")) is True
    assert results == [False, True], "the first push was rejected by the remote, the retry landed"
    assert [r.name for r in first.checks(commit)] == ["a", "b", "c"]


def test_foundry_checks_list_and_show_read_the_local_forge(repo: GitRepo, tmp_path: Path) -> None:
    """`foundry checks list|show` as processes: the structured listing, a filter by commit,
    the text listing, a check shown by execution id, and an unknown one refused."""
    import json

    from tests.conftest import run_cli

    remote = _remote(repo, tmp_path)
    first = git(remote, "rev-parse", "HEAD").strip()
    second = repo.commit("another")
    git(repo.path, "push", "-q", str(remote), "HEAD:main")
    forge = LocalForge(Mirror(str(remote), tmp_path / "w" / "mirror.git"))
    forge.publish_check(_run(first, "lint", "success"))
    forge.publish_check(_run(second, "tests", "failure"))
    state = ["--repo", str(remote), "--state", str(tmp_path / "reader")]

    listed = run_cli("foundry", "checks", "list", *state, "--json", cwd=tmp_path)
    assert listed.code == 0, listed.err
    assert [(r["commit"], r["name"], r["conclusion"]) for r in json.loads(listed.out)] == sorted(
        [(first, "lint", "success"), (second, "tests", "failure")]
    )
    only = run_cli("foundry", "checks", "list", *state, "--commit", second, "--json", cwd=tmp_path)
    assert [r["name"] for r in json.loads(only.out)] == ["tests"]
    text = run_cli("foundry", "checks", "list", *state, cwd=tmp_path)
    assert text.code == 0
    header, *rows = text.out.splitlines()
    assert header.split() == ["COMMIT", "CONCLUSION", "NAME", "EXECUTION"]
    assert sorted(line.split()[2] for line in rows) == ["lint", "tests"]

    shown = run_cli("foundry", "checks", "show", "lint", *state, cwd=tmp_path)
    assert shown.code == 0, shown.err
    assert shown.out.splitlines()[0] == f"lint on {first}: success"
    missing = run_cli("foundry", "checks", "show", "nope", *state, cwd=tmp_path)
    assert missing.code == 1
    assert "no check run for 'nope'" in missing.err
    assert "Traceback" not in missing.err
