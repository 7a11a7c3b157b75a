"""An in-toto Statement (v1) with a SLSA provenance (v1) predicate: which execution, of which
artifact, for which event and inputs, produced the outputs (the subjects) with these digests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from foundry._version import __version__
from foundry.boundary import Artifact
from foundry.redaction import redact
from foundry.traces._errors import TraceError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://alloy.dev/foundry/execution/v1"
BUILDER_ID = "https://alloy.dev/foundry"


def _digest_set(digest: str) -> dict[str, str]:
    """`sha256:<hex>` as an in-toto DigestSet."""
    algorithm, _, value = digest.partition(":")
    return {algorithm: value}


def intoto_statement(
    trace: dict[str, Any],
    artifact: Artifact,
    *,
    inputs: Mapping[str, Any] | None = None,
    builder_id: str = BUILDER_ID,
    secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """The provenance of the outputs in `trace`, which must be a trace of `artifact`.

    `inputs` are the execution's inputs (the ledger's planned record, `planned_inputs`);
    without them `externalParameters` says nothing of inputs. An execution that produced no
    output has nothing to attest (a statement needs a subject): that raises `TraceError`.
    Every string is redacted of `secrets`.
    """
    spec = trace["spec"]
    ran = spec["artifact"]
    if (ran["name"], ran["digest"]) != (artifact.metadata.name, artifact.digest):
        raise TraceError(
            f"the trace is of artifact {ran['name']}@{ran['digest']}, not "
            f"{artifact.metadata.name}@{artifact.digest}"
        )
    subjects: list[dict[str, Any]] = []
    for block in spec.get("blocks", []):
        for output in block.get("outputs", []):
            subject = {"name": output["path"], "digest": _digest_set(output["digest"])}
            if subject not in subjects:
                subjects.append(subject)
    if not subjects:
        raise TraceError(
            f"execution {trace['metadata']['name']} produced no outputs; an in-toto statement "
            "needs at least one subject"
        )
    external: dict[str, Any] = {
        "artifact": {"name": artifact.metadata.name, "digest": artifact.digest},
        "event": dict(spec["event"]),
    }
    if inputs is not None:
        external["inputs"] = dict(sorted(inputs.items()))
    provenance = artifact.spec.provenance
    metadata = {"invocationId": trace["metadata"]["name"]}
    if spec.get("startedAt"):
        metadata["startedOn"] = spec["startedAt"]
    if spec.get("finishedAt"):
        metadata["finishedOn"] = spec["finishedAt"]
    byproducts = [
        {
            "name": f"logs/{block['id']}.{attempt['number']}.log",
            "digest": _digest_set(attempt["logDigest"]),
        }
        for block in spec.get("blocks", [])
        for attempt in block.get("attempts", [])
        if attempt.get("logDigest")
    ]
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {"compiler": provenance.compiler},
                "resolvedDependencies": [
                    {"name": provenance.source, "digest": _digest_set(provenance.source_digest)}
                ],
            },
            "runDetails": {
                "builder": {"id": builder_id, "version": {"foundry": __version__}},
                "metadata": metadata,
                "byproducts": byproducts,
            },
        },
    }
    return redact(statement, secrets)
