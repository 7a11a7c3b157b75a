"""The `alloy.dev/v1` boundary: checked-in schemas match the models, and the golden artifact is
what the compiler writes, byte for byte, and what an independent JSON Schema validator accepts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from alloy.compile import document_digest, pretty_bytes
from alloy.load import Entry, load_document, load_project
from alloy.model import KINDS, Artifact, Trace
from alloy.schema import schema_files

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas" / "alloy.dev" / "v1"
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "boundary" / "v1"


def test_checked_in_schemas_match_the_models() -> None:
    """Fails when a model changes and `alloy schema --out schemas/alloy.dev/v1` was not run."""
    expected = schema_files()
    on_disk = {p.name: p.read_bytes() for p in SCHEMAS.glob("*.schema.json")}
    assert sorted(on_disk) == sorted(expected), "a schema file is missing or extra"
    stale = [name for name, data in expected.items() if on_disk[name] != data]
    assert not stale, f"run `alloy schema --out schemas/alloy.dev/v1`; stale: {stale}"
    assert len(expected) == len(KINDS)


def _schema(kind: str) -> dict[str, object]:
    return json.loads((SCHEMAS / f"{kind}.schema.json").read_text())  # type: ignore[no-any-return]


def _compiled(name: str) -> bytes:
    project, _ = load_project({".alloy/alloy.yaml": Entry((GOLDEN / "project.yaml").read_bytes())})
    source = GOLDEN / f"intent-{name}.yaml"
    result = load_document(
        f".alloy/intents/{name}.yaml",
        Entry(source.read_bytes()),
        project,
        expected="Intent",
        max_bytes=1 << 20,
    )
    assert result.ok, [d.text() for d in result.diagnostics]
    assert result.artifact is not None
    return pretty_bytes(result.artifact)


@pytest.mark.parametrize("name", ["nightly-benchmarks"])
def test_compiler_writes_the_golden_artifact(name: str) -> None:
    golden = GOLDEN / f"artifact-{name}.json"
    data = _compiled(name)
    if os.environ.get("ALLOY_UPDATE_GOLDEN") == "1":
        golden.write_bytes(data)
    assert data == golden.read_bytes(), "compiler output changed: see fixtures README"


def test_golden_artifact_is_valid_and_self_consistent() -> None:
    document = json.loads((GOLDEN / "artifact-nightly-benchmarks.json").read_text())
    jsonschema.validate(document, _schema("artifact"))
    Artifact.model_validate(document)
    assert document["digest"] == document_digest(document)
    tampered = json.loads(json.dumps(document))
    tampered["spec"]["blocks"][0]["run"].append("--extra")
    assert document_digest(tampered) != tampered["digest"], "a hand edit must be detectable"
    # The project's shared lane is resolved into the artifact, its rate normalized.
    assert document["spec"]["lane"] == {
        "name": "bench",
        "limit": 1,
        "queue": "latest",
        "cancelRunning": False,
        "rate": {"count": 4, "periodSeconds": 3600},
    }


def test_golden_trace_validates_against_schema_and_model() -> None:
    document = json.loads((GOLDEN / "trace-succeeded.json").read_text())
    jsonschema.validate(document, _schema("trace"))
    Trace.model_validate(document)


def test_schemas_reject_unknown_fields() -> None:
    """Closed schemas: Foundry must be able to fail closed on a field it does not know."""
    document = json.loads((GOLDEN / "artifact-nightly-benchmarks.json").read_text())
    document["spec"]["blocks"][0]["sandbox"] = True
    with pytest.raises(jsonschema.ValidationError, match="sandbox"):
        jsonschema.validate(document, _schema("artifact"))
