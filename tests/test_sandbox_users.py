"""Each repository as its own OS user: a daemon running as root runs the blocks of a
repository with `user:` as that user (dropped to before the block starts, after it joined its
cgroups), under bwrap or no sandbox at all. The kernel's permissions then keep from a block
what its sandbox shows: root's private files of the system (/etc/shadow), another
repository's state and worktrees, the daemon's configuration and secrets files."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from controllers.daemon import ConfigError, parse_config
from controllers.reconcile import state_dir_for
from foundry.sandbox import Bubblewrap, Confinement, NoSandbox, RunAs, hand_over, let_pass
from tests.conftest import PROJECT, GitRepo, git, intent_yaml, run_cli
from tests.sandbox_support import needs_cgroup, run_launch
from tests.test_daemon import DaemonProcess, traces, until
from tests.test_sandbox_daemon import outputs_of, sha, team_repository

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="running blocks as another user needs root"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)"),
]


ALICE = RunAs(2001, 2001, "2001")
BOB = RunAs(2002, 2002, "2002")
SHADOW = Path("/etc/shadow")


def passable(path: Path) -> list[tuple[Path, int]]:
    """Let everyone pass through `path` and the directories above it (pytest's own base is
    its owner's only): what an operator does for a state directory under a private one. The
    modes it changed, to put back."""
    changed = []
    for directory in [path, *path.parents]:
        mode = stat.S_IMODE(directory.stat().st_mode)
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
            changed.append((directory, mode))
    return changed


def _private_shadow() -> None:
    if not SHADOW.exists() or SHADOW.stat().st_mode & stat.S_IROTH:
        pytest.skip("no private /etc/shadow here")


# -- the engine's launch ------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
@pytest.mark.parametrize("box", ["bwrap", pytest.param("none", marks=needs_cgroup)])
def test_a_block_runs_as_its_user_and_reads_no_private_file_of_root(layout: Path, box: str) -> None:
    _private_shadow()
    state = layout / "state"
    worktree = state / "worktrees" / "run-1"
    worktree.mkdir(parents=True)
    state.chmod(0o700)
    secret = layout / "root-only.txt"
    secret.write_text("root's own\n")
    secret.chmod(0o600)
    scratch = state / "executions" / "e1" / "sandbox" / "block.1"
    scratch.parent.mkdir(parents=True)
    let_pass(worktree, state, ALICE)
    let_pass(scratch, state, ALICE)
    hand_over(worktree, ALICE)
    sandbox = Bubblewrap() if box == "bwrap" else NoSandbox()
    script = (
        "id -u; id -g; id -G; echo written > mine.txt && echo wrote; "
        f"(cat {SHADOW} >/dev/null 2>&1 && echo read-shadow || echo no-shadow); "
        f"(cat {secret} >/dev/null 2>&1 && echo read-secret || echo no-secret)"
    )
    launch = sandbox.launch(
        ["/bin/sh", "-c", script], Confinement(worktree, worktree, user=ALICE), scratch
    )
    code, out, _ = run_launch(launch, worktree)
    assert code == 0, out
    assert out.split() == ["2001", "2001", "2001", "wrote", "no-shadow", "no-secret"], out
    assert (worktree / "mine.txt").stat().st_uid == ALICE.uid
    # What the user passes through it cannot list, nor write.
    assert not stat.S_IMODE(state.stat().st_mode) & stat.S_IWGRP
    assert state.stat().st_gid == ALICE.gid


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_the_same_launch_without_a_user_reads_roots_files(layout: Path) -> None:
    """The other side of the test above (so that it can fail): as the daemon's own user,
    root, the block reads /etc/shadow even under bwrap."""
    _private_shadow()
    worktree = layout / "worktree"
    worktree.mkdir()
    launch = Bubblewrap().launch(
        ["/bin/sh", "-c", f"head -c 1 {SHADOW} >/dev/null && echo read-shadow"],
        Confinement(worktree, worktree),
        layout / "rooms" / "block.1",
    )
    _code, out, _ = run_launch(launch, worktree)
    assert "read-shadow" in out


def test_a_user_that_cannot_reach_its_worktree_runs_nothing(layout: Path) -> None:
    closed = layout / "closed"
    worktree = closed / "worktree"
    worktree.mkdir(parents=True)
    closed.chmod(0o700)
    hand_over(worktree, ALICE)
    mark = layout / "ran"
    if shutil.which("bwrap") is None:
        pytest.skip("needs bubblewrap")
    from foundry.sandbox import SandboxUnavailable

    with pytest.raises(SandboxUnavailable, match=f"2001 cannot reach {worktree}: {closed}"):
        Bubblewrap().launch(
            ["/bin/sh", "-c", f"touch {mark}"],
            Confinement(worktree, worktree, user=ALICE),
            layout / "rooms" / "block.1",
        )
    assert not mark.exists()


# -- the daemon ---------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
@needs_cgroup
def test_two_repositories_as_two_users_read_nothing_of_each_other(
    layout: Path, daemons: list[DaemonProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Team A under bwrap as 2001, team B with no sandbox at all as 2002: neither reads the
    other's state directory (its mirror's config), the daemon's config, its secrets file or
    /etc/shadow; each block ran as its own user and wrote its worktree."""
    _private_shadow()
    state = layout / "state"
    remote_a_path = layout / "team-a.git"
    remote_b_path = layout / "team-b.git"
    remote_a_path.mkdir()  # (empty: cloned into below) where each one's state will be is known
    remote_b_path.mkdir()
    other_of = {
        "team-a": state / "reconcile" / state_dir_for(str(remote_b_path)).name,
        "team-b": state / "reconcile" / state_dir_for(str(remote_a_path)).name,
    }
    config = layout / "daemon" / "daemon.yaml"
    config.parent.mkdir()
    secrets_b = layout / "team-b.env"
    secrets_b.write_text("DEPLOY_TOKEN=token-of-team-b\n")
    secrets_b.chmod(0o600)
    probes = {
        name: [other / "mirror.git" / "config", config, secrets_b, SHADOW]
        for name, other in other_of.items()
    }
    remote_a = team_repository(layout, "team-a", probes["team-a"], who=True)
    remote_b = team_repository(layout, "team-b", probes["team-b"], who=True)
    assert (remote_a, remote_b) == (remote_a_path, remote_b_path)
    daemon = DaemonProcess(
        config.parent,
        {
            "state": str(state),
            "repositories": [
                {
                    "repo": str(remote_a),
                    "sandbox": "bwrap",
                    "user": 2001,
                    "secrets": {"env": "TEAM_A_"},
                },
                {
                    "repo": str(remote_b),
                    "sandbox": "none",
                    "user": "2002:2002",
                    "secrets": {"file": str(secrets_b)},
                },
            ],
        },
    )
    daemon.config.chmod(0o600)
    monkeypatch.setenv("TEAM_A_DEPLOY_TOKEN", "token-of-team-a")
    daemons.append(daemon.start())
    until(
        lambda: len(traces(remote_a)) and len(traces(remote_b)), "a trace of each", log=daemon.log
    )
    seen_a, seen_b = outputs_of(remote_a), outputs_of(remote_b)
    hidden = "hidden\n" * 4
    assert seen_a["seen.txt"] == sha(f"{hidden}0\n"), daemon.log()
    assert seen_b["seen.txt"] == sha(f"{hidden}0\n"), daemon.log()
    assert seen_a["who.txt"] == sha("2001 2001\n")
    assert seen_b["who.txt"] == sha("2002 2002\n")
    assert seen_b["token.txt"] == sha("token-of-team-b")  # its own secret still reaches it
    # Each state directory is its user's group's to read, nobody's else.
    for name, user in (("team-a", BOB), ("team-b", ALICE)):
        info = other_of[name].stat()
        assert (info.st_gid, stat.S_IMODE(info.st_mode)) == (user.gid, 0o750)


def test_user_is_checked_when_the_config_is_read(layout: Path) -> None:
    cases = {
        "root": "is root",
        "0:0": "is root",
        "no-such-user-anywhere": "no such user or group",
        "true": "user name, UID or UID:GID",
        '""': "names no user",
        "2001:no-such-group-anywhere": "no such user or group",
    }
    for given, said in cases.items():
        text = f"repositories:\n  - repo: {layout}\n    user: {given}\n"
        with pytest.raises(ConfigError, match=said) as raised:
            parse_config(text, source="daemon.yaml")
        assert str(raised.value).startswith("daemon.yaml:3: repositories[0].user"), raised.value
    text = f"repositories:\n  - repo: {layout}\n    user: '2001:2002'\n"
    [repo] = parse_config(text).repositories
    assert repo.user == RunAs(2001, 2002, "2001:2002")
    # Two users of one group would read each other's state: refused.
    text = (
        f"repositories:\n  - repo: {layout}/a\n    user: '2001:3000'\n"
        f"  - repo: {layout}/b\n    user: '2002:3000'\n"
    )
    with pytest.raises(ConfigError, match=r"daemon.yaml:5: .*different users of one group"):
        parse_config(text, source="daemon.yaml")
    # Unquoted, YAML 1.1 reads `2001:50` as a number in base 60 (120110): it is UID:GID.
    text = f"repositories:\n  - repo: {layout}\n    user: 2001:50\n"
    [repo] = parse_config(text).repositories
    assert (repo.user.uid, repo.user.gid) == (2001, 50)


def test_a_state_directory_its_user_cannot_reach_runs_nothing_and_says_why(
    layout: Path, daemons: list[DaemonProcess]
) -> None:
    closed = layout / "closed"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    remote = team_repository(layout, "team-a", [SHADOW], who=True)
    daemon = DaemonProcess(
        layout,
        {
            "state": str(closed / "state"),
            "repositories": [{"repo": str(remote), "sandbox": "none", "user": 2001}],
        },
    )
    daemons.append(daemon.start())
    until(lambda: "cannot reach its state" in daemon.log(), "the reason", log=daemon.log)
    assert f"chmod o+x {closed}" in daemon.log()
    assert traces(remote) == []
    assert git(remote, "for-each-ref", "refs/alloy/claims") == ""


def test_handing_over_leaves_hard_links_and_what_the_user_owns_alone(layout: Path) -> None:
    """A worktree handed over again (a resumed execution) may hold a hard link to a file of
    the host (where the kernel lets a user make one: `fs.protected_hardlinks=0`; made here by
    root): it stays the host's. What the user owns already is not touched."""
    host_file = layout / "host-secret"
    host_file.write_text("root's\n")
    host_file.chmod(0o600)
    worktree = layout / "worktree"
    (worktree / "sub").mkdir(parents=True)
    (worktree / "sub" / "code.txt").write_text("checked out\n")
    os.link(host_file, worktree / "linked")
    (worktree / "theirs").write_text("the user's\n")
    os.chown(worktree / "theirs", BOB.uid, BOB.gid)
    os.symlink(host_file, worktree / "pointer")
    hand_over(worktree, ALICE)
    assert host_file.stat().st_uid == 0
    assert (worktree / "theirs").stat().st_uid == BOB.uid
    assert (worktree / "pointer").lstat().st_uid == ALICE.uid
    for mine in (worktree, worktree / "sub", worktree / "sub" / "code.txt"):
        assert (mine.stat().st_uid, mine.stat().st_gid) == (ALICE.uid, ALICE.gid)


POLICY_CHECKS = {
    # In its own sandbox the checkout is its own (git there works for it).
    "bwrap": 'test "$(hostname)" = foundry-sandbox || { echo "on the host"; exit 1; }\n'
    "echo as its user, confined\n",
    # Without one, blocks of other executions run as the same user: the checkout is read-only
    # to it, so none of them can change the policy a gate runs.
    "none": "test -r policy/gate.sh || { echo cannot read; exit 1; }\n"
    'if touch policy/gate.sh 2>/dev/null; then echo "wrote its policy"; exit 1; fi\n'
    "echo as its user, read-only\n",
}


@pytest.mark.parametrize(
    "box",
    [
        pytest.param(
            "bwrap",
            marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
        ),
        pytest.param("none", marks=needs_cgroup),
    ],
)
def test_a_command_gates_policy_runs_as_the_repositorys_user(
    layout: Path, daemons: list[DaemonProcess], box: str
) -> None:
    """A policy command is the repository's merged code like its blocks: it runs as the
    repository's user, in the blocks' sandbox; the gate passes only if it does."""
    path = layout / "gated"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    repo = GitRepo(path)
    blocks = (
        "      - id: ship\n"
        "        run: [sh, -c, 'echo shipped > out.txt']\n"
        "        effects: none\n"
        "        outputs: [out.txt]\n"
        "        gates:\n"
        "          - command: {run: [sh, policy/gate.sh], timeout: 30s}\n"
    )
    repo.write(
        {
            ".alloy/alloy.yaml": PROJECT,
            ".alloy/intents/gated.yaml": intent_yaml("gated", blocks=blocks, on="{apply: true}"),
            "policy/gate.sh": (
                'test "$(id -u):$(id -g)" = 2001:2001 || { echo "as $(id -u)"; exit 1; }\n'
                + POLICY_CHECKS[box]
            ),
        }
    )
    assert run_cli("alloy", "compile", cwd=path).code == 0
    repo.commit("a gated intent")
    remote = layout / "gated.git"
    git(layout, "clone", "-q", "--bare", str(path), str(remote))
    daemon = DaemonProcess(
        layout,
        {
            "state": str(layout / "state"),
            "repositories": [{"repo": str(remote), "sandbox": box, "user": 2001}],
        },
    )
    daemons.append(daemon.start())
    until(lambda: traces(remote), "its trace", log=daemon.log)
    [trace_path] = traces(remote)
    trace = json.loads(git(remote, "show", f"alloy/traces:{trace_path}"))
    reasons = [g["reason"] for g in trace["spec"]["gates"]]
    said = POLICY_CHECKS[box].splitlines()[-1].removeprefix("echo ")
    assert reasons == [f"policy command passed: {said}"], (reasons, daemon.log())
    assert trace["spec"]["status"] == "succeeded"


def test_a_tree_too_deep_is_handed_over_as_deep_as_it_may_be(layout: Path) -> None:
    """A worktree with a tree a thousand levels deep (committed, or made by a block before a
    resume) does not stop the hand-over (it would, recursing or holding a descriptor per
    level): it is handed over to `MAX_DEPTH` levels, the rest stays the engine's."""
    from foundry.sandbox._user import MAX_DEPTH

    worktree = layout / "worktree"
    worktree.mkdir()
    fd = os.open(worktree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(1000):  # (relative to a descriptor: a path this long has no name)
            os.mkdir("d", dir_fd=fd)
            step = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = step
    finally:
        os.close(fd)
    try:
        hand_over(worktree, ALICE)
        assert (worktree / "d").stat().st_uid == ALICE.uid
        shallow = worktree.joinpath(*["d"] * MAX_DEPTH)
        assert shallow.stat().st_uid == ALICE.uid
    finally:  # (too deep for shutil.rmtree's recursion)
        subprocess.run(["rm", "-rf", str(worktree)], check=False)
