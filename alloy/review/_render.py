"""A review as Markdown (a check run's summary, a pull-request comment), as GitHub workflow
commands (annotations) and as the body of GitHub's check-run API.

Everything is rendered from the `Review` alone, in its canonical order, with no clock: the same
review gives the same bytes, so an unchanged check run is never sent again. Text that comes from
the pull request (names, paths, messages, labels) is escaped, so a document cannot put Markdown,
HTML or a mention into the check run, nor a workflow command into the log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from alloy.review._model import SEVERITIES, DocumentChange, Finding, Review, Start

#: GitHub's limit on a check run's `output.summary` (and `text`), in characters.
GITHUB_SUMMARY_LIMIT = 65_535
#: GitHub's limit on a check run's `output.title`.
_TITLE_LIMIT = 255
#: GitHub accepts at most this many annotations per check-run request (the adapter batches).
ANNOTATIONS_PER_REQUEST = 50

_HEADINGS = {
    "blocking": "Blocking",
    "high": "High",
    "medium": "Medium",
    "low": "Low",
    "info": "Info",
}
_MARKER = {"blocking": "FAIL", "attention": "WARN", "ok": "PASS", "none": "PASS"}
#: Only what blocks the merge is an error: a high finding asks for attention, as the check
#: run's `neutral` conclusion does.
_WORKFLOW_LEVEL = {
    "blocking": "error",
    "high": "warning",
    "medium": "warning",
    "low": "notice",
    "info": "notice",
}
_CHECK_LEVEL = {
    "blocking": "failure",
    "high": "failure",
    "medium": "warning",
    "low": "notice",
    "info": "notice",
}


# --- escaping ------------------------------------------------------------------------------

#: ASCII punctuation that starts or ends a Markdown construct inside a line (CommonMark lets any
#: ASCII punctuation be escaped with a backslash): emphasis, code, links, tables, strikethrough,
#: issue references and GitHub's `$math$`. User text never starts a line here, so the
#: line-start ones (`-`, `+`, `1.`, `>`) cannot take effect.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#$])")
#: GitHub turns `https://…` and `www.…` into links even without brackets.
_AUTOLINK = re.compile(r"(?i)(?<=[a-z])(://)|\b(www)\.")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
#: After `@`, so that `@team` in a document never mentions anyone where the summary is posted.
_WORD_JOINER = "\u2060"


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{ord(char):02x}")


def _one_line(value: str) -> str:
    """Control characters (a newline would end a list item or start a heading) made visible."""
    return _CONTROL.sub(_visible, value)


def text(value: str) -> str:
    """`value` as literal Markdown text: no emphasis, link, heading, table cell, HTML or mention."""
    value = _one_line(value)
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _MD_SPECIAL.sub(r"\\\1", value)
    value = _AUTOLINK.sub(lambda m: "\\://" if m.group(1) else m.group(2) + "\\.", value)
    return value.replace("@", "@" + _WORD_JOINER)


_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)")


def prose(value: str, *, in_table: bool = False) -> str:
    """A message: its `code spans` kept as code (nothing inside one is Markdown or HTML), the
    rest as literal text. A backtick without its pair is text."""
    out, at = [], 0
    for match in _CODE_SPAN.finditer(value):
        out += [text(value[at : match.start()]), code(match.group(2), in_table=in_table)]
        at = match.end()
    out.append(text(value[at:]))
    return "".join(out)


def code(value: str, *, in_table: bool = False) -> str:
    """`value` as an inline code span, whatever backticks it holds (CommonMark: a longer fence).

    Inside a code span nothing is Markdown or HTML; only `|` must still be escaped in a table.
    """
    value = _one_line(value)
    if in_table:
        value = value.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    if not value:
        return "` `"
    pad = " " if value.startswith(("`", " ")) or value.endswith(("`", " ")) else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _gh_data(value: str) -> str:
    """A workflow command's message (GitHub's escaping: `%`, CR, LF)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(value: str) -> str:
    """A workflow command's property value (also `:` and `,`, which separate properties)."""
    return _gh_data(value).replace(":", "%3A").replace(",", "%2C")


# --- Markdown ------------------------------------------------------------------------------


def status(review: Review) -> str:
    """`blocking`, `attention` (high or medium findings), `ok`, or `none` (no intent changes)."""
    if review.blocking:
        return "blocking"
    if any(f.severity in ("high", "medium") for f in review.findings):
        return "attention"
    return "ok" if review.changes else "none"


def _verdict_line(review: Review) -> str:
    return f"**{_MARKER[status(review)]}: {review.verdict}**"  # counts only: no user text


def _place(path: str, line: int) -> str:
    return code(f"{path}:{line}" if line > 0 else path)


def _names(names: Sequence[str]) -> str:
    return ", ".join(code(n) for n in names)


def _finding_line(finding: Finding) -> str:
    line = f"- **{text(finding.kind)}** {_place(finding.path, finding.line)} — {prose(finding.message)}"
    if finding.approvers:
        line += f" (approval: {_names(finding.approvers)})"
    return line


def _change_line(change: DocumentChange) -> str:
    what = text(change.kind) + (f" {code(change.name)}" if change.name else "")
    if change.change == "renamed" and change.old_path is not None:
        where = f"{code(change.old_path)} → {code(change.path)}"
    else:
        where = code(change.path)
    line = f"- {change.change} {what}: {where}"
    if change.state is not None:
        line += f"; state {code(change.state[0])} → {code(change.state[1])}"
    if change.fields:
        line += f"; fields {_names(change.fields)}"
    return line


_STARTS_HEADER = "| artifact | event | key | execution | reason |\n| --- | --- | --- | --- | --- |"


def _start_row(start: Start) -> str:
    cells = (start.artifact, start.event, start.key, start.execution)
    row = " | ".join(code(c, in_table=True) for c in cells)
    return f"| {row} | {prose(start.reason, in_table=True)} |"


@dataclass
class _Section:
    """Part of the summary: a head, items (each one line), a tail; items can be left out."""

    items: list[str]
    render: Callable[[list[str], int], list[str]]


def _findings_section(review: Review) -> tuple[list[str], Callable[[list[str], int], list[str]]]:
    groups = [(s, [f for f in review.findings if f.severity == s]) for s in SEVERITIES]
    items = [_finding_line(f) for _, found in groups for f in found]
    sizes = [(s, len(found)) for s, found in groups if found]

    def render(kept: list[str], dropped: int) -> list[str]:
        out: list[str] = []
        start = 0
        for severity, size in sizes:
            mine = kept[start : start + size]
            start += size
            if mine:
                out += ["", f"### {_HEADINGS[severity]} ({size})", "", *mine]
        if dropped:
            out += ["", _more(dropped, "finding" if dropped == 1 else "findings")]
        return out

    return items, render


def _more(dropped: int, noun: str) -> str:
    return f"… {dropped} more {noun} not shown; run `alloy review --format json` for all"


def _folded(title: str, noun: str, head: list[str]) -> Callable[[list[str], int], list[str]]:
    def render(kept: list[str], dropped: int) -> list[str]:
        if not kept:  # one line, not an empty fold
            return ["", f"{title}: not shown; run `alloy review --format json` for all"]
        out = ["", "<details>", f"<summary>{title}</summary>", "", *head, *kept]
        if dropped:
            out += ["", _more(dropped, noun)]
        return [*out, "", "</details>"]

    return render


def _sections(review: Review) -> list[_Section]:
    """In the order they are printed; items are left out from the last section backwards."""
    sections: list[_Section] = []
    if review.findings:
        items, render = _findings_section(review)
        sections.append(_Section(items, render))
    if review.approvers:
        n = len(review.approvers)
        sections.append(
            _Section(
                [f"- {code(a)}" for a in review.approvers],
                _folded(f"Approvals needed ({n})", "approvers", []),
            )
        )
    if review.starts:
        n = len(review.starts)
        sections.append(
            _Section(
                [_start_row(s) for s in review.starts],
                _folded(f"What merging would start ({n})", "executions", [_STARTS_HEADER]),
            )
        )
    if review.changes:
        n = len(review.changes)
        sections.append(
            _Section(
                [_change_line(c) for c in review.changes],
                _folded(f"Documents changed ({n})", "documents", []),
            )
        )
    return sections


def _assemble(head: list[str], sections: list[_Section], keep: int) -> str:
    """The summary with the first `keep` items, in order of importance, and markers for the
    rest. Importance: findings by severity (blocking first), then approvals, what merging would
    start, and documents changed."""
    lines = list(head)
    left = keep
    for section in sections:
        kept = section.items[: max(0, min(left, len(section.items)))]
        left -= len(kept)
        lines += section.render(kept, len(section.items) - len(kept))
    return "\n".join(lines) + "\n"


def _size(text: str) -> int:
    """Length in UTF-8 bytes: never less than in characters, so the limit holds however the
    receiver counts (GitHub documents characters)."""
    return len(text.encode("utf-8"))


def markdown(review: Review, *, limit: int = GITHUB_SUMMARY_LIMIT) -> str:
    """The review as Markdown: the verdict on the first line, findings by severity, then the
    details folded. Never longer than `limit` characters (counted as UTF-8 bytes, which is
    stricter): the least important items are left out first (info findings before blocking
    ones), each part saying how many it left out."""
    review.sort()
    head = [_verdict_line(review)]
    if review.changes or review.findings:
        head += ["", f"Review of {code(review.head)} against {code(review.base)}."]
    sections = _sections(review)
    total = sum(len(s.items) for s in sections)
    full = _assemble(head, sections, total)
    if _size(full) <= limit:
        return full
    # The largest number of items that fits (the length grows with the items kept, but for a
    # marker that disappears when a part is complete: binary search, then check).
    low, high = 0, total - 1
    while low < high:
        mid = (low + high + 1) // 2
        if _size(_assemble(head, sections, mid)) <= limit:
            low = mid
        else:
            high = mid - 1
    out = _assemble(head, sections, low)
    if _size(out) <= limit:
        return out
    # Not even the markers fit: the verdict alone, and where to read the rest.
    out = (
        "\n".join([*head, "", "… details not shown; run `alloy review --format json` for all"])
        + "\n"
    )
    if _size(out) > limit:
        raise ValueError(f"a limit of {limit} characters cannot hold the verdict")
    return out


# --- GitHub --------------------------------------------------------------------------------


def _message(finding: Finding) -> str:
    if finding.approvers:
        return f"{finding.message} (approval: {', '.join(finding.approvers)})"
    return finding.message


def github_annotations(review: Review) -> str:
    """One workflow command per finding (`::error file=…,line=…,title=…::message`), so a
    workflow step annotates the pull request's files; empty when there is no finding."""
    review.sort()
    lines = []
    for finding in review.findings:
        level = _WORKFLOW_LEVEL[finding.severity]
        props = (
            f"file={_gh_property(finding.path)},line={max(finding.line, 1)},"
            f"title={_gh_property(finding.kind)}"
        )
        lines.append(f"::{level} {props}::{_gh_data(_message(finding))}")
    return "".join(line + "\n" for line in lines)


def conclusion(review: Review) -> str:
    """A check run's conclusion: `failure` when blocking, `neutral` when a high or medium
    finding wants attention, else `success`."""
    return {"blocking": "failure", "attention": "neutral"}.get(status(review), "success")


def check_run(
    review: Review, *, name: str = "alloy review", head_sha: str | None = None
) -> dict[str, Any]:
    """The body of GitHub's "create a check run" request, with every annotation: GitHub takes
    at most 50 per request, so the adapter sends the rest in follow-up updates."""
    review.sort()
    annotations = [
        {
            "path": f.path,
            "start_line": max(f.line, 1),
            "end_line": max(f.line, 1),
            "annotation_level": _CHECK_LEVEL[f.severity],
            "message": _message(f),
            "title": f.kind,
        }
        for f in review.findings
    ]
    title = f"{_MARKER[status(review)]}: {review.verdict}"
    if len(title) > _TITLE_LIMIT:
        title = title[: _TITLE_LIMIT - 1] + "…"
    body: dict[str, Any] = {"name": name}
    if head_sha is not None:
        body["head_sha"] = head_sha
    body.update(
        {
            "status": "completed",
            "conclusion": conclusion(review),
            "output": {
                "title": title,
                "summary": markdown(review, limit=GITHUB_SUMMARY_LIMIT),
                "annotations": annotations,
            },
        }
    )
    return body
