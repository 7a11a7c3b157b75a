"""The sandbox port (foundry.sandbox) with real processes: what a block under `bwrap` can
see, write and reach, that its whole tree ends with it, and that resource limits end it with a
reason under either sandbox. The engine and the daemon use these through their options
(tests/test_sandbox_engine.py)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from foundry.sandbox import (
    Bubblewrap,
    Confinement,
    Limits,
    NoSandbox,
    Sandbox,
    SandboxUnavailable,
    parse_size,
    sandbox_named,
)
from tests.sandbox_support import BOX_ENV, SYSTEM_PY, processes_in, run_launch

PY = SYSTEM_PY

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (scripts/test installs it)"
)


def run(
    box: Sandbox,
    script: str,
    worktree: Path,
    *,
    network: bool = True,
    limits: Limits | None = None,
    hidden: tuple[Path, ...] = (),
    env: dict[str, str] | None = None,
) -> tuple[int, str, str | None]:
    scratch = worktree.parent / f"scratch-{time.monotonic_ns()}"
    scratch.mkdir()
    confinement = Confinement(
        worktree, worktree, network=network, limits=limits or Limits(), hidden=hidden
    )
    launch = box.launch(["/bin/sh", "-c", script], confinement, scratch)
    return run_launch(launch, worktree, env)


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Path]:
    """A runner host's layout: this repository's worktree, and beside it another repository's
    worktree, state directory (with a ledger) and secret file, and the daemon's config."""
    places = {
        "worktree": tmp_path / "repo-a" / "worktree",
        "other": tmp_path / "repo-b" / "worktree",
        "state": tmp_path / "repo-b" / "state",
        "config": tmp_path / "daemon.yaml",
    }
    places["worktree"].mkdir(parents=True)
    places["other"].mkdir(parents=True)
    places["state"].mkdir(parents=True)
    (places["other"] / "code.txt").write_text("team b's code\n")
    (places["state"] / "ledger.jsonl").write_text('{"type": "execution-started"}\n')
    places["secret"] = tmp_path / "repo-b" / "secrets.env"
    places["secret"].write_text("DEPLOY_TOKEN=team-b-secret\n")
    places["config"].write_text("repositories: []\ntoken: daemon-secret\n")
    return places


def test_a_block_under_bwrap_reads_nothing_of_the_host_but_the_system(
    host: dict[str, Path],
) -> None:
    for name in ("other", "state", "secret", "config"):
        target = host[name]
        if target.is_dir():
            target = next(target.iterdir())
        code, out, _ = run(Bubblewrap(), f"cat {target}", host["worktree"])
        assert code != 0, f"{name} readable: {out}"
        assert "No such file or directory" in out
        # the same block unsandboxed does read it: the test can fail
        code, out, _ = run(NoSandbox(), f"cat {target}", host["worktree"])
        assert code == 0, out
    code, out, _ = run(
        Bubblewrap(), "ls /root /home /var /run /srv 2>&1; cat /etc/hostname", host["worktree"]
    )
    assert "No such file or directory" in out
    code, out, _ = run(Bubblewrap(), "test -x /bin/sh && echo system-visible", host["worktree"])
    assert code == 0
    assert "system-visible" in out


def test_hidden_paths_stay_hidden_where_the_system_is_visible(host: dict[str, Path]) -> None:
    keys = host["worktree"] / "keys"
    keys.mkdir()
    (keys / "id_ed25519").write_text("private\n")
    note = host["worktree"] / "daemon-token"
    note.write_text("TOPSECRET\n")
    _code, out, _ = run(
        Bubblewrap(), f"ls {keys}; cat {note}; echo end", host["worktree"], hidden=(keys, note)
    )
    assert "id_ed25519" not in out
    assert "TOPSECRET" not in out
    assert "end" in out


def test_a_block_writes_only_its_worktree_and_a_private_tmp(host: dict[str, Path]) -> None:
    worktree = host["worktree"]
    marker = f"sandbox-{os.getpid()}-{time.monotonic_ns()}"
    code, out, _ = run(
        Bubblewrap(),
        f"echo built > result.txt && echo scratch > /tmp/{marker} && cat /tmp/{marker}; "
        f"for p in /usr/{marker} /etc/{marker} {host['other']}/{marker}; do "
        f'  (echo x > "$p") 2>/dev/null && echo "WROTE $p"; done; echo done',
        worktree,
    )
    assert code == 0, out
    assert (worktree / "result.txt").read_text() == "built\n"
    assert "scratch" in out
    assert "WROTE" not in out
    assert "done" in out
    assert not Path(f"/tmp/{marker}").exists()  # its /tmp is its own
    assert not (host["other"] / marker).exists()


def test_the_hosts_environment_and_processes_are_not_visible(host: dict[str, Path]) -> None:
    env = {**BOX_ENV}
    os.environ["FOUNDRY_TEST_DAEMON_TOKEN"] = "daemon-env-secret"
    try:
        _code, out, _ = run(
            Bubblewrap(),
            "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c daemon-env-secret; "
            "ls /proc | grep -c '^[0-9]'",
            host["worktree"],
            env=env,
        )
    finally:
        del os.environ["FOUNDRY_TEST_DAEMON_TOKEN"]
    counts = out.split()
    assert counts[0] == "0"
    assert int(counts[1]) < 10  # its own PID namespace: a handful of processes, not the host's


@pytest.fixture
def listener() -> tuple[int, threading.Event]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = threading.Event()

    def serve() -> None:
        server.settimeout(60)
        try:
            conn, _ = server.accept()
            accepted.set()
            conn.close()
        except OSError:
            pass
        finally:
            server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1], accepted


def test_network_false_cannot_reach_a_listener_on_loopback(
    host: dict[str, Path], listener: tuple[int, threading.Event]
) -> None:
    port, accepted = listener
    connect = (
        f"{PY} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 5); "
        "print('connected')\""
    )
    code, out, _ = run(Bubblewrap(), connect, host["worktree"], network=False)
    assert code != 0
    assert "connected" not in out
    assert "refused" in out.lower() or "unreachable" in out.lower()
    assert not accepted.is_set()
    code, out, _ = run(Bubblewrap(), connect, host["worktree"], network=True)
    assert (code, "connected" in out) == (0, True), out
    assert accepted.wait(10)


def test_killing_the_attempt_ends_its_whole_tree_even_what_left_its_group(
    host: dict[str, Path],
) -> None:
    worktree = host["worktree"]
    scratch = worktree.parent / "scratch"
    scratch.mkdir()
    launch = Bubblewrap().launch(
        ["/bin/sh", "-c", "setsid sleep 300 & sleep 300 & touch started; wait"],
        Confinement(worktree, worktree),
        scratch,
    )
    proc = subprocess.Popen(launch.argv, cwd=worktree, env=BOX_ENV, start_new_session=True)
    deadline = time.monotonic() + 30
    while not (worktree / "started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert len(processes_in(worktree)) >= 3
    os.killpg(proc.pid, signal.SIGKILL)  # what the engine does on a timeout
    proc.wait(30)
    deadline = time.monotonic() + 30
    while processes_in(worktree):
        assert time.monotonic() < deadline, f"left running: {processes_in(worktree)}"
        time.sleep(0.05)
    launch.close()


@pytest.mark.parametrize("box", [NoSandbox(), Bubblewrap()], ids=["none", "bwrap"])
def test_limits_end_a_block_with_the_reason(box: Sandbox, host: dict[str, Path]) -> None:
    wt = host["worktree"]
    code, out, verdict = run(
        box,
        "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; wait",
        wt,
        limits=Limits(processes=4),
    )
    assert (code != 0, verdict) == (True, "process limit reached (4): a fork was refused"), out
    code, out, verdict = run(
        box,
        f"{PY} -c 'x = bytearray(400 * 1024 * 1024); print(len(x))'",
        wt,
        limits=Limits(memory=parse_size("128Mi")),
    )
    assert (code != 0, (verdict or "").startswith("memory limit reached")) == (True, True), out
    code, out, verdict = run(
        box, "head -c 3000000 /dev/zero > big", wt, limits=Limits(file_size=parse_size("1Mi"))
    )
    assert (code != 0, verdict) == (True, "file size limit reached (files up to 1 MiB)"), out
    code, out, verdict = run(box, "while :; do :; done", wt, limits=Limits(cpu=1))
    assert (code != 0, verdict) == (True, "CPU time limit reached (1 s)"), out
    code, out, verdict = run(box, "echo fine", wt, limits=Limits(processes=20, memory=2**30))
    assert code == 0
    assert verdict is None
    assert "fine" in out


def test_a_missing_bwrap_is_refused_with_the_reason(host: dict[str, Path]) -> None:
    box = Bubblewrap("/nonexistent/bwrap")
    assert "bubblewrap (/nonexistent/bwrap) is not installed" in (box.problem() or "")
    with pytest.raises(SandboxUnavailable, match="not installed"):
        box.launch(["/bin/true"], Confinement(host["worktree"], host["worktree"]), host["worktree"])
    assert sandbox_named("auto", bwrap="/nonexistent/bwrap").name == "none"
    assert sandbox_named("bwrap", bwrap="/nonexistent/bwrap").problem() is not None
    with pytest.raises(SandboxUnavailable, match="one of none, bwrap, auto"):
        sandbox_named("docker")


def test_sizes_read_as_people_write_them() -> None:
    assert parse_size("512Mi") == 512 * 2**20
    assert parse_size("2G") == 2 * 2**30
    assert parse_size("1048576") == 2**20
    assert parse_size(4096) == 4096
    with pytest.raises(ValueError, match="write it like 512Mi"):
        parse_size("lots")
