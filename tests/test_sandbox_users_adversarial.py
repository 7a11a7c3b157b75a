"""A hostile team sharing the runner host: the blocks of repository A run as user 2001 (under
`bwrap` and under no sandbox), with real processes and a real engine (`reconcile_once` with the
repository's user, as the daemon runs it). What they try: writing their own repository's state,
reading another repository's, leaving a process behind, regaining root, and making the root
engine change something outside their worktree when it hands the worktree over again (links,
renames while it works). Tests of what holds pass; a hole not fixed here is `xfail(strict)`."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from controllers.reconcile import PassReport, Settings, reconcile_once
from foundry.sandbox import Bubblewrap, Confinement, NoSandbox, RunAs, Sandbox, hand_over, let_pass
from tests.conftest import GitRepo, git, intent_yaml, run_cli
from tests.sandbox_support import needs_cgroup, run_launch
from tests.test_daemon import ok

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="running blocks as another user needs root"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)"),
]

ALICE = RunAs(2001, 2001, "2001")
BOB = RunAs(2002, 2002, "2002")
BOXES = [
    pytest.param(
        "bwrap",
        marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
    ),
    pytest.param("none", marks=needs_cgroup),
]


def sandbox(box: str) -> Sandbox:
    return Bubblewrap() if box == "bwrap" else NoSandbox()


def hostile_repository(
    layout: Path, name: str, script: str, *, gated: bool = False, limits: str = ""
) -> tuple[GitRepo, Path]:
    """A repository whose block `attack` runs `script` (`attack.sh`, in its worktree); with
    `gated`, a block `ship` after it waits for an approval (the execution is parked with its
    worktree, and resumed by the next pass that sees the remote move)."""
    path = layout / name
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    repo = GitRepo(path)
    blocks = "      - id: attack\n        run: [sh, attack.sh]\n        effects: none\n" + (
        f"        limits: {limits}\n" if limits else ""
    )
    if gated:
        blocks += (
            "      - id: ship\n        needs: [attack]\n        run: [sh, -c, 'true']\n"
            "        effects: irreversible\n"
            "        gates:\n          - approval: {from: [alice], quorum: 1}\n"
        )
    repo.write(
        {
            ".alloy/alloy.yaml": (
                "apiVersion: alloy.dev/v1\nkind: Project\nmetadata:\n"
                f"  name: {name}\nspec:\n  owners: [alice]\n"
            ),
            ".alloy/intents/deploy.yaml": intent_yaml("deploy", blocks=blocks, on="{apply: true}"),
            "attack.sh": script,
        }
    )
    ok(run_cli("alloy", "compile", cwd=path))
    repo.commit("deploy")
    remote = layout / f"{name}.git"
    git(layout, "clone", "-q", "--bare", str(path), str(remote))
    return repo, remote


def run_pass(
    remote: Path, state: Path, user: RunAs, box: str, read_only: tuple[Path, ...] = ()
) -> PassReport:
    return reconcile_once(
        Settings(
            repo=str(remote),
            state_dir=state,
            run_as=user,
            sandbox=sandbox(box),
            read_only=read_only,
        )
    )


def said(state: Path) -> str:
    """What the block `attack` printed (its logs are root's to read)."""
    return "".join(p.read_text() for p in sorted(state.glob("executions/*/logs/attack.*.log")))


#: A shell function: `try NAME COMMAND` prints `held NAME` when COMMAND fails, else `BROKEN NAME`.
TRY = 'try() { if sh -c "$2" >/dev/null 2>&1; then echo "BROKEN $1"; else echo "held $1"; fi; }\n'


# -- its own state: read, never written; another repository's: neither -----------------------


@pytest.mark.parametrize("box", BOXES)
@needs_cgroup
def test_a_block_writes_nothing_of_its_own_state_and_reads_nothing_of_another(
    layout: Path, box: str
) -> None:
    state_a, state_b = layout / "state-a", layout / "state-b"
    _, remote_b = hostile_repository(layout, "team-b", "echo b > b.txt\n")
    assert run_pass(remote_b, state_b, BOB, "none").finished
    [ledger_b] = state_b.glob("executions/*/ledger.jsonl")
    script = TRY + (
        'S=$(cd ../.. && pwd); E=$(basename "$(pwd)")\n'
        'try ledger "echo x >> $S/executions/$E/ledger.jsonl"\n'
        'try artifact "echo x >> $S/executions/$E/artifact.json"\n'
        'try new-ledger "touch $S/executions/$E/ledger.jsonl.new"\n'
        'try logs "touch $S/executions/$E/logs/x"\n'
        'try rooms "mkdir $S/executions/$E/sandbox/x"\n'
        'try state "touch $S/x"\n'
        'try reconcile-json "echo x >> $S/reconcile.json"\n'
        'try worktrees "mkdir $S/worktrees/x"\n'
        'try executions "mkdir $S/executions/x"\n'
        'try mirror-config "echo x >> $S/mirror.git/config"\n'
        'try mirror-head "echo x >> $S/mirror.git/HEAD"\n'
        'try mirror-ref "mkdir $S/mirror.git/refs/heads/x"\n'
        'try mirror-claims "touch $S/mirror.git/refs/alloy/x"\n'
        'try mirror-objects "touch $S/mirror.git/objects/x"\n'
        'try mirror-hooks "touch $S/mirror.git/hooks/post-checkout"\n'
        'try mirror-lock "echo x >> $S/mirror.git/alloy.lock"\n'
        'try mirror-admin "mkdir $S/mirror.git/worktrees/x"\n'
        f'try other-ledger "head -c1 {ledger_b}"\n'
        f'try other-config "head -c1 {state_b}/mirror.git/config"\n'
        f'try other-list "ls {state_b}"\n'
        f'try other-write "touch {state_b}/x"\n'
        f'try engine-signal "kill -0 {os.getpid()}"\n'
    )
    if box == "none":  # (under bwrap, pid 1 is the sandbox's own)
        script += 'try init-signal "kill -0 1"\n'
    if box == "bwrap":  # what the controller reads to find and remove the worktree
        script += (
            'try admin-gitdir "echo /x/.git > $S/mirror.git/worktrees/$E/gitdir"\n'
            'try admin-commondir "echo /x > $S/mirror.git/worktrees/$E/commondir"\n'
        )
    _, remote_a = hostile_repository(layout, "team-a", script)
    report = run_pass(remote_a, state_a, ALICE, box)
    out = said(state_a)
    assert report.finished, report
    results = re.findall(r"^(held|BROKEN) (\S+)$", out, re.MULTILINE)
    assert len(results) == script.count("\ntry "), out
    broken = {name for verdict, name in results if verdict != "held"}
    # Under bwrap the directories above the worktree are the sandbox's own (made by bwrap in
    # its private /tmp): what is written there never reaches the host's.
    landed = {
        "state": (state_a / "x").exists(),
        "reconcile-json": (state_a / "reconcile.json").read_text().endswith("x\n"),
        "worktrees": (state_a / "worktrees" / "x").exists(),
    }
    if box == "bwrap":
        broken -= {name for name, there in landed.items() if not there}
    assert broken == set(), out
    assert not any(landed.values()), landed


# -- nothing of the block outlives its attempt -----------------------------------------------


def _processes_saying(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if token.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    "box",
    [
        BOXES[0],
        pytest.param("none", marks=needs_cgroup),
    ],
)
def test_no_process_of_a_block_outlives_its_attempt(layout: Path, box: str) -> None:
    token = f"survivor-{uuid.uuid4().hex}"
    script = f"setsid -f sh -c 'sleep 300; echo {token}' </dev/null >/dev/null 2>&1\necho left\n"
    _, remote = hostile_repository(layout, "team-a", script)
    state = layout / "state"
    try:
        report = run_pass(remote, state, ALICE, box)
        assert "left" in said(state), report
        left = _processes_saying(token)
    finally:
        _end_sessions_of(_processes_saying(token))
    assert left == []


def _end_sessions_of(pids: list[int]) -> None:
    """Kill every process of the sessions `pids` lead (only what this test's block started:
    the survivor made a session of its own)."""
    sessions = set()
    for pid in pids:
        try:
            sessions.add(os.getsid(pid))
        except ProcessLookupError:
            continue
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) in sessions:
                os.kill(int(entry.name), signal.SIGKILL)
        except ProcessLookupError:
            continue


# -- no way back to root ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "box",
    [
        BOXES[0],
        pytest.param("none", marks=needs_cgroup),
    ],
)
def test_a_block_cannot_regain_root_through_a_setuid_program(layout: Path, box: str) -> None:
    shown = layout / "setuid"
    shown.mkdir(mode=0o755)
    shown.chmod(0o755)
    setuid_id = shown / "id"
    shutil.copy("/usr/bin/id", setuid_id)
    setuid_id.chmod(0o4755)
    script = (
        f'echo "euid $({setuid_id} -u)"\n'
        "grep -e NoNewPrivs -e CapBnd /proc/self/status\n"
        "(su -c true root </dev/null >/dev/null 2>&1 && echo su-root) || echo no-su\n"
    )
    _, remote = hostile_repository(layout, "team-a", script)
    state = layout / "state"
    run_pass(remote, state, ALICE, box, read_only=(shown,))
    out = said(state)
    assert "no-su" in out, out
    assert "euid 0" not in out, out
    assert re.search(r"NoNewPrivs:\s*1", out), out
    assert re.search(r"CapBnd:\s*0+\s", out), out


@needs_cgroup
def test_a_block_cannot_leave_its_cgroup_or_raise_its_limit(layout: Path) -> None:
    """Under no sandbox, with a processes limit (a cgroup of the attempt's own, made by root):
    the user can neither raise the limit nor move itself out of it."""
    script = TRY + (
        "P=$(sed -n 's/^[0-9]*:pids:\\(.*\\)$/\\1/p' /proc/self/cgroup)\n"
        'echo "cgroup $P"\n'
        'try raise "echo max > /sys/fs/cgroup/pids$P/pids.max"\n'
        'try leave "echo $$ > /sys/fs/cgroup/pids/cgroup.procs"\n'
        'try parent "echo $$ > /sys/fs/cgroup/pids$P/../cgroup.procs"\n'
    )
    _, remote = hostile_repository(layout, "team-a", script, limits="{processes: 64}")
    state = layout / "state"
    run_pass(remote, state, ALICE, "none")
    out = said(state)
    if "/foundry-" not in out:
        pytest.skip("this host gave the attempt no pids cgroup")
    assert "BROKEN" not in out, out
    assert out.count("held") == 3, out


# -- handing the worktree over again (a resumed execution) ------------------------------------


@pytest.mark.parametrize("box", BOXES)
def test_a_resumed_worktree_hands_nothing_of_the_host_over(layout: Path, box: str) -> None:
    """The block leaves links to a root file in its worktree (a symbolic link, a link to a
    directory, and a hard link: made here by root, as a block could where
    `fs.protected_hardlinks=0`); the execution waits for an approval and is resumed by the next
    pass, which hands the worktree over again: the root file stays root's."""
    host_file = layout / "root-only.txt"
    host_file.write_text("root's own\n")
    host_file.chmod(0o600)
    script = f"ln -s {host_file} pointer\nmkdir d\nln -s {layout} d/up\necho planted\n"
    repo, remote = hostile_repository(layout, "team-a", script, gated=True)
    state = layout / "state"
    first = run_pass(remote, state, ALICE, box)
    assert list(first.finished.values()) == ["waiting"], first
    [worktree] = (state / "worktrees").iterdir()
    os.link(host_file, worktree / "hard")
    repo.write({"README": "the remote moves\n"})
    repo.commit("move")
    git(repo.path, "push", "-q", str(remote), "main")
    second = run_pass(remote, state, ALICE, box)
    assert second.resumed == list(first.finished), second
    assert (worktree / "hard").exists(), "the worktree was made again: nothing was handed over"
    info = host_file.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o600)
    assert layout.stat().st_uid == 0


_EXCHANGE = (
    "import ctypes, os, sys, time\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "first, last, host = sys.argv[1:4]\n"
    "deadline = time.monotonic() + 30\n"
    "while time.monotonic() < deadline:\n"
    "    try:\n"
    "        mine = os.lstat(first).st_uid == os.getuid() or os.lstat(last).st_uid == os.getuid()\n"
    "    except OSError:\n"
    "        mine = False\n"
    "    if mine:\n"
    "        break\n"
    "os.symlink(host, 'b')\n"
    "print(libc.renameat2(-100, b'a', -100, b'b', 2))  # RENAME_EXCHANGE: a is now the link\n"
)


def test_handing_over_changes_nothing_outside_while_the_user_renames_the_tree(
    layout: Path,
) -> None:
    """A process of the user (left by an earlier attempt, or a block of another execution)
    swaps a directory of the tree for a link to a directory of the host while the engine hands
    the tree over: the host's files (same names as the tree's) stay root's."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("needs a system python3 for the user's process")
    host = layout / "host"
    host.mkdir()
    tree = layout / "worktree"
    (tree / "a").mkdir(parents=True)
    names = [f"f{i:05d}" for i in range(4000)]
    for name in names:
        (tree / "a" / name).write_text("checked out\n")
        (host / name).write_text("root's own\n")
        (host / name).chmod(0o600)
    os.chown(tree, ALICE.uid, ALICE.gid)  # the user may rename what is in it
    racer = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={ALICE.uid}",
            f"--regid={ALICE.gid}",
            "--clear-groups",
            "--",
            python,
            "-c",
            _EXCHANGE,
            f"a/{names[0]}",
            f"a/{names[-1]}",
            str(host),
        ],
        cwd=tree,
        stdout=subprocess.DEVNULL,
    )
    try:
        hand_over(tree, ALICE)
    finally:
        racer.wait(timeout=60)
    taken = [p.name for p in host.iterdir() if p.lstat().st_uid != 0]
    assert taken == []
    assert host.stat().st_uid == 0


def test_let_pass_never_follows_a_link_on_the_way(layout: Path) -> None:
    """A directory on the way to the user's rooms that is a link (the user's own directory,
    made a link to one of the host's): refused, and the host's directory keeps its group and
    mode."""
    state = layout / "state"
    mine = state / "worktrees" / "run-1"
    mine.mkdir(parents=True)
    host = layout / "host" / "worktrees"
    host.mkdir(parents=True)
    host.chmod(0o700)
    os.symlink(layout / "host", mine / "x")
    with pytest.raises(NotADirectoryError):
        let_pass(mine / "x" / "worktrees" / "y", state, ALICE)
    info = host.stat()
    assert (info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0o700)


def test_a_worktrees_git_file_does_not_choose_what_is_handed_over(layout: Path) -> None:
    """The worktree's `.git` is the user's file: it may name another directory of the state
    (here a root-owned entry of the mirror that is not this worktree's)."""
    from controllers.reconcile._files import _hand_over_worktree

    state = layout / "state"
    worktree = state / "worktrees" / "run-1"
    worktree.mkdir(parents=True)
    other = state / "mirror.git" / "worktrees" / "someone-else"
    other.mkdir(parents=True)
    (other / "gitdir").write_text(f"{state}/policy/run-1/.git\n")
    (worktree / ".git").write_text(f"gitdir: {other}\n")
    hand_over(worktree, ALICE)
    _hand_over_worktree(worktree, state, ALICE, state / "mirror.git")
    assert other.stat().st_uid == 0
    assert (other / "gitdir").stat().st_uid == 0


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_a_hidden_file_behind_an_acl_that_lets_the_user_pass_stays_hidden(layout: Path) -> None:
    """The daemon's config sits in a directory of the system the sandbox shows (here under
    /opt), of mode 0700, whose access control list lets the repository's user pass: the mode
    says the user cannot reach it, the kernel says it can. The file is covered all the same (a
    guess from the mode never leaves it open)."""
    if not Path("/opt").is_dir():
        pytest.skip("no /opt here")
    private = Path(tempfile.mkdtemp(prefix="foundry-acl-", dir="/opt"))
    try:
        _hidden_behind_an_acl(private, layout)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _hidden_behind_an_acl(private: Path, layout: Path) -> None:
    import struct

    private.chmod(0o700)
    config = private / "daemon.yaml"
    config.write_text("token: the-daemons-secret\n")
    config.chmod(0o644)

    def entry(tag: int, perm: int, who: int = 0xFFFFFFFF) -> bytes:
        return struct.pack("<HHI", tag, perm, who)

    # user::rwx, user:2001:--x, group::---, mask::--x, other::---
    acl = struct.pack("<I", 2) + entry(0x01, 7) + entry(0x02, 1, ALICE.uid)
    acl += entry(0x04, 0) + entry(0x10, 1) + entry(0x20, 0)
    try:
        os.setxattr(private, "system.posix_acl_access", acl)
    except OSError as exc:
        pytest.skip(f"no access control lists here ({exc.strerror})")
    worktree = layout / "worktree"
    worktree.mkdir()
    hand_over(worktree, ALICE)
    launch = Bubblewrap().launch(
        ["/bin/sh", "-c", f"cat {config} 2>/dev/null || echo covered"],
        Confinement(worktree, worktree, hidden=(config,), user=ALICE),
        layout / "rooms" / "block.1",
    )
    _code, out, _ = run_launch(launch, worktree)
    assert "the-daemons-secret" not in out
    assert "covered" in out
