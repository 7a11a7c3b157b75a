"""Results are found where a person looks (issue 14, item 6 of "What was seen"), with real
clones of real remotes and the real CLIs: `foundry checks list` and `foundry traces list|show` in
an engineer's clone show what a reconcile host ran (read from the remote, no state directory of
that host), `alloy status` says how old its copy of the traces branch is and `--fetch` reads the
newest, and `foundry` finds the repository from any subdirectory (and takes `-C DIR`)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.conftest import Result, git, run_cli
from tests.reconcile_support import World, only_execution

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def foundry(world: World, *args: str, cwd: Path | None = None) -> Result:
    return run_cli("foundry", *args, cwd=cwd or world.work.path, env=world.env)


def alloy(world: World, *args: str) -> Result:
    return run_cli("alloy", *args, cwd=world.work.path, env=world.env)


def reconciled(world: World) -> str:
    """An intent merged and run by a reconcile host (its own state directory, elsewhere)."""
    world.add_intent("hello")
    world.merge("add hello")
    run = world.reconcile(host="runner")
    assert run.code == 0, run.result.err
    return only_execution(run)


def test_checks_list_in_a_clone_reads_the_forge_of_its_remote(world: World) -> None:
    execution = reconciled(world)
    listed = foundry(world, "checks", "list")
    assert listed.code == 0, listed.err
    assert "no check runs" not in listed.out
    assert execution in listed.out
    assert "success" in listed.out
    shown = foundry(world, "checks", "show", execution)
    assert shown.code == 0, shown.err
    assert "hello: succeeded" in shown.out
    # From a subdirectory too (the repository is found walking up), and with -C.
    sub = world.work.path / ".alloy" / "intents"
    assert execution in foundry(world, "checks", "list", cwd=sub).out
    assert execution in foundry(world, "-C", str(sub), "checks", "list", cwd=world.tmp).out


def test_traces_list_and_show_in_a_clone_find_what_reconcile_ran(world: World) -> None:
    execution = reconciled(world)
    listed = foundry(world, "traces", "list", "--format", "json")
    assert listed.code == 0, listed.err
    document = json.loads(listed.out)
    schema = json.loads((SCHEMAS / "foundry-traces-list.schema.json").read_text())
    jsonschema.validate(document, schema)
    [row] = [r for r in document["executions"] if r["execution"] == execution]
    assert (row["status"], row["artifact"], row["event"]["type"]) == ("succeeded", "hello", "apply")
    assert row["source"] == world.url.removeprefix("file://")
    text = foundry(world, "traces", "list")
    assert execution in text.out, text.out + text.err
    shown = foundry(world, "traces", "show", execution, "--format", "markdown")
    assert shown.code == 0, shown.err
    assert execution in shown.out
    assert "succeeded" in shown.out
    exported = foundry(world, "traces", "export", execution)
    assert exported.code == 0, exported.err
    assert json.loads(exported.out)["spec"]["status"] == "succeeded"
    missing = foundry(world, "traces", "show", "exe-0000000000000000")
    assert missing.code == 1
    assert "no execution 'exe-0000000000000000'" in missing.err
    assert "nor is it on the traces branch of the remote" in missing.err


def test_alloy_status_says_how_old_its_traces_are_and_fetch_reads_the_newest(world: World) -> None:
    first = reconciled(world)
    git(world.work.path, "fetch", "-q", "origin", "alloy/traces:refs/remotes/origin/alloy/traces")
    seen = json.loads(alloy(world, "status", "--format", "json").out)
    assert first in json.dumps(seen)
    # Another intent runs on the host; the clone's copy of the traces branch is now stale.
    world.add_intent("other")
    world.merge("add other")
    second = only_execution(world.reconcile(host="runner"))
    stale = alloy(world, "status", "--format", "json")
    assert stale.code == 0, stale.err
    report = json.loads(stale.out)
    assert second not in json.dumps(report)
    [warning] = [w for w in report["warnings"] if "origin/alloy/traces" in w]
    assert "fetched 0 min ago" in warning
    assert "alloy status --fetch" in warning
    fresh = alloy(world, "status", "--fetch", "--format", "json")
    assert fresh.code == 0, fresh.err
    assert second in json.dumps(json.loads(fresh.out))
    assert not [w for w in json.loads(fresh.out)["warnings"] if "origin/alloy/traces" in w]


def test_foundry_finds_the_project_from_a_subdirectory(world: World) -> None:
    world.add_intent("hello")
    world.alloy("compile")
    sub = world.work.path / ".alloy" / "intents"
    planned = foundry(world, "plan", cwd=sub)
    assert planned.code == 0, planned.err
    assert "no artifacts" not in planned.out
    assert "hello" in planned.out
    elsewhere = foundry(world, "-C", str(sub), "plan", cwd=world.tmp)
    assert elsewhere.code == 0, elsewhere.err
    assert "hello" in elsewhere.out
    bad = foundry(world, "-C", str(world.tmp / "nowhere"), "plan")
    assert bad.code == 2
    assert "nowhere" in bad.err
