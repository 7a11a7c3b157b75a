"""Benchmark of `alloy check` and `alloy compile` on a large generated repository.

Run by hand, never as a test:

    .venv/bin/python benchmarks/compile.py [--intents 10000] [--repeat 5] [--keep]

It writes (in a temporary directory) a real git repository with `.alloy/alloy.yaml` and N
realistic intents (seeded, so every run sees the same bytes), commits them and their artifacts,
then times the WHOLE `alloy` command as a subprocess, each figure next to a peer measured in the
same run on the same files:

* cold `alloy check` / `alloy compile` (no cache, no artifacts) vs. a bare PyYAML `CSafeLoader`
  parse of the same N files in one Python process (the floor of parsing);
* `alloy compile` after one intent changed, and with nothing changed, vs. `git status` and
  `git diff --quiet` on the same repository;
* `alloy compile --check` on a fresh clone (no cache) vs. the parse floor and `git status` there.

Every figure is the best and the median of `--repeat` runs; the ratio is alloy / peer (best).
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# --- the generated repository ---------------------------------------------------------------

USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
TEAMS = ["team:perf", "team:platform", "team:release", "team:security", "team:data", "team:web"]
AREAS = [
    "api",
    "billing",
    "build",
    "cache",
    "ci",
    "docs",
    "search",
    "auth",
    "storage",
    "queue",
    "mobile",
    "web",
    "infra",
    "data",
    "ml",
    "payments",
    "email",
    "reports",
    "deps",
    "release",
]
ASPECTS = [
    "latency",
    "coverage",
    "backups",
    "benchmarks",
    "freshness",
    "security-scan",
    "licenses",
    "migrations",
    "nightly",
    "smoke-tests",
    "canary",
    "cleanup",
    "rotation",
    "snapshots",
    "audit",
    "sbom",
    "load-test",
    "uptime",
    "quotas",
    "changelog",
]
BLOCK_IDS = [
    "prepare",
    "build",
    "test",
    "lint",
    "bench",
    "package",
    "scan",
    "report",
    "migrate",
    "publish",
    "deploy",
    "notify",
    "verify",
    "archive",
]
CRONS = [
    "0 2 * * *",
    "30 3 * * 1-5",
    "*/15 * * * *",
    "0 */6 * * *",
    "15 4 1 * *",
    "0 7 * * 1",
    "45 23 * * 0",
    "0 0 * * *",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London"]
WINDOWS = ["* 8-18 * * 1-5", "0-59 9-17 * * 1-4", "* 22-23 * * *"]
SHARED_LANES = {
    "deploys": "{limit: 1, queue: fifo}",
    "reports": "{limit: 2, queue: latest}",
    "bench": "{limit: 1, queue: latest, maxQueued: 3}",
}
VERBS = ["stays", "is", "remains", "gets", "becomes"]
QUALITIES = ["fast", "green", "documented", "reproducible", "current", "audited", "small"]

PROJECT_YAML = """\
apiVersion: alloy.dev/v1
kind: Project
metadata:
  name: bench-project
  title: A large generated repository for the compile benchmark
spec:
  defaultBranch: main
  owners: [alice, team:platform]
  lanes:
{lanes}
  policy:
    approvalRequiredFor: [irreversible]
    maxTimeout: 1d
"""


def project_yaml() -> str:
    lanes = "\n".join(f"    {name}: {body}" for name, body in SHARED_LANES.items())
    return PROJECT_YAML.format(lanes=lanes)


def intent_names(n: int) -> list[str]:
    return [
        f"{AREAS[i % len(AREAS)]}-{ASPECTS[(i // len(AREAS)) % len(ASPECTS)]}-{i:05d}"
        for i in range(n)
    ]


def _owners(rng: random.Random) -> list[str]:
    return rng.sample(USERS, rng.randint(1, 2)) + rng.sample(TEAMS, rng.randint(0, 2))


def _gate(rng: random.Random, kind: str, names: list[str], i: int) -> str:
    if kind == "approval":
        approvers = _owners(rng)
        quorum = rng.randint(1, len(approvers))
        expires = rng.choice(["", ", expires: 24h", ", expires: 3d"])
        return (
            f"approval: {{from: [{', '.join(approvers)}], quorum: {quorum}, "
            f"forbidSelf: {rng.choice(['true', 'false'])}{expires}}}"
        )
    if kind == "window":
        return f'window: {{cron: "{rng.choice(WINDOWS)}", timezone: {rng.choice(ZONES)}}}'
    if kind == "check":
        checks = rng.sample(["ci/test", "ci/lint", "ci/build", "security/scan"], rng.randint(1, 3))
        return f"check: {{names: [{', '.join(checks)}], timeout: 30m}}"
    if kind == "after":
        target = names[rng.randrange(i)] if i else names[0]
        return f"after: {{intent: {target}, within: 1d}}"
    return "command: {run: [./scripts/policy-check.sh, --strict], timeout: 2m}"


def intent_yaml(rng: random.Random, names: list[str], i: int) -> str:
    """One realistic intent; `i` may depend on (and wait for) only earlier intents (no cycles)."""
    name = names[i]
    area, aspect = name.split("-", 1)[0], name.split("-", 1)[1].rsplit("-", 1)[0]
    state = rng.choices(["active", "accepted", "proposed"], weights=[5, 3, 2])[0]
    has_auto = state != "proposed" or rng.random() < 0.5
    lines = [
        "apiVersion: alloy.dev/v1",
        "kind: Intent",
        "metadata:",
        f"  name: {name}",
        (
            f"  title: The {area} {aspect.replace('-', ' ')} {rng.choice(VERBS)} "
            f"{rng.choice(QUALITIES)}"
        ),
        f"  owners: [{', '.join(_owners(rng))}]",
    ]
    if rng.random() < 0.3:
        lines += ["  labels:", f"    area: {area}", f"    tier: t{rng.randint(1, 3)}"]
    lines += [
        "spec:",
        f"  state: {state}" + ("   # reviewed in the weekly sync" if rng.random() < 0.2 else ""),
        (
            f"  goal: The {area} {aspect.replace('-', ' ')} {rng.choice(VERBS)} "
            f"{rng.choice(QUALITIES)} on every change to the default branch, and a regression "
            f"is noticed within {rng.randint(1, 48)} hours."
        ),
    ]
    if rng.random() < 0.8:
        lines += [
            "  rationale: >-",
            f"    Problems in {area} found late cost days of bisecting; catching them",
            f"    early keeps the {aspect.replace('-', ' ')} work cheap and predictable.",
        ]
    # blocks first (acceptance evidence needs their outputs)
    n_blocks = rng.randint(1, 5)
    block_ids = rng.sample(BLOCK_IDS, n_blocks)
    outputs = {
        b: ([f"out/{b}.json"] + ([f"out/{b}.log"] if rng.random() < 0.3 else []))
        if rng.random() < 0.6
        else []
        for b in block_ids
    }
    n_ac = rng.randint(1, 3)
    lines.append("  acceptance:")
    with_outputs = [b for b in block_ids if outputs[b]]
    for a in range(n_ac):
        lines += [
            f"    - id: AC-{a + 1}",
            (
                f"      statement: The {aspect.replace('-', ' ')} check {a + 1} passes and its "
                "result is kept."
            ),
        ]
        if has_auto and with_outputs and rng.random() < 0.7:
            block = rng.choice(with_outputs)
            lines.append(f"      evidence: {{block: {block}, output: {outputs[block][0]}}}")
    if i and rng.random() < 0.6:
        deps = sorted({names[rng.randrange(i)] for _ in range(rng.randint(1, 3))})
        lines += ["  relations:", f"    dependsOn: [{', '.join(deps)}]"]
    if not has_auto:
        return "\n".join(lines) + "\n"
    lines += ["  automation:", "    on:"]
    triggers = rng.sample(["apply", "push", "schedule", "request"], rng.randint(1, 3))
    if "apply" in triggers:
        lines.append("      apply: true")
    if "push" in triggers:
        paths = sorted({f"{area}/**", rng.choice(["src/**", "lib/**", "pyproject.toml"])})
        lines.append(f"      push: {{paths: [{', '.join(repr(p) for p in paths)}]}}")
    if "schedule" in triggers:
        lines.append(
            f'      schedule: {{cron: "{rng.choice(CRONS)}", timezone: {rng.choice(ZONES)}, '
            f"catchUp: {rng.choice(['0s', '1h', '6h'])}, "
            f"overlap: {rng.choice(['skip', 'queue', 'allow'])}}}"
        )
    if "request" in triggers:
        lines.append("      request: true")
    if rng.random() < 0.4:
        lines += ["    inputs:", "      ref: {type: string, default: main}"]
        if rng.random() < 0.5:
            lines.append("      dryRun: {type: boolean, default: false}")
        if rng.random() < 0.3:
            lines.append("      shards: {type: integer, default: 4, description: Test shards}")
    lane = rng.random()
    if lane < 0.3:
        lines.append(f"    lane: {{name: {rng.choice(sorted(SHARED_LANES))}}}")
    elif lane < 0.45:
        lines.append(
            f"    lane: {{name: {name}, limit: {rng.randint(1, 3)}, queue: latest, "
            "rate: 10 per 1h}"
        )
    lines.append("    blocks:")
    for b, block in enumerate(block_ids):
        effects = rng.choices(
            ["none", "idempotent", "reversible", "irreversible"], weights=[4, 3, 2, 1]
        )[0]
        lines += [f"      - id: {block}"]
        if b:
            needs = sorted(rng.sample(block_ids[:b], rng.randint(1, min(2, b))))
            lines.append(f"        needs: [{', '.join(needs)}]")
        lines.append(
            f"        run: [python, -m, {area}.{block}, --target, {aspect}]"
            if rng.random() < 0.7
            else f"        run: [bash, -c, 'make {block} AREA={area} && echo done']"
        )
        if rng.random() < 0.7:
            lines.append(f"        timeout: {rng.choice(['5m', '20m', '1h', '2h'])}")
        if rng.random() < 0.35:
            lines.append(
                f"        retry: {{max: {rng.randint(1, 3)}, backoff: 30s, "
                f"onExitCodes: [{rng.choice(['75', '75, 124', '1'])}]}}"
            )
        lines.append(f"        effects: {effects}")
        gates = []
        if effects == "irreversible":
            gates.append("approval")
        if rng.random() < 0.3:
            gates += rng.sample(
                ["approval", "window", "check", "after", "command"], rng.randint(1, 2)
            )
        gates = list(dict.fromkeys(gates))
        if gates:
            lines.append("        gates:")
            lines += [f"          - {_gate(rng, g, names, i)}" for g in gates]
        if outputs[block]:
            lines.append(f"        outputs: [{', '.join(outputs[block])}]")
        if rng.random() < 0.25:
            lines += ["        env:", "          LOG_LEVEL: info", f"          TARGET: {aspect}"]
        if rng.random() < 0.15:
            lines.append("        secrets: [DEPLOY_TOKEN]")
    return "\n".join(lines) + "\n"


def generate(root: Path, n: int, seed: int) -> dict[str, int]:
    """Write the repository; returns counts by state."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    names = intent_names(n)
    intents = root / ".alloy" / "intents"
    intents.mkdir(parents=True)
    (root / ".alloy" / "alloy.yaml").write_text(project_yaml(), encoding="utf-8")
    counts: dict[str, int] = {}
    for i, name in enumerate(names):
        text = intent_yaml(rng, names, i)
        state = text.split("\n  state: ", 1)[1].split()[0]
        key = state + (" (compiles)" if "\n  automation:" in text and state != "proposed" else "")
        counts[key] = counts.get(key, 0) + 1
        (intents / f"{name}.yaml").write_text(text, encoding="utf-8")
    (root / "README.md").write_text("Generated by benchmarks/compile.py\n", encoding="utf-8")
    return counts


# --- running and timing ---------------------------------------------------------------------

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
GIT = ["git", "-c", "commit.gpgsign=false", "-c", "core.fsmonitor=false"]


def run(
    argv: Sequence[str], cwd: Path, ok: Sequence[int] = (0,), env: dict[str, str] | None = None
) -> float:
    """Wall seconds of one whole subprocess. Dirty pages are flushed first, so that the
    write-back of the previous step is not charged to this one."""
    os.sync()
    start = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=cwd, capture_output=True, check=False, env={**os.environ, **(env or {})}
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        sys.exit(
            f"{' '.join(argv)} exited {proc.returncode}:\n"
            f"{proc.stdout.decode()[-2000:]}{proc.stderr.decode()[-2000:]}"
        )
    return elapsed


@dataclass
class Timing:
    samples: list[float]

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def repeat(times: int, once: Callable[[int], float]) -> Timing:
    return Timing([once(r) for r in range(times)])


@dataclass
class Row:
    label: str
    timing: Timing
    peer: str
    peer_timing: Timing
    rate: bool = False  # show intents/s


PARSE_FLOOR = """\
import os, sys, time, yaml
t = time.perf_counter()
d = sys.argv[1]
n = 0
for name in sorted(os.listdir(d)):
    with open(os.path.join(d, name), 'rb') as fh:
        yaml.load(fh.read(), Loader=yaml.CSafeLoader)
    n += 1
print(n, time.perf_counter() - t)
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--intents", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--alloy",
        default=None,
        help="the alloy command, split like a shell would (default: the alloy next to this Python)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated repository")
    args = parser.parse_args(argv)
    alloy = alloy_command(args.alloy)
    in_scratch("alloy-bench-", keep=args.keep, body=lambda tmp: _bench(tmp, alloy, args))


def alloy_command(spec: str | None) -> list[str]:
    """The alloy command: `spec` split like a shell would, else the alloy next to this Python."""
    alloy = shlex.split(spec) if spec else [str(Path(sys.executable).with_name("alloy"))]
    if not shutil.which(alloy[0]):
        sys.exit(f"no executable {alloy[0]}; pass --alloy")
    return alloy


def in_scratch(prefix: str, *, keep: bool, body: Callable[[Path], None]) -> None:
    """Run `body` in a new temporary directory with its own HOME and git identity; removed
    afterwards unless `keep`."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update(GIT_ENV)
    os.environ["HOME"] = str(tmp / "home")
    os.environ["XDG_CACHE_HOME"] = str(tmp / "home" / ".cache")
    (tmp / "home").mkdir()
    try:
        body(tmp)
    finally:
        if keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _setup(repo: Path, alloy: list[str], n: int, seed: int) -> None:
    t0 = time.perf_counter()
    counts = generate(repo, n, seed)
    size = sum(p.stat().st_size for p in (repo / ".alloy" / "intents").iterdir())
    gen_s = time.perf_counter() - t0
    run([*GIT, "init", "-q", "-b", "main"], repo)
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-q", "-m", "intents"], repo)
    first = run([*alloy, "compile"], repo)
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-q", "-m", "artifacts"], repo)
    n_artifacts = len(list((repo / ".alloy" / "artifacts").iterdir()))
    print(
        f"generated {n} intents ({size / n:.0f} bytes each on average) in {gen_s:.1f} s: "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        + f"; {n_artifacts} artifacts; first compile {first:.2f} s\n"
    )


def _bench(tmp: Path, alloy: list[str], args: argparse.Namespace) -> None:
    n, times = args.intents, args.repeat
    print(
        f"alloy: {' '.join(alloy)}\nPython {sys.version.split()[0]}, {os.cpu_count()} CPU(s); "
        f"load average {os.getloadavg()[0]:.2f}; repeat {times}"
    )
    repo = tmp / "repo"
    repo.mkdir()
    _setup(repo, alloy, n, args.seed)
    cache = repo / ".git" / "alloy" / "cache.json"
    artifacts = repo / ".alloy" / "artifacts"
    intents_dir = repo / ".alloy" / "intents"
    trash = tmp / "trash"
    trash.mkdir()
    rows: list[Row] = []

    # (a) cold: no cache (and, for compile, no artifacts) vs. the floor of parsing
    floor_inner: list[float] = []

    def parse_floor(_: int) -> float:
        os.sync()
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", PARSE_FLOOR, str(intents_dir)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        elapsed = time.perf_counter() - start
        assert int(out[0]) == n
        floor_inner.append(float(out[1]))
        return elapsed

    def cold(argv: list[str], env: dict[str, str] | None = None) -> Callable[[int], float]:
        def once(_: int) -> float:
            cache.unlink(missing_ok=True)
            if argv[-1] == "compile" and artifacts.exists():
                # Moved aside, not deleted: for a minute or more after thousands of files are
                # deleted, ext4 skips their inodes when it allocates new ones, which would
                # slow the next compile's writes several-fold (a clone never pays that).
                artifacts.rename(trash / str(len(list(trash.iterdir()))))
            return run(argv, repo, env=env)

        return once

    floor = repeat(times, parse_floor)
    floor_name = "PyYAML CSafeLoader parse"
    check_t = repeat(times, cold([*alloy, "check"]))
    compile_t = repeat(times, cold([*alloy, "compile"]))
    serial = {"ALLOY_JOBS": "1"}
    check_1 = repeat(times, cold([*alloy, "check"], serial))
    compile_1 = repeat(times, cold([*alloy, "compile"], serial))
    rows += [
        Row("alloy check, cold", check_t, floor_name, floor, rate=True),
        Row("alloy compile, cold", compile_t, floor_name, floor, rate=True),
        Row("  the same, ALLOY_JOBS=1: check", check_1, floor_name, floor, rate=True),
        Row("  the same, ALLOY_JOBS=1: compile", compile_1, floor_name, floor, rate=True),
    ]

    # (b) warm: the cache and the artifacts are there (the last cold compile left them)
    run([*alloy, "compile"], repo)
    run([*GIT, "status", "--porcelain"], repo)  # refresh the index once
    nothing = repeat(times, lambda _: run([*alloy, "compile"], repo))
    diff_quiet = repeat(times, lambda _: run([*GIT, "diff", "--quiet"], repo, ok=(0, 1)))
    status = repeat(times, lambda _: run([*GIT, "status", "--porcelain"], repo))
    rows.append(Row("alloy compile, nothing changed", nothing, "git diff --quiet", diff_quiet))
    rows.append(Row("alloy compile, nothing changed", nothing, "git status", status))

    compiling = [nm for nm in intent_names(n) if (artifacts / f"{nm}.json").exists()]
    changed_status: list[float] = []

    def one_changed(r: int) -> float:
        path = intents_dir / f"{compiling[(r * 7919) % len(compiling)]}.yaml"
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace("\n  goal: ", f"\n  goal: (rev {r + 1}) ", 1), encoding="utf-8"
        )
        elapsed = run([*alloy, "compile"], repo)
        changed_status.append(run([*GIT, "status", "--porcelain"], repo))
        return elapsed

    changed = repeat(times, one_changed)
    rows.append(
        Row("alloy compile, one intent changed", changed, "git status", Timing(changed_status))
    )

    # a fresh clone of the committed state: no cache, the artifacts checked in
    clone_status: list[float] = []

    def fresh_check(r: int) -> float:
        clone = tmp / f"clone-{r}"
        run([*GIT, "clone", "-q", str(repo), str(clone)], tmp)
        elapsed = run([*alloy, "compile", "--check"], clone)
        clone_status.append(run([*GIT, "status", "--porcelain"], clone))
        shutil.rmtree(clone, ignore_errors=True)
        return elapsed

    fresh = repeat(times, fresh_check)
    rows.append(Row("alloy compile --check, fresh clone", fresh, floor_name, floor, rate=True))
    rows.append(
        Row(
            "alloy compile --check, fresh clone",
            fresh,
            "git status, fresh clone",
            Timing(clone_status),
        )
    )
    startup = repeat(times, lambda _: run([*alloy, "--version"], repo))
    bare = repeat(times, lambda _: run([sys.executable, "-c", "pass"], repo))
    rows.append(Row("alloy --version (start-up)", startup, "python -c pass", bare))

    print()
    _table(rows, n)
    print(
        f"\nparse floor inside its process (without start-up): best "
        f"{min(floor_inner):.3f} s = {n / min(floor_inner):,.0f} intents/s; "
        f"load average now {os.getloadavg()[0]:.2f}"
    )
    worst = min(n / check_t.median, n / compile_t.median)
    print("\ntargets:")
    print(
        f"  cold >= 2,500 intents/s: check {n / check_t.median:,.0f}/s, compile "
        f"{n / compile_t.median:,.0f}/s (median) -> {'met' if worst >= 2500 else 'NOT met'}"
    )
    print(
        f"  one change < 1 s: {changed.median:.3f} s (median) -> "
        f"{'met' if changed.median < 1 else 'NOT met'}"
    )


def _table(rows: list[Row], n: int) -> None:
    head = ("measurement", "best s", "median s", "intents/s", "peer", "peer best s", "ratio")
    body = [
        (
            r.label,
            f"{r.timing.best:.3f}",
            f"{r.timing.median:.3f}",
            f"{n / r.timing.median:,.0f}" if r.rate else "",
            r.peer,
            f"{r.peer_timing.best:.3f}",
            f"{r.timing.best / r.peer_timing.best:.1f}x",
        )
        for r in rows
    ]
    widths = [max(len(r[c]) for r in (head, *body)) for c in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for r in body:
        cells = zip(r, widths, strict=True)
        print(
            "  ".join(c.ljust(w) if i in (0, 4) else c.rjust(w) for i, (c, w) in enumerate(cells))
        )
    print(line)
    print("intents/s from the median; ratio = alloy best / peer best")


if __name__ == "__main__":
    main()
