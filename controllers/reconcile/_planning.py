"""Planning a pass's work with Foundry's planner: what the planner is told (the executions the
traces branch knows, the push events of the default branch's history), what of its plan a pass
leaves alone (a schedule slot that ran under another digest, an `indeterminate` execution with
no Approval on a quiet pass), and what each planned item runs with (`Work`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from controllers.gitops import Mirror
from controllers.reconcile._model import FINISHED, PassReport, TraceInfo
from controllers.reconcile._work import Work

if TYPE_CHECKING:
    from foundry.boundary import Boundary
    from foundry.gates import StaticApprovals
    from foundry.planner import Item


class _Known:
    """The planner's view of what exists: the traces branch (the remote decides)."""

    def __init__(self, traces: Mapping[str, TraceInfo]) -> None:
        self.traces = traces

    def status(self, execution: str) -> str | None:
        info = self.traces.get(execution)
        return info.status if info is not None else None

    def unfinished_keys(self, artifact: str, event_type: str) -> list[tuple[str, str]]:
        return sorted(
            (e, i.key)
            for e, i in self.traces.items()
            if i.artifact == artifact and i.event == event_type and i.status not in FINISHED
        )


class Planning:
    """The planning part of a `Reconciler` (its state lives there)."""

    mirror: Mirror
    _parsed: dict[str, Any]
    _history_parsed: dict[str, Any]
    _artifact_bytes: dict[str, bytes]
    _requesters: dict[str, str | None]
    _traces: dict[str, TraceInfo]

    def _pushes(self, history: list[Any]) -> list[Any]:
        from foundry.planner import Push

        return [
            Push(c.sha, c.paths, {name: a for name, (a, _) in c.artifacts.items()}) for c in history
        ]

    def _parse_historical(self, path: str, sha: str) -> Any:
        """An artifact blob of the default branch's history, parsed once."""
        key = f"{sha}:{path}"
        value = self._parsed.get(key)
        if value is None:
            value = self._history_parsed.get(key)
        if value is None:
            from foundry.boundary import read_artifact
            from foundry.errors import BoundaryError

            data = self.mirror.blob(sha)
            try:
                value = (read_artifact(path, data), data)
            except BoundaryError as exc:
                value = exc
            if len(self._history_parsed) > 4096:
                self._history_parsed.clear()
            self._history_parsed[key] = value
        return value

    def _one_run_per_slot(self, items: list[Item], report: PassReport) -> list[Item]:
        """A schedule slot runs once per intent: a slot that already has a trace under another
        digest of the same artifact (the intent changed since) does not start again."""
        ran = {
            (info.artifact, info.key): execution
            for execution, info in self._traces.items()
            if info.event == "schedule"
        }
        keep = []
        for item in items:
            event = item.event
            if event is not None and event.type == "schedule":
                other = ran.get((item.artifact, event.key))
                if other is not None:
                    report.skipped.append(
                        f"{item.artifact}: schedule slot {event.key} ran as {other}"
                    )
                    continue
            keep.append(item)
        return keep

    def _quiet(
        self, items: list[Item], approvals: StaticApprovals, report: PassReport
    ) -> list[Item]:
        """On a pass where nothing moved (a timed re-check), an `indeterminate` execution is
        left alone unless an Approval for it is there: only an owner's decision, which comes
        with a commit, can move it on — so hosts do not take it from each other forever."""
        decided = {e for (e, _, index) in approvals.votes_by_gate if index == -1}
        keep = []
        for item in items:
            info = self._traces.get(item.execution or "")
            if (
                info is not None
                and info.status == "indeterminate"
                and item.execution not in decided
            ):
                report.skipped.append(f"{item.artifact}: {item.execution} waits for an Approval")
                continue
            keep.append(item)
        return keep

    def _work(
        self,
        item: Item,
        head: str,
        boundary: Boundary,
        history: list[Any],
        *,
        new: bool,
    ) -> Work:
        """What one planned item runs with: a push runs the artifact of its commit, there."""
        assert item.execution is not None
        assert item.event is not None
        event = item.event
        if event.type == "push":
            commit = event.key
            then = next(c for c in history if c.sha == commit)
            artifact, data = then.artifacts[item.artifact]
        else:
            artifact = boundary.artifacts[item.artifact]
            data = self._artifact_bytes[item.artifact]
            path = f".alloy/artifacts/{artifact.metadata.name}.json"
            commit = self.mirror.last_change(head, path)
        initiator = None
        if event.type == "request":
            name = event.key.split("@", 1)[0]
            request = boundary.requests.get(name)
            initiator = request.spec.requested_by if request else None
            initiator = self._requesters.get(name, initiator)
        return Work(
            execution=item.execution,
            event=event,
            artifact=artifact,
            artifact_bytes=data,
            commit=commit,
            inputs=dict(item.inputs),
            new=new,
            initiator=initiator,
        )
