"""The bad-input suite (DESIGN section 3, "Loading rules").

Each case puts one broken input under `.alloy/` of a repository that already holds a valid,
compiled intent, and runs the real `alloy check` and `alloy compile` as processes. Every run must:
exit 1; name the file, line and column of the problem (`.alloy/intents/x.yaml:14:9: ...`) with a
message that says what is wrong; print no traceback; and leave `.alloy/artifacts/` byte for byte
as it was.

Where a case names the place of the problem as a string, that string occurs exactly once in the
broken file and the report must point at it (a `|` in it marks the exact column); the expected
line is therefore fixed by the test's own text, never read back from the tool.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import PROJECT, GitRepo, Result, intent_yaml

X = ".alloy/intents/x.yaml"

#: The envelope of a hand-written intent; its lines are 1-6, `spec:` is line 6.
HEAD = "apiVersion: alloy.dev/v1\nkind: Intent\nmetadata:\n  name: x\n  owners: [alice]\nspec:\n"

#: Replaced at run time: where a successful `os.system` would leave its mark.
MARKER = "@MARKER@"
#: Replaced at run time: the digest of the valid intent's artifact.
DIGEST = "@DIGEST@"


def blocks(text: str) -> str:
    """An otherwise valid active intent `x` whose `automation.blocks` is `text`."""
    return intent_yaml("x", blocks=text)


def block(*lines: str, block_id: str = "build") -> str:
    """One block (a list item under `blocks:`); `lines` are its fields after `id`."""
    body = "".join(f"        {line}\n" for line in lines)
    return f"      - id: {block_id}\n{body}"


def request_yaml(artifact: str, inputs: str = "") -> str:
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Request\n"
        "metadata:\n"
        "  name: r\n"
        "spec:\n"
        f"  artifact: {artifact}@sha256:{DIGEST}\n"
        f"{inputs}"
        "  reason: Check last night's numbers again.\n"
        "  requestedBy: alice\n"
    )


def laughs() -> str:
    """A "billion laughs" document: nine levels of nine aliases each (9**9 strings expanded)."""
    text = (
        HEAD
        + "  goal: g\n"
        + '  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    )
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        refs = ", ".join([f"*{prev}"] * 9)
        text += f"  {name}: &{name} [{refs}]\n"
    return text


def symlink(rel: str, target: str | Callable[[Path], str]) -> Callable[[Path], None]:
    """Set-up step: make `rel` (relative to the repository) a symbolic link to `target`."""

    def make(root: Path) -> None:
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target(root) if callable(target) else target, link)

    return make


def outside_file(root: Path) -> str:
    """A valid intent document outside the repository (next to it in the test's tmp dir)."""
    path = root.parent / "outside" / "x.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(intent_yaml("x"), encoding="utf-8")
    return str(path)


def outside_dir(root: Path) -> str:
    path = root.parent / "outside-dir"
    path.mkdir(exist_ok=True)
    (path / "y.yaml").write_text(intent_yaml("y"), encoding="utf-8")
    return str(path)


def with_input(on: str, spec: str = "{type: string, required: true}") -> str:
    """A valid active intent `x` started by the triggers `on` that declares the input `version`
    as `spec`."""
    return intent_yaml("x", on=on).replace(
        "    blocks:\n", f"    inputs:\n      version: {spec}\n    blocks:\n"
    )


#: Triggers that start executions with no one to supply inputs.
UNATTENDED = {
    "apply": "{apply: true}",
    "push": "{push: {paths: ['src/**']}}",
    "schedule": "{schedule: {cron: '0 2 * * *'}}",
}


POLICY_EXECUTABLES = PROJECT + "  policy:\n    allowedExecutables: [python, bash]\n"


@dataclass(frozen=True)
class Case:
    """One broken input and what the report must say about it."""

    id: str
    files: Mapping[str, str | bytes]
    #: Where the report must point: `(line, column)`, or text found once in `files[path]`.
    at: tuple[int, int] | str
    #: A piece of the message (what is wrong and, where there is one, the fix).
    says: str
    #: The file the report names.
    path: str = X
    #: Replaces `.alloy/alloy.yaml` (after the valid intent was compiled).
    project: str | None = None
    setup: Callable[[Path], None] | None = field(default=None, compare=False)


CASES = [
    # --- YAML syntax and plain data ---------------------------------------------------------
    Case(
        "yaml-unclosed-bracket",
        {X: HEAD + "  goal: g\n  acceptance: [{id: AC-1, statement: s}\n  state: active\n"},
        # Noticed at the next key, which cannot continue the list; the message says where the
        # '[' that was never closed opened.
        "|state: active",
        "while parsing a flow sequence that starts at line 8, column 15",
    ),
    Case(
        "yaml-bad-indentation",
        {
            X: "apiVersion: alloy.dev/v1\nkind: Intent\nmetadata:\n  name: x\n   owners: [alice]\nspec:\n  goal: g\n"
        },
        (5, 10),
        "YAML syntax error: mapping values are not allowed",
    ),
    Case(
        "yaml-tab-indentation",
        {X: HEAD + "  goal: g\n\tstate: active\n"},
        (8, 1),
        "a tab character; indent with spaces",
    ),
    Case(
        "yaml-unclosed-quote",
        {X: HEAD + '  goal: "Stays true.\n  state: active\n'},
        (9, 1),
        "while scanning a quoted scalar that starts at line 7, column 9",
    ),
    Case(
        "unknown-field-with-suggestion",
        {X: blocks(block("run: [python, -c, 'print(1)']", "timout: 20m", "effects: none"))},
        "timout:",
        "spec.automation.blocks[0].timout: unknown field; did you mean 'timeout'?",
    ),
    Case(
        "duplicate-key",
        {X: intent_yaml("x", extra_spec="  goal: Said twice.\n")},
        "goal: Said twice.",
        "duplicate key 'goal'; each key may appear once",
    ),
    Case(
        "python-tag-is-not-run",
        {X: HEAD + f"  goal: !!python/object/apply:os.system ['touch {MARKER}']\n"},
        "!!python",
        "tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed",
    ),
    Case(
        "local-tag",
        {X: HEAD + "  goal: !foo Stays true.\n"},
        "!foo",
        "tag '!foo' is not allowed; documents are plain data (remove the tag)",
    ),
    Case(
        "binary-tag",
        {X: HEAD + "  goal: !!binary aGVsbG8=\n"},
        "!!binary",
        "tag 'tag:yaml.org,2002:binary' is not allowed",
    ),
    Case(
        "billion-laughs",
        {X: laughs()},
        # Refused while expanding the first alias on the line of `g`, not after 9**9 strings.
        "  g: |&g",
        "document expands beyond the size limit",
    ),
    Case(
        "too-many-aliases",
        {X: HEAD + "  goal: g\n  x: &l [1]\n  y: [" + ", ".join(["*l"] * 101) + "]\n"},
        "  y: |[",
        "more than 100 aliases",
    ),
    Case(
        "alias-loop",
        {X: HEAD + "  goal: g\n  x: &l [1, *l]\n"},
        "|&l [1",
        "an alias refers to a value that contains it",
    ),
    Case(
        "merge-key",
        {X: HEAD + "  goal: g\n  relations:\n    <<: {dependsOn: []}\n"},
        "<<:",
        "merge keys ('<<') are not supported",
    ),
    Case(
        "too-deep",
        {X: HEAD + "  goal: " + "[" * 200 + "]" * 200 + "\n"},
        # The document and `spec` are levels 1 and 2, so the 63rd '[' is level 65.
        (7, 8 + 63),
        "nested more than 64 levels deep",
    ),
    Case(
        "file-over-1mib",
        {X: intent_yaml("x") + "# " + "x" * (1024 * 1024) + "\n"},
        (1, 1),
        "over the limit of 1048576; split it",
    ),
    Case(
        "not-utf8",
        {X: HEAD.encode() + b"  goal: caf\xe9 au lait\n"},
        (7, 12),  # the byte 0xe9, after `  goal: caf`
        "not UTF-8 text (byte 0xe9); save the file as UTF-8",
    ),
    Case(
        "nul-byte",
        {X: HEAD.encode() + b"  goal: ab\x00cd\n"},
        (7, 11),
        "contains a NUL byte",
    ),
    Case(
        "control-character",
        {X: HEAD + "  goal: ring\x07bell\n"},
        (7, 13),
        "character U+0007 cannot be used",
    ),
    Case(
        "multi-document",
        {X: intent_yaml("x") + "---\n" + intent_yaml("x")},
        "---",
        "more than one document in the file; keep one document per file",
    ),
    Case("empty-file", {X: ""}, (1, 1), "the file is empty"),
    Case("comments-only", {X: "# nothing here yet\n\n"}, (1, 1), "the file is empty"),
    Case(
        "not-a-mapping",
        {X: "- apiVersion: alloy.dev/v1\n- kind: Intent\n"},
        (1, 1),
        "a document must be a mapping with apiVersion, kind, metadata and spec",
    ),
    Case(
        "key-not-a-string",
        {X: HEAD + "  goal: g\n  [a, b]: c\n"},
        "[a, b]",
        "keys must be plain strings",
    ),
    Case(
        "integer-too-large",
        {
            X: blocks(
                block(
                    "run: [python]",
                    "effects: none",
                    "retry: {max: 1" + "0" * 5000 + ", onExitCodes: [75]}",
                )
            )
        },
        "max: |1000",
        "number of 5001 digits is too large",
    ),
    # --- symbolic links ---------------------------------------------------------------------
    Case(
        "symlink-out-of-repo",
        {},
        (1, 1),
        "leaves the repository; replace it with the file itself",
        setup=symlink(X, outside_file),
    ),
    Case(
        "symlinked-dir-out-of-repo",
        {},
        (1, 1),
        "leaves the repository",
        path=".alloy/intents/shared",
        setup=symlink(".alloy/intents/shared", outside_dir),
    ),
    Case(
        "symlink-loop",
        {},
        (1, 1),
        "leads back to a directory that contains it (a loop)",
        path=".alloy/intents/again",
        setup=symlink(".alloy/intents/again", ".."),
    ),
    # --- the envelope -----------------------------------------------------------------------
    Case(
        "unknown-apiversion",
        {X: intent_yaml("x").replace("alloy.dev/v1", "alloy.dev/v2")},
        "alloy.dev/v2",
        "unknown apiVersion 'alloy.dev/v2'; this Alloy reads only alloy.dev/v1",
    ),
    Case(
        "unknown-kind",
        {X: intent_yaml("x").replace("kind: Intent", "kind: Intnet")},
        "Intnet",
        "unknown kind 'Intnet'; did you mean 'Intent'?",
    ),
    Case(
        "missing-kind",
        {X: intent_yaml("x").replace("kind: Intent\n", "")},
        (1, 1),
        "required field 'kind' is missing; add `kind: Intent`",
    ),
    Case(
        "kind-in-wrong-directory",
        {".alloy/requests/x.yaml": intent_yaml("x")},
        "Intent",
        "kind Intent does not belong here; this directory holds Request documents; "
        "move the file to .alloy/intents/",
        path=".alloy/requests/x.yaml",
    ),
    Case(
        "name-is-not-file-name",
        {X: intent_yaml("nightly")},
        "nightly",
        "'nightly' does not match the file name; rename the file to nightly.yaml",
    ),
    Case(
        "name-not-a-slug",
        {X: intent_yaml("x").replace("name: x", "name: Nightly_Bench")},
        "Nightly_Bench",
        "must be a slug",
    ),
    # --- the schema -------------------------------------------------------------------------
    Case(
        "required-field-missing",
        {X: HEAD + "  state: active\n"},
        "|spec:",
        "spec.goal: required field 'goal' is missing",
    ),
    Case(
        "float-for-integer",
        {
            X: blocks(
                block("run: [python]", "effects: none", "retry: {max: 2.5, onExitCodes: [75]}")
            )
        },
        "2.5",
        "retry.max: must be a whole number, not 2.5",
    ),
    Case(
        "infinity-for-integer",
        {
            X: blocks(
                block("run: [python]", "effects: none", "retry: {max: .inf, onExitCodes: [75]}")
            )
        },
        ".inf",
        "retry.max: must be a whole number, not inf",
    ),
    Case(
        "wrong-type",
        {X: intent_yaml("x").replace("goal: Something stays true.", "goal: [fast, cheap]")},
        "[fast, cheap]",
        "spec.goal: must be a string (quote it), not ['fast', 'cheap']",
    ),
    Case(
        "yes-is-not-a-boolean",
        {X: intent_yaml("x", on="{apply: yes, request: true}")},
        "yes",
        "spec.automation.on.apply: must be true or false, not 'yes'",
    ),
    Case(
        "unknown-state",
        {X: intent_yaml("x", state="actve")},
        "actve",
        "'actve' is not allowed; use one of: proposed, accepted, active",
    ),
    Case(
        "run-is-a-string",
        {X: blocks(block("run: python -m bench", "effects: none"))},
        "python -m bench",
        "spec.automation.blocks[0].run: must be a list",
    ),
    Case(
        "invalid-cron",
        {X: intent_yaml("x", on="\n      schedule: {cron: '0 2 * *'}\n")},
        "'0 2 * *'",
        "cron '0 2 * *' has 4 fields; write five",
    ),
    Case(
        "invalid-cron-value",
        {X: intent_yaml("x", on="\n      schedule: {cron: '0 25 * * *'}\n")},
        "'0 25 * * *'",
        "cron '0 25 * * *' is not valid",
    ),
    Case(
        "invalid-duration",
        {X: blocks(block("run: [python]", "timeout: 20 minutes", "effects: none"))},
        "20 minutes",
        "'20 minutes' must be a duration: a number and a unit, like 30s, 20m, 6h or 1d",
    ),
    Case(
        "invalid-timezone",
        {X: intent_yaml("x", on="\n      schedule: {cron: '0 2 * * *', timezone: Mars/Olympus}\n")},
        "Mars/Olympus",
        "unknown time zone 'Mars/Olympus'; use an IANA name",
    ),
    Case(
        "output-escapes-worktree",
        {X: blocks(block("run: [python]", "effects: none", "outputs: [ok.txt, ../x]"))},
        "../x",
        "'../x' leaves or does not name a path inside the worktree",
    ),
    Case(
        "absolute-output",
        {X: blocks(block("run: [python]", "effects: none", "outputs:", "  - /etc/passwd"))},
        "/etc/passwd",
        "'/etc/passwd' must be a relative path inside the worktree",
    ),
    Case(
        "gate-with-two-kinds",
        {
            X: blocks(
                block(
                    "run: [python]",
                    "effects: none",
                    "gates:",
                    "  - approval: {from: [alice]}",
                    "    window: {cron: '* 8-18 * * 1-5'}",
                )
            )
        },
        "approval: {from",
        "a gate has exactly one kind (approval, check, window, after, command); "
        "this one has 2: approval, window",
    ),
    Case(
        "bad-input-name",
        {
            X: intent_yaml("x").replace(
                "    blocks:\n", "    inputs:\n      1st: {type: string}\n    blocks:\n"
            )
        },
        "1st:",
        "'1st' must be an identifier",
    ),
    # --- rules across one document ----------------------------------------------------------
    Case(
        "block-cycle",
        {
            X: blocks(
                block("needs: [b]", "run: [python]", "effects: none", block_id="a")
                + block("needs: [a]", "run: [python]", "effects: none", block_id="b")
            )
        },
        "[b]",
        "blocks form a cycle: a -> b -> a; remove one of these needs",
    ),
    Case(
        "needs-unknown-block",
        {
            X: blocks(
                block("run: [python]", "effects: none")
                + block("needs:", "  - buidl", "run: [python]", "effects: none", block_id="test")
            )
        },
        "buidl",
        "needs unknown block 'buidl'; did you mean 'build'?",
    ),
    Case(
        "duplicate-block-id",
        {
            X: blocks(
                block("run: [python, a.py]", "effects: none")
                + block("run: [python, b.py]", "effects: none")
            )
        },
        "- id: |build\n        run: [python, b.py]",
        "duplicate block id 'build'; block ids must be unique",
    ),
    Case(
        "evidence-unknown-block",
        {
            X: intent_yaml(
                "x",
                extra_spec=(
                    "  acceptance:\n"
                    "    - id: AC-1\n"
                    "      statement: Results are kept.\n"
                    "      evidence: {block: biuld, output: out.txt}\n"
                ),
            )
        },
        "biuld",
        "evidence names unknown block 'biuld'; did you mean 'build'?",
    ),
    Case(
        "evidence-undeclared-output",
        {
            X: intent_yaml(
                "x",
                extra_spec=(
                    "  acceptance:\n"
                    "    - id: AC-1\n"
                    "      statement: Results are kept.\n"
                    "      evidence: {block: build, output: results.json}\n"
                ),
            )
        },
        "results.json",
        "block 'build' does not declare output 'results.json'; add it to the block's outputs",
    ),
    Case(
        "irreversible-without-approval",
        {X: blocks(block("run: [python, publish.py]", "effects: irreversible"))},
        "irreversible",
        "policy: blocks with effects 'irreversible' need an approval gate",
    ),
    Case(
        "executable-not-allowed",
        {X: blocks(block("run: [curl, https://example.com]", "effects: none"))},
        "curl",
        "policy: executable 'curl' is not allowed; allowed: python, bash",
        project=POLICY_EXECUTABLES,
    ),
    Case(
        "timeout-over-policy",
        {X: blocks(block("run: [python]", "timeout: 2d", "effects: none"))},
        "2d",
        "policy: timeout 2d is longer than the allowed 1d",
    ),
    Case(
        "reserved-env-name",
        {X: blocks(block("run: [python]", "effects: none", "env:", "  ALLOY_TOKEN: x"))},
        "ALLOY_TOKEN",
        "names starting with ALLOY_ are reserved",
    ),
    Case(
        "required-input-on-apply",
        {X: with_input(UNATTENDED["apply"])},
        "|version:",
        "input 'version' is required and has no default, but on.apply starts executions with no "
        "one to supply it; give it a default, make it required: false, or start this automation "
        "only by request: true",
    ),
    Case(
        "required-input-on-push",
        {X: with_input(UNATTENDED["push"])},
        "|version:",
        "input 'version' is required and has no default, but on.push starts executions with no "
        "one to supply it; give it a default, make it required: false, or start this automation "
        "only by request: true",
    ),
    Case(
        "required-input-on-schedule",
        {X: with_input(UNATTENDED["schedule"])},
        "|version:",
        "input 'version' is required and has no default, but on.schedule starts executions with no "
        "one to supply it; give it a default, make it required: false, or start this automation "
        "only by request: true",
    ),
    Case(
        "required-input-on-several-triggers",
        # `request: true` as well does not help: the other triggers still start executions.
        {X: with_input("{apply: true, schedule: {cron: '0 2 * * *'}, request: true}")},
        "|version:",
        "input 'version' is required and has no default, but on.apply and on.schedule start "
        "executions with no one to supply it",
    ),
    # --- references between documents -------------------------------------------------------
    Case(
        "depends-on-unknown-intent",
        {X: intent_yaml("x", extra_spec="  relations:\n    dependsOn: [goood]\n")},
        "goood",
        "depends on unknown intent 'goood'; did you mean 'good'?",
    ),
    Case(
        "supersedes-unknown-intent",
        {X: intent_yaml("x", extra_spec="  relations:\n    supersedes:\n      - godo\n")},
        "godo",
        "supersedes unknown intent 'godo'; did you mean 'good'?",
    ),
    Case(
        "depends-on-cycle",
        {
            X: intent_yaml("x", extra_spec="  relations:\n    dependsOn: [y]\n"),
            ".alloy/intents/y.yaml": intent_yaml(
                "y", extra_spec="  relations:\n    dependsOn: [x]\n"
            ),
        },
        "[|y]",
        "dependsOn forms a cycle: x -> y -> x",
    ),
    Case(
        "request-undeclared-input",
        {".alloy/requests/r.yaml": request_yaml("good", "  inputs:\n    colour: red\n")},
        "colour: |red",  # placed on the value given, like a type error would be
        "unknown input 'colour'; declared: none",
        path=".alloy/requests/r.yaml",
    ),
    Case(
        "request-unknown-artifact",
        {".alloy/requests/r.yaml": request_yaml("godo")},
        "godo@",
        "requests artifact 'godo', but no such intent; did you mean 'good'?",
        path=".alloy/requests/r.yaml",
    ),
    Case(
        "approval-bad-execution-id",
        {
            ".alloy/approvals/a.yaml": (
                "apiVersion: alloy.dev/v1\nkind: Approval\nmetadata:\n  name: a\nspec:\n"
                "  execution: exe-123\n  gate: {block: build}\n  decision: approve\n  approver: alice\n"
            )
        },
        "exe-123",
        "must be an execution id like exe-0123456789abcdef",
        path=".alloy/approvals/a.yaml",
    ),
    # --- the project file and the layout of .alloy/ -----------------------------------------
    Case(
        "project-unknown-field",
        {},
        "polcy:",
        "spec.polcy: unknown field; did you mean 'policy'?",
        path=".alloy/alloy.yaml",
        project=PROJECT + "  polcy: {allowedExecutables: [python]}\n",
    ),
    Case(
        "project-yaml-error",
        {},
        (7, 1),
        "did not find expected ',' or ']' (while parsing a flow sequence that starts at line 6",
        path=".alloy/alloy.yaml",
        project=PROJECT.replace("owners: [alice]", "owners: [alice"),
    ),
    Case(
        "yml-extension",
        {".alloy/intents/x.yml": intent_yaml("x")},
        (1, 1),
        "unexpected file type; name it x.yaml",
        path=".alloy/intents/x.yml",
    ),
    Case(
        "unknown-directory",
        {".alloy/intent/x.yaml": intent_yaml("x")},
        (1, 1),
        "unknown directory .alloy/intent/; did you mean 'intents'?",
        path=".alloy/intent/x.yaml",
    ),
    Case(
        "nested-directory",
        {".alloy/intents/team/x.yaml": intent_yaml("x")},
        (1, 1),
        "intents/ has no subdirectories; move the file to .alloy/intents/x.yaml",
        path=".alloy/intents/team/x.yaml",
    ),
]


def position(case: Case, content: str | bytes | None) -> tuple[int, int]:
    """The (line, column) the report must name for `case`."""
    if isinstance(case.at, tuple):
        return case.at
    assert isinstance(content, str), f"{case.id}: a text marker needs the file's text"
    spot = case.at.find("|")
    needle = case.at.replace("|", "", 1)
    assert content.count(needle) == 1, f"{case.id}: {needle!r} must occur once in {case.path}"
    offset = content.index(needle) + max(spot, 0)
    line = content.count("\n", 0, offset) + 1
    return line, offset - (content.rfind("\n", 0, offset) + 1) + 1


@pytest.fixture
def compiled(repo: GitRepo, alloy: Callable[..., Result]) -> str:
    """The repository with one valid active intent (`good`), compiled and committed; returns
    the digest of its artifact."""
    repo.write({".alloy/intents/good.yaml": intent_yaml("good")})
    result = alloy("compile")
    assert result.code == 0, result
    artifact = json.loads((repo.path / ".alloy/artifacts/good.json").read_text(encoding="utf-8"))
    repo.commit("a valid intent and its artifact")
    digest = artifact["digest"]
    assert isinstance(digest, str)
    return digest.removeprefix("sha256:")


def assert_reported(result: Result, path: str, line: int, col: int, says: str) -> None:
    output = result.out + result.err
    assert "Traceback" not in output
    assert result.code == 1, output
    place = f"{path}:{line}:{col}: "
    reports = [text for text in output.splitlines() if text.startswith(place)]
    assert reports, f"no report at {place!r} in:\n{output}"
    assert any(says in text for text in reports), (
        f"{says!r} not in the report at {place}:\n{output}"
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_reported_and_nothing_is_written(
    case: Case, repo: GitRepo, alloy: Callable[..., Result], compiled: str
) -> None:
    marker = repo.path.parent / "marker-os-system-ran"
    files = {
        rel: (
            content.replace(MARKER, str(marker)).replace(DIGEST, compiled)
            if isinstance(content, str)
            else content
        )
        for rel, content in case.files.items()
    }
    if case.project is not None:
        files[".alloy/alloy.yaml"] = case.project
    repo.write(files)
    if case.setup is not None:
        case.setup(repo.path)
    before = repo.tree(".alloy/artifacts")
    assert ".alloy/artifacts/good.json" in before

    line, col = position(case, files.get(case.path))
    for args in (("check",), ("compile",), ("check", "--no-cache")):
        result = alloy(*args)
        assert_reported(result, case.path, line, col, case.says)
        assert repo.tree(".alloy/artifacts") == before, f"`alloy {args[0]}` changed the artifacts"
    assert not marker.exists(), "a YAML tag ran a command"


@pytest.mark.parametrize(
    ("on", "spec"),
    [
        *[(on, "{type: string, required: true, default: '1.0'}") for on in UNATTENDED.values()],
        *[(on, "{type: string, required: false}") for on in UNATTENDED.values()],
        ("{request: true}", "{type: string, required: true}"),
    ],
    ids=[
        *[f"{t}-with-default" for t in UNATTENDED],
        *[f"{t}-not-required" for t in UNATTENDED],
        "request-only",
    ],
)
def test_an_input_that_can_always_be_supplied_is_accepted(
    repo: GitRepo, alloy: Callable[..., Result], on: str, spec: str
) -> None:
    """The counterpart of the `required-input-on-*` cases: a default, `required: false`, or
    only Requests (which supply inputs) starting the automation."""
    repo.write({X: with_input(on, spec)})
    for args in (("compile",), ("check",)):
        result = alloy(*args)
        assert result.code == 0, result
        assert "version" not in result.out + result.err, result
    assert (repo.path / ".alloy/artifacts/x.json").is_file()


def test_the_suite_covers_at_least_30_distinct_inputs() -> None:
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids)
    assert len(CASES) >= 30


# --- several problems at once, and the machine-readable formats --------------------------------

#: Three broken files at once: the project, an intent that does not parse, one that is invalid.
BROKEN = {
    ".alloy/alloy.yaml": PROJECT + "  polcy: {}\n",
    ".alloy/intents/a.yaml": HEAD.replace("name: x", "name: a") + "  goal: [unclosed\n",
    ".alloy/intents/b.yaml": intent_yaml(
        "b", blocks=block("run: [python]", "timout: 1m", "effects: none")
    ),
}
EXPECTED = [
    (".alloy/alloy.yaml", 7, 3, "did you mean 'policy'?"),
    (".alloy/intents/a.yaml", 8, 1, "did not find expected ',' or ']'"),
    (".alloy/intents/b.yaml", 14, 9, "did you mean 'timeout'?"),
]


def test_every_broken_file_is_reported(
    repo: GitRepo, alloy: Callable[..., Result], compiled: str
) -> None:
    repo.write(BROKEN)
    before = repo.tree(".alloy/artifacts")
    for args in (("check",), ("compile",)):
        result = alloy(*args)
        for path, line, col, says in EXPECTED:
            assert_reported(result, path, line, col, says)
    assert repo.tree(".alloy/artifacts") == before


def test_check_json_lists_every_problem(
    repo: GitRepo, alloy: Callable[..., Result], compiled: str
) -> None:
    repo.write(BROKEN)
    result = alloy("check", "--format", "json")
    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    payload = json.loads(result.out)
    diagnostics = payload["diagnostics"]
    assert payload["errors"] == len([d for d in diagnostics if d["severity"] == "error"]) >= 3
    for d in diagnostics:
        assert {"path", "line", "column", "message"} <= set(d)
        assert isinstance(d["line"], int)
        assert isinstance(d["column"], int)
    for path, line, col, says in EXPECTED:
        assert any(
            d["path"] == path and d["line"] == line and d["column"] == col and says in d["message"]
            for d in diagnostics
        ), (path, line, col, says, diagnostics)


def test_check_github_emits_workflow_commands(
    repo: GitRepo, alloy: Callable[..., Result], compiled: str
) -> None:
    repo.write(BROKEN)
    result = alloy("check", "--format", "github")
    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    lines = result.out.splitlines()
    for path, line, col, says in EXPECTED:
        prefix = f"::error file={path},line={line},col={col}::"
        matching = [text for text in lines if text.startswith(prefix)]
        assert matching, (prefix, result.out)
        assert says in matching[0]
    assert all(re.match(r"^::(error|warning) file=", text) for text in lines if text)
