"""The fast paths behind benchmarks/compile.py give exactly what the plain ones give: documents
loaded by forked workers equal documents loaded one by one, and the indented artifact writer
equals `json.dumps(..., indent=2)` (Hypothesis)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alloy import workspace
from alloy.compile import canonical_bytes, pretty_bytes
from alloy.compile._canonical import FloatInBoundary
from alloy.load import DocResult, Entry, _parallel, load_document, load_repository
from alloy.model import DEFAULT_PROJECT
from tests.conftest import PROJECT, intent_yaml

needs_fork = pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux only")


def _snapshot(n: int, *, broken: bool = True) -> dict[str, Entry]:
    """`n` intents (if `broken`, three in five broken in different ways) and a request."""
    files: dict[str, str] = {".alloy/alloy.yaml": PROJECT}
    for k in range(n):
        text = intent_yaml(f"i-{k}", state=("active", "accepted", "proposed")[k % 3])
        if broken and k % 5 == 1:
            text = text.replace("effects: none", "effects: maybe")
        elif broken and k % 5 == 2:
            text = text.replace("  goal:", "  goal: [unclosed\n  goal:")
        elif broken and k % 5 == 3:
            text += "  relations: {dependsOn: [i-0, nowhere]}\n"
        files[f".alloy/intents/i-{k}.yaml"] = text
    files[".alloy/requests/r.yaml"] = (
        "apiVersion: alloy.dev/v1\nkind: Request\nmetadata: {name: r}\n"
        f"spec: {{artifact: 'i-0@sha256:{'0' * 64}', reason: why, requestedBy: alice}}\n"
    )
    return {path: Entry(data=text.encode()) for path, text in files.items()}


def _jobs(snapshot: dict[str, Entry]) -> list[tuple[str, Entry, str | None]]:
    return [(p, e, "Intent") for p, e in sorted(snapshot.items()) if "/intents/" in p]


def _plain(results: list[DocResult]) -> list[tuple[str, Any, Any]]:
    return [(r.path, r.to_json(), r.artifact) for r in results]


@needs_fork
def test_forked_workers_load_exactly_what_one_process_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jobs = _jobs(_snapshot(40))
    monkeypatch.setenv("ALLOY_JOBS", "1")
    alone = _parallel.load_documents(jobs, DEFAULT_PROJECT, 1 << 20)
    monkeypatch.setenv("ALLOY_JOBS", "3")
    monkeypatch.setattr(_parallel, "MIN_PER_WORKER", 1)
    assert _parallel.shares_for(len(jobs)) == 3
    forked = _parallel.load_documents(jobs, DEFAULT_PROJECT, 1 << 20)
    assert _plain(forked) == _plain(alone)
    assert any(r.diagnostics for r in alone)
    assert any(r.artifact for r in alone)


@needs_fork
def test_a_whole_repository_checks_the_same_on_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = _snapshot(30)
    monkeypatch.setenv("ALLOY_JOBS", "1")
    alone = load_repository(snapshot)
    monkeypatch.setenv("ALLOY_JOBS", "2")
    monkeypatch.setattr(_parallel, "MIN_PER_WORKER", 1)
    forked = load_repository(snapshot)
    assert forked.diagnostics == alone.diagnostics
    assert list(forked.docs) == list(alone.docs)


@needs_fork
def test_a_failing_worker_is_replaced_by_loading_here(monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = _jobs(_snapshot(12))
    here = os.getpid()

    def fails_in_workers(path: str, *args: Any, **kwargs: Any) -> DocResult:
        if os.getpid() != here:
            raise RuntimeError("a bug in a worker")
        return load_document(path, *args, **kwargs)

    monkeypatch.setenv("ALLOY_JOBS", "2")
    monkeypatch.setattr(_parallel, "MIN_PER_WORKER", 1)
    results = _parallel.load_documents(jobs, DEFAULT_PROJECT, 1 << 20, fails_in_workers)
    expected = [
        load_document(p, e, DEFAULT_PROJECT, expected=x, max_bytes=1 << 20) for p, e, x in jobs
    ]
    assert _plain(results) == _plain(expected)


@needs_fork
def test_artifacts_written_by_workers_are_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trees = []
    for jobs in ("1", "3"):
        root = tmp_path / f"jobs-{jobs}"
        for path, entry in _snapshot(30, broken=False).items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(entry.data or b"")
        monkeypatch.setenv("ALLOY_JOBS", jobs)
        monkeypatch.setattr(_parallel, "MIN_PER_WORKER", 1)
        report = workspace.compile_repository(root, use_cache=False)
        assert report.written
        files = sorted((root / ".alloy" / "artifacts").iterdir())
        trees.append((report.written, [(p.name, p.read_bytes()) for p in files]))
    assert trees[0] == trees[1]


def test_few_documents_are_loaded_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLOY_JOBS", raising=False)
    assert _parallel.shares_for(_parallel.MIN_PER_WORKER * 2 - 1) == 1


json_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(json_data)
def test_artifacts_are_indented_exactly_like_json_dumps(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    try:
        want = expected.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: both refuse
        with pytest.raises(UnicodeEncodeError):
            pretty_bytes(value)
        return
    assert pretty_bytes(value) == want


@given(json_data, st.floats(allow_nan=True))
def test_floats_are_refused_wherever_they_hide(value: Any, number: float) -> None:
    document = {"a": [value, {"deep": number}]}
    with pytest.raises(FloatInBoundary):
        pretty_bytes(document)
    with pytest.raises(FloatInBoundary):
        canonical_bytes(document)


def test_unusual_values_take_the_json_module_path() -> None:
    class Text(str):
        __slots__ = ()

    value = {"b": (1, 2), "a": Text("x"), "c": {3: "int key"}}
    assert (
        pretty_bytes(value)
        == (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    )
