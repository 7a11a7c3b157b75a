"""`alloy status` end to end: real executions by `foundry run`, their Trace documents committed
to the traces branch with git plumbing, and the `--json` document asserted field by field."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controllers.git import read_tree_files, resolve_commit
from tests.conftest import GitRepo, Result, git, run_cli

PY = json.dumps(sys.executable)  # a YAML (flow) string of the interpreter's path


def intent(goal: str = "The thing builds.", *, fail: bool = False) -> str:
    code = "import sys; sys.exit(3)" if fail else "open('out.txt', 'w').write('built')"
    return f"""\
apiVersion: alloy.dev/v1
kind: Intent
metadata:
  name: build
  title: It builds
  owners: [alice]
spec:
  state: active
  goal: {goal}
  acceptance:
    - id: AC-1
      statement: The build writes out.txt.
      evidence: {{block: build, output: out.txt}}
    - id: AC-2
      statement: Someone reads the report.
  automation:
    on: {{apply: true}}
    blocks:
      - id: build
        run: [{PY}, -c, "{code}"]
        effects: none
        outputs: [out.txt]
"""


PROPOSED = """\
apiVersion: alloy.dev/v1
kind: Intent
metadata:
  name: later
spec:
  state: proposed
  goal: Something for later.
  acceptance:
    - id: AC-1
      statement: It is done.
"""


def alloy(repo: GitRepo, *args: str) -> Result:
    return run_cli("alloy", *args, cwd=repo.path)


def status(repo: GitRepo, *args: str) -> dict[str, Any]:
    result = alloy(repo, "status", "--json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


def foundry_run(repo: GitRepo, state: Path, *extra: str) -> str:
    """Run the `build` artifact with the real `foundry run`; return the execution id."""
    result = run_cli(
        "foundry",
        "run",
        str(repo.path),
        "--artifact",
        "build",
        "--state",
        str(state),
        *extra,
        cwd=repo.path,
    )
    assert result.code in (0, 4), result.err  # succeeded or failed
    line = next(x for x in result.err.splitlines() if x.startswith("exe-"))
    return line.split()[0]  # `exe-… (intent, event key): status`


def export(repo: GitRepo, state: Path, execution: str) -> bytes:
    result = run_cli(
        "foundry",
        "traces",
        "export",
        execution,
        "--format",
        "json",
        "--path",
        str(repo.path),
        "--state",
        str(state),
        cwd=repo.path,
    )
    assert result.code == 0, result.err
    return result.out.encode()


def commit_files(path: Path, branch: str, files: dict[str, bytes], message: str = "traces") -> str:
    """Commit `files` on top of `branch` (created as an orphan if it does not exist) without
    touching the work tree or the index: hash-object, a private index, write-tree, commit-tree
    and update-ref, as a publisher of traces does."""
    index = path / ".git" / "traces-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}

    def run(*args: str, data: bytes | None = None) -> str:
        return (
            subprocess.run(
                ["git", *args], cwd=path, env=env, input=data, capture_output=True, check=True
            )
            .stdout.decode()
            .strip()
        )

    parent = resolve_commit(path, [f"refs/heads/{branch}"])
    if parent is None:
        index.unlink(missing_ok=True)
        run("read-tree", "--empty")
    else:
        run("read-tree", parent[1])
    for rel, data in files.items():
        blob = run("hash-object", "-w", "--stdin", data=data)
        run("update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}")
    tree = run("write-tree")
    commit = run("commit-tree", tree, *(["-p", parent[1]] if parent else []), "-m", message)
    run("update-ref", f"refs/heads/{branch}", commit)
    index.unlink()
    return commit


def publish(repo: GitRepo, state: Path, *executions: str, branch: str = "alloy/traces") -> None:
    files: dict[str, bytes] = {}
    for execution in executions:
        files[f"traces/build/{execution}.json"] = export(repo, state, execution)
        files[f"traces/build/{execution}.md"] = b"# summary\n"  # never read by status
    commit_files(repo.path, branch, files)


@pytest.fixture
def project(repo: GitRepo) -> GitRepo:
    repo.write({".alloy/intents/build.yaml": intent(), ".alloy/intents/later.yaml": PROPOSED})
    assert alloy(repo, "compile").code == 0
    repo.commit("intent")
    return repo


def artifact_digest(repo: GitRepo) -> str:
    return json.loads((repo.path / ".alloy/artifacts/build.json").read_text())["digest"]  # type: ignore[no-any-return]


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in doc["intents"]}


def test_without_a_traces_branch_every_intent_is_listed(project: GitRepo) -> None:
    doc = status(project)
    assert doc["version"] == 1
    assert doc["traces"] == {
        "branch": "alloy/traces",
        "ref": None,
        "commit": None,
        "found": False,
        "missing": "branch alloy/traces not found",
    }
    intents = by_name(doc)
    assert sorted(intents) == ["build", "later"]
    build = intents["build"]
    assert build["state"] == "active"
    assert build["title"] == "It builds"
    assert build["artifact"] == {
        "name": "build",
        "path": ".alloy/artifacts/build.json",
        "digest": artifact_digest(project),
        "state": "current",
    }
    assert build["executions"] == []
    assert build["executionsTotal"] == 0
    assert [(e["acceptance"], e["status"]) for e in build["evidence"]] == [
        ("AC-1", "none"),
        ("AC-2", "unlinked"),
    ]
    later = intents["later"]
    assert later["state"] == "proposed"
    assert later["artifact"] is None  # proposed intents do not compile
    assert later["evidence"][0]["status"] == "unlinked"  # no evidence link declared

    text = alloy(project, "status")
    assert text.code == 0, text.err
    assert text.out.splitlines()[0] == "no traces yet (branch alloy/traces not found)"
    assert "AC-1  no evidence yet  build/out.txt" in text.out
    assert "build  [active]  artifact " in text.out


def test_evidence_is_produced_then_stale_then_missing(project: GitRepo, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = foundry_run(project, state)
    publish(project, state, first)
    digest = artifact_digest(project)

    doc = status(project)
    assert doc["traces"]["found"] is True
    assert doc["traces"]["ref"] == "refs/heads/alloy/traces"
    assert doc["traces"]["commit"] == git(project.path, "rev-parse", "alloy/traces").strip()
    assert doc["warnings"] == []
    build = by_name(doc)["build"]
    [execution] = build["executions"]
    assert execution["id"] == first
    assert execution["status"] == "succeeded"
    assert execution["event"] == {"type": "apply", "key": digest}
    assert execution["artifactDigest"] == digest
    assert execution["current"] is True
    assert execution["startedAt"] <= execution["finishedAt"]
    assert execution["trace"] == f"traces/build/{first}.json"
    ac1, ac2 = build["evidence"]
    assert ac1 == {
        "acceptance": "AC-1",
        "statement": "The build writes out.txt.",
        "block": "build",
        "output": "out.txt",
        "status": "produced",
        "stale": False,
        "digest": "sha256:" + hashlib.sha256(b"built").hexdigest(),
        "execution": first,
        "artifactDigest": digest,
    }
    assert ac2["status"] == "unlinked"
    assert by_name(doc)["later"]["executions"] == []

    # The intent changes and is compiled again: the evidence is now of an older artifact.
    project.write({".alloy/intents/build.yaml": intent("The thing builds, twice as fast.")})
    assert alloy(project, "compile").code == 0
    new_digest = artifact_digest(project)
    assert new_digest != digest
    build = by_name(status(project))["build"]
    assert build["artifact"]["digest"] == new_digest
    assert build["executions"][0]["current"] is False
    ac1 = build["evidence"][0]
    assert (ac1["status"], ac1["stale"], ac1["execution"], ac1["artifactDigest"]) == (
        "produced",
        True,
        first,
        digest,
    )
    text = alloy(project, "status").out
    assert "STALE: from artifact " + digest.removeprefix("sha256:")[:12] in text

    # Edited but not compiled: the artifact file is out of date, the evidence is not staler.
    project.write({".alloy/intents/build.yaml": intent("The thing builds; edited.")})
    build = by_name(status(project))["build"]
    assert (build["artifact"]["state"], build["artifact"]["digest"]) == ("stale", new_digest)

    # The new version's build fails: its evidence is missing, and that is the current word.
    project.write({".alloy/intents/build.yaml": intent("The thing builds.", fail=True)})
    assert alloy(project, "compile").code == 0
    project.commit("break the build")
    failing = foundry_run(project, state)
    publish(project, state, failing)
    build = by_name(status(project))["build"]
    assert [e["id"] for e in build["executions"]] == [failing, first]  # newest first
    assert [e["status"] for e in build["executions"]] == ["failed", "succeeded"]
    assert [e["current"] for e in build["executions"]] == [True, False]
    ac1 = build["evidence"][0]
    assert (ac1["status"], ac1["stale"], ac1["execution"], ac1["digest"]) == (
        "missing",
        False,
        failing,
        None,
    )
    assert f"AC-1  MISSING  build/out.txt  ({failing})" in alloy(project, "status").out


def test_latest_five_executions_newest_first_or_all(project: GitRepo, tmp_path: Path) -> None:
    state = tmp_path / "state"
    runs = [foundry_run(project, state, *(["--rerun"] if i else [])) for i in range(6)]
    assert len(set(runs)) == 6
    publish(project, state, *runs)
    build = by_name(status(project))["build"]
    assert build["executionsTotal"] == 6
    shown = [e["id"] for e in build["executions"]]
    assert shown == list(reversed(runs))[:5]
    started = [e["startedAt"] for e in build["executions"]]
    assert started == sorted(started, reverse=True)
    assert [e["id"] for e in by_name(status(project, "--all"))["build"]["executions"]] == list(
        reversed(runs)
    )
    assert build["evidence"][0]["execution"] == runs[-1]
    assert "latest 5 of 6; --all for every one" in alloy(project, "status").out


def test_a_bad_trace_is_a_warning_not_a_crash(project: GitRepo, tmp_path: Path) -> None:
    state = tmp_path / "state"
    good = foundry_run(project, state)
    trace = json.loads(export(project, state, good))
    wrong_place = dict(trace, metadata={"name": "exe-00000000000000aa"})
    commit_files(
        project.path,
        "alloy/traces",
        {
            f"traces/build/{good}.json": export(project, state, good),
            "traces/build/exe-0000000000000001.json": b"{not json",
            "traces/build/exe-0000000000000002.json": json.dumps(
                {**trace, "spec": {**trace["spec"], "status": "exploded"}}
            ).encode(),
            "traces/build/exe-0000000000000003.json": json.dumps(wrong_place).encode(),
            "traces/gone/exe-0000000000000004.json": export(project, state, good),
        },
    )
    doc = status(project)
    warnings = doc["warnings"]
    assert len(warnings) == 4, warnings
    prefix = "refs/heads/alloy/traces:traces/"
    assert warnings[0].startswith(prefix + "build/exe-0000000000000001.json: not JSON")
    assert warnings[1].startswith(prefix + "build/exe-0000000000000002.json: not a valid Trace")
    assert "spec.status" in warnings[1]
    assert warnings[2].startswith(prefix + "build/exe-0000000000000003.json: holds the trace of")
    assert warnings[3].startswith(prefix + "gone/exe-0000000000000004.json: holds the trace of")
    assert [e["id"] for e in by_name(doc)["build"]["executions"]] == [good]
    text = alloy(project, "status")
    assert text.code == 0
    assert f"warning: {prefix}build/exe-0000000000000001.json: not JSON" in text.out


def test_remote_tracking_branch_ref_and_traces_branch_options(
    project: GitRepo, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    execution = foundry_run(project, state)
    publish(project, state, execution)
    traces_commit = git(project.path, "rev-parse", "alloy/traces").strip()

    # A clone has only origin's traces branch: status reads it from there.
    clone = GitRepo(tmp_path / "clone")
    git(tmp_path, "clone", "-q", str(project.path), str(clone.path))
    assert git(clone.path, "branch", "--list", "alloy/traces").strip() == ""
    doc = status(clone)
    assert doc["traces"]["ref"] == "refs/remotes/origin/alloy/traces"
    assert doc["traces"]["commit"] == traces_commit
    assert [e["id"] for e in by_name(doc)["build"]["executions"]] == [execution]

    # The local branch wins over the remote-tracking one.
    commit_files(clone.path, "alloy/traces", {"traces/README": b"local\n"})
    assert status(clone)["traces"]["ref"] == "refs/heads/alloy/traces"

    # --ref reads any revision; a revision that does not exist is an error.
    doc = status(project, "--ref", traces_commit)
    assert (doc["traces"]["ref"], doc["traces"]["commit"]) == (traces_commit, traces_commit)
    assert by_name(doc)["build"]["executionsTotal"] == 1
    bad = alloy(project, "status", "--ref", "no-such-branch")
    assert bad.code == 1
    assert "--ref no-such-branch: no such commit" in bad.err
    assert "Traceback" not in bad.err

    # Another traces branch: from the option, or from spec.traces.branch of the project.
    doc = status(project, "--traces-branch", "ops/traces")
    assert doc["traces"]["found"] is False
    assert doc["traces"]["missing"] == "branch ops/traces not found"
    git(project.path, "branch", "ops/traces", "alloy/traces")
    project.write(
        {
            ".alloy/alloy.yaml": (project.path / ".alloy/alloy.yaml").read_text()
            + "  traces: {branch: ops/traces}\n"
        }
    )
    doc = status(project)
    assert doc["traces"]["ref"] == "refs/heads/ops/traces"
    assert by_name(doc)["build"]["executionsTotal"] == 1


def test_outside_a_git_repository(tmp_path: Path) -> None:
    plain = GitRepo(tmp_path / "plain")
    plain.write(
        {
            ".alloy/alloy.yaml": "apiVersion: alloy.dev/v1\nkind: Project\nmetadata: {name: p}\n",
            ".alloy/intents/later.yaml": PROPOSED,
        }
    )
    doc = status(plain)
    assert doc["traces"]["missing"] == "not a git repository"
    assert [i["name"] for i in doc["intents"]] == ["later"]


def test_invalid_intents_are_left_out_with_a_warning(project: GitRepo) -> None:
    project.write({".alloy/intents/broken.yaml": "apiVersion: alloy.dev/v1\nkind: Intent\n"})
    doc = status(project)
    assert sorted(by_name(doc)) == ["build", "later"]
    assert "error(s) in .alloy/" in doc["warnings"][0]
    assert "alloy check" in doc["warnings"][0]


def test_read_tree_files_uses_one_ls_tree_and_one_cat_file(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = {f"traces/i{n % 3}/exe-{n:016x}.json": f'{{"n": {n}}}\n'.encode() for n in range(30)}
    files["other/file.txt"] = b"not under the prefix"
    commit = commit_files(repo.path, "alloy/traces", files)
    trace_log = tmp_path / "git-trace.log"
    monkeypatch.setenv("GIT_TRACE", str(trace_log))
    read = read_tree_files(repo.path, "refs/heads/alloy/traces", "traces/")
    assert read == {k: v for k, v in files.items() if k.startswith("traces/")}
    log = trace_log.read_text()
    assert log.count("git ls-tree") == 1
    assert log.count("git cat-file") == 1
    assert read_tree_files(repo.path / ".alloy", commit, "traces/i1/") == {
        k: v for k, v in files.items() if k.startswith("traces/i1/")
    }


def test_unfinished_executions_and_sub_second_ordering() -> None:
    """The pure rules, on Trace documents of the golden example: a `missing` from an execution
    still running says nothing yet, and `...:31Z` sorts before `...:31.5Z`."""
    from alloy.load import parse
    from alloy.model import Intent
    from alloy.status import ArtifactState, IntentInput, Source, build_status

    fixtures = Path(__file__).resolve().parent / "fixtures" / "boundary" / "v1"
    golden = json.loads((fixtures / "trace-succeeded.json").read_text())
    model = Intent.model_validate(
        parse((fixtures / "intent-nightly-benchmarks.yaml").read_text()).data
    )
    digest = golden["spec"]["artifact"]["digest"]

    def trace(execution: str, status: str, started: str, evidence: str) -> bytes:
        spec = {**golden["spec"], "status": status, "startedAt": started}
        spec["evidence"] = [{**e, "status": evidence} for e in spec["evidence"]]
        if evidence == "missing":
            spec["evidence"] = [{**e, "digest": None} for e in spec["evidence"]]
        doc = {**golden, "metadata": {"name": execution}, "spec": spec}
        return json.dumps(doc).encode()

    files = {
        "traces/nightly-benchmarks/exe-000000000000000a.json": trace(
            "exe-000000000000000a", "succeeded", "2026-11-25T02:00:31Z", "produced"
        ),
        "traces/nightly-benchmarks/exe-000000000000000b.json": trace(
            "exe-000000000000000b", "running", "2026-11-25T02:00:31.5Z", "missing"
        ),
    }
    artifact = ArtifactState("nightly-benchmarks", "unused", digest, "current")
    inputs = {"nightly-benchmarks": IntentInput("unused", model, digest, artifact)}
    report = build_status(inputs, files, Source("alloy/traces", "refs/heads/alloy/traces", "c"))
    [item] = report.to_json()["intents"]
    assert [e["id"] for e in item["executions"]] == ["exe-000000000000000b", "exe-000000000000000a"]
    criterion = item["evidence"][0]
    assert (criterion["status"], criterion["execution"], criterion["stale"]) == (
        "produced",
        "exe-000000000000000a",
        False,
    )
    # Once the newer execution has finished, its `missing` is the word.
    files["traces/nightly-benchmarks/exe-000000000000000b.json"] = trace(
        "exe-000000000000000b", "failed", "2026-11-25T02:00:31.5Z", "missing"
    )
    report = build_status(inputs, files, Source("alloy/traces", "refs/heads/alloy/traces", "c"))
    criterion = report.to_json()["intents"][0]["evidence"][0]
    assert (criterion["status"], criterion["execution"]) == ("missing", "exe-000000000000000b")
