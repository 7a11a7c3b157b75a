"""One repository of `foundry daemon`: what the daemon knows of it between passes, and what its
reconciler is made of (its state directory, its forge, its settings), as `foundry reconcile`
lays them out.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controllers.daemon_config import DaemonConfig, RepoConfig
from controllers.forge import Forge
from controllers.reconcile import Reconciler, Settings, state_dir_for
from foundry.progress import Progress
from foundry.sandbox import sandbox_named


@dataclass
class Repository:
    """What the daemon knows of one repository between passes."""

    config: RepoConfig
    name: str
    due: float
    #: Its state directory (known once the repository could be found).
    state: Path | None = None
    trigger: str = "start"
    running: bool = False
    dirty: bool = False
    reconciler: Reconciler | None = None
    git_dir: Path | None = None
    watched: bool = False
    passes: int = 0
    last_end: float | None = None
    last_seconds: float | None = None
    last_outcome: str | None = None
    last_errors: list[str] = field(default_factory=list)
    outbox: int = 0
    traces_ref: str = "refs/heads/alloy/traces"


def reconciler_for(
    repo: Repository,
    config: DaemonConfig,
    hidden: tuple[Path, ...],
    *,
    stop: threading.Event,
    halt: threading.Event,
    progress: Callable[[Progress], None],
) -> Reconciler:
    """A reconciler of `repo` (whose `state` it sets), as `foundry reconcile` makes one; `hidden`:
    what no block may read."""
    repo.state = state_dir(config, repo.config.repo)
    return Reconciler(
        settings_for(repo, config, hidden),
        stop=stop,
        forge=forge_for(repo.config),
        progress=progress,
        halt=halt,
    )


def hidden_files(config: DaemonConfig) -> tuple[Path, ...]:
    """What no block may read, even where the sandbox shows the system (a config or a secrets
    file under /etc): the config, every repository's secrets file and the web interface's
    token file."""
    source = Path(config.source).resolve()
    files = [
        Path(r.secrets.value) for r in config.repositories if r.secrets and r.secrets.kind == "file"
    ]
    if config.ui is not None and config.ui.token_file is not None:
        files.append(config.ui.token_file.resolve())
    return tuple(p for p in (source, *files) if p.is_file())


def state_base(config: DaemonConfig) -> Path:
    """`state`, else the base `foundry reconcile` uses (`$FOUNDRY_STATE`, else
    `$XDG_STATE_HOME/foundry`): `<base>/reconcile/<hash>` is a repository's."""
    if config.state is not None:
        return config.state
    return state_dir_for("state://").parent.parent


def state_dir(config: DaemonConfig, repo: str) -> Path:
    """As `foundry reconcile` lays it out: `<state>/reconcile/<hash of the remote>`."""
    state = state_dir_for(repo)
    if config.state is not None:
        state = config.state / "reconcile" / state.name
    return state


def forge_for(rc: RepoConfig) -> Forge | None:
    """The GitHub forge for a repository that names one (else the local forge)."""
    if rc.github is None:
        return None
    from controllers.github import connect

    return connect(rc.github, api_url=rc.github_api)


def settings_for(repo: Repository, config: DaemonConfig, hidden: tuple[Path, ...]) -> Settings:
    """The reconciler's settings of `repo` (`hidden`: what no block may read)."""
    rc = repo.config
    return Settings(
        repo=rc.repo,
        branch=rc.branch,
        state_dir=repo.state,
        lease=rc.lease,
        grace=config.grace,
        workers=rc.workers,
        recheck=rc.recheck,
        sandbox=sandbox_named(
            rc.sandbox or os.environ.get("FOUNDRY_SANDBOX") or "auto", user=rc.user
        ),
        # The daemon's config (and what sits beside it) is never a block's to read, even
        # where the sandbox shows the system (a config under /etc).
        hidden=hidden,
        read_only=rc.read_only,
        run_as=rc.user,
        secrets=rc.secrets.read if rc.secrets is not None else None,
    )
