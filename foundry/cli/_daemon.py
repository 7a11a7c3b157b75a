"""`foundry daemon`: many repositories reconciled by one process (controllers do the work)."""

from __future__ import annotations

import signal
from pathlib import Path

import click


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The daemon's YAML config file (see docs/daemon.md).",
)
@click.option("--check", is_flag=True, help="Check the config file and exit.")
def daemon(config_path: Path, check: bool) -> None:
    """Reconcile the repositories of a config file until SIGTERM/SIGINT.

    Each repository is polled at its own interval (with jitter); repositories on this machine
    are also watched, so a push is picked up at once. SIGTERM or SIGINT drains: no new passes,
    running blocks get `grace` seconds, the rest are recorded as interrupted and resumed by the
    next pass; then the daemon exits 0. GET /healthz and /metrics are served on 127.0.0.1, and
    with `ui:` in the config the web interface of `alloy ui` (run as a child process) beside them.
    Exit 1 when the config file is wrong (the message names the line and the fix).
    """
    from controllers.daemon import Daemon, load_config

    config = load_config(config_path)
    if check:
        n = len(config.repositories)
        click.echo(f"{config_path}: the config is valid ({n} repositor{'y' if n == 1 else 'ies'})")
        return
    runner = Daemon(config)

    def on_signal(_signum: int, _frame: object) -> None:
        runner.request_drain()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # A signal may land on any thread; the wakeup fd wakes the main thread to handle it.
    signal.set_wakeup_fd(runner.wakeup_fd, warn_on_full_buffer=False)
    raise click.exceptions.Exit(runner.run())
