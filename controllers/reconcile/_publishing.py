"""Publishing what a pass did: check runs, then trace files; what could not be delivered goes
to the outbox, which lives on the remote so that any host delivers it."""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Mapping

from controllers import _remote_outbox as remote_outbox
from controllers.claims import Claim, Claims, LeaseLost
from controllers.forge import CheckRun, Forge, ForgeError
from controllers.gitops import GitError, Mirror
from controllers.outbox import Entry, Outbox
from controllers.reconcile._model import FINISHED, PassReport
from controllers.reconcile._work import Done
from foundry.faults import crash_point


class Publishing:
    """The publishing half of a `Reconciler` (its state lives there)."""

    url: str
    mirror: Mirror
    forge: Forge
    outbox: Outbox
    claims: Claims
    traces_branch: str
    #: Outbox entries the remote holds, as far as this pass knows.
    _shared: set[str]

    def _publish(self, done: list[Done], report: PassReport) -> None:
        """Check runs first, then the traces: the trace on the traces branch is the last step
        of an execution. A check run that no host could be told about (the forge and the
        remote outbox both failed) keeps its trace back, so the finished claim without a
        trace is repaired, check run included, by a later pass of any host."""
        if not done:
            return
        failed = self._publish_checks([d.check for d in done], report)
        shared = self._share_outbox(report) if failed else True
        files: dict[str, bytes] = {}
        for d in done:
            if shared or d.check.external_id not in failed:
                files.update(d.files)
        if not files:
            return
        report.traces = sorted(p for p in files if p.endswith(".json"))
        crash_point("trace-push-before")
        report.committed = self._publish_traces(files, report)
        crash_point("trace-push-after")

    def _publish_checks(self, checks: list[CheckRun], report: PassReport) -> set[str]:
        """Publish `checks` (one commit on the local forge); the executions whose check run
        went to the outbox instead."""
        crash_point("check-publish")
        batch = getattr(self.forge, "publish_checks", None)
        if batch is not None:
            try:
                report.published += int(batch(checks))
            except (GitError, ForgeError) as exc:
                for check in checks:
                    self._keep_check(check, exc, report)
                return {c.external_id for c in checks}
            return set()
        failed = set()
        for check in checks:
            try:
                if self.forge.publish_check(check):
                    report.published += 1
            except (GitError, ForgeError) as exc:
                self._keep_check(check, exc, report)
                failed.add(check.external_id)
        return failed

    def _keep_check(self, check: CheckRun, exc: Exception, report: PassReport) -> None:
        self.outbox.put("check", {"repo": self.url, "run": check.to_json()}, str(exc))
        report.errors.append(f"check run of {check.external_id} waits in the outbox: {exc}")

    def _publish_traces(self, files: Mapping[str, bytes], report: PassReport) -> str | None:
        try:
            return self.push_traces(files)
        except GitError as exc:
            self.outbox.put(
                "traces",
                {"repo": self.url, "files": {p: _b64(d) for p, d in files.items()}},
                str(exc),
            )
            report.errors.append(f"traces kept in the outbox: {exc}")
            return None

    def push_traces(self, files: Mapping[str, bytes]) -> str | None:
        """Commit `files` on the traces branch and push; rebuilt on the new tip and retried when
        someone else pushed first. None when the branch already holds exactly these files."""
        ref = f"refs/heads/{self.traces_branch}"
        names = sorted({p.split("/")[2].removesuffix(".json").removesuffix(".md") for p in files})
        message = f"traces: {', '.join(names[:5])}" + (
            f" and {len(names) - 5} more" if len(names) > 5 else ""
        )
        for attempt in range(16):
            tip = self.mirror.heads([ref]).get(ref)
            if tip is not None and self.mirror.rev(ref) != tip:
                self.mirror.fetch([ref])
            changed = dict(files) if tip is None else self._changed(tip, files)
            if not changed:
                return None
            commit = self.mirror.commit(tip, changed, message)
            if self.mirror.push([(commit, ref, tip)]).ok:
                self.mirror.set_ref(ref, commit)
                return commit
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - jitter
        raise GitError(f"{self.url}: {ref} kept moving; traces kept for the next pass")

    def _changed(self, tip: str, files: Mapping[str, bytes]) -> dict[str, bytes]:
        """The files that differ from the branch — except that a finished trace is never
        replaced: whatever else is being delivered for that execution (a stale copy from an
        outbox, say) is older than its end."""
        current: dict[str, bytes | None] = {}
        for path in files:
            sha = self.mirror.tree(tip, path).get(path)
            current[path] = self.mirror.blob(sha) if sha else None
        frozen = {
            path.removesuffix(".json")
            for path, data in files.items()
            if path.endswith(".json")
            and current[path] not in (None, data)
            and _finished(current[path])
        }
        return {
            path: data
            for path, data in files.items()
            if current[path] != data
            and path.removesuffix(".json").removesuffix(".md") not in frozen
        }

    # -- the outbox ---------------------------------------------------------------------------

    def _restore_outbox(self, report: PassReport) -> None:
        """Take in what the remote's outbox holds (any host's undelivered publications)."""
        try:
            self._shared, junk = remote_outbox.restore(self.mirror, self.outbox, url=self.url)
        except GitError as exc:
            report.errors.append(f"cannot read {remote_outbox.REF}: {exc}")
            self._shared = set()
            return
        if junk:
            report.errors.append(
                f"{junk} file(s) on {remote_outbox.REF} are not outbox entries; left as they are"
            )

    def _share_outbox(self, report: PassReport) -> bool:
        """Make the remote's outbox hold what is undelivered here and lose what was delivered;
        whether the remote now holds everything pending here."""
        pending = {e.path.name: e.path.read_bytes() for e in self.outbox.entries()}
        remove = self._shared - set(pending)
        add = {n: d for n, d in pending.items() if n not in self._shared}
        try:
            remote_outbox.update(self.mirror, remove=remove, add=add)
        except GitError as exc:
            report.errors.append(f"cannot update {remote_outbox.REF}: {exc}")
            return False
        self._shared = (self._shared - remove) | set(add)
        return True

    def _drain_outbox(self, report: PassReport) -> None:
        if not len(self.outbox):
            return
        delivered, pending = self.outbox.drain(self._deliver)
        report.delivered += delivered
        if pending:
            last = next((e.error for e in self.outbox.entries() if e.error), "")
            report.errors.append(f"{pending} publication(s) still undelivered: {last}")

    def _deliver(self, entry: Entry) -> None:
        payload = entry.payload
        if payload.get("repo") != self.url:
            raise GitError("belongs to another repository")
        if entry.kind == "traces":
            self.push_traces({p: base64.b64decode(d) for p, d in payload["files"].items()})
        elif entry.kind == "check":
            run = CheckRun.from_json(payload["run"])
            if run.status != "completed" and any(
                r.name == run.name and r.status == "completed"
                for r in self.forge.checks(run.commit)
            ):
                return  # the execution went on since: this update is older than what is there
            self.forge.publish_check(run)
        elif entry.kind == "claim":
            claim = Claim(
                payload["execution"],
                payload["sha"],
                self.claims.holder,
                int(payload.get("generation", 0)),
                None,
                _unb64(payload.get("artifact")),
                payload.get("commit"),
                dict(payload.get("facts") or {}),
            )
            try:
                self.claims.release(
                    claim,
                    payload["state"],
                    _unb64(payload.get("ledger")),
                    trace=_unb64(payload.get("trace")),  # None from an older host's entry
                )
            except LeaseLost:
                return  # someone took it over meanwhile: nothing left to deliver
        else:
            raise GitError(f"unknown outbox entry kind {entry.kind!r}")


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data is not None else None


def _unb64(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text else None


def _finished(trace: bytes | None) -> bool:
    """Whether a trace file says its execution finished."""
    try:
        status = json.loads(trace or b"")["spec"]["status"]
    except (ValueError, KeyError, TypeError):
        return False
    return status in FINISHED
