"""Benchmark of `alloy review` on a pull request that changes one intent of a large repository.

Run by hand, never as a test:

    .venv/bin/python benchmarks/review.py [--intents 10000] [--repeat 5] [--keep] [--profile]

It generates (in a temporary directory, from the fixed seed of `benchmarks/compile.py`) a real
git repository of N intents, compiles and commits them on `main`, then makes the pull request
`pr`: one active intent's goal and command edited and its artifact recompiled. It times the
WHOLE command `alloy review --base main --head pr` as a subprocess (start-up included), best and
median of `--repeat` runs:

* warm: the parse cache as a developer has it after `alloy check` on the branch;
* cold: no parse cache (a fresh CI clone);

next to peers measured in the same run: the git part alone (`ls-tree` of both trees and one
`cat-file --batch` of every blob), `git diff --name-only main...pr`, `alloy check` (warm) and
`alloy --version` (start-up). `--profile` runs the warm review once under cProfile and prints
where the time goes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compile import (  # type: ignore[import-not-found]  # the sibling benchmark script
    GIT,
    Row,
    _table,
    alloy_command,
    generate,
    in_scratch,
    intent_names,
    repeat,
    run,
)

GIT_FLOOR = """\
import subprocess, sys, time
t = time.perf_counter()
shas = set()
for rev in ("main", "pr"):
    out = subprocess.run(["git", "ls-tree", "-r", "-z", rev, "--", ".alloy"],
                         capture_output=True, check=True).stdout
    shas |= {r.split(b"\\t")[0].split()[2] for r in out.split(b"\\0") if r}
proc = subprocess.run(["git", "cat-file", "--batch"], input=b"\\n".join(sorted(shas)) + b"\\n",
                      capture_output=True, check=True)
print(len(shas), len(proc.stdout), time.perf_counter() - t)
"""


def _setup(repo: Path, alloy: list[str], n: int, seed: int) -> str:
    """The repository on `main`, and the branch `pr` changing one compiled intent; returns the
    name of the changed intent."""
    t0 = time.perf_counter()
    generate(repo, n, seed)
    run([*GIT, "init", "-q", "-b", "main"], repo)
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-q", "-m", "intents"], repo)
    run([*alloy, "compile"], repo)
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-q", "-m", "artifacts"], repo)
    artifacts = repo / ".alloy" / "artifacts"
    active = [
        name
        for name in intent_names(n)
        if (artifacts / f"{name}.json").exists()
        and "\n  state: active" in (repo / ".alloy/intents" / f"{name}.yaml").read_text()
    ]
    name = active[len(active) // 2]
    path = repo / ".alloy" / "intents" / f"{name}.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("\n  goal: ", "\n  goal: (reworded) ", 1)
    text = text.replace("        run: [", "        run: [env, ", 1)
    path.write_text(text, encoding="utf-8")
    run([*GIT, "checkout", "-q", "-b", "pr"], repo)
    run([*alloy, "compile"], repo)
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-q", "-m", f"change {name}"], repo)
    files = len(list((repo / ".alloy" / "intents").iterdir())) + len(list(artifacts.iterdir()))
    print(
        f"generated {n} intents and compiled them ({files} files under .alloy/) in "
        f"{time.perf_counter() - t0:.1f} s; the pull request changes {name}\n"
    )
    return name


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
    parser.add_argument("--profile", action="store_true", help="profile one warm review")
    args = parser.parse_args(argv)
    alloy = alloy_command(args.alloy)
    in_scratch("alloy-review-bench-", keep=args.keep, body=lambda tmp: _bench(tmp, alloy, args))


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
    review = [*alloy, "review", "--base", "main", "--head", "pr"]

    # What the review says (once, to show it is the review of one changed intent).
    out = subprocess.run(review, cwd=repo, capture_output=True, text=True, check=False)
    print(f"exit {out.returncode}; {len(out.stdout)} characters of Markdown:\n")
    print("\n".join("    " + line for line in out.stdout.splitlines()[:40]))
    print()

    def cold(_: int) -> float:
        cache.unlink(missing_ok=True)
        return run(review, repo, ok=(0, 1))

    def warm(_: int) -> float:
        return run(review, repo, ok=(0, 1))

    git_inner: list[float] = []

    def git_floor(_: int) -> float:
        os.sync()
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", GIT_FLOOR], cwd=repo, check=True, capture_output=True, text=True
        ).stdout.split()
        elapsed = time.perf_counter() - start
        git_inner.append(float(done[2]))
        return elapsed

    cold_t = repeat(times, cold)
    run([*alloy, "check"], repo)  # a developer's cache, on the branch
    warm_t = repeat(times, warm)
    floor = repeat(times, git_floor)
    diff = repeat(times, lambda _: run([*GIT, "diff", "--name-only", "main...pr"], repo))
    check = repeat(times, lambda _: run([*alloy, "check"], repo))
    startup = repeat(times, lambda _: run([*alloy, "--version"], repo))
    rows = [
        Row("alloy review, warm cache", warm_t, "git: ls-tree x2 + cat-file --batch", floor),
        Row("alloy review, warm cache", warm_t, "alloy check, warm cache", check),
        Row("alloy review, cold (no cache)", cold_t, "alloy check, warm cache", check),
        Row("alloy review, warm cache", warm_t, "git diff --name-only main...pr", diff),
        Row("alloy --version (start-up)", startup, "git diff --name-only main...pr", diff),
    ]
    print()
    _table(rows, n)
    print(
        f"\ngit part inside its process (without start-up): best {min(git_inner):.3f} s; "
        f"load average now {os.getloadavg()[0]:.2f}"
    )
    print(
        f"\ntarget: the whole command < 1 s (warm, median): {warm_t.median:.3f} s -> "
        f"{'met' if warm_t.median < 1 else 'NOT met'}"
    )
    if args.profile:
        _profile(repo, alloy)


def _profile(repo: Path, alloy: list[str]) -> None:
    out = repo.parent / "review.prof"
    python = Path(alloy[0]).with_name("python")
    subprocess.run(
        [
            str(python),
            "-m",
            "cProfile",
            "-o",
            str(out),
            "-m",
            "alloy",
            "review",
            "--base",
            "main",
            "--head",
            "pr",
        ],
        cwd=repo,
        capture_output=True,
        check=False,
    )
    import pstats

    print("\nprofile of one warm review (cumulative, top 30):")
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
