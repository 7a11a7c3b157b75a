"""Benchmark of the CLIs' start-up: `alloy --version`, `foundry --version` and `alloy check` on a
small repository, each against peers measured in the same run.

Run by hand, never as a test:

    .venv/bin/python benchmarks/startup.py [--base REV] [--repeat 30]

Every command runs as a whole process, `--repeat` times, interleaved with its peers (so a busy
machine slows all alike); the table gives the best and the median. Peers: `python -c pass` (the
interpreter's own start, the floor of any Python CLI), `git --version` (a C program), and the
same command from the code at `--base` (default `HEAD~1`), checked out into a temporary git
worktree and run with that worktree first on `PYTHONPATH`; this checkout's code is run the
same way (so a worktree of any commit can be measured: run the script from there). Ratios are
the median over the median of `python -c pass` and of the base. It also says whether `rich`
was imported (by `python -X importtime`): it must not be, for `--version` and piped output.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

PROJECT = """\
apiVersion: alloy.dev/v1
kind: Project
metadata: {name: bench}
spec: {owners: [alice]}
"""

INTENT = """\
apiVersion: alloy.dev/v1
kind: Intent
metadata: {{name: i{n}, owners: [alice]}}
spec:
  state: active
  goal: Intent {n} holds within 5 minutes of every push.
  automation:
    on: {{apply: true}}
    blocks:
      - {{id: b, run: [make, i{n}], effects: none}}
"""


def _small_repo(where: Path) -> Path:
    repo = where / "small"
    (repo / ".alloy" / "intents").mkdir(parents=True)
    (repo / ".alloy" / "alloy.yaml").write_text(PROJECT)
    for n in range(5):
        (repo / ".alloy" / "intents" / f"i{n}.yaml").write_text(INTENT.format(n=n))
    return repo


def _time(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def _imports_rich(argv: list[str], cwd: Path, env: dict[str, str]) -> bool:
    done = subprocess.run(
        [PY, "-X", "importtime", *argv[1:]], cwd=cwd, env=env, capture_output=True, check=False
    )
    return any(
        line.rsplit("|", 1)[-1].strip().split(".")[0] == "rich"
        for line in done.stderr.decode().splitlines()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD~1", help="The revision to compare with.")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    base = scratch / "base"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base), args.base],
        check=True,
    )
    try:
        repo = _small_repo(scratch)
        # Each side runs the code of its own checkout: this one's (the script's), the base's.
        plain = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
        old = {**plain, "PYTHONPATH": str(base)}
        cases = {
            "python -c pass": ([PY, "-c", "pass"], plain, repo),
            "git --version": (["git", "--version"], plain, repo),
            "alloy --version": ([PY, "-m", "alloy", "--version"], plain, repo),
            "alloy --version (base)": ([PY, "-m", "alloy", "--version"], old, repo),
            "foundry --version": ([PY, "-m", "foundry", "--version"], plain, repo),
            "foundry --version (base)": ([PY, "-m", "foundry", "--version"], old, repo),
            "alloy check": ([PY, "-m", "alloy", "check", "--no-cache"], plain, repo),
            "alloy check (base)": ([PY, "-m", "alloy", "check", "--no-cache"], old, repo),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for argv, env, cwd in cases.values():  # warm the caches (bytecode, page cache)
            _time(argv, cwd, env)
        for _ in range(args.repeat):
            for name, (argv, env, cwd) in cases.items():
                times[name].append(_time(argv, cwd, env))
        floor = statistics.median(times["python -c pass"])
        print(f"commit {_rev('HEAD')} against base {args.base} ({_rev(args.base)}), "
              f"{args.repeat} runs each, {os.cpu_count()} cores")  # fmt: skip
        print(
            f"{'command':<26} {'best ms':>8} {'median ms':>10} {'x python':>9} {'x base':>7}  rich"
        )
        for name, (argv, env, cwd) in cases.items():
            best, median = min(times[name]) * 1000, statistics.median(times[name]) * 1000
            base_name = f"{name} (base)"
            vs_base = (
                f"{statistics.median(times[name]) / statistics.median(times[base_name]):.2f}"
                if base_name in times
                else ""
            )
            rich = "yes" if argv[0] == PY and _imports_rich(argv, cwd, env) else "no"
            print(
                f"{name:<26} {best:>8.1f} {median:>10.1f} "
                f"{statistics.median(times[name]) / floor:>9.2f} {vs_base:>7}  {rich}"
            )
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                       check=False)  # fmt: skip
        shutil.rmtree(scratch, ignore_errors=True)


def _rev(rev: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


if __name__ == "__main__":
    main()
