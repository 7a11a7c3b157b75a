"""`foundry daemon`: many repositories reconciled by one process (controllers do the work)."""

from __future__ import annotations

import dataclasses
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
@click.option(
    "--log",
    "log_format",
    type=click.Choice(["text", "json"]),
    help="The log's format, instead of the config's `log`: text lines, or one JSON object per "
    "line (docs/daemon.md, Logs).",
)
def daemon(config_path: Path, check: bool, log_format: str | None) -> None:
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
    if log_format is not None:
        config = dataclasses.replace(config, log=log_format)
    runner = Daemon(config)

    def on_signal(_signum: int, _frame: object) -> None:
        runner.request_drain()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # A signal may land on any thread; the wakeup fd wakes the main thread to handle it.
    signal.set_wakeup_fd(runner.wakeup_fd, warn_on_full_buffer=False)
    raise click.exceptions.Exit(runner.run())
