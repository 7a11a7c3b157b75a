"""Evidence that has gone stale: read from the same Trace documents `alloy status` reads."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from alloy.critique._rules import Add, IntentDocument
from alloy.model import COMPILED_STATES, Trace
from alloy.status import FINISHED

DEFAULT_STALE_AFTER = datetime.timedelta(days=30)


def parse_stamp(stamp: str) -> datetime.datetime:
    """An RFC 3339 UTC stamp of a Trace (`...T04:10:01.102Z`, up to nine digits of fraction)."""
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    parsed = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    return parsed + datetime.timedelta(microseconds=int(f"{fraction:0<6}"[:6]))


def _when(trace: Trace) -> datetime.datetime | None:
    stamp = trace.spec.finished_at or trace.spec.started_at
    return parse_stamp(stamp) if stamp is not None else None


def age_text(delta: datetime.timedelta) -> str:
    """`45 days`, `3 hours`, `12 minutes` (rounded down, never negative)."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def stale_findings(
    doc: IntentDocument,
    traces: Sequence[Trace],
    *,
    now: datetime.datetime,
    stale_after: datetime.timedelta,
    add: Add,
) -> None:
    """For each linked acceptance criterion of a live intent (accepted or active), with
    `traces` its executions newest first: the newest execution that says something final about
    it (produced, or missing from a finished execution, the rule of `alloy status`) says it is
    missing, or the newest that produced it did so longer than `stale_after` ago."""
    if doc.intent.spec.state not in COMPILED_STATES:
        return
    for ac in doc.intent.spec.acceptance:
        if ac.evidence is None:
            continue
        link = f"{ac.evidence.block}/{ac.evidence.output}"
        word: tuple[Trace, str] | None = None
        produced: Trace | None = None
        for trace in traces:
            entry = next((e for e in trace.spec.evidence if e.acceptance == ac.id), None)
            if entry is None:
                continue
            if entry.status == "produced":
                produced = trace
                if word is None:
                    word = (trace, "produced")
                break
            if word is None and trace.spec.status in FINISHED:
                word = (trace, "missing")
        if word is None:
            continue  # nothing ran yet, or nothing has finished: `alloy status` says so
        loc = ("spec", "acceptance", ac.id, "evidence")
        trace, status = word
        if status == "missing":
            when = _when(trace)
            since = (
                f"; last produced {age_text(now - last)} ago by {produced.metadata.name}"
                if produced is not None and (last := _when(produced)) is not None
                else "; no execution has produced it yet"
            )
            add(
                "evidence-stale",
                "warning",
                loc,
                f"the evidence of acceptance {ac.id} ({link}) is missing in the latest finished "
                f"execution, {trace.metadata.name} ({trace.spec.status}"
                + (f", {age_text(now - when)} ago" if when is not None else "")
                + f"){since}",
                f"Is {ac.id} still true? Look at why {trace.metadata.name} did not write "
                f"{ac.evidence.output} (its summary is traces/{doc.name}/"
                f"{trace.metadata.name}.md on the traces branch), fix it and run it again, or "
                "change the criterion if it no longer applies.",
            )
            continue
        when = _when(trace)
        if when is None or now - when <= stale_after:
            continue
        add(
            "evidence-stale",
            "warning",
            loc,
            f"the evidence of acceptance {ac.id} ({link}) was last produced "
            f"{age_text(now - when)} ago, by {trace.metadata.name}; older than "
            f"{age_text(stale_after)}, it no longer shows that {ac.id} holds now",
            f"Does {ac.id} still hold? Run the intent again (`alloy request {doc.name}` or a "
            "schedule trigger, e.g. on.schedule: {cron: '0 3 * * 1'}) so the evidence stays "
            "fresh, or retire the intent if no one needs it.",
        )
