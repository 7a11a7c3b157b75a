"""The project uses itself: its own `.alloy/` automation works when reconciled.

The committed state of this repository, as one commit, is pushed to a bare remote and reconciled
like any other: every active intent runs (`alloy compile --check`, the import-linter contracts), each
execution succeeds, and each acceptance criterion gets its evidence on the traces branch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.conftest import git, run_cli

ROOT = Path(__file__).resolve().parent.parent


def project_as_one_commit(tmp_path: Path) -> Path:
    """A bare remote whose default branch is one commit of the project's committed tree: the
    project's intents, not one push execution per commit of its history (which grows with
    every commit, up to the 200 a pass catches up on)."""
    remote = tmp_path / "self.git"
    git(tmp_path, "clone", "-q", "--bare", str(ROOT), str(remote))
    branch = git(remote, "symbolic-ref", "--short", "HEAD").strip()
    tree = git(remote, "rev-parse", "HEAD^{tree}").strip()
    commit = git(remote, "commit-tree", tree, "-m", "The project as it is").strip()
    for ref in git(remote, "for-each-ref", "--format=%(refname)").split():
        git(remote, "update-ref", "-d", ref)
    git(remote, "update-ref", f"refs/heads/{branch}", commit)
    return remote


def test_the_projects_own_intent_reconciles_green(tmp_path: Path) -> None:
    remote = project_as_one_commit(tmp_path)
    assert git(remote, "rev-list", "--count", "--all").strip() == "1"
    # Blocks see the engine's PATH: the tools of this interpreter's environment are on it.
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    state = tmp_path / "state"
    result = run_cli(
        "foundry",
        "reconcile",
        "--repo",
        str(remote),
        "--once",
        "--state",
        str(state),
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert result.code == 0, result.out + result.err
    report = json.loads(result.out.splitlines()[-1])
    assert report["finished"], report
    assert set(report["finished"].values()) == {"succeeded"}, report

    names = git(remote, "ls-tree", "-r", "--name-only", "refs/heads/alloy/traces").split()
    traces = [n for n in names if n.endswith(".json")]
    intents = {n.split("/")[1] for n in traces}
    active = {
        p.stem
        for p in (ROOT / ".alloy" / "intents").glob("*.yaml")
        if "state: active" in p.read_text(encoding="utf-8")
    }
    assert active <= intents, (active, intents)
    for name in traces:
        spec = json.loads(git(remote, "cat-file", "-p", f"refs/heads/alloy/traces:{name}"))["spec"]
        assert spec["status"] == "succeeded", (name, spec)
        assert spec["evidence"], name
        assert all(e["status"] == "produced" for e in spec["evidence"]), (name, spec["evidence"])

    tip = git(remote, "rev-parse", "refs/heads/alloy/traces")
    again = run_cli(
        "foundry",
        "reconcile",
        "--repo",
        str(remote),
        "--once",
        "--state",
        str(state),
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert again.code == 0, again.err
    assert json.loads(again.out.splitlines()[-1])["finished"] == {}
    assert git(remote, "rev-parse", "refs/heads/alloy/traces") == tip, "nothing new, no commit"
