"""Artifacts for Foundry's tests, written as the boundary defines them (JSON with a digest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from foundry.boundary import Artifact, digest_of, read_artifact


def block(
    block_id: str,
    run: list[str],
    *,
    needs: list[str] | None = None,
    effects: str = "none",
    timeout: int = 60,
    retry: dict[str, Any] | None = None,
    gates: list[dict[str, Any]] | None = None,
    outputs: list[str] | None = None,
    env: dict[str, str] | None = None,
    secrets: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "id": block_id,
        "needs": sorted(needs or []),
        "run": run,
        "timeoutSeconds": timeout,
        "retry": retry or {"max": 0, "backoffSeconds": 0, "onExitCodes": []},
        "effects": effects,
        "gates": gates or [],
        "outputs": sorted(outputs or []),
        "env": env or {},
        "secrets": sorted(secrets or []),
    }


def artifact_document(
    name: str,
    blocks: list[dict[str, Any]],
    *,
    inputs: dict[str, Any] | None = None,
    lane: dict[str, Any] | None = None,
    triggers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "intent": {"name": name, "state": "active", "owners": ["alice"], "acceptance": []},
        "triggers": triggers or {"apply": True, "request": True},
        "inputs": inputs or {},
        "blocks": sorted(blocks, key=lambda b: b["id"]),
        "provenance": {
            "source": f".alloy/intents/{name}.yaml",
            "sourceDigest": "sha256:" + "0" * 64,
            "compiler": "alloy-compiler/2",
            "requires": "foundry>=0.1.0",
        },
    }
    if lane is not None:
        spec["lane"] = lane
    document: dict[str, Any] = {
        "apiVersion": "alloy.dev/v1",
        "kind": "Artifact",
        "metadata": {"name": name},
        "spec": spec,
    }
    document["digest"] = digest_of(document)
    return document


def artifact(name: str, blocks: list[dict[str, Any]], **kwargs: Any) -> Artifact:
    document = artifact_document(name, blocks, **kwargs)
    return read_artifact(f".alloy/artifacts/{name}.json", json.dumps(document).encode())


def write_artifact(root: Path, document: dict[str, Any]) -> Path:
    path = root / ".alloy" / "artifacts" / f"{document['metadata']['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path
