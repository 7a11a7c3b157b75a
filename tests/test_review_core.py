"""The review core (`alloy.review.review_snapshots`) over real git commits: each kind of finding
it owns, asserted as structured data (kind, severity, path, line, details), plus renames, the
guarantee that nothing from the pull request runs, and determinism."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alloy.load import Entry
from alloy.review import Finding, Review, line_of, review_snapshots
from controllers.git import read_tree_files
from tests.conftest import GitRepo, Result, intent_yaml

Alloy = Callable[..., Result]

PROPOSED = """\
apiVersion: alloy.dev/v1
kind: Intent
metadata:
  name: {name}
  owners: [bob, team:perf]
spec:
  state: {state}
  goal: Catch performance regressions within a day of the change that caused them.
  rationale: Regressions found weeks later cost days of bisecting, so we want them early.
  acceptance:
    - id: AC-1
      statement: The benchmark suite runs every night on main.
    - id: AC-2
      statement: Results are kept for ninety days.
"""


def snapshot(repo: GitRepo, rev: str) -> dict[str, Entry]:
    """`.alloy/` of commit `rev`, read from git as data (what `alloy review` does)."""
    return {p: Entry(data=b) for p, b in read_tree_files(repo.path, rev, ".alloy/").items()}


def review(repo: GitRepo, base: str, head: str, **kwargs: Any) -> Review:
    return review_snapshots(
        snapshot(repo, base), snapshot(repo, head), base_label=base, head_label=head, **kwargs
    )


def line(text: str, needle: str, after: str | None = None) -> int:
    """1-based line of the first line containing `needle` (after the line containing `after`)."""
    lines = text.splitlines()
    start = next(i for i, t in enumerate(lines) if after in t) if after else 0
    return next(i for i, t in enumerate(lines) if i >= start and needle in t) + 1


def only(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def compiled(repo: GitRepo, alloy: Alloy, message: str) -> str:
    result = alloy("compile")
    assert result.code == 0, result.err
    return repo.commit(message)


# --- the line helper ----------------------------------------------------------------------


def test_line_of_addresses_keys_indexes_and_ids() -> None:
    text = PROPOSED.format(name="bench", state="proposed")
    data = text.encode()
    assert line_of(data, ("spec", "state")) == line(text, "state:")
    assert line_of(data, ("spec", "acceptance", "AC-2")) == line(text, "id: AC-2")
    assert line_of(data, ("spec", "acceptance", 1, "statement")) == line(text, "ninety days")
    assert line_of(text, ("metadata", "owners", 1)) == line(text, "owners:")  # flow list
    # What does not exist answers its deepest existing parent; what cannot be parsed, line 1.
    assert line_of(data, ("spec", "automation", "blocks")) == line(text, "spec:")
    assert line_of(data, ("spec", "acceptance", "AC-9")) == line(text, "acceptance:")
    assert line_of(b"\xff\xfe not yaml: [", ("spec",)) == 1
    assert line_of(None, ("spec",)) == 1
    artifact = b'{\n  "digest": "x",\n  "spec": {\n    "blocks": []\n  }\n}\n'
    assert line_of(artifact, ("spec", "blocks")) == 4


# --- documents ----------------------------------------------------------------------------


def test_nothing_changed(repo: GitRepo) -> None:
    base = repo.commit("empty")
    repo.write({"README.txt": "code only\n", ".alloy/intents/README.md": "notes\n"})
    head = repo.commit("code")
    result = review(repo, base, head)
    assert result.changes == []
    assert result.findings == []
    assert result.verdict == "No intent changes."
    assert not result.blocking


def test_documents_added_changed_removed(repo: GitRepo) -> None:
    repo.write(
        {
            ".alloy/intents/keep.yaml": PROPOSED.format(name="keep", state="proposed"),
            ".alloy/intents/drop.yaml": PROPOSED.format(name="drop", state="rejected")
            .replace("Catch performance", "Something entirely different about")
            .replace("benchmark suite", "deploy pipeline"),
        }
    )
    base = repo.commit("base")
    (repo.path / ".alloy/intents/drop.yaml").unlink()
    changed = (
        PROPOSED.format(name="keep", state="proposed")
        .replace("within a day", "within an hour")
        .replace("[bob, team:perf]", "[bob]")
    )
    repo.write(
        {
            ".alloy/intents/keep.yaml": changed,
            ".alloy/intents/fresh.yaml": "apiVersion: alloy.dev/v1\nkind: Intent\n"
            "metadata: {name: fresh, owners: [carol]}\nspec: {goal: A new idea.}\n",
        }
    )
    head = repo.commit("head")
    result = review(repo, base, head)
    changes = {c.path: c for c in result.changes}
    assert [(c.change, c.kind, c.name, c.fields) for c in result.changes] == [
        ("removed", "Intent", "drop", ()),
        ("added", "Intent", "fresh", ()),
        ("changed", "Intent", "keep", ("metadata.owners", "spec.goal")),
    ]
    assert changes[".alloy/intents/keep.yaml"].state is None
    assert result.findings == []  # proposed and rejected intents: no decisions, no artifacts
    assert result.verdict.startswith("OK to merge after review — 3 document(s) changed")


def test_rename_with_a_small_edit_is_one_rename_with_its_edit(repo: GitRepo) -> None:
    repo.write({".alloy/intents/bench.yaml": PROPOSED.format(name="bench", state="proposed")})
    base = repo.commit("base")
    (repo.path / ".alloy/intents/bench.yaml").unlink()
    edited = PROPOSED.format(name="nightly-bench", state="proposed").replace(
        "ninety days", "a year"
    )
    repo.write({".alloy/intents/nightly-bench.yaml": edited})
    head = repo.commit("rename")
    result = review(repo, base, head)
    assert len(result.changes) == 1
    change = result.changes[0]
    assert change.change == "renamed"
    assert change.kind == "Intent"
    assert change.name == "nightly-bench"
    assert change.path == ".alloy/intents/nightly-bench.yaml"
    assert change.old_path == ".alloy/intents/bench.yaml"
    assert change.fields == ("spec.acceptance[AC-2].statement",)
    # The edit is reviewed like any other: the criterion was reworded.
    [reworded] = result.findings
    assert reworded.kind == "acceptance-reworded"
    assert reworded.path == ".alloy/intents/nightly-bench.yaml"
    assert reworded.line == line(edited, "a year")
    assert reworded.details["old"] == "Results are kept for ninety days."
    assert reworded.details["new"] == "Results are kept for a year."


def test_renamed_active_intent_and_its_artifact(repo: GitRepo, alloy: Alloy) -> None:
    repo.write({".alloy/intents/build.yaml": intent_yaml("build")})
    base = compiled(repo, alloy, "base")
    (repo.path / ".alloy/intents/build.yaml").unlink()
    repo.write({".alloy/intents/build-all.yaml": intent_yaml("build-all")})
    head = compiled(repo, alloy, "rename")
    result = review(repo, base, head)
    assert [(c.change, c.kind, c.path, c.old_path) for c in result.changes] == [
        ("renamed", "Artifact", ".alloy/artifacts/build-all.json", ".alloy/artifacts/build.json"),
        ("renamed", "Intent", ".alloy/intents/build-all.yaml", ".alloy/intents/build.yaml"),
    ]
    assert result.changes[1].fields == ()
    assert not only(result.findings, "artifact-stale")
    assert not only(result.findings, "lifecycle-move")


# --- lifecycle ----------------------------------------------------------------------------


def test_lifecycle_move_allowed_needs_the_owners(repo: GitRepo) -> None:
    repo.write({".alloy/intents/bench.yaml": PROPOSED.format(name="bench", state="proposed")})
    base = repo.commit("base")
    text = PROPOSED.format(name="bench", state="accepted")
    repo.write({".alloy/intents/bench.yaml": text})
    head = repo.commit("accept")
    result = review(repo, base, head)
    [change] = result.changes
    assert change.state == ("proposed", "accepted")
    assert change.fields == ("spec.state",)
    [move] = result.findings
    assert (move.kind, move.severity) == ("lifecycle-move", "medium")
    assert (move.path, move.line) == (".alloy/intents/bench.yaml", line(text, "state:"))
    assert move.document == "bench"
    assert move.details == {"from": "proposed", "to": "accepted"}
    assert move.approvers == ("bob", "team:perf")
    assert result.approvers == ["bob", "team:perf"]
    assert not result.blocking


@pytest.mark.parametrize(
    ("before", "after", "allowed"),
    [
        ("accepted", "active", True),
        ("accepted", "deprecated", True),
        ("active", "deprecated", True),
        ("deprecated", "retired", True),
        ("deprecated", "active", True),
        ("proposed", "rejected", True),
        ("proposed", "active", False),
        ("active", "proposed", False),
        ("retired", "active", False),
        ("rejected", "accepted", False),
        ("active", "retired", False),
    ],
)
def test_lifecycle_moves_follow_the_design(
    repo: GitRepo, before: str, after: str, allowed: bool
) -> None:
    repo.write({".alloy/intents/bench.yaml": PROPOSED.format(name="bench", state=before)})
    base = repo.commit("base")
    text = PROPOSED.format(name="bench", state=after)
    repo.write({".alloy/intents/bench.yaml": text})
    head = repo.commit("move")
    result = review(repo, base, head)
    [move] = only(result.findings, "lifecycle-move") + only(
        result.findings, "lifecycle-move-disallowed"
    )
    assert move.kind == ("lifecycle-move" if allowed else "lifecycle-move-disallowed")
    assert move.severity == ("medium" if allowed else "blocking")
    assert move.line == line(text, "state:")
    assert (move.details["from"], move.details["to"]) == (before, after)
    assert result.blocking is not allowed


def test_new_intent_counts_as_a_move_from_proposed(repo: GitRepo) -> None:
    base = repo.commit("base")
    accepted = PROPOSED.format(name="bench", state="accepted")
    active = PROPOSED.format(name="other", state="active").replace("[bob, team:perf]", "[carol]")
    repo.write(
        {
            ".alloy/intents/bench.yaml": accepted,
            ".alloy/intents/other.yaml": active,
            ".alloy/intents/idea.yaml": PROPOSED.format(name="idea", state="proposed")
            .replace("Catch performance", "Make onboarding")
            .replace("benchmark suite", "welcome page"),
        }
    )
    head = repo.commit("new")
    result = review(repo, base, head)
    by_doc = {f.document: f for f in result.findings}
    assert set(by_doc) == {"bench", "other"}  # a new proposed intent is no decision yet
    assert by_doc["bench"].kind == "lifecycle-move"
    assert by_doc["bench"].details == {"from": "proposed", "to": "accepted", "new": True}
    assert by_doc["bench"].approvers == ("bob", "team:perf")
    assert by_doc["other"].kind == "lifecycle-move-disallowed"
    assert by_doc["other"].severity == "blocking"
    assert by_doc["other"].details["allowed"] == ["accepted", "rejected"]
    assert by_doc["other"].line == line(active, "state:")
    states = {c.name: c.state for c in result.changes}
    assert states == {
        "bench": ("proposed", "accepted"),
        "idea": None,
        "other": ("proposed", "active"),
    }
    assert result.approvers == ["bob", "carol", "team:perf"]


def test_deleting_an_intent_in_force_is_a_disallowed_move(repo: GitRepo) -> None:
    text = PROPOSED.format(name="bench", state="deprecated")
    repo.write(
        {
            ".alloy/intents/bench.yaml": text,
            ".alloy/intents/old.yaml": PROPOSED.format(name="old", state="retired").replace(
                "Catch performance", "Keep the legacy"
            ),
        }
    )
    base = repo.commit("base")
    (repo.path / ".alloy/intents/bench.yaml").unlink()
    (repo.path / ".alloy/intents/old.yaml").unlink()
    head = repo.commit("delete")
    result = review(repo, base, head)
    assert sorted(c.change for c in result.changes) == ["removed", "removed"]
    [finding] = result.findings  # the retired one may go
    assert finding.kind == "lifecycle-move-disallowed"
    assert (finding.path, finding.line) == (".alloy/intents/bench.yaml", line(text, "state:"))
    assert finding.details == {"from": "deprecated", "to": None, "removed": True}


# --- acceptance criteria ------------------------------------------------------------------


def test_acceptance_added_removed_reworded(repo: GitRepo) -> None:
    before = PROPOSED.format(name="bench", state="proposed") + (
        "    - id: AC-3\n      statement: Someone looks at the results.\n"
    )
    repo.write({".alloy/intents/bench.yaml": before})
    base = repo.commit("base")
    after = (
        PROPOSED.format(name="bench", state="proposed")
        .replace("    - id: AC-2\n      statement: Results are kept for ninety days.\n", "")
        .replace("every night on main.", "every night on main and on release branches.")
    ) + (
        "    - id: AC-3\n      statement: Someone looks at the results.\n"
        "    - id: AC-4\n      statement: A regression opens an issue.\n"
    )
    repo.write({".alloy/intents/bench.yaml": after})
    head = repo.commit("edit criteria")
    result = review(repo, base, head)
    found = {f.kind: f for f in result.findings}
    assert sorted(found) == ["acceptance-added", "acceptance-removed", "acceptance-reworded"]
    added, removed, reworded = (
        found["acceptance-added"],
        found["acceptance-removed"],
        found["acceptance-reworded"],
    )
    assert (added.severity, added.path, added.line) == (
        "info",
        ".alloy/intents/bench.yaml",
        line(after, "id: AC-4"),
    )
    assert added.details == {
        "id": "AC-4",
        "statement": "A regression opens an issue.",
        "evidence": None,
    }
    # Removed: anchored in the base file, where the criterion still is.
    assert (removed.severity, removed.line) == ("high", line(before, "id: AC-2"))
    assert removed.details["id"] == "AC-2"
    assert removed.details["statement"] == "Results are kept for ninety days."
    assert (reworded.severity, reworded.line) == ("low", line(after, "release branches"))
    assert reworded.details["id"] == "AC-1"
    assert reworded.details["changed"] == ["statement"]
    assert reworded.details["old"] == "The benchmark suite runs every night on main."
    assert reworded.details["new"].endswith("on main and on release branches.")
    [change] = result.changes
    assert change.fields == (
        "spec.acceptance[AC-1].statement",
        "spec.acceptance[AC-2]",
        "spec.acceptance[AC-4]",
    )


def test_acceptance_evidence_change_is_a_rewording(repo: GitRepo) -> None:
    spec = (
        "  acceptance:\n"
        "    - id: AC-1\n"
        "      statement: It builds.\n"
        "      evidence: {block: build, output: out.txt}\n"
    )
    blocks = (
        "      - id: build\n"
        "        run: [python, -c, 'print(1)']\n"
        "        effects: none\n"
        "        outputs: [out.txt, log.txt]\n"
    )
    repo.write(
        {
            ".alloy/intents/b.yaml": intent_yaml(
                "b", state="proposed", extra_spec=spec, blocks=blocks
            )
        }
    )
    base = repo.commit("base")
    text = intent_yaml(
        "b", state="proposed", extra_spec=spec.replace("out.txt", "log.txt"), blocks=blocks
    )
    repo.write({".alloy/intents/b.yaml": text})
    head = repo.commit("evidence")
    [reworded] = review(repo, base, head).findings
    assert reworded.kind == "acceptance-reworded"
    assert reworded.line == line(text, "evidence:")
    assert reworded.details["changed"] == ["evidence"]
    assert reworded.details["oldEvidence"] == {"block": "build", "output": "out.txt"}
    assert reworded.details["newEvidence"] == {"block": "build", "output": "log.txt"}


# --- validity and references --------------------------------------------------------------


def test_invalid_document(repo: GitRepo) -> None:
    base = repo.commit("base")
    text = intent_yaml("bad", state="proposed").replace(
        "        effects: none\n", "        effects: none\n        timout: 20m\n"
    )
    repo.write({".alloy/intents/bad.yaml": text, ".alloy/intents/worse.yaml": "a: [\n"})
    head = repo.commit("bad")
    result = review(repo, base, head)
    invalid = only(result.findings, "invalid-document")
    assert [(f.path, f.severity) for f in invalid] == [
        (".alloy/intents/bad.yaml", "blocking"),
        (".alloy/intents/worse.yaml", "blocking"),
    ]
    bad, worse = invalid
    assert bad.line == line(text, "timout:")
    assert bad.details["where"] == "spec.automation.blocks[0].timout"
    assert "did you mean 'timeout'" in bad.message
    assert bad.document == "bad"
    assert worse.line >= 1
    assert "YAML syntax error" in worse.message
    assert result.blocking
    assert result.verdict.startswith("Blocking: do not merge")
    # The unparsable file is still a document change (its fields cannot be told).
    assert {c.path for c in result.changes} == {
        ".alloy/intents/bad.yaml",
        ".alloy/intents/worse.yaml",
    }


def test_broken_references(repo: GitRepo) -> None:
    repo.write({".alloy/intents/ci-green.yaml": PROPOSED.format(name="ci-green", state="proposed")})
    base = repo.commit("base")
    spec = (
        "  acceptance:\n"
        "    - id: AC-1\n"
        "      statement: It builds.\n"
        "      evidence: {block: biuld, output: out.txt}\n"
        "    - id: AC-2\n"
        "      statement: It logs.\n"
        "      evidence: {block: build, output: log.txt}\n"
        "  relations:\n"
        "    dependsOn: [ci-green, ci-red]\n"
        "    supersedes: [old-thing]\n"
    )
    blocks = (
        "      - id: build\n"
        "        run: [python, -c, 'print(1)']\n"
        "        effects: none\n"
        "        outputs: [out.txt]\n"
        "        gates:\n"
        "          - after: {intent: nightly}\n"
        "      - id: ship\n"
        "        needs: [build, test]\n"
        "        run: [python, -c, 'print(2)']\n"
        "        effects: none\n"
    )
    text = intent_yaml("app", state="proposed", extra_spec=spec, blocks=blocks)
    request = (
        "apiVersion: alloy.dev/v1\nkind: Request\nmetadata: {name: run-it}\n"
        "spec:\n  artifact: gone@sha256:" + "0" * 64 + "\n  reason: try\n  requestedBy: alice\n"
    )
    repo.write({".alloy/intents/app.yaml": text, ".alloy/requests/run-it.yaml": request})
    head = repo.commit("refs")
    result = review(repo, base, head)
    broken = only(result.findings, "reference-broken")
    got = sorted((f.details["field"], f.details["target"], f.line) for f in broken)
    assert got == sorted(
        [
            ("dependsOn", "ci-red", line(text, "dependsOn:")),
            ("supersedes", "old-thing", line(text, "supersedes:")),
            ("after", "nightly", line(text, "after:")),
            ("evidence.block", "biuld", line(text, "biuld")),
            ("evidence.output", "build/log.txt", line(text, "log.txt")),
            ("needs", "test", line(text, "needs:")),
            ("artifact", "gone", line(request, "artifact:")),
        ]
    )
    assert all(f.severity == "blocking" for f in broken)
    assert {f.path for f in broken} == {".alloy/intents/app.yaml", ".alloy/requests/run-it.yaml"}
    # Each broken reference is reported once: not also as an invalid document.
    assert only(result.findings, "invalid-document") == []
    assert any("ci-red" in f.message for f in broken)


def test_reference_broken_by_removing_its_target(repo: GitRepo) -> None:
    other = (
        PROPOSED.format(name="app", state="proposed")
        .replace("  acceptance:\n", "  relations: {dependsOn: [ci-green]}\n  acceptance:\n")
        .replace("Catch performance", "Ship the app")
    )
    repo.write(
        {
            ".alloy/intents/ci-green.yaml": PROPOSED.format(name="ci-green", state="proposed"),
            ".alloy/intents/app.yaml": other,
        }
    )
    base = repo.commit("base")
    (repo.path / ".alloy/intents/ci-green.yaml").unlink()
    head = repo.commit("remove target")
    result = review(repo, base, head)
    [broken] = result.findings
    assert (broken.kind, broken.path, broken.line) == (
        "reference-broken",
        ".alloy/intents/app.yaml",
        line(other, "dependsOn"),
    )
    assert broken.details["target"] == "ci-green"


# --- artifacts ----------------------------------------------------------------------------


def test_artifact_stale_missing_and_extra(repo: GitRepo, alloy: Alloy) -> None:
    repo.write(
        {
            ".alloy/intents/build.yaml": intent_yaml("build"),
            ".alloy/intents/lint.yaml": intent_yaml("lint"),
            ".alloy/intents/docs.yaml": intent_yaml("docs"),
        }
    )
    base = compiled(repo, alloy, "base")
    changed = intent_yaml("build").replace("print(1)", "print(2)")
    repo.write({".alloy/intents/build.yaml": changed})
    (repo.path / ".alloy/artifacts/lint.json").unlink()
    (repo.path / ".alloy/intents/docs.yaml").unlink()
    head = repo.commit("no compile")
    result = review(repo, base, head)
    stale = {f.details["reason"]: f for f in only(result.findings, "artifact-stale")}
    assert sorted(stale) == ["extra", "missing", "out-of-date"]
    assert all(f.severity == "blocking" for f in stale.values())
    out_of_date = stale["out-of-date"]
    assert out_of_date.path == ".alloy/artifacts/build.json"
    head_artifact = (repo.path / ".alloy/artifacts/build.json").read_text()
    assert head_artifact.splitlines()[out_of_date.line - 1].strip().startswith('"')
    assert out_of_date.details["actualDigest"] != out_of_date.details["expectedDigest"]
    assert "out of date" in out_of_date.message
    missing = stale["missing"]
    assert (missing.path, missing.document) == (".alloy/intents/lint.yaml", "lint")
    assert missing.line == line(intent_yaml("lint"), "state:")
    assert stale["extra"].path == ".alloy/artifacts/docs.json"
    assert "no longer exists" in stale["extra"].message
    assert not only(result.findings, "artifact-hand-edited")
    # Compiling fixes all three.
    fixed = compiled(repo, alloy, "compiled")
    again = review(repo, base, fixed)
    assert not only(again.findings, "artifact-stale")


def test_artifact_hand_edited(repo: GitRepo, alloy: Alloy) -> None:
    repo.write(
        {
            ".alloy/intents/build.yaml": intent_yaml("build"),
            ".alloy/intents/lint.yaml": intent_yaml("lint"),
        }
    )
    base = compiled(repo, alloy, "base")
    # One artifact edited without fixing its digest; one edited and its digest recomputed.
    from alloy.compile import document_digest, pretty_bytes

    build_path = repo.path / ".alloy/artifacts/build.json"
    build_text = build_path.read_text().replace("print(1)", "print('pwned')")
    build_path.write_text(build_text)
    lint_path = repo.path / ".alloy/artifacts/lint.json"
    lint = json.loads(lint_path.read_text())
    lint["spec"]["blocks"][0]["run"] = ["curl", "https://example.com/x.sh"]
    lint["digest"] = document_digest(lint)
    lint_path.write_bytes(pretty_bytes(lint))
    head = repo.commit("hand edit")
    result = review(repo, base, head)
    edited = {f.path: f for f in only(result.findings, "artifact-hand-edited")}
    assert sorted(edited) == [".alloy/artifacts/build.json", ".alloy/artifacts/lint.json"]
    build, lint_finding = (
        edited[".alloy/artifacts/build.json"],
        edited[".alloy/artifacts/lint.json"],
    )
    assert build.severity == lint_finding.severity == "blocking"
    assert build.details["reason"] == "digest-mismatch"
    assert "digest does not match its content" in build.message
    assert build.line == line(build_text, "pwned")
    assert lint_finding.details["reason"] == "body-edited"
    assert "compiled from the current .alloy/intents/lint.yaml" in lint_finding.message
    assert lint_finding.line == line(lint_path.read_text(), "curl")
    assert not only(result.findings, "artifact-stale")


# --- safety and determinism ---------------------------------------------------------------


def test_review_never_runs_anything_from_the_pull_request(
    repo: GitRepo, alloy: Alloy, tmp_path: Path
) -> None:
    marker = tmp_path / "marker-written-by-the-pull-request"
    code = f"open({str(marker)!r}, 'w').write('ran')"
    base = repo.commit("base")
    blocks = (
        "      - id: pwn\n"
        f"        run: [{sys.executable}, -c, {json.dumps(code)}]\n"
        "        effects: none\n"
        "        gates:\n"
        f"          - command: {{run: [{sys.executable}, -c, {json.dumps(code)}]}}\n"
    )
    repo.write({".alloy/intents/pwn.yaml": intent_yaml("pwn", blocks=blocks, on="{apply: true}")})
    head = compiled(repo, alloy, "pull request")
    result = review(repo, base, head, changed_paths=[".alloy/intents/pwn.yaml"])
    assert not marker.exists()
    assert [c.path for c in result.changes] == [
        ".alloy/artifacts/pwn.json",
        ".alloy/intents/pwn.yaml",
    ]
    assert only(result.findings, "lifecycle-move-disallowed")  # created active
    assert not marker.exists()


def test_same_inputs_give_identical_json(repo: GitRepo, alloy: Alloy) -> None:
    repo.write(
        {
            ".alloy/intents/build.yaml": intent_yaml("build"),
            ".alloy/intents/bench.yaml": PROPOSED.format(name="bench", state="proposed"),
        }
    )
    base = compiled(repo, alloy, "base")
    repo.write(
        {
            ".alloy/intents/build.yaml": intent_yaml("build", state="deprecated"),
            ".alloy/intents/bench.yaml": PROPOSED.format(name="bench", state="accepted").replace(
                "ninety", "thirty"
            ),
            ".alloy/intents/bad.yaml": "kind: Intent\n",
        }
    )
    head = repo.commit("head")
    first = json.dumps(review(repo, base, head).to_json(), sort_keys=False)
    second = json.dumps(review(repo, base, head).to_json(), sort_keys=False)
    assert first == second
    assert json.loads(first)["findings"]  # something was found, in one canonical order


def test_parse_cache_gives_the_same_review(repo: GitRepo, alloy: Alloy) -> None:
    repo.write({".alloy/intents/build.yaml": intent_yaml("build")})
    base = compiled(repo, alloy, "base")
    repo.write({".alloy/intents/build.yaml": intent_yaml("build").replace("print(1)", "print(3)")})
    head = repo.commit("stale")

    class Cache:
        def __init__(self) -> None:
            self.data: dict[str, Any] = {}

        def get(self, key: str) -> Any:
            raw = self.data.get(key)
            if raw is None:
                return None
            from alloy.load import DocResult

            return DocResult.from_json(key.split("\0", 1)[0], raw)

        def put(self, key: str, result: Any) -> None:
            self.data[key] = result.to_json()

    cache = Cache()
    plain = review(repo, base, head).to_json()
    warm_up = review(repo, base, head, cache=cache).to_json()
    cached = review(repo, base, head, cache=cache).to_json()
    assert plain == warm_up == cached
    assert [f["kind"] for f in cached["findings"] if f["kind"].startswith("artifact")] == [
        "artifact-stale"
    ]
