"""The Markdown summary of a trace, for a check run: bounded, deterministic, redacted.

What matters most comes first (status, blocks, gates, evidence), log tails last and failed blocks'
logs before the others, so a cut to the forge's size limit drops the least useful text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from foundry.redaction import redaction
from foundry.traces._document import trace_path
from foundry.traces._time import unix_nanos

SUMMARY_LIMIT = 65_535  # GitHub's limit for a check run's summary, in characters

ICONS = {
    "planned": "🕒",
    "pending": "🕒",
    "queued": "⏳",
    "running": "🔄",
    "waiting": "⏸️",
    "succeeded": "✅",
    "failed": "❌",
    "skipped": "⏭️",
    "cancelled": "⏹️",
    "indeterminate": "⚠️",
    "produced": "✅",
    "missing": "❌",
    "passed": "✅",
    "timeout": "⌛",
    "interrupted": "⚠️",
}
# Blocks whose logs are shown first: they are why someone reads the summary.
_TROUBLE = ("failed", "indeterminate", "cancelled", "running")
_FENCE = re.compile(r"^(`{3,})")


def _status(value: str | None) -> str:
    if value is None:
        return "—"
    icon = ICONS.get(value)
    return f"{icon} {value}" if icon else value


def _cell(text: object) -> str:
    """Plain text safe in a table cell: one line, no column breaks, no HTML."""
    flat = " ".join(str(text).split())
    return html.escape(flat, quote=False).replace("|", "\\|") or "—"


def _code(text: object) -> str:
    """Inline code safe in a table cell (a backtick in the text lengthens the delimiter)."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    if not flat:
        return "—"
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


def _elapsed(spec: dict[str, Any]) -> int | None:
    start, end = spec.get("startedAt"), spec.get("finishedAt")
    if not start or not end:
        return None
    return max(0, (unix_nanos(end) - unix_nanos(start)) // 1_000_000)


def _headline(trace: dict[str, Any]) -> str:
    spec = trace["spec"]
    blocks = spec.get("blocks", [])
    counts: dict[str, int] = {}
    for block in blocks:
        counts[block["status"]] = counts.get(block["status"], 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    parts = [
        f"{ICONS.get(spec['status'], '')} **{spec['status']}**".strip(),
        f"intent {_code(spec['intent'])}",
        f"execution {_code(trace['metadata']['name'])}",
        f"{len(blocks)} block{'s' if len(blocks) != 1 else ''}" + (f": {tally}" if tally else ""),
    ]
    elapsed = _elapsed(spec)
    if elapsed is not None:
        parts.append(duration(elapsed))
    return " · ".join(parts)


def _context(trace: dict[str, Any]) -> str:
    spec = trace["spec"]
    artifact, event = spec["artifact"], spec["event"]
    parts = [
        f"Artifact {_code(artifact['name'] + '@' + artifact['digest'])}",
        f"event {event['type']} {_code(event['key'])}",
    ]
    if spec.get("startedAt"):
        parts.append(f"started {spec['startedAt']}")
    if spec.get("finishedAt"):
        parts.append(f"finished {spec['finishedAt']}")
    return " · ".join(parts)


def _table(header: Sequence[str], align: str, rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align.split()) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def run_order(blocks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks in the order they ran (by their first attempt's start), then those that did
    not run, in the trace's order (the artifact's blocks are kept sorted by id)."""
    started = [b for b in blocks if b.get("attempts")]
    started.sort(key=lambda b: str(b["attempts"][0].get("startedAt") or ""))
    return started + [b for b in blocks if not b.get("attempts")]


def _blocks(spec: dict[str, Any]) -> list[str]:
    rows = []
    for block in run_order(spec.get("blocks", [])):
        attempts = block.get("attempts", [])
        known = [a["durationMs"] for a in attempts if a.get("durationMs") is not None]
        last = attempts[-1] if attempts else {}
        code = last.get("exitCode")
        rows.append(
            [
                _code(block["id"]),
                _status(block["status"]),
                str(len(attempts)),
                duration(sum(known)) if known else "—",
                "—" if code is None else str(code),
            ]
        )
    header = ("Block", "Status", "Attempts", "Duration", "Exit code")
    return ["### Blocks", "", *_table(header, "--- --- ---: ---: ---:", rows)]


def _gates(spec: dict[str, Any]) -> list[str]:
    gates = spec.get("gates", [])
    if not gates:
        return []
    rows = [
        [
            _code(g["block"]),
            str(g["index"]),
            g["kind"],
            _status(g["decision"]),
            _cell(g.get("reason", "")),
            g["at"],
        ]
        for g in gates
    ]
    header = ("Block", "Gate", "Kind", "Decision", "Reason", "At")
    return ["### Gates", "", *_table(header, "--- ---: --- --- --- ---", rows)]


def _evidence(spec: dict[str, Any]) -> list[str]:
    evidence = spec.get("evidence", [])
    if not evidence:
        return []
    rows = [
        [
            _cell(e["acceptance"]),
            _code(e["block"]),
            _code(e["output"]),
            _status(e["status"]),
            _code(e["digest"]) if e.get("digest") else "—",
        ]
        for e in evidence
    ]
    header = ("Acceptance", "Block", "Output", "Status", "Digest")
    return ["### Evidence", "", *_table(header, "--- --- --- --- ---", rows)]


def _fenced(text: str) -> list[str]:
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return [fence + "text", text.rstrip("\n"), fence]


def _logs(spec: dict[str, Any]) -> list[str]:
    blocks = sorted(
        run_order(spec.get("blocks", [])), key=lambda b: 0 if b["status"] in _TROUBLE else 1
    )  # stable: the order they ran within each group
    lines: list[str] = []
    for block in blocks:
        for attempt in reversed(block.get("attempts", [])):
            tail = attempt.get("logTail")
            if not tail:
                continue
            what = attempt.get("outcome") or "unfinished"
            if attempt.get("exitCode") is not None:
                what += f", exit code {attempt['exitCode']}"
            summary = html.escape(f"{block['id']} attempt {attempt['number']}: {what}")
            lines += [
                f"<details><summary>{summary}</summary>",
                "",
                *_fenced(tail),
                "",
                "</details>",
            ]
            lines.append("")
    if not lines:
        return []
    return ["### Logs", "", "The last output of each attempt, newest first.", "", *lines[:-1]]


def _next_steps(trace: dict[str, Any]) -> list[str]:
    """What unblocks a waiting execution's approval gates: the exact command, for a clone."""
    from foundry.progress import approve_command

    spec = trace["spec"]
    if spec["status"] != "waiting":
        return []
    latest = {(g["block"], g["index"]): g for g in spec.get("gates", [])}
    out = []
    for (block, index), gate in latest.items():
        if gate["kind"] == "approval" and gate["decision"] == "waiting":
            command = approve_command(trace["metadata"]["name"], block, index)
            then = "then commit it and merge it to the default branch"
            out += ["", f"To approve: {_code(command)}, {then}."]
    return out


def _render(trace: dict[str, Any]) -> str:
    spec = trace["spec"]
    sections = [[_headline(trace), "", _context(trace)]]
    reason = trace["spec"].get("reason")
    if reason:
        sections[0] += ["", f"Why: {_cell(reason)}"]
    sections[0] += _next_steps(trace)
    sections += [s for s in (_blocks(spec), _gates(spec), _evidence(spec), _logs(spec)) if s]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _marker(omitted: int, pointer: str) -> str:
    return f"\n\n… truncated: {omitted} characters omitted; full trace in {pointer}"


def _closing(kept: str) -> str:
    """What closes the code fence and `<details>` a cut left open, so the marker shows."""
    fence: str | None = None
    details = 0
    for line in kept.split("\n"):
        if fence is not None:
            if line == fence:
                fence = None
            continue
        match = _FENCE.match(line)
        if match:
            fence = match[1]
        elif line.startswith("<details>"):
            details += 1
        elif line == "</details>":
            details -= 1
    closing = f"\n{fence}" if fence is not None else ""
    return closing + ("\n\n</details>" * max(0, details))


def _fit(text: str, limit: int, pointer: str) -> str:
    if len(text) <= limit:
        return text
    shortest = len(_marker(len(text), pointer))
    if limit < shortest:
        raise ValueError(f"limit {limit} is too small; it must hold the marker ({shortest})")
    keep = limit - shortest
    while True:
        kept = text[:keep]
        newline = kept.rfind("\n")
        if newline > 0 and keep - newline <= 2000:  # end on a whole line when one is near
            kept = kept[:newline]
        out = kept + _closing(kept) + _marker(len(text) - len(kept), pointer)
        if len(out) <= limit:
            return out
        keep = max(0, keep - (len(out) - limit))


def markdown_summary(
    trace: dict[str, Any], *, limit: int = SUMMARY_LIMIT, secrets: Sequence[str] = ()
) -> str:
    """A check run summary of `trace` in at most `limit` characters.

    A longer summary is cut and ends with `… truncated: N characters omitted; full trace in
    traces/<intent>/<execution>.json` (N counts the summary's characters left out).
    """
    masks = redaction(secrets)
    # Masked before it is rendered (a table cell flattens and escapes what it shows), and after.
    text = _fit(masks.mask_text(_render(masks.mask_value(trace))), limit, trace_path(trace))
    # The cut or the marker could, in theory, join two halves into a secret: check once more.
    return masks.mask_text(text)[:limit]
