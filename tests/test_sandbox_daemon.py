"""Many teams, one runner host: `foundry daemon` reconciling two repositories whose blocks run
under `bwrap`, each with a secret of the same name from its own source (an environment prefix,
a file only the daemon may read). Each block sees only its own repository's secret, none of
the daemon's environment, neither the other's secrets file nor the daemon's config."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from controllers.daemon import ConfigError, parse_config
from tests.conftest import GitRepo, git, intent_yaml, run_cli
from tests.test_daemon import DaemonProcess, ok, traces, until

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (scripts/test installs it)"
)


def team_repository(tmp_path: Path, name: str, probes: list[Path], *, who: bool = False) -> Path:
    """A repository whose block writes what it saw: the secret's bytes (only their digest
    leaves the host, in the trace) and whether it could read each of `probes`; with `who`,
    also the user and group it ran as (`who.txt`)."""
    path = tmp_path / name
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    repo = GitRepo(path)
    reads = "; ".join(f"(cat {p} >/dev/null 2>&1 && echo read || echo hidden)" for p in probes)
    blocks = (
        "      - id: deploy\n"
        '        run: [sh, -c, \'printf %s "$DEPLOY_TOKEN" > token.txt; '
        f"({reads}; env | grep -c -e never-for-blocks -e the-daemons-own -e TEAM_ || true)"
        " > seen.txt" + ("; echo $(id -u) $(id -g) > who.txt" if who else "") + "']\n"
        "        effects: none\n"
        "        secrets: [DEPLOY_TOKEN]\n"
        f"        outputs: [token.txt, seen.txt{', who.txt' if who else ''}]\n"
    )
    repo.write(
        {
            ".alloy/alloy.yaml": (
                "apiVersion: alloy.dev/v1\nkind: Project\nmetadata:\n"
                f"  name: {name}\nspec:\n  owners: [alice]\n"
            ),
            ".alloy/intents/deploy.yaml": intent_yaml("deploy", blocks=blocks, on="{apply: true}"),
        }
    )
    ok(run_cli("alloy", "compile", cwd=path))
    repo.commit("deploy")
    remote = tmp_path / f"{name}.git"
    git(tmp_path, "clone", "-q", "--bare", str(path), str(remote))
    return remote


def outputs_of(remote: Path) -> dict[str, str]:
    [path] = [p for p in traces(remote) if "/deploy/" in p]
    trace: dict[str, Any] = json.loads(git(remote, "show", f"alloy/traces:{path}"))
    assert trace["spec"]["status"] == "succeeded", trace["spec"]
    [block] = trace["spec"]["blocks"]
    return {o["path"]: o["digest"] for o in block["outputs"]}


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_two_repositories_each_see_only_their_own_secret(
    tmp_path: Path, daemons: list[DaemonProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets_b = tmp_path / "team-b.env"
    secrets_b.write_text("# team b\nDEPLOY_TOKEN=token-of-team-b\n")
    secrets_b.chmod(0o600)
    config = tmp_path / "daemon" / "daemon.yaml"
    config.parent.mkdir()
    probes = [secrets_b, config]
    remote_a = team_repository(tmp_path, "team-a", probes)
    remote_b = team_repository(tmp_path, "team-b", probes)
    monkeypatch.setenv("TEAM_A_DEPLOY_TOKEN", "token-of-team-a")
    monkeypatch.setenv("DEPLOY_TOKEN", "the-daemons-own")
    monkeypatch.setenv("DAEMON_ONLY_TOKEN", "never-for-blocks")
    daemon = DaemonProcess(
        config.parent,
        {
            "state": str(tmp_path / "state"),
            "repositories": [
                {"repo": str(remote_a), "sandbox": "bwrap", "secrets": {"env": "TEAM_A_"}},
                {"repo": str(remote_b), "sandbox": "bwrap", "secrets": {"file": str(secrets_b)}},
            ],
        },
    )
    daemons.append(daemon.start())
    until(
        lambda: len(traces(remote_a)) and len(traces(remote_b)), "a trace of each", log=daemon.log
    )
    seen_a, seen_b = outputs_of(remote_a), outputs_of(remote_b)
    assert seen_a["token.txt"] == sha("token-of-team-a")
    assert seen_b["token.txt"] == sha("token-of-team-b")
    # Neither read the other's secrets file or the daemon's config, and no variable of the
    # daemon's environment reached either.
    assert seen_a["seen.txt"] == seen_b["seen.txt"] == sha("hidden\nhidden\n0\n")
    log = daemon.log()
    for value in ("token-of-team-a", "token-of-team-b", "the-daemons-own", "never-for-blocks"):
        assert value not in log


def test_secret_sources_are_checked_when_the_config_is_read(tmp_path: Path) -> None:
    loose = tmp_path / "loose.env"
    loose.write_text("DEPLOY_TOKEN=x\n")
    loose.chmod(0o644)
    repo = str(tmp_path)
    with pytest.raises(ConfigError, match=r"may be read by others \(mode 0644\); run `chmod 600"):
        parse_config(f"repositories:\n  - repo: {repo}\n    secrets: {{file: {loose}}}\n")
    with pytest.raises(ConfigError, match=r"secrets.env must be a prefix .* in capitals"):
        parse_config(f"repositories:\n  - repo: {repo}\n    secrets: {{env: team-a}}\n")
    with pytest.raises(ConfigError, match=r"must be \{env: PREFIX_\} or \{file: PATH\}"):
        parse_config(f"repositories:\n  - repo: {repo}\n    secrets: {{vault: x}}\n")
    with pytest.raises(ConfigError, match=r"sandbox must be auto, bwrap or none, not 'docker'"):
        parse_config(f"repositories:\n  - repo: {repo}\n    sandbox: docker\n")
    bad = tmp_path / "bad.env"
    bad.write_text("DEPLOY_TOKEN=x\nnot a line with-secret-value\n")
    bad.chmod(0o600)
    with pytest.raises(ConfigError, match=r"bad.env:2: write each secret as NAME=VALUE") as caught:
        parse_config(f"repositories:\n  - repo: {repo}\n    secrets: {{file: {bad}}}\n")
    assert "with-secret-value" not in str(caught.value)
