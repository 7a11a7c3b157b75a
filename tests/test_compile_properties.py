"""Compiling is deterministic: formatting never changes a digest, meaning always does (Hypothesis)."""

from __future__ import annotations

import copy
import random
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alloy.load import Entry, load_document
from alloy.model import Project

PROJECT = Project.model_validate(
    {
        "apiVersion": "alloy.dev/v1",
        "kind": "Project",
        "metadata": {"name": "p"},
        "spec": {"lanes": {"shared": {"limit": 2}}},
    }
)
PATH = ".alloy/intents/subject.yaml"

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=12).map(
    lambda s: s.strip() or "x"
)
ids = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
durations = st.builds(lambda n, u: f"{n}{u}", st.integers(1, 90), st.sampled_from("smhd"))
#: Block timeouts stay within the default policy's maximum of one day.
timeouts = st.builds(lambda n, u: f"{n}{u}", st.integers(1, 23), st.sampled_from("smh"))


@st.composite
def gates(draw: st.DrawFn, effects: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if effects == "irreversible" or draw(st.booleans()):
        out.append(
            {
                "approval": {
                    "from": draw(
                        st.lists(
                            st.sampled_from(["alice", "bob", "team:ops"]),
                            min_size=1,
                            max_size=3,
                            unique=True,
                        )
                    ),
                    "quorum": 1,
                    "forbidSelf": draw(st.booleans()),
                    "expires": draw(durations),
                }
            }
        )
    if draw(st.booleans()):
        out.append(
            {
                "window": {
                    "cron": draw(st.sampled_from(["* 8-18 * * 1-5", "0 2 * * *"])),
                    "timezone": "UTC",
                }
            }
        )
    if draw(st.booleans()):
        out.append({"check": {"names": draw(st.lists(words, min_size=1, max_size=2, unique=True))}})
    return out


@st.composite
def intents(draw: st.DrawFn) -> dict[str, Any]:
    block_ids = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
    blocks = []
    for i, bid in enumerate(block_ids):
        effects = draw(st.sampled_from(["none", "idempotent", "reversible", "irreversible"]))
        block: dict[str, Any] = {
            "id": bid,
            "run": draw(st.lists(words, min_size=1, max_size=4)),
            "effects": effects,
            "timeout": draw(timeouts),
            "outputs": draw(st.lists(ids.map(lambda s: f"out/{s}.txt"), max_size=2, unique=True)),
        }
        if i:
            block["needs"] = draw(st.lists(st.sampled_from(block_ids[:i]), max_size=i, unique=True))
        if draw(st.booleans()):
            block["retry"] = {
                "max": draw(st.integers(1, 3)),
                "backoff": draw(durations),
                "onExitCodes": [75],
            }
        gs = draw(gates(effects))
        if gs:
            block["gates"] = gs
        if draw(st.booleans()):
            block["env"] = {"MODE": draw(words)}
        blocks.append(block)
    on: dict[str, Any] = {"apply": draw(st.booleans()), "request": True}
    if draw(st.booleans()):
        on["schedule"] = {"cron": "0 2 * * *", "timezone": "Europe/Berlin", "catchUp": "6h"}
    if draw(st.booleans()):
        on["push"] = {"paths": ["src/**"]}
    automation: dict[str, Any] = {"on": on, "blocks": blocks}
    if draw(st.booleans()):
        automation["inputs"] = {"ref": {"type": "string", "default": draw(words)}}
    if draw(st.booleans()):
        automation["lane"] = {"name": "shared"}
    return {
        "apiVersion": "alloy.dev/v1",
        "kind": "Intent",
        "metadata": {"name": "subject", "title": draw(words), "owners": ["alice"]},
        "spec": {
            "state": draw(st.sampled_from(["accepted", "active"])),
            "goal": draw(words),
            "rationale": draw(words),
            "acceptance": [{"id": "AC-1", "statement": draw(words)}],
            "automation": automation,
        },
    }


def digest_of(text: str) -> str:
    result = load_document(
        PATH, Entry(data=text.encode()), PROJECT, expected="Intent", max_bytes=1 << 20
    )
    assert result.ok, [d.text() for d in result.diagnostics]
    assert result.artifact is not None
    return str(result.artifact["digest"])


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same data with every mapping's keys in another order (lists keep their order)."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: shuffled(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def render(doc: dict[str, Any], rng: random.Random) -> str:
    """Another spelling of the same document: key order, flow or block style, indentation,
    and comments all vary."""
    data = shuffled(doc, rng)
    blocks = data["spec"]["automation"]["blocks"]
    rng.shuffle(blocks)  # blocks are a set: their order is not meaning
    style = rng.choice([False, None])
    text = yaml.safe_dump(
        data, sort_keys=False, default_flow_style=style, width=10**6, indent=rng.choice([2, 4])
    )
    if style is False:
        lines = text.splitlines()
        out = []
        for line in lines:
            if rng.random() < 0.3:
                indent = len(line) - len(line.lstrip(" "))
                out.append(" " * indent + "# a comment that means nothing")
            out.append(line)
        text = "\n".join(out) + "\n"
    return "# leading comment\n" + text + ("\n# trailing\n" if rng.random() < 0.5 else "")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(intents(), st.randoms(use_true_random=False))
def test_formatting_never_changes_the_digest(doc: dict[str, Any], rng: random.Random) -> None:
    canonical = digest_of(yaml.safe_dump(doc, sort_keys=True))
    assert digest_of(render(doc, rng)) == canonical


def _mutations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Changes of meaning, each of which must change the digest."""
    out = []

    def mutate(label: str, change: Any) -> None:
        copy_ = copy.deepcopy(doc)
        change(copy_)
        out.append((label, copy_))

    block = "spec", "automation", "blocks"
    mutate("goal", lambda d: d["spec"].__setitem__("goal", d["spec"]["goal"] + " more"))
    mutate("title", lambda d: d["metadata"].__setitem__("title", d["metadata"]["title"] + "!"))
    mutate("run argument", lambda d: d[block[0]][block[1]][block[2]][0]["run"].append("--flag"))
    mutate(
        "timeout", lambda d: d["spec"]["automation"]["blocks"][0].__setitem__("timeout", "7777s")
    )
    mutate(
        "state",
        lambda d: d["spec"].__setitem__(
            "state", "active" if d["spec"]["state"] == "accepted" else "accepted"
        ),
    )
    mutate(
        "trigger",
        lambda d: d["spec"]["automation"]["on"].__setitem__(
            "apply", not d["spec"]["automation"]["on"]["apply"]
        ),
    )
    mutate("owner", lambda d: d["metadata"]["owners"].append("carol"))
    mutate("acceptance", lambda d: d["spec"]["acceptance"][0].__setitem__("statement", "changed"))
    mutate(
        "new output",
        lambda d: d["spec"]["automation"]["blocks"][0]["outputs"].append("new/file.txt"),
    )
    mutate("env", lambda d: d["spec"]["automation"]["blocks"][0].__setitem__("env", {"OTHER": "1"}))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(intents())
def test_every_change_of_meaning_changes_the_digest(doc: dict[str, Any]) -> None:
    base = digest_of(yaml.safe_dump(doc))
    seen = {base}
    for label, changed in _mutations(doc):
        new = digest_of(yaml.safe_dump(changed))
        assert new != base, f"changing the {label} did not change the digest"
        seen.add(new)
    assert len(seen) == len(_mutations(doc)) + 1


def test_equivalent_spellings_of_a_value_give_one_digest() -> None:
    """`60s` and `1m` mean the same; so do needs/outputs in another order."""
    doc = {
        "apiVersion": "alloy.dev/v1",
        "kind": "Intent",
        "metadata": {"name": "subject", "owners": ["alice"]},
        "spec": {
            "state": "active",
            "goal": "g",
            "automation": {
                "on": {"apply": True},
                "blocks": [
                    {
                        "id": "a",
                        "run": ["x"],
                        "effects": "none",
                        "timeout": "60s",
                        "outputs": ["b.txt", "a.txt"],
                    },
                    {"id": "b", "run": ["y"], "effects": "none", "needs": ["a"]},
                ],
            },
        },
    }
    other = copy.deepcopy(doc)
    other["spec"]["automation"]["blocks"][0]["timeout"] = "1m"
    other["spec"]["automation"]["blocks"][0]["outputs"] = ["a.txt", "b.txt"]
    assert digest_of(yaml.safe_dump(doc)) == digest_of(yaml.safe_dump(other))
