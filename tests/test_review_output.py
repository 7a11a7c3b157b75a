"""The review's outputs, rendered from hand-made reviews: Markdown (verdict first, findings by
severity, details folded, within a size limit, byte-identical, escaped), GitHub workflow
annotations and the check-run body."""

from __future__ import annotations

import html
import random
import re

import pytest
from markdown_it import MarkdownIt

from alloy.review._model import DocumentChange, Finding, Review, Start
from alloy.review._render import (
    ANNOTATIONS_PER_REQUEST,
    GITHUB_SUMMARY_LIMIT,
    check_run,
    code,
    github_annotations,
    markdown,
    prose,
    text,
)

INTENT = ".alloy/intents/nightly.yaml"
ARTIFACT = ".alloy/artifacts/nightly.json"


def _html(md: str) -> str:
    """HTML as a CommonMark renderer with GitHub's tables makes it (raw HTML allowed, as
    GitHub's renderer allows it before sanitizing)."""
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(md)


def _review() -> Review:
    return Review(
        base="main",
        head="pr",
        changes=[
            DocumentChange(
                "changed",
                "Intent",
                "nightly",
                INTENT,
                fields=("spec.automation.blocks[build].run", "spec.state"),
                state=("accepted", "active"),
            ),
            DocumentChange(
                "renamed",
                "Intent",
                "report",
                ".alloy/intents/report.yaml",
                old_path=".alloy/intents/weekly.yaml",
                fields=("metadata.name",),
            ),
            DocumentChange("added", "Artifact", "nightly", ARTIFACT),
        ],
        findings=[
            Finding("acceptance-added", "info", INTENT, 20, "criterion AC-3 added", "nightly"),
            Finding(
                "effects-stronger",
                "high",
                INTENT,
                14,
                "block `deploy` became irreversible (was idempotent)",
                "nightly",
                {"from": "idempotent", "to": "irreversible"},
                ("alice", "team:release"),
            ),
            Finding("artifact-stale", "blocking", ARTIFACT, 1, "out of date; run `alloy compile`"),
            Finding("timeout-raised", "medium", INTENT, 16, "timeout 10m -> 2h", "nightly"),
            Finding("trigger-new", "low", INTENT, 9, "new schedule 0 3 * * *", "nightly"),
        ],
        starts=[
            Start("nightly", "nightly", "apply", "sha256:abc", "exe-0123456789abcdef", "applied")
        ],
        approvers=["team:release", "alice"],
    )


# --- Markdown --------------------------------------------------------------------------------


def test_markdown_puts_the_verdict_first_then_findings_by_severity_then_details() -> None:
    review = _review()
    out = markdown(review)
    lines = out.splitlines()
    assert lines[0] == f"**FAIL: {review.verdict}**"
    assert review.verdict.startswith("Blocking: do not merge")
    headings = [line for line in lines if line.startswith("### ")]
    assert headings == [
        "### Blocking (1)",
        "### High (1)",
        "### Medium (1)",
        "### Low (1)",
        "### Info (1)",
    ]
    assert (
        out.index("artifact-stale") < out.index("effects-stronger") < out.index("acceptance-added")
    )
    assert (
        "- **effects\\-stronger**" not in out
    )  # kinds are plain words; only Markdown-special characters are escaped
    assert (
        f"- **effects-stronger** `{INTENT}:14` — block `deploy` became irreversible (was "
        "idempotent) (approval: `alice`, `team:release`)"
    ) in lines
    # The details come after every finding, folded.
    first_fold = out.index("<details>")
    assert first_fold > out.index("acceptance-added")
    assert "<summary>Approvals needed (2)</summary>" in out
    assert "<summary>What merging would start (1)</summary>" in out
    assert "<summary>Documents changed (3)</summary>" in out
    assert "| `nightly` | `apply` | `sha256:abc` | `exe-0123456789abcdef` | applied |" in lines
    assert (
        "- renamed Intent `report`: `.alloy/intents/weekly.yaml` → `.alloy/intents/report.yaml`; "
        "fields `metadata.name`"
    ) in lines
    assert (
        f"- changed Intent `nightly`: `{INTENT}`; state `accepted` → `active`; fields "
        "`spec.automation.blocks[build].run`, `spec.state`"
    ) in lines
    assert "…" not in out, "nothing is left out under the limit"
    # A valid document for a Markdown renderer: every fold is closed, the table is a table.
    rendered = _html(out)
    assert rendered.count("<details>") == rendered.count("</details>") == 3
    assert "<table>" in rendered
    assert "<code>exe-0123456789abcdef</code>" in rendered


def test_markdown_status_markers() -> None:
    assert markdown(Review("main", "pr")) == "**PASS: No intent changes.**\n"
    quiet = Review("main", "pr", changes=[DocumentChange("added", "Intent", "x", INTENT)])
    assert markdown(quiet).startswith("**PASS: OK to merge after review")
    loud = Review(
        "main",
        "pr",
        changes=[DocumentChange("added", "Intent", "x", INTENT)],
        findings=[Finding("secret-new", "medium", INTENT, 3, "new secret TOKEN")],
    )
    assert markdown(loud).startswith("**WARN: OK to merge after review")


def test_markdown_is_byte_identical_whatever_the_order_it_was_built_in() -> None:
    first = markdown(_review())
    for seed in range(5):
        review = _review()
        rng = random.Random(seed)  # noqa: S311 - a shuffle, not a secret
        rng.shuffle(review.findings)
        rng.shuffle(review.changes)
        rng.shuffle(review.approvers)
        assert markdown(review) == first
        assert markdown(review).encode() == first.encode()


def _big_review(findings: int, changes: int) -> Review:
    severities = ["blocking", "high", "medium", "low", "info"]
    return Review(
        "main",
        "pr",
        changes=[
            DocumentChange(
                "changed",
                "Intent",
                f"i{n:05d}",
                f".alloy/intents/i{n:05d}.yaml",
                fields=("spec.goal",),
            )
            for n in range(changes)
        ],
        findings=[
            Finding(
                "run-changed",
                severities[n % 5],  # type: ignore[arg-type]
                f".alloy/intents/i{n:05d}.yaml",
                n + 1,
                f"block build runs another command now ({'x' * 40})",
            )
            for n in range(findings)
        ],
        starts=[
            Start(f"i{n:05d}", f"i{n:05d}", "apply", "k", f"exe-{n:016x}", "applied")
            for n in range(changes)
        ],
        approvers=[f"user{n}" for n in range(50)],
    )


def test_markdown_stays_under_githubs_limit_leaving_out_the_least_severe_first() -> None:
    review = _big_review(findings=2_000, changes=3_000)
    out = markdown(review)
    assert len(out.encode()) <= GITHUB_SUMMARY_LIMIT
    assert out.splitlines()[0] == f"**FAIL: {review.verdict}**", "the verdict is never left out"
    # Every blocking finding fits; what was left out is counted, and the marker says where the
    # rest is.
    shown = len(re.findall(r"^- \*\*run-changed\*\*", out, flags=re.M))
    assert 400 <= shown < 2_000
    assert re.findall(r"^### (\w+)", out, flags=re.M)[0] == "Blocking"
    assert "### Info" not in out, "info findings go before blocking ones"
    assert (
        f"… {2_000 - shown} more findings not shown; run `alloy review --format json` for all"
        in out
    )
    # The folded details went before any finding did.
    assert "Documents changed (3000): not shown; run `alloy review --format json` for all" in out
    assert "What merging would start (3000): not shown" in out


@pytest.mark.parametrize("limit", [700, 1_000, 5_000, 20_000, 65_535])
def test_markdown_fits_any_limit_and_keeps_the_most_severe(limit: int) -> None:
    review = _big_review(findings=300, changes=300)
    out = markdown(review, limit=limit)
    assert len(out.encode()) <= limit
    assert out.startswith(f"**FAIL: {review.verdict}**\n")
    assert "run `alloy review --format json` for all" in out
    kept = re.findall(r"^- \*\*run-changed\*\* `[^`]+:(\d+)`", out, flags=re.M)
    # Kept findings are a prefix of the canonical order: most severe first.
    review.sort()
    assert [int(n) for n in kept] == [f.line for f in review.findings[: len(kept)]]
    assert markdown(review, limit=limit) == out


def test_markdown_exactly_at_the_limit_is_not_truncated() -> None:
    full = markdown(_review())
    size = len(full.encode())  # the limit counts UTF-8 bytes (never fewer than characters)
    assert markdown(_review(), limit=size) == full
    shorter = markdown(_review(), limit=size - 1)
    assert len(shorter) < len(full)
    assert "not shown" in shorter


def test_markdown_refuses_a_limit_that_cannot_hold_the_verdict() -> None:
    with pytest.raises(ValueError, match="cannot hold the verdict"):
        markdown(_review(), limit=50)


HOSTILE = (
    "<img src=x onerror=alert(1)> <script>alert(1)</script> [click](javascript:alert(1)) "
    "![x](https://evil.example/p.png) **bold** _it_ ~~gone~~ $x^2$ @org/team #12 "
    "https://evil.example www.evil.example a|b `` ` ``\n# Heading\n- item\r\n<!-- c -->"
)


def test_user_text_cannot_inject_markdown_html_or_mentions() -> None:
    review = Review(
        base="main<b>",
        head="pr`x`",
        changes=[
            DocumentChange(
                "added",
                "Intent",
                "x<script>|y",
                ".alloy/intents/`a`|<b>.yaml",
                fields=("spec.<i>x</i>",),
                state=("a|b", "<c>"),
            )
        ],
        findings=[
            Finding(
                "run-changed",
                "high",
                ".alloy/intents/<a>\n# h.yaml",
                3,
                HOSTILE,
                approvers=("@alice", "team:<x>"),
            )
        ],
        starts=[Start("a|b", "x", "apply", "k|`|", "exe-1", HOSTILE)],
        approvers=["@alice"],
    )
    out = markdown(review)
    rendered = _html(out)
    for tag in (
        "<img",
        "<script",
        "<a ",
        "<strong>bold",
        "<em>it",
        "<del>",
        "<h1",
        "<!--",
        "<i>",
        "<b>",
        "<c>",
        "<x>",
    ):
        assert tag not in rendered, tag
    # Only our own structure: the headings and folds we write, nothing from the message.
    assert re.findall(r"<h\d>", rendered) == ["<h3>"]
    assert rendered.count("<details>") == 3
    # The pull request's newline cannot end the list item or start a heading.
    assert "\n# " not in out
    assert "\n- item" not in out
    # A mention or an issue reference is broken up, or in a code span (GitHub links no mention
    # there); so are bare links.
    assert "@org" not in out
    assert out.count("@alice") == out.count("`@alice`") == 2
    assert "https://evil" not in out
    assert "www.evil" not in out
    assert "\\#12" in out
    # The table keeps five cells in every row, whatever `|` the names hold.
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows, out
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == 6, row
    # What a reader sees is still the text that was written (escaped, not dropped).
    visible = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert "<img src=x onerror=alert(1)>" in visible
    assert "[click](javascript:alert(1))" in visible
    assert "a|b" in visible


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain words", "plain words"),
        ("a*b_c", "a\\*b\\_c"),
        ("<b>&</b>", "&lt;b&gt;&amp;&lt;/b&gt;"),
        ("line\nbreak", "line\\\\nbreak"),
        ("@team", "@\u2060team"),
        ("see https://x.example", "see https\\://x.example"),
    ],
)
def test_text_escaping(value: str, expected: str) -> None:
    assert text(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a.yaml", "`a.yaml`"),
        ("a`b", "``a`b``"),
        ("`a", "`` `a ``"),
        ("a``b`", "``` a``b` ```"),
        ("", "` `"),
    ],
)
def test_code_spans_hold_any_backticks(value: str, expected: str) -> None:
    assert code(value) == expected
    inner = re.search(r"<code>(.*)</code>", _html(expected)).group(1)  # type: ignore[union-attr]
    assert html.unescape(inner) == (value or " ")


def test_prose_keeps_code_spans_and_escapes_the_rest() -> None:
    assert prose("run `alloy compile` *now*") == "run `alloy compile` \\*now\\*"
    assert prose("one ` alone") == "one \\` alone"
    assert prose("`<b>` and <b>") == "`<b>` and &lt;b&gt;"


# --- GitHub annotations ------------------------------------------------------------------------


def test_github_annotations_one_per_finding_with_the_level_of_its_severity() -> None:
    # ::error only for what blocks the merge; a high finding is a warning, as the check run's
    # neutral conclusion says.
    out = github_annotations(_review())
    lines = out.splitlines()
    assert out.endswith("\n")
    intent = "file=.alloy/intents/nightly.yaml"
    assert lines == [
        "::error file=.alloy/artifacts/nightly.json,line=1,title=artifact-stale::out of date; run `alloy compile`",
        f"::warning {intent},line=14,title=effects-stronger::block `deploy` became irreversible (was idempotent) (approval: alice, team:release)",
        f"::warning {intent},line=16,title=timeout-raised::timeout 10m -> 2h",
        f"::notice {intent},line=9,title=trigger-new::new schedule 0 3 * * *",
        f"::notice {intent},line=20,title=acceptance-added::criterion AC-3 added",
    ]
    assert github_annotations(Review("main", "pr")) == ""


def test_github_annotations_escape_data_and_properties() -> None:
    review = Review(
        "main",
        "pr",
        findings=[
            Finding(
                "run-changed",
                "medium",
                ".alloy/intents/a,b:c%.yaml",
                0,
                "100% sure\r\n::error::injected",
            )
        ],
    )
    out = github_annotations(review)
    assert out == (
        "::warning file=.alloy/intents/a%2Cb%3Ac%25.yaml,line=1,title=run-changed::"
        "100%25 sure%0D%0A::error::injected\n"
    )
    assert out.count("\n") == 1, "a message cannot start a second workflow command"


# --- the check-run body -----------------------------------------------------------------------


def test_check_run_body_has_githubs_shape_and_levels() -> None:
    review = _review()
    body = check_run(review, head_sha="a" * 40)
    assert list(body) == ["name", "head_sha", "status", "conclusion", "output"]
    assert body["name"] == "alloy review"
    assert body["status"] == "completed"
    assert body["conclusion"] == "failure"
    output = body["output"]
    assert output["title"] == f"FAIL: {review.verdict}"
    assert output["summary"] == markdown(review)
    levels = [(a["title"], a["annotation_level"]) for a in output["annotations"]]
    assert levels == [
        ("artifact-stale", "failure"),
        ("effects-stronger", "failure"),
        ("timeout-raised", "warning"),
        ("trigger-new", "notice"),
        ("acceptance-added", "notice"),
    ]
    first = output["annotations"][0]
    assert first == {
        "path": ARTIFACT,
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "failure",
        "message": "out of date; run `alloy compile`",
        "title": "artifact-stale",
    }
    assert "head_sha" not in check_run(review)
    assert check_run(review, name="intent")["name"] == "intent"


def test_check_run_conclusions() -> None:
    assert check_run(Review("main", "pr"))["conclusion"] == "success"
    info = Review(
        "main",
        "pr",
        changes=[DocumentChange("added", "Intent", "x", INTENT)],
        findings=[Finding("acceptance-added", "info", INTENT, 1, "added")],
    )
    assert check_run(info)["conclusion"] == "success"
    info.findings.append(Finding("lane-widened", "high", INTENT, 2, "wider"))
    assert check_run(info)["conclusion"] == "neutral"


def test_check_run_returns_every_annotation_and_a_summary_within_the_limit() -> None:
    review = _big_review(findings=2_000, changes=3_000)
    body = check_run(review)
    assert len(body["output"]["annotations"]) == 2_000 > ANNOTATIONS_PER_REQUEST
    assert len(body["output"]["summary"]) <= GITHUB_SUMMARY_LIMIT
    assert len(body["output"]["title"]) <= 255
    assert all(a["start_line"] >= 1 for a in body["output"]["annotations"])
