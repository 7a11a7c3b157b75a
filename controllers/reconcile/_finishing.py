"""What an execution leaves to publish (`Done`: its trace files and check run), built from its
ledger: after it ran here, or from a finished claim whose trace is missing, whichever host
left it (a repair)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from controllers.claims import Claims, Holding
from controllers.forge import CheckRun
from controllers.reconcile._check_runs import _conclusion, check_name
from controllers.reconcile._live_trace import trace_bytes
from controllers.reconcile._model import FINISHED, PassReport, TraceInfo
from controllers.reconcile._work import Done

if TYPE_CHECKING:
    from foundry.boundary import Artifact


class Finishing:
    """The finishing part of a `Reconciler` (its state lives there)."""

    claims: Claims
    _traces: dict[str, TraceInfo]

    def _repair(self, held: Holding, report: PassReport) -> Done | None:
        """A finished claim: publish its trace and check run unless the traces branch has
        the finished trace already (its holder got that far)."""
        from foundry.boundary import read_artifact
        from foundry.errors import BoundaryError
        from foundry.workspace import declared_secrets

        execution = held.execution
        info = self._traces.get(execution)
        if info is not None and info.status in FINISHED:
            report.not_claimed[execution] = f"finished by {held.holder}"
            return None
        record = self.claims.record(held)
        if record.artifact is None or record.ledger is None:
            report.errors.append(
                f"{execution}: finished by {held.holder}, but its claim holds no ledger or "
                "artifact to publish its trace from (a claim from an older version)"
            )
            return None
        try:
            artifact = read_artifact(f"{held.sha[:12]}:artifact.json", record.artifact)
        except BoundaryError as exc:
            report.errors.append(f"{execution}: cannot read the artifact of its claim: {exc}")
            return None
        records = [json.loads(line) for line in record.ledger.splitlines() if line.strip()]
        commit = held.commit or ""
        report.repaired.append(execution)
        # The ledger was masked where it ran; masked again with this host's values, if any.
        secrets = list(declared_secrets(artifact).values())
        return self._done(execution, records, artifact, commit, secrets=secrets)

    def _done(
        self,
        execution: str,
        records: list[dict[str, Any]],
        artifact: Artifact,
        commit: str,
        *,
        secrets: list[str],
    ) -> Done:
        from foundry.redaction import redaction
        from foundry.traces import SUMMARY_LIMIT, trace_bundle

        masks = redaction(secrets)
        bundle = trace_bundle(records, artifact, secrets=secrets)
        status = str(bundle.trace["spec"]["status"])
        planned = records[0] if records and records[0].get("type") == "planned" else {}
        event = planned.get("event") or {"type": "?", "key": "?"}
        reason = next(
            (r.get("reason") for r in reversed(records) if r.get("type") == "execution-finished"),
            None,
        )
        markdown_path = bundle.path.removesuffix(".json") + ".md"
        files = {
            bundle.path: trace_bytes(bundle.trace),
            markdown_path: bundle.markdown.encode(),
        }
        check = CheckRun(
            commit=commit,
            name=check_name(artifact.metadata.name, str(event["type"]), str(event["key"])),
            status="completed" if status in FINISHED else "in_progress",
            conclusion=_conclusion(status),
            title=masks.mask_text(
                f"{artifact.metadata.name}: {status}" + (f" ({reason})" if reason else "")
            ),
            summary=bundle.markdown[:SUMMARY_LIMIT],  # masked (a trace bundle is)
            external_id=execution,
        )
        latest = {(g["block"], g["index"]): g for g in bundle.trace["spec"]["gates"]}
        news = any(
            g["decision"] == "waiting" and g["kind"] in ("check", "after") for g in latest.values()
        )
        return Done(execution, status, files, check, waits_on_news=news)
