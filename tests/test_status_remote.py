"""`foundry status` (issue 14): a repository's executions, any host's, read from its remote's
records alone — traces branch, claims, check runs, stops — on real remotes (`file://` and
`git daemon`), with real processes; `--watch` shows it again when the remote changes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import Result, run_cli
from tests.reconcile_support import World, run_host, wait_for

SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "docs/schemas/foundry-status.schema.json").read_text()
)
APPROVAL = "        gates:\n          - approval: {from: [alice], quorum: 1}\n"


@pytest.fixture(params=["file", "daemon"])
def remote(request: pytest.FixtureRequest) -> World:
    world: World = request.getfixturevalue("world" if request.param == "file" else "daemon_world")
    return world


def foundry(world: World, *args: str, cwd: Path | None = None) -> Result:
    return run_cli("foundry", *args, cwd=cwd or world.work.path, env=world.env)


def status(world: World, *args: str) -> dict[str, Any]:
    result = foundry(world, "status", "--format", "json", *args)
    assert result.code == 0, result.err
    document: dict[str, Any] = json.loads(result.out)
    jsonschema.validate(document, SCHEMA)
    return document


def by_execution(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["execution"]: e for e in document["executions"]}


def test_status_shows_every_hosts_executions_with_why_and_what_unblocks(remote: World) -> None:
    world = remote
    world.add_intent("hello")
    world.add_intent("broken", script="echo it broke >&2; exit 3")
    world.add_intent("ship", gates=APPROVAL, effects="irreversible")
    world.merge("three intents")
    _, report_a = run_host(world, "a")  # runs all three
    done = dict(report_a["finished"].items())
    assert sorted(done.values()) == ["failed", "succeeded", "waiting"], report_a
    # Read from the engineer's clone: no host's state directory is involved.
    document = status(world, "--all")
    assert document["branch"] == "main"
    assert document["tracesBranch"] == "alloy/traces"
    rows = by_execution(document)
    assert set(rows) == set(done)
    names = {r["intent"]: r for r in rows.values()}
    assert names["hello"]["state"] == "succeeded"
    assert names["hello"]["event"]["type"] == "apply"
    assert names["broken"]["state"] == "failed"
    assert names["broken"]["why"] == "block work failed (exit code 3): it broke"
    waiting = names["ship"]
    assert waiting["state"] == "waiting"
    assert "approval" in waiting["why"]
    assert waiting["next"].startswith(f"alloy approve {waiting['execution']} --gate work/0")
    # The same as text: intent, event, execution, state, why and the next step.
    text = foundry(world, "status", "--all")
    assert text.code == 0, text.err
    line = next(x for x in text.out.splitlines() if waiting["execution"] in x)
    assert line.split()[:2] == ["ship", "apply"]
    assert "waiting" in line
    assert f"next: alloy approve {waiting['execution']}" in text.out
    # From another directory, naming the remote.
    elsewhere = foundry(world, "status", "--repo", world.url, "--all", cwd=world.tmp)
    assert elsewhere.code == 0, elsewhere.err
    assert waiting["execution"] in elsewhere.out
    # Default: what is not over, and the latest of each intent that is.
    assert set(by_execution(status(world))) == set(done)


def test_status_outside_a_repository_says_what_to_do(world: World) -> None:
    result = foundry(world, "status", cwd=world.tmp)
    assert result.code == 1
    assert "not in a git repository" in result.err
    assert "--repo" in result.err
    unreachable = foundry(world, "status", "--repo", str(world.tmp / "nothing"))
    assert unreachable.code == 1
    assert "Traceback" not in unreachable.err


def _lines(proc: subprocess.Popen[str], out: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append(line)  # noqa: PERF402 - each line as it arrives (another thread reads them)


def test_status_watch_shows_it_again_when_the_remote_changes(remote: World) -> None:
    world = remote
    world.add_intent("hello")
    world.merge("add hello")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "foundry",
            "status",
            "--watch",
            "--interval",
            "0.3",
            "--format",
            "json",
        ],
        cwd=world.work.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **world.env},
    )
    seen: list[str] = []
    reader = threading.Thread(target=_lines, args=(proc, seen), daemon=True)
    reader.start()
    try:
        wait_for("the first document", lambda: len(seen) >= 1)
        first = json.loads(seen[0])
        jsonschema.validate(first, SCHEMA)
        assert first["executions"] == []
        # A host runs it: the watcher prints the remote's new state by itself.
        code, report = run_host(world, "a")
        assert code == 0, report
        [execution] = report["started"]

        def shown() -> dict[str, Any] | None:
            for line in seen[1:]:
                rows = by_execution(json.loads(line))
                if rows.get(execution, {}).get("state") == "succeeded":
                    return rows
            return None

        wait_for("the execution in a later document", shown)
        # A pause recorded from the clone shows up too.
        assert foundry(world, "pause", "hello", "--reason", "watch this").code == 0
        wait_for(
            "the pause in a later document",
            lambda: any(json.loads(x)["pauses"] for x in seen[1:]),
        )
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        reader.join(timeout=5)
    assert proc.stderr is not None
    assert proc.stdout is not None
    said = proc.stderr.read()
    proc.stderr.close()
    proc.stdout.close()
    assert code == 130
    assert said == ""  # quietly


def test_event_keys_are_shortened_as_everywhere_and_cut_with_an_ellipsis() -> None:
    from foundry.cli._status import _short

    assert _short("sha256:" + "a" * 64) == "sha256:" + "a" * 12
    assert _short("0123456789abcdef" * 2 + "01234567") == "0123456789ab"
    long = "manual-request-for-the-release-notes"
    assert _short(long) == long[:23] + "…"
    assert _short("weekly") == "weekly"
