"""The daemon's metrics: its own Prometheus registry, served at `/metrics`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from controllers.reconcile import PassReport

_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

# -- metrics --------------------------------------------------------------------------------------


class Metrics:
    """The daemon's Prometheus metrics, in their own registry (not the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.passes = Counter(
            "foundry_daemon_passes",
            "Reconcile passes by repository, trigger (start, poll, event) and outcome "
            "(nothing_new, changed, error).",
            ["repo", "trigger", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "foundry_daemon_pass_duration_seconds",
            "How long reconcile passes took (running executions included).",
            ["repo"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.started = Counter(
            "foundry_daemon_executions_started",
            "Executions started (kind=new) or resumed (kind=resumed) by this daemon.",
            ["repo", "kind"],
            registry=r,
        )
        self.finished = Counter(
            "foundry_daemon_executions_finished",
            "Executions that ran in a pass, by the status they ended the pass with.",
            ["repo", "status"],
            registry=r,
        )
        self.not_claimed = Counter(
            "foundry_daemon_executions_not_claimed",
            "Executions due here that someone else had claimed (or had finished).",
            ["repo"],
            registry=r,
        )
        self.outbox = Gauge(
            "foundry_daemon_outbox_pending",
            "Publications (trace commits, check runs, claim releases) waiting in the outbox.",
            ["repo"],
            registry=r,
        )
        self.delivered = Counter(
            "foundry_daemon_outbox_delivered",
            "Outbox entries delivered.",
            ["repo"],
            registry=r,
        )
        self.last_pass = Gauge(
            "foundry_daemon_last_pass_timestamp_seconds",
            "When the last pass of the repository ended (seconds since the epoch).",
            ["repo"],
            registry=r,
        )
        self.file_events = Counter(
            "foundry_daemon_file_events",
            "File events on a watched repository's refs that made it due.",
            ["repo"],
            registry=r,
        )
        self.in_flight = Gauge(
            "foundry_daemon_reconciles_in_flight",
            "Passes running now.",
            registry=r,
        )
        self.repositories = Gauge(
            "foundry_daemon_repositories",
            "Repositories in the config.",
            registry=r,
        )
        self.watched = Gauge(
            "foundry_daemon_repositories_watched",
            "Repositories watched for file events.",
            registry=r,
        )
        self.draining = Gauge(
            "foundry_daemon_draining",
            "1 while the daemon drains after SIGTERM/SIGINT, else 0.",
            registry=r,
        )

    def record_pass(
        self, repo: str, trigger: str, outcome: str, report: PassReport, ended: float
    ) -> None:
        """One pass of `repo`: its trigger, outcome, duration and what it did; `ended` (seconds
        since the epoch) is when."""
        self.passes.labels(repo, trigger, outcome).inc()
        self.duration.labels(repo).observe(report.seconds)
        if report.started:
            self.started.labels(repo, "new").inc(len(report.started))
        if report.resumed:
            self.started.labels(repo, "resumed").inc(len(report.resumed))
        for status in report.finished.values():
            self.finished.labels(repo, status).inc()
        if report.not_claimed:
            self.not_claimed.labels(repo).inc(len(report.not_claimed))
        if report.delivered:
            self.delivered.labels(repo).inc(report.delivered)
        self.outbox.labels(repo).set(report.outbox)
        self.last_pass.labels(repo).set(ended)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
