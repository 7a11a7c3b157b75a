"""The `bwrap` sandbox attacked as the hostile merged intent of another team on a shared runner
host would: real processes under bubblewrap try to leave the mount view, reach the network,
outlive their attempt, defeat their limits, make evidence lie, and break the engine or the
daemon with hostile values. Each test asserts the safe outcome (docs/security.md says what the
sandbox claims); a gap that is known and not closed yet is an `xfail(strict=True)` naming it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controllers.daemon import ConfigError, parse_config
from foundry.boundary import digest_of
from foundry.sandbox import Bubblewrap, Confinement, Launch, Limits, RunAs, hand_over, let_pass
from foundry.sandbox._limits import limited
from tests.conftest import GitRepo, git, intent_yaml
from tests.sandbox_support import BOX_ENV, SYSTEM_PY, processes_in, run_launch
from tests.test_daemon import DaemonProcess, traces, until
from tests.test_sandbox_daemon import outputs_of, sha, team_repository
from tests.test_sandbox_engine import cli, compiled, run, trace_of
from tests.test_sandbox_users import passable

PY = SYSTEM_PY

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (scripts/test installs it)"
)


class Host:
    """A runner host's layout: repository A (the attacker) with a mirror and a linked
    worktree as the daemon makes them, and repository B's worktree, state (a ledger) and
    secrets file beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mirror = root / "a" / "mirror.git"
        self.worktree = root / "a" / "worktrees" / "run-1"
        self.rooms = root / "a" / "executions" / "e1" / "sandbox"
        self.other = root / "b" / "worktrees" / "run-1"
        self.state = root / "b" / "state"
        self.secret = root / "b" / "secrets.env"
        seed = root / "seed"
        seed.mkdir(parents=True)
        git(seed, "init", "-q", "-b", "main")
        (seed / "code.txt").write_text("team a's code\n")
        git(seed, "add", "-A")
        git(seed, "commit", "-q", "-m", "init")
        git(root, "clone", "-q", "--bare", str(seed), str(self.mirror))
        self.worktree.parent.mkdir(parents=True)
        git(self.mirror, "worktree", "add", "-q", "--detach", str(self.worktree), "main")
        self.rooms.mkdir(parents=True)
        self.other.mkdir(parents=True)
        (self.other / "code.txt").write_text("team b's code\n")
        self.state.mkdir(parents=True)
        (self.state / "ledger.jsonl").write_text('{"type": "team-b-ledger"}\n')
        self.secret.write_text("DEPLOY_TOKEN=team-b-secret\n")
        self.secret.chmod(0o600)
        self._n = 0

    def launch(
        self,
        script: str,
        *,
        network: bool = True,
        limits: Limits | None = None,
        hidden: tuple[Path, ...] = (),
        read_only: tuple[Path, ...] = (),
        user: RunAs | None = None,
    ) -> Launch:
        self._n += 1
        confinement = Confinement(
            self.worktree,
            self.worktree,
            network=network,
            limits=limits or Limits(),
            hidden=hidden,
            read_only=read_only,
            user=user,
        )
        return Bubblewrap().launch(
            ["/bin/sh", "-c", script], confinement, self.rooms / f"block.{self._n}"
        )

    def run(self, script: str, **how: object) -> tuple[int, str, str | None]:
        launch = self.launch(script, **how)  # type: ignore[arg-type]
        return run_launch(launch, self.worktree)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


# -- the mount view ---------------------------------------------------------------------------


def test_git_works_in_a_linked_worktree_and_its_common_directory_is_read_only(host: Host) -> None:
    code, out, _ = host.run(
        "git rev-parse HEAD && git status --porcelain && cat code.txt; "
        "for p in objects/x refs/heads/evil config hooks/post-checkout; do "
        f'  (echo x > "{host.mirror}/$p") 2>/dev/null && echo "WROTE $p"; done; echo done'
    )
    assert code == 0, out
    assert "team a's code" in out
    assert "WROTE" not in out
    assert "done" in out
    assert not (host.mirror / "hooks" / "post-checkout").exists()
    assert not (host.mirror / "refs" / "heads" / "evil").exists()


@pytest.mark.parametrize(
    "pointer",
    ["{state}", "/", "{other}/..", "{mirror}/.."],
    ids=["another-state", "root", "another-worktree", "above-the-mirror"],
)
def test_a_rewritten_dot_git_shows_nothing_of_the_host_to_the_next_attempt(
    host: Host, pointer: str
) -> None:
    target = pointer.format(state=host.state, other=host.other, mirror=host.mirror)
    code, out, _ = host.run(f"echo 'gitdir: {target}' > .git")
    assert code == 0, out
    code, out, _ = host.run(
        f"cat {host.state}/ledger.jsonl {host.other}/code.txt; "
        f"echo planted > {host.state}/planted; ls /root /home 2>&1; echo done"
    )
    assert "team-b-ledger" not in out
    assert "team b's code" not in out
    assert "done" in out
    assert not (host.state / "planted").exists()


def test_a_rewritten_commondir_or_a_forged_back_pointer_shows_nothing_else(host: Host) -> None:
    gitdir = host.mirror / "worktrees" / "run-1"
    code, out, _ = host.run(
        f"echo {host.state} > {gitdir}/commondir; "
        # a forged git directory of its own, in the worktree, pointing back at the worktree
        f"mkdir -p forged/worktrees/x/objects && echo '{host.worktree}/.git' "
        "> forged/worktrees/x/gitdir && touch forged/worktrees/x/HEAD; echo done"
    )
    assert code == 0, out
    code, out, _ = host.run(f"cat {host.state}/ledger.jsonl; echo done")
    assert "team-b-ledger" not in out
    # a forged git directory under the block's own writable rooms is not mounted either
    (host.worktree / ".git").write_text(f"gitdir: {host.worktree}/forged/worktrees/x\n")
    code, out, _ = host.run(f"ls {host.mirror} 2>&1; echo done")
    assert "No such file or directory" in out


def test_a_fifo_or_a_link_in_the_git_pointers_does_not_hang_the_engine(host: Host) -> None:
    gitdir = host.mirror / "worktrees" / "run-1"
    _code, out, _ = host.run(f"rm {gitdir}/gitdir && mkfifo {gitdir}/gitdir && echo made")
    assert "made" not in out, out  # the block cannot: the pointer is read-only to it
    (gitdir / "gitdir").unlink()  # nor does one the host left there hang the launch
    os.mkfifo(gitdir / "gitdir")
    launched: list[Launch] = []
    worker = threading.Thread(target=lambda: launched.append(host.launch("true")), daemon=True)
    worker.start()
    worker.join(60)
    assert launched, "launching the next attempt hung on a FIFO in the git directory"
    launched[0].close()
    (host.worktree / ".git").unlink()
    (host.worktree / ".git").symlink_to(host.state / "ledger.jsonl")
    _code, out, _ = host.run(f"cat {host.state}/ledger.jsonl; echo done")
    assert "team-b-ledger" not in out


def test_links_and_dot_dot_in_the_worktree_lead_nowhere(host: Host) -> None:
    (host.worktree / "theirs").symlink_to(host.other)
    _code, out, _ = host.run(
        f"cat theirs/code.txt; cd ../../..; ls; cat {host.secret}; "
        "cat /proc/1/root/etc/hostname 2>&1; ls /proc/1/root/ 2>&1; echo done"
    )
    assert "team b's code" not in out
    assert "team-b-secret" not in out
    assert "done" in out


def test_a_hidden_file_reached_through_a_link_stays_hidden(host: Host, tmp_path: Path) -> None:
    """The daemon's config names a secrets file by a link (as secret managers lay them out)
    whose target lies where blocks see the system read-only: both are covered."""
    system = tmp_path / "system-etc"
    system.mkdir()
    real = system / "team-b.env"
    real.write_text("DEPLOY_TOKEN=team-b-secret\n")
    real.chmod(0o600)
    link = tmp_path / "run" / "secrets" / "team-b.env"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    _code, out, _ = host.run(f"cat {real} {link}; echo done", hidden=(link,), read_only=(system,))
    assert "team-b-secret" not in out
    assert "done" in out
    _code, out, _ = host.run(f"cat {real}", read_only=(system,))  # the test can fail
    assert "team-b-secret" in out


@pytest.mark.skipif(os.geteuid() != 0, reason="a root daemon's blocks")
def test_private_files_of_the_system_are_not_readable(host: Host) -> None:
    """A root daemon's block is root in its user namespace, and would read root's private
    files of the read-only system (tests/test_sandbox_users.py shows it does): a repository
    on such a host has a user of its own (`user:`), and its blocks run as that user."""
    shadow = Path("/etc/shadow")
    if not shadow.exists() or shadow.stat().st_mode & stat.S_IROTH:
        pytest.skip("no private /etc/shadow here")
    user = RunAs(2001, 2001)
    changed = passable(host.root)
    let_pass(host.worktree, host.root / "a", user)
    let_pass(host.rooms / "block", host.root / "a", user)
    hand_over(host.worktree, user)
    script = "id -u; head -c 1 /etc/shadow >/dev/null 2>&1 && echo READ"
    try:
        _code, out, _ = host.run(script, user=user)
    finally:
        for directory, mode in changed:
            directory.chmod(mode)
    assert out.split() == ["2001"], out


# -- the network ------------------------------------------------------------------------------


def test_network_false_reaches_no_loopback_no_abstract_socket_and_no_dns(host: Host) -> None:
    six = socket.socket(socket.AF_INET6)
    six.bind(("::1", 0))
    six.listen()
    abstract = socket.socket(socket.AF_UNIX)
    name = f"foundry-test-{os.getpid()}-{time.monotonic_ns()}"
    abstract.bind("\0" + name)
    abstract.listen()
    probe = (
        "import socket\n"
        "def tried(what, fn):\n"
        "    try:\n"
        "        fn(); print('REACHED', what)\n"
        "    except OSError as exc:\n"
        "        print('refused', what, exc)\n"
        f"tried('v6', lambda: socket.create_connection(('::1', {six.getsockname()[1]}), 5))\n"
        "u = socket.socket(socket.AF_UNIX)\n"
        f"tried('abstract', lambda: u.connect('\\0{name}'))\n"
        "tried('dns', lambda: socket.getaddrinfo('example.com', 80))\n"
    )
    (host.worktree / "probe.py").write_text(probe)
    try:
        _code, out, _ = host.run(f"{PY} probe.py", network=False)
        assert "REACHED" not in out, out
        assert [line.split()[1] for line in out.splitlines()] == ["v6", "abstract", "dns"], out
        _code, out, _ = host.run(f"{PY} probe.py", network=True)  # the test can fail
        assert "REACHED v6" in out, out
        assert "REACHED abstract" in out, out
    finally:
        six.close()
        abstract.close()


# -- outliving the attempt ---------------------------------------------------------------------


def test_double_forks_sessions_and_nested_pid_namespaces_end_with_the_attempt(
    host: Host,
) -> None:
    launch = host.launch(
        "(setsid sh -c 'sleep 600 & sleep 600' &) ; "
        "(unshare -Urpf --mount-proc sleep 600 &) ; "
        "nohup sleep 600 >/dev/null 2>&1 & touch started; wait",
        limits=Limits(processes=64),
    )
    groups = dict(launch.cgroups)
    scratch = launch.scratch
    proc = subprocess.Popen(launch.argv, cwd=host.worktree, env=BOX_ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (host.worktree / "started").exists() or len(processes_in(host.worktree)) < 5:
            assert time.monotonic() < deadline, processes_in(host.worktree)
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # a timeout or a cancel
        proc.wait(30)
        deadline = time.monotonic() + 30
        while processes_in(host.worktree):
            assert time.monotonic() < deadline, f"left running: {processes_in(host.worktree)}"
            time.sleep(0.05)
    finally:
        launch.close()
    # nothing of the attempt is left behind: its cgroups and its private /tmp are gone
    assert scratch is not None
    assert not scratch.exists()
    assert all(not where.exists() for where in groups.values())


# -- limits ------------------------------------------------------------------------------------


def test_threads_count_as_processes(host: Host) -> None:
    code, out, verdict = host.run(
        f"{PY} -c 'import threading, time\n"
        "for i in range(40): threading.Thread(target=time.sleep, args=(5,)).start()\n"
        'print("started all")\'',
        limits=Limits(processes=8),
    )
    assert code != 0, out
    assert "started all" not in out
    if verdict is not None:  # with cgroups: the reason; with RLIMIT_NPROC: root is exempt
        assert verdict == "process limit reached (8): a fork was refused"


def test_cpu_time_of_children_counts_against_the_limit(repo: GitRepo) -> None:
    """RLIMIT_CPU counts each process on its own: a block forking busy children would use its
    limit once per child. Where the host gives the attempt a cgroup that counts CPU time, the
    engine ends the attempt once all its processes together used the limit."""
    probe = limited(["true"], Limits(cpu=1))
    counted = "cpuacct" in probe.cgroups
    probe.close()
    if not counted:
        pytest.skip("no cgroup counts CPU time here: each process has its own RLIMIT_CPU only")
    burn = f"{PY} -c 'while True: pass'"
    compiled(
        repo,
        "burner",
        "      - id: burn\n"
        f'        run: [sh, -c, "{burn} & {burn} & {burn} & wait; echo finished"]\n'
        "        effects: none\n"
        "        timeout: 2m\n"
        "        limits: {cpu: 1s}\n",
    )
    done = run(repo, "burner", "--format", "json")
    assert done.returncode == 4, done.stdout + done.stderr
    [block] = trace_of(repo, json.loads(done.stdout)["execution"])["spec"]["blocks"]
    said = json.dumps(block)
    assert block["status"] == "failed"
    assert "CPU time limit reached (1 s)" in said, said
    [attempt] = block["attempts"]
    assert "finished" not in attempt["logTail"], attempt


@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "huge"])
def test_a_secret_file_that_is_not_a_small_regular_file_is_refused_without_waiting(
    tmp_path: Path, kind: str
) -> None:
    """A FIFO would wait for a writer forever, a link to /dev/zero would be read until the
    daemon runs out of memory: each is refused when the config is read, naming the file."""
    named = tmp_path / "team.env"
    if kind == "fifo":
        os.mkfifo(named, 0o600)
    elif kind == "directory":
        named.mkdir(mode=0o700)
    elif kind == "device":
        named.symlink_to("/dev/zero")
    else:
        with named.open("wb") as fh:
            fh.truncate(64 * 1024**2)
        named.chmod(0o600)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "from controllers.daemon import parse_config\n"
                f"parse_config('repositories:\\n  - repo: {tmp_path}\\n    secrets: "
                f"{{file: {named}}}\\n')"
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parents[1],
    )
    assert done.returncode != 0
    said = "larger than" if kind == "huge" else "not a regular file"
    assert f"{named}: the secrets file is {said}" in done.stderr, done.stderr


def test_secret_files_by_link_relative_path_and_mode(tmp_path: Path) -> None:
    real = tmp_path / "vault" / "team.env"
    real.parent.mkdir()
    real.write_text("DEPLOY_TOKEN=x\n")
    real.chmod(0o600)
    link = tmp_path / "team-link.env"
    link.symlink_to(real)
    repo = str(tmp_path)
    config = parse_config(f"repositories:\n  - repo: {repo}\n    secrets: {{file: {link}}}\n")
    [rc] = config.repositories
    assert rc.secrets is not None
    assert rc.secrets.read() == {"DEPLOY_TOKEN": "x"}
    real.chmod(0o640)  # the link's target is what is checked
    with pytest.raises(ConfigError, match=r"may be read by others \(mode 0640\)"):
        parse_config(f"repositories:\n  - repo: {repo}\n    secrets: {{file: {link}}}\n")
    with pytest.raises(ConfigError, match=r"cannot read the secrets file"):
        parse_config(f"repositories:\n  - repo: {repo}\n    secrets: {{file: missing.env}}\n")


def test_overlapping_environment_prefixes_are_refused(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with pytest.raises(ConfigError, match="TEAM_"):
        parse_config(
            f"repositories:\n  - repo: {tmp_path / 'one'}\n    secrets: {{env: TEAM_}}\n"
            f"  - repo: {tmp_path / 'two'}\n    secrets: {{env: TEAM_A_}}\n"
        )


# -- hostile values in an artifact -------------------------------------------------------------


@pytest.fixture
def artifact_repo(repo: GitRepo) -> tuple[GitRepo, dict[str, object]]:
    data = compiled(
        repo,
        "limited",
        "      - id: work\n        run: [/bin/true]\n        effects: none\n"
        "        limits: {memory: 64Mi}\n",
    )
    return repo, data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("memoryBytes", 0),
        ("processes", -1),
        ("cpuSeconds", True),
        ("fileSizeBytes", "1Mi"),
        ("memoryBytes", 10**30),
        ("processes", 10**20),
        ("cpuSeconds", 2**63),
        ("fileSizeBytes", 10**25),
    ],
)
def test_hostile_limits_in_an_artifact_are_refused_clearly(
    artifact_repo: tuple[GitRepo, dict[str, object]], field: str, value: object
) -> None:
    repo, data = artifact_repo
    [block] = data["spec"]["blocks"]  # type: ignore[index]
    block["limits"] = {field: value}
    with contextlib.suppress(ValueError):  # a number canonical JSON cannot carry is refused
        data["digest"] = digest_of(data)
    (repo.path / ".alloy/artifacts/limited.json").write_text(json.dumps(data))
    done = run(repo, "limited")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "limited.json" in done.stderr, done.stderr
    assert field in done.stderr, done.stderr
    assert not (repo.path.parent / "state" / "executions").exists() or not any(
        (repo.path.parent / "state" / "executions").iterdir()
    )


# -- evidence ----------------------------------------------------------------------------------


def test_outputs_that_are_links_fifos_or_devices_are_not_evidence(repo: GitRepo) -> None:
    compiled(
        repo,
        "lying",
        "      - id: lie\n"
        "        run: [/bin/sh, -c, 'ln -s /etc/passwd a && mkfifo b && ln -s /dev/zero c']\n"
        "        effects: none\n"
        "        outputs: [a, b, c]\n",
    )
    done = cli(
        "foundry",
        "run",
        ".",
        "--artifact",
        "lying",
        "--state",
        str(repo.path.parent / "state"),
        "--sandbox",
        "bwrap",
        cwd=repo.path,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "missing, outside the worktree or hard links: a, b, c" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("limits", "said"),
    [
        ("{memory: 2000Ti}", "more than the most a limit may be (1024Ti)"),
        ("{fileSize: 999999999999Ti}", "more than the most a limit may be (1024Ti)"),
        ("{cpu: 0s}", "0s is not between 1s and 1000000000s"),
        ("{cpu: 999999999d}", "is not between 1s and 1000000000s"),
    ],
)
def test_limits_an_artifact_could_not_carry_are_refused_when_compiling(
    repo: GitRepo, limits: str, said: str
) -> None:
    repo.write(
        {
            ".alloy/intents/huge.yaml": intent_yaml(
                "huge",
                blocks="      - id: work\n        run: [/bin/true]\n        effects: none\n"
                f"        limits: {limits}\n",
            )
        }
    )
    done = cli("alloy", "compile", cwd=repo.path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "huge.yaml" in done.stdout + done.stderr
    assert said in done.stdout + done.stderr
    assert not (repo.path / ".alloy/artifacts/huge.json").exists()


@pytest.mark.xfail(
    strict=True,
    reason="gap: network: false takes the network namespace, not the file system: a unix "
    "socket in a path the block sees (a readOnly: path of the config) is still reachable",
)
def test_network_false_reaches_no_unix_socket_of_a_read_only_path(
    host: Host, tmp_path: Path
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tools / "agent.sock"))
    server.listen()
    try:
        _code, out, _ = host.run(
            f'{PY} -c "import socket; u = socket.socket(socket.AF_UNIX); '
            f"u.connect('{tools}/agent.sock'); print('REACHED')\"",
            network=False,
            read_only=(tools,),
        )
    finally:
        server.close()
    assert "REACHED" not in out


def test_the_git_directory_says_where_it_belongs_as_the_host_made_it(host: Host) -> None:
    """The controller reads a worktree's git directory (`gitdir`, `commondir`) to find and
    remove the worktree: a block cannot rewrite them to have it remove something else of the
    state directory; its index and HEAD stay its own (git works)."""
    gitdir = host.mirror / "worktrees" / "run-1"
    said = {name: (gitdir / name).read_text() for name in ("gitdir", "commondir")}
    _code, out, _ = host.run(
        f"echo {host.state} > {gitdir}/gitdir; echo {host.state} > {gitdir}/commondir; "
        f"rm -f {gitdir}/gitdir {gitdir}/commondir; mv {gitdir}/gitdir {gitdir}/moved; "
        "git rm -q --cached code.txt && git status --porcelain; echo done"
    )
    assert "D  code.txt" in out, out
    assert "done" in out
    assert {name: (gitdir / name).read_text() for name in ("gitdir", "commondir")} == said


def _own_cgroup_dirs() -> list[Path]:
    """Where this process may make the attempts' cgroups (v1 memory and pids, or v2)."""
    root = Path("/sys/fs/cgroup")
    out = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _n, names, where = line.split(":", 2)
        controllers = names.split(",") if names else []
        out.extend(root / c / where.lstrip("/") for c in controllers if c in ("memory", "pids"))
        if not names and (root / "cgroup.controllers").exists():
            out.append(root / where.lstrip("/"))
    return [p for p in out if os.access(p, os.W_OK)]


def test_cgroups_an_engine_killed_mid_attempt_left_are_removed_by_the_next(host: Host) -> None:
    places = _own_cgroup_dirs()
    gone = subprocess.Popen(["/bin/true"])
    gone.wait()
    stale = []
    for place in places:
        try:
            (place / f"foundry-{gone.pid}-0").mkdir()
        except OSError:
            continue
        stale.append(place / f"foundry-{gone.pid}-0")
    if not stale:
        pytest.skip("this host gives the engine no cgroups")
    code, out, _ = host.run("true", limits=Limits(memory=256 * 1024**2, processes=64))
    assert code == 0, out
    assert [p for p in stale if p.exists()] == []


# -- secrets in what the host keeps ------------------------------------------------------------


def test_a_secret_split_across_writes_reaches_no_log_ledger_or_trace(repo: GitRepo) -> None:
    secret = "tok-5f1e9a7c3b2d"
    script = (
        'printf "%s" "${DEPLOY_TOKEN%????????}"; sleep 0.3; printf "%s\\n" "${DEPLOY_TOKEN#????????}"; '
        'echo "$DEPLOY_TOKEN" >&2; printf "%s" "$DEPLOY_TOKEN" | od -c | head -2; exit 3'
    )
    compiled(
        repo,
        "leaky",
        "      - id: leak\n"
        f"        run: [/bin/sh, -c, '{script}']\n"
        "        effects: none\n"
        "        secrets: [DEPLOY_TOKEN]\n",
    )
    done = run(repo, "leaky", env={"DEPLOY_TOKEN": secret})
    assert done.returncode == 4, done.stdout + done.stderr
    assert secret not in done.stdout + done.stderr
    state = repo.path.parent / "state"
    kept = [p for p in state.rglob("*") if p.is_file()]
    logs = [p.read_text() for p in kept if p.suffix == ".log"]
    assert logs, kept
    assert logs[0].count("***") == 2, logs  # the block had it: its two lines are masked
    for path in kept:
        assert secret.encode() not in path.read_bytes(), path


def test_a_workdir_an_earlier_block_made_a_link_out_of_the_worktree_runs_nothing(
    repo: GitRepo, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    compiled(
        repo,
        "hop",
        "      - id: plant\n"
        f"        run: [/bin/sh, -c, 'rm -r sub && ln -s {outside} sub']\n"
        "        effects: none\n"
        "      - id: hop\n"
        "        needs: [plant]\n"
        "        workdir: sub\n"
        "        run: [touch, escaped]\n"
        "        effects: none\n",
    )
    (repo.path / "sub").mkdir()  # exists when compiling, a link when the block runs
    (repo.path / "sub" / ".keep").write_text("")
    repo.commit("sub")
    done = run(repo, "hop", "--sandbox", "none")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode != 0, done.stdout + done.stderr
    assert not (outside / "escaped").exists()
    assert "leaves the worktree" in done.stdout + done.stderr


def test_the_block_cannot_leave_its_cgroups_or_write_the_kernels_settings(host: Host) -> None:
    """Under a daemon running as root the block is the host's root in its user namespace: the
    kernel's global settings (kernel.core_pattern names a program the kernel runs as root)
    must not be writable to it."""
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    code, out, _ = host.run(
        "ls /sys/fs/cgroup 2>&1; "
        "for f in /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/cgroup.procs; do "
        '  (echo $$ > "$f") 2>/dev/null && echo "LEFT via $f"; done; '
        # the same value back: harmless on the host should the write ever succeed
        f"(printf '%s\\n' '{pattern}' > /proc/sys/kernel/core_pattern) 2>/dev/null "
        "&& echo 'WROTE core_pattern'; "
        "(echo 1 > /proc/sys/vm/drop_caches) 2>/dev/null && echo 'WROTE drop_caches'; "
        "(echo x > /proc/sysrq-trigger) 2>/dev/null && echo 'WROTE sysrq'; echo done",
        limits=Limits(processes=64),
    )
    assert code == 0, out
    assert "LEFT" not in out
    assert "WROTE" not in out
    assert "done" in out


# -- the daemon's own credentials --------------------------------------------------------------


@pytest.fixture
def started() -> Iterator[list[DaemonProcess]]:
    daemons: list[DaemonProcess] = []
    yield daemons
    for daemon in daemons:
        daemon.kill()


def test_the_daemons_ui_token_file_is_not_readable_by_a_block(
    tmp_path: Path, started: list[DaemonProcess]
) -> None:
    shown = tmp_path / "etc-foundry"  # where blocks see the system, as /etc is
    shown.mkdir()
    tokens = shown / "ui-tokens"
    tokens.write_text("alice Zq8xV3kP1mR7tL0wY5nB2cH9\n")
    tokens.chmod(0o600)
    remote = team_repository(tmp_path, "team-a", [tokens])
    config = tmp_path / "daemon" / "daemon.yaml"
    config.parent.mkdir()
    daemon = DaemonProcess(
        config.parent,
        {
            "state": str(tmp_path / "state"),
            "ui": {"tokenFile": str(tokens)},
            "repositories": [
                {
                    "repo": str(remote),
                    "sandbox": "bwrap",
                    "readOnly": [str(shown)],
                    "secrets": {"env": "TEAM_A_"},
                }
            ],
        },
    )
    started.append(daemon.start())
    until(lambda: len(traces(remote)), "a trace", log=daemon.log)
    assert outputs_of(remote)["seen.txt"] == sha("hidden\n0\n")


def test_memory_in_shared_memory_files_counts_against_the_limit(host: Host) -> None:
    code, out, verdict = host.run(
        "head -c 400M /dev/zero > /dev/shm/fill && echo FILLED",
        limits=Limits(memory=128 * 1024**2),
    )
    assert "FILLED" not in out
    assert code != 0, out
    launch = host.launch("true", limits=Limits(memory=128 * 1024**2))
    counted = "memory" in launch.cgroups
    launch.close()
    if counted:  # by the cgroup: the kernel says so; by RLIMIT_AS, tmpfs is not address space
        assert verdict == "memory limit reached (128 MiB): killed by the kernel"
