"""Foundry's own reader of the boundary, against the golden fixtures Alloy's compiler writes:
it verifies digests, and fails closed on anything it does not know."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from foundry._version import __version__ as foundry_version
from foundry.boundary import digest_of, read_artifact, read_boundary, read_request
from foundry.errors import BoundaryError

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "boundary" / "v1"
PATH = ".alloy/artifacts/nightly-benchmarks.json"


def golden() -> dict[str, Any]:
    return json.loads((GOLDEN / "artifact-nightly-benchmarks.json").read_text())


def encode(document: dict[str, Any], *, redigest: bool = True) -> bytes:
    if redigest:
        document["digest"] = digest_of(document)
    return json.dumps(document).encode()


def test_reads_the_golden_artifact_and_agrees_on_its_digest() -> None:
    data = (GOLDEN / "artifact-nightly-benchmarks.json").read_bytes()
    artifact = read_artifact(PATH, data)
    assert artifact.digest == json.loads(data)["digest"] == digest_of(json.loads(data))
    assert [b.id for b in artifact.spec.blocks] == ["bench", "publish"]
    publish = artifact.block("publish")
    assert [g.kind for g in publish.gates] == ["approval", "window"]
    assert publish.effects == "irreversible"


def _mutated(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(golden())
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "redigest", "message"),
    [
        (lambda d: d["spec"]["blocks"][0]["run"].append("--more"), False, "digest does not match"),
        (
            lambda d: d["spec"]["blocks"][0].update(sandbox=True),
            True,
            f"spec.blocks[0].sandbox: unknown field; Foundry {foundry_version} does not know it",
        ),
        (
            lambda d: d["spec"]["blocks"][1]["gates"][0].__setitem__("kind", "vote"),
            True,
            "unknown gate kind 'vote'",
        ),
        (
            lambda d: d.__setitem__("apiVersion", "alloy.dev/v2"),
            True,
            "apiVersion 'alloy.dev/v2' is not read",
        ),
        (
            lambda d: d.__setitem__("kind", "Trace"),
            True,
            "kind 'Trace' where Artifact was expected",
        ),
        (lambda d: d["spec"]["blocks"][0].__setitem__("timeoutSeconds", 1.5), False, "float 1.5"),
        (lambda d: d["metadata"].__setitem__("name", "other"), True, "file name differs"),
    ],
    ids=[
        "hand-edit",
        "unknown-field",
        "unknown-gate",
        "newer-version",
        "wrong-kind",
        "float",
        "name",
    ],
)
def test_refuses_what_it_cannot_run_exactly(change: Any, redigest: bool, message: str) -> None:
    document = _mutated(change)
    with pytest.raises(BoundaryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_artifact(PATH, encode(document, redigest=redigest))


def test_unknown_field_names_the_foundry_version_the_artifact_needs() -> None:
    def newer(d: dict[str, Any]) -> None:
        d["spec"]["provenance"]["requires"] = "foundry>=0.3.0"
        d["spec"]["blocks"][0]["sandbox"] = {"network": False}

    with pytest.raises(BoundaryError, match=r"sandbox: unknown field.*it needs foundry>=0\.3\.0"):
        read_artifact(PATH, encode(_mutated(newer)))


def test_an_artifact_for_a_newer_foundry_is_refused_even_with_known_fields() -> None:
    document = _mutated(lambda d: d["spec"]["provenance"].update(requires="foundry>=9.0.0"))
    this = re.escape(foundry_version)
    with pytest.raises(BoundaryError, match=rf"it needs foundry>=9\.0\.0; this is Foundry {this}"):
        read_artifact(PATH, encode(document))


def test_duplicate_keys_are_refused() -> None:
    data = (GOLDEN / "artifact-nightly-benchmarks.json").read_bytes()
    doubled = data.replace(b'"kind": "Artifact",', b'"kind": "Artifact", "kind": "Artifact",', 1)
    with pytest.raises(BoundaryError, match="duplicate key 'kind'"):
        read_artifact(PATH, doubled)


def test_requests_are_read_as_plain_data() -> None:
    digest = golden()["digest"]
    text = (
        "apiVersion: alloy.dev/v1\nkind: Request\nmetadata: {name: rerun-bench}\n"
        f"spec:\n  artifact: nightly-benchmarks@{digest}\n  inputs: {{ref: v2}}\n"
        "  reason: flaky night\n  requestedBy: alice\n"
    )
    request = read_request(".alloy/requests/rerun-bench.yaml", text.encode())
    assert request.artifact_name == "nightly-benchmarks"
    assert request.artifact_digest == digest
    with pytest.raises(BoundaryError, match="aliases are not allowed"):
        read_request(".alloy/requests/x.yaml", b"a: &x [1]\nb: *x\n")
    with pytest.raises(BoundaryError, match="not valid YAML"):
        read_request(".alloy/requests/x.yaml", b"a: !!python/object:os.system x\n")


def test_read_boundary_collects_refusals_without_hiding_good_documents() -> None:
    good = (GOLDEN / "artifact-nightly-benchmarks.json").read_bytes()
    bad = encode(_mutated(lambda d: d["spec"]["blocks"][0]["run"].append("x")), redigest=False)
    boundary = read_boundary({PATH: good, ".alloy/artifacts/broken.json": bad, "README.md": b"x"})
    assert list(boundary.artifacts) == ["nightly-benchmarks"]
    assert [r.path for r in boundary.refused] == [".alloy/artifacts/broken.json"]


def test_requests_read_yaml_scalars_as_alloy_does() -> None:
    """YAML 1.2 core scalars on both sides of the boundary: the same request holds the same
    values for Alloy and Foundry, so its digest (and the execution id) agree."""
    from alloy.load import parse
    from foundry.boundary._reader import _plain_yaml

    text = (
        "a: yes\nb: on\nc: 2026-01-01\nd: true\ne: 0x1F\nf: 0o17\ng: 1.5\nh: ~\n"
        "i: 012\nj: '1'\nk: 1_000\nl: -3\nm: NO\nn: .inf\n"
    )
    ours = _plain_yaml("x.yaml", text)
    assert ours == parse(text).data
    assert ours["a"] == "yes"
    assert ours["c"] == "2026-01-01"
