"""Benchmark of `foundry daemon` (run by hand, never as a test):

    .venv/bin/python benchmarks/reconcile_daemon.py [--merges 10] [--repos 200]
        [--seconds 30] [--interval 1] [--concurrency 2] [--only latency|poll] [--keep]

(b) **Merge to first block start, through the file-event path.** One bare remote watched by a
    daemon whose poll interval is an hour, so only the file event can start a pass. Each merge
    is a new version of an intent (edited, `alloy compile`d, committed — all before the clock
    starts), then `git push` to the remote. The first block of the artifact writes the time it
    started (`date +%s.%N`) to a file. The figure is that time minus the time just before
    `git push` started (the push itself included), over `--merges` merges, one at a time (each
    waits until the previous execution's trace is on the traces branch). Target: < 1 s.

(c) **CPU and memory of a daemon polling `--repos` local repositories every `--interval`
    seconds.** Bare repositories, each with a project and one compiled intent that only runs on
    request (so a pass reads and parses `.alloy/` once and then has nothing to do, as in a
    steady state). Watching is off (the polling path) unless `--watch`. After every repository has had
    its first pass, CPU (user + sys from `/proc/<pid>/stat`: the daemon itself, and the `git`
    processes it waited for) and RSS (`VmRSS`, `VmHWM`) are sampled over `--seconds`. Passes
    per second come from the daemon's own `/metrics`.

Everything happens in a temporary directory with its own HOME and git config.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")

PROJECT = """\
apiVersion: alloy.dev/v1
kind: Project
metadata:
  name: bench
spec:
  owners: [alice]
"""


def intent(name: str, goal: str, on: str, blocks: str) -> str:
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        f"  name: {name}\n"
        "  owners: [alice]\n"
        "spec:\n"
        "  state: active\n"
        f"  goal: {goal}\n"
        "  automation:\n"
        f"    on: {on}\n"
        "    blocks:\n"
        f"{blocks}"
    )


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def isolated_env(base: Path) -> dict[str, str]:
    home = base / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / ".state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
        "GIT_ALLOW_PROTOCOL": "file",
    }
    env.pop("FOUNDRY_STATE", None)
    return env


def work_repo(path: Path, env: dict[str, str], files: dict[str, str]) -> None:
    path.mkdir(parents=True)
    run("git", "init", "-q", "-b", "main", cwd=path, env=env)
    for rel, text in {".alloy/alloy.yaml": PROJECT, **files}.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    alloy(path, env)
    run("git", "add", "-A", cwd=path, env=env)
    run("git", "commit", "-q", "-m", "init", cwd=path, env=env)


def alloy(path: Path, env: dict[str, str]) -> None:
    run(sys.executable, "-m", "alloy", "compile", cwd=path, env=env)


class Daemon:
    def __init__(self, base: Path, env: dict[str, str], config: dict[str, Any]) -> None:
        self.port_file = base / "daemon.port"
        self.log = base / "daemon.log"
        cfg = base / "daemon.yaml"
        cfg.write_text(
            json.dumps({"listen": "127.0.0.1:0", "portFile": str(self.port_file), **config}),
            encoding="utf-8",
        )
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "foundry", "daemon", "--config", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=base,
            )
        self.port = int(wait(self._port, "the port file", 30))

    def _port(self) -> str | None:
        if self.proc.poll() is not None:
            raise SystemExit(f"the daemon exited:\n{self.log.read_text()}")
        try:
            return self.port_file.read_text().strip() or None
        except OSError:
            return None

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
            return str(r.read().decode())

    def health(self) -> dict[str, Any]:
        return dict(json.loads(self.get("/healthz")))

    def passes(self) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(self.get("/metrics")):
            if family.name == "foundry_daemon_passes":
                total += sum(s.value for s in family.samples if s.name.endswith("_total"))
        return total

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=120)


def wait(check: Any, what: str, seconds: float) -> Any:
    end = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.01)


def traces(remote: Path, env: dict[str, str]) -> int:
    proc = subprocess.run(
        ["git", "-C", str(remote), "ls-tree", "-r", "--name-only", "alloy/traces"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return sum(1 for p in proc.stdout.split() if p.endswith(".json"))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


# -- (b) merge to first block start --------------------------------------------------------------


def latency(base: Path, merges: int) -> dict[str, float]:
    env = isolated_env(base)
    stamps = base / "starts.txt"
    blocks = (
        "      - id: first\n"
        f"        run: [sh, -c, 'date +%s.%N >> {stamps}']\n"
        "        effects: none\n"
        "      - id: second\n"
        "        needs: [first]\n"
        "        run: ['true']\n"
        "        effects: none\n"
    )
    work = base / "work"
    path = ".alloy/intents/app.yaml"
    work_repo(work, env, {path: intent("app", "Version 0.", "{apply: true}", blocks)})
    remote = base / "remote.git"
    run("git", "clone", "-q", "--bare", str(work), str(remote), env=env)
    run("git", "remote", "add", "origin", str(remote), cwd=work, env=env)
    daemon = Daemon(
        base,
        env,
        {"state": str(base / "state"), "repositories": [{"repo": str(remote), "interval": 3600}]},
    )
    try:
        wait(lambda: traces(remote, env) == 1, "the first execution", 60)
        figures = []
        pushes = []
        for i in range(1, merges + 1):
            (work / path).write_text(
                intent("app", f"Version {i}.", "{apply: true}", blocks), encoding="utf-8"
            )
            alloy(work, env)
            run("git", "commit", "-q", "-am", f"version {i}", cwd=work, env=env)
            wait(lambda: not daemon.health()["repositories"][0]["running"], "an idle daemon", 60)
            pushed = time.time()
            run("git", "push", "-q", "origin", "HEAD:main", cwd=work, env=env)
            pushes.append(time.time() - pushed)
            lines = wait(
                lambda n=i: (s := stamps.read_text().split()) and len(s) > n and s,
                "the block to start",
                60,
            )
            figures.append(float(lines[i]) - pushed)
            wait(lambda n=i: traces(remote, env) == n + 1, "the trace", 60)
    finally:
        daemon.stop()
    return {
        "median": statistics.median(figures),
        "p90": percentile(figures, 0.9),
        "min": min(figures),
        "max": max(figures),
        "push": statistics.median(pushes),
    }


# -- (c) polling many repositories ---------------------------------------------------------------


def proc_cpu(pid: int) -> tuple[float, float]:
    """(own user+sys, waited-for children's user+sys) in seconds, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / TICKS, (cutime + cstime) / TICKS


def proc_memory(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            number = float(value.split()[0])
            out[key] = number / 1024 if key != "Threads" else number
    return out


def polling(
    base: Path, repos: int, seconds: float, interval: float, concurrency: int, *, watch: bool
) -> None:
    env = isolated_env(base)
    template = base / "template"
    blocks = "      - id: only\n        run: ['true']\n        effects: none\n"
    work_repo(
        template,
        env,
        {".alloy/intents/app.yaml": intent("app", "On request.", "{request: true}", blocks)},
    )
    remotes = base / "remotes"
    remotes.mkdir()
    for i in range(repos):
        run("git", "clone", "-q", "--bare", str(template), str(remotes / f"r{i:03d}.git"), env=env)
    config = {
        "concurrency": concurrency,
        "state": str(base / "state"),
        "repositories": [
            {"repo": str(remotes / f"r{i:03d}.git"), "interval": interval, "watch": watch}
            for i in range(repos)
        ],
    }
    daemon = Daemon(base, env, config)
    try:
        wait(
            lambda: all(r["passes"] >= 1 for r in daemon.health()["repositories"]),
            "a first pass of every repository",
            600,
        )
        time.sleep(min(5.0, seconds))  # settle: first passes read and parse; not measured
        own0, kids0 = proc_cpu(daemon.proc.pid)
        passes0, t0 = daemon.passes(), time.monotonic()
        peak_rss = 0.0
        while time.monotonic() - t0 < seconds:
            time.sleep(0.5)
            peak_rss = max(peak_rss, proc_memory(daemon.proc.pid)["VmRSS"])
        own1, kids1 = proc_cpu(daemon.proc.pid)
        passes1, t1 = daemon.passes(), time.monotonic()
        memory = proc_memory(daemon.proc.pid)
        health = daemon.health()
    finally:
        daemon.stop()
    span = t1 - t0
    rate = (passes1 - passes0) / span
    errors = sum(1 for r in health["repositories"] if r["errors"])
    print(
        f"(c) {repos} repositories, interval {interval:g}s, concurrency {concurrency}, "
        f"{'watched' if watch else 'not watched'}, {span:.0f}s"
    )
    print(f"    passes per second: {rate:.1f} (asked for {repos / interval:.1f})")
    print(
        f"    CPU: daemon {100 * (own1 - own0) / span:.1f}% of a core, its git processes "
        f"{100 * (kids1 - kids0) / span:.1f}%, together {100 * (own1 - own0 + kids1 - kids0) / span:.1f}%"
    )
    print(
        f"    CPU per pass: {1000 * (own1 - own0 + kids1 - kids0) / max(1, passes1 - passes0):.2f} ms"
    )
    print(
        f"    RSS: {memory['VmRSS']:.1f} MiB now, {peak_rss:.1f} MiB peak while measured "
        f"(high-water mark {memory['VmHWM']:.1f} MiB); {memory['Threads']:.0f} threads"
    )
    print(f"    repositories with errors: {errors}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--merges", type=int, default=10)
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--only", choices=("latency", "poll"))
    parser.add_argument("--watch", action="store_true", help="(c) with file events on too.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    base = Path(tempfile.mkdtemp(prefix="foundry-daemon-bench-"))
    try:
        if args.only in (None, "latency"):
            (base / "b").mkdir()
            b = latency(base / "b", args.merges)
            print(
                f"(b) merge -> first block start, {args.merges} merges: median {b['median'] * 1000:.0f} ms, "
                f"p90 {b['p90'] * 1000:.0f} ms, min {b['min'] * 1000:.0f} ms, max {b['max'] * 1000:.0f} ms "
                f"(target < 1 s); `git push` itself: median {b['push'] * 1000:.0f} ms"
            )
        if args.only in (None, "poll"):
            (base / "c").mkdir()
            polling(
                base / "c",
                args.repos,
                args.seconds,
                args.interval,
                args.concurrency,
                watch=args.watch,
            )
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
