"""Merging an execution's ledgers: the one the remote holds, and a host's own copy.

Under claims (DESIGN section 9) the remote's ledger is the truth of an execution. Every holder
starts from it when it takes a claim, writes only under its own generation, and publishes by
compare-and-swap, so every ledger the remote ever held is contained, record for record, in the
later ones. A host's local ledger may still hold records the remote never got: the tail its
writer did not publish before it crashed or lost the claim. Those are **orphans**.

`merge_ledgers` keeps the remote's records as they are, in their order, and adds what the
orphans prove, without ever letting them hide or contradict a later holder's records:

* An orphan start of an attempt with no end never started a process: a holder starts a
  process only after its start record reached the remote (the executor's `before_start`), so
  it is not an attempt at all (the `merged` record counts it). Ledgers written before
  generations existed (records without `gen`) made that promise only for `reversible` and
  `irreversible` effects; their other orphan attempts are added as `interrupted`.
* An orphan attempt with its end is added (renumbered after the block's known attempts when a
  later holder used its number).
* An orphan end of an attempt whose start the remote has (same generation) is added: it
  closes that attempt, and settles an `indeterminate` verdict on it with the fact.
* An orphan `block-finished` is added when no later generation started an attempt of that
  block and the remote does not have the block finished: the block really ended so, and
  nobody after it ran the block again.
* Everything else of an orphan (gate, lane, verdicts, the execution's end) is recomputed by
  the new holder, not copied.

Records are compared as whole lines (each line carries its writer's generation, sequence number
and time, so two holders never write the same line). The merge adds one `merged` record that
says how many orphans there were and what was kept; its writer's generation is on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from foundry.ledger import rfc3339

SYNC_EFFECTS = ("reversible", "irreversible")
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _lines(data: bytes | None) -> list[bytes]:
    """The complete lines of a ledger (a torn last line is dropped)."""
    if not data:
        return []
    end = data.rfind(b"\n") + 1
    return [line for line in data[:end].splitlines() if line.strip()]


def _gen(record: dict[str, Any]) -> int:
    value = record.get("gen", 0)
    return value if isinstance(value, int) else 0


@dataclass
class _Known:
    """What the remote's ledger says about blocks and attempts."""

    #: (block, attempt number) -> generation of the attempt's start record.
    attempts: dict[tuple[str, int], int] = field(default_factory=dict)
    ended: set[tuple[str, int]] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)
    #: Blocks with an open indeterminate verdict -> the attempt it is about.
    indeterminate: dict[str, tuple[str, int]] = field(default_factory=dict)
    planned: bool = False

    def later_attempt(self, block: str, generation: int) -> bool:
        return any(b == block and g > generation for (b, _), g in self.attempts.items())

    def top(self, block: str) -> int:
        return max((n for (b, n) in self.attempts if b == block), default=0)


def _known(records: list[dict[str, Any]]) -> _Known:
    known = _Known()
    for r in records:
        kind = r.get("type")
        if kind == "planned":
            known.planned = True
        elif kind == "attempt-started":
            known.attempts[(r["block"], r["attempt"])] = _gen(r)
        elif kind == "attempt-finished":
            known.ended.add((r["block"], r["attempt"]))
        elif kind == "block-finished":
            known.finished.add(r["block"])
            known.indeterminate.pop(r["block"], None)
        elif kind == "indeterminate":
            known.indeterminate[r["block"]] = (r["block"], r["attempt"])
        elif kind == "resolved":
            known.indeterminate.pop(r["block"], None)
    return known


def merge_ledgers(
    remote: bytes | None, local: bytes | None, *, generation: int, holder: str, at: float
) -> bytes:
    """The ledger a new holder (of claim generation `generation`) starts from: the remote's
    records, plus what the orphans of `local` prove (see the module's rules)."""
    remote_lines = _lines(remote)
    seen = set(remote_lines)
    orphan_lines = [line for line in _lines(local) if line not in seen]
    base = b"".join(line + b"\n" for line in remote_lines)
    if not orphan_lines:
        return base
    records = [json.loads(line) for line in remote_lines]
    orphans = [json.loads(line) for line in orphan_lines]
    added = _Adder(_known(records), generation).run(orphans)
    summary = {
        "type": "merged",
        "holder": holder,
        "orphans": len(orphans),
        "kept": len(added),
        "reason": f"{len(orphans)} record(s) of an earlier holder never reached the remote; "
        f"{len(added)} kept as facts (attempts that may have run, ends that were seen)",
    }
    out = [base]
    for offset, record in enumerate([*added, summary], start=len(records) + 1):
        stamped = {"seq": offset, "at": record.pop("at", None) or rfc3339(at), **record}
        stamped["gen"] = generation
        out.append((_ENCODE(stamped) + "\n").encode())
    return b"".join(out)


class _Adder:
    """Turns orphan records into the records the merged ledger gains."""

    def __init__(self, known: _Known, generation: int) -> None:
        self.known = known
        self.generation = generation
        #: (block, orphan attempt number, orphan generation) -> number in the merged ledger.
        self.numbers: dict[tuple[str, int, int], int] = {}
        self.out: list[dict[str, Any]] = []

    def run(self, orphans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ends = {
            (r["block"], r["attempt"], _gen(r))
            for r in orphans
            if r.get("type") == "attempt-finished"
        }
        for r in orphans:
            kind = r.get("type")
            if kind == "planned" and not self.known.planned:
                self._add(r)
                self.known.planned = True
            elif kind == "attempt-started":
                self._started(r, ended=(r["block"], r["attempt"], _gen(r)) in ends)
            elif kind == "attempt-finished":
                self._finished(r)
            elif kind == "block-finished":
                self._block_finished(r)
        for (block, number, gen), merged in self.numbers.items():
            if (block, merged) not in self.known.ended and (block, number, gen) not in ends:
                self._add(
                    {
                        "type": "attempt-finished",
                        "block": block,
                        "attempt": merged,
                        "outcome": "interrupted",
                        "exitCode": None,
                        "durationMs": None,
                        "outputs": [],
                        "reason": f"its holder (generation {gen}) stopped during this attempt "
                        "before the end reached the remote; the block was run again",
                    }
                )
                self.known.ended.add((block, merged))
        return self.out

    def _add(self, record: dict[str, Any], **changes: Any) -> None:
        copy = {k: v for k, v in record.items() if k not in ("seq", "gen")}
        copy.update(changes)
        copy["from"] = {"gen": _gen(record), "seq": record.get("seq")}
        self.out.append(copy)

    def _started(self, r: dict[str, Any], *, ended: bool) -> None:
        block, number, gen = r["block"], r["attempt"], _gen(r)
        if not ended and ("gen" in r or r.get("effects") in SYNC_EFFECTS):
            return  # never started: its start record never reached the remote
        owner = self.known.attempts.get((block, number))
        if owner == gen:
            return  # the remote has this very start
        merged = number if owner is None else self.known.top(block) + 1
        self.numbers[(block, number, gen)] = merged
        self.known.attempts[(block, merged)] = gen
        self._add(r, attempt=merged)

    def _finished(self, r: dict[str, Any]) -> None:
        block, number, gen = r["block"], r["attempt"], _gen(r)
        merged = self.numbers.get((block, number, gen))
        if merged is None:
            if self.known.attempts.get((block, number)) != gen:
                return  # the start is not known anywhere: nothing to close
            merged = number  # the remote has the start: this is its end
        if (block, merged) in self.known.ended and merged != number:
            return
        self.known.ended.add((block, merged))
        self._add(r, attempt=merged)

    def _block_finished(self, r: dict[str, Any]) -> None:
        block, gen = r["block"], _gen(r)
        if block in self.known.finished or self.known.later_attempt(block, gen):
            return
        verdict = self.known.indeterminate.get(block)
        if verdict is not None and self.known.attempts.get(verdict) != gen:
            return  # undecided about an attempt this holder did not run
        self.known.finished.add(block)
        self.known.indeterminate.pop(block, None)
        self._add(r)


def ledger_from_trace(
    trace: dict[str, Any], effects: Mapping[str, str], inputs: Mapping[str, Any]
) -> bytes:
    """A ledger rebuilt from an execution's Trace, for when its claim (which holds the ledger)
    is gone from the remote but its trace is not: every attempt the trace shows, as started
    and (where the trace has its end) ended, every finished block, every indeterminate verdict.
    `effects` maps block ids to their effects (the artifact's). Gates are not copied: they are
    judged again. Each record says it came from the trace."""
    spec = trace["spec"]
    out: list[dict[str, Any]] = [
        {
            "type": "planned",
            "at": spec.get("startedAt"),
            "execution": trace["metadata"]["name"],
            "artifact": spec["artifact"],
            "event": spec["event"],
            "inputs": dict(inputs),
            "dryRun": False,
        }
    ]
    for block in spec.get("blocks", []):
        name = block["id"]
        attempts = block.get("attempts", [])
        for attempt in attempts:
            out.append(
                {
                    "type": "attempt-started",
                    "at": attempt["startedAt"],
                    "block": name,
                    "attempt": attempt["number"],
                    "effects": effects.get(name, "irreversible"),
                }
            )
            if attempt.get("outcome") is not None:
                out.append(
                    {
                        "type": "attempt-finished",
                        "at": attempt.get("finishedAt") or attempt["startedAt"],
                        "block": name,
                        "attempt": attempt["number"],
                        "outcome": attempt["outcome"],
                        "exitCode": attempt.get("exitCode"),
                        "durationMs": attempt.get("durationMs"),
                        "logDigest": attempt.get("logDigest"),
                        "logTail": attempt.get("logTail"),
                        "outputs": block.get("outputs", [])
                        if attempt["outcome"] == "succeeded"
                        else [],
                    }
                )
        status = block.get("status")
        if status in ("succeeded", "failed", "skipped", "cancelled"):
            out.append({"type": "block-finished", "block": name, "status": status, "reason": ""})
        elif status == "indeterminate" and attempts:
            out.append(
                {
                    "type": "indeterminate",
                    "block": name,
                    "attempt": attempts[-1]["number"],
                    "reason": "the trace says this attempt's end is unknown",
                }
            )
    if spec.get("status") in ("succeeded", "failed", "cancelled", "skipped"):
        out.append(
            {"type": "execution-finished", "at": spec.get("finishedAt"), "status": spec["status"]}
        )
    lines = []
    for seq, record in enumerate(out, start=1):
        at = record.pop("at", None) or spec.get("startedAt") or rfc3339(0)
        lines.append(_ENCODE({"seq": seq, "at": at, **record, "from": "trace"}) + "\n")
    return "".join(lines).encode()
