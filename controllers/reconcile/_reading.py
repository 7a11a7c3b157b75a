"""Reading a pass's facts from the remote: `.alloy/` of the default branch (artifacts, requests,
approvals and who merged them), and the traces branch's index."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from controllers.forge import NOBODY, Forge, ForgeError, Identity
from controllers.gitops import Mirror
from controllers.reconcile._model import DEFAULT_TRACES, Dispatch, PassReport, Settings, TraceInfo

if TYPE_CHECKING:
    from foundry.boundary import Boundary
    from foundry.gates import StaticApprovals


class Reading:
    """The reading half of a `Reconciler` (its state lives there)."""

    settings: Settings
    mirror: Mirror
    forge: Forge
    branch: str | None
    _parsed: dict[str, Any]
    _identities: dict[str, Identity | None]
    _landed: tuple[str, dict[str, list[tuple[float, str | None]]]]
    _requesters: dict[str, str | None]
    _artifact_bytes: dict[str, bytes]
    _traces: dict[str, TraceInfo]
    _trace_blobs: dict[str, str]

    def _parse(self, path: str, sha: str) -> Any:
        key = f"{sha}:{path}"
        if key not in self._parsed:
            from foundry.boundary import read_approval, read_artifact, read_request
            from foundry.errors import BoundaryError

            data = self.mirror.blob(sha)
            try:
                if path.startswith(".alloy/artifacts/"):
                    self._parsed[key] = (read_artifact(path, data), data)
                elif path.startswith(".alloy/requests/"):
                    self._parsed[key] = read_request(path, data)
                elif path.startswith(".alloy/approvals/"):
                    self._parsed[key] = read_approval(path, data)
                else:
                    self._parsed[key] = data
            except BoundaryError as exc:
                self._parsed[key] = exc
        return self._parsed[key]

    def _read_default_branch(
        self, head: str, report: PassReport
    ) -> tuple[Boundary, StaticApprovals, str]:
        from foundry.boundary import Approval, Boundary, Request
        from foundry.errors import BoundaryError
        from foundry.gates import ApprovalVote, StaticApprovals

        boundary = Boundary()
        entries = self._alloy_files(head, boundary, report)
        approvals = StaticApprovals()
        self._requesters = {}
        traces_branch = DEFAULT_TRACES
        self._artifact_bytes: dict[str, bytes] = {}
        # Parsed documents are kept by blob id for as long as the branch holds that blob.
        current = {f"{sha}:{path}" for path, sha in entries.items()}
        self._parsed = {k: v for k, v in self._parsed.items() if k in current}
        self._identities = {k: v for k, v in self._identities.items() if k in current}
        for path in sorted(entries):
            parts = path.split("/")
            if path == ".alloy/alloy.yaml":
                traces_branch = _traces_branch(self._parse(path, entries[path]))
                continue
            if len(parts) != 3 or parts[1] not in ("artifacts", "requests", "approvals"):
                continue
            if not (path.endswith(".json") if parts[1] == "artifacts" else path.endswith(".yaml")):
                continue
            value = self._parse(path, entries[path])
            if isinstance(value, BoundaryError):
                boundary.refused.append(value)
                report.refused.append(str(value))
            elif isinstance(value, tuple):
                artifact, data = value
                boundary.artifacts[artifact.metadata.name] = artifact
                self._artifact_bytes[artifact.metadata.name] = data
            elif isinstance(value, Request):
                boundary.requests[value.metadata.name] = value
                who = self._identity(head, path, entries[path], report)
                if who is not None:
                    self._requesters[value.metadata.name] = who.author or None
            elif isinstance(value, Approval):
                spec = value.spec
                who = self._identity(head, path, entries[path], report)
                # Where the forge knows who merged the document, they are who decided: the
                # pull request's author and its approving reviewers, not the file's `approver`.
                voters = [spec.approver] if who is None else [who.author, *who.approvers]
                at = self._landed_at(head, path)
                for voter in dict.fromkeys(v for v in voters if v):
                    vote = ApprovalVote(voter, spec.decision, at)
                    approvals.add(spec.execution, spec.gate.block, spec.gate.index, vote)
        if self.settings.dispatch is not None:
            self._add_dispatch(self.settings.dispatch, boundary, report)
        return boundary, approvals, traces_branch

    def _alloy_files(self, head: str, boundary: Boundary, report: PassReport) -> dict[str, str]:
        """The blob to read for each file under `.alloy/` of `head`, by the rules `alloy check`
        and `alloy review` read a tree with, in their words (`foundry.boundary._files`, Foundry's
        own implementation of them): a symbolic link to a regular file inside `.alloy/` reads
        that file; any other link, or a submodule, is refused, and said so for every path a
        pass reads."""
        from foundry.boundary import git_sources
        from foundry.errors import BoundaryError

        listed = self.mirror.entries(head, ".alloy/")
        if all(mode in ("100644", "100755") for mode, _ in listed.values()):
            return {path: sha for path, (_, sha) in listed.items()}  # the common case

        links = {
            path: self.mirror.blob(sha).decode("utf-8", "surrogateescape")
            for path, (mode, sha) in listed.items()
            if mode == "120000" and self.mirror.blob_size(sha) <= _MAX_LINK_BYTES
        }
        sources = git_sources({path: mode for path, (mode, _) in listed.items()}, links)
        out: dict[str, str] = {}
        for path, source in sorted(sources.items()):
            if source.path is not None:
                out[path] = listed[source.path][1]
            elif _read_by_foundry(path):
                refused = BoundaryError(path, source.refusal or "refused")
                boundary.refused.append(refused)
                report.refused.append(str(refused))
        return out

    def _add_dispatch(self, dispatch: Dispatch, boundary: Boundary, report: PassReport) -> None:
        """The dispatched run as a Request pinned to the artifact's current digest, read by the
        boundary reader like any Request (so bad inputs are refused the same way)."""
        import yaml

        from foundry.boundary import read_request
        from foundry.errors import BoundaryError

        where = f"workflow_dispatch {dispatch.name}"
        artifact = boundary.artifacts.get(dispatch.intent)
        if artifact is None:
            report.refused.append(
                f"{where}: no artifact {dispatch.intent!r} on {self.branch}; name an accepted "
                "or active intent with `on: {request: true}`"
            )
            return
        document = {
            "apiVersion": "alloy.dev/v1",
            "kind": "Request",
            "metadata": {"name": dispatch.name},
            "spec": {
                "artifact": f"{dispatch.intent}@{artifact.digest}",
                "inputs": dict(dispatch.inputs),
                "reason": dispatch.reason or "workflow_dispatch",
                "requestedBy": dispatch.requested_by,
            },
        }
        try:
            request = read_request(where, yaml.safe_dump(document).encode())
        except BoundaryError as exc:
            report.refused.append(str(exc))
            return
        boundary.requests[dispatch.name] = request
        self._requesters[dispatch.name] = dispatch.requested_by

    def _landed_at(self, head: str, path: str) -> float:
        """When the Approval at `path` landed on the default branch as the decision it is now:
        the first-parent commit that brought its current decision (an edit that keeps the
        decision — a comment fixed — is not a new decision; one that changes it is). Gates
        judge expiry by it. One `git log` per head, for all of them."""
        if self._landed[0] != head:
            self._landed = (head, self.mirror.landed(head, ".alloy/approvals/"))
        versions = self._landed[1].get(path, [])
        if not versions:
            return 0.0
        at, current = versions[0]
        decision = self._decision(path, current)
        for older_at, blob in versions[1:]:
            if blob is None or decision is None or self._decision(path, blob) != decision:
                break
            at = older_at
        return at

    def _decision(self, path: str, blob: str | None) -> tuple[str, ...] | None:
        """What an Approval blob decides: (execution, block, index, decision, approver)."""
        from foundry.boundary import Approval

        if blob is None:
            return None
        value = self._parse(path, blob)
        if not isinstance(value, Approval):
            return None
        spec = value.spec
        key = (spec.execution, spec.gate.block, str(spec.gate.index), spec.decision)
        return (*key, spec.approver)

    def _identity(self, head: str, path: str, blob: str, report: PassReport) -> Identity | None:
        """Who merged the document at `path` (its blob `blob`), as the forge knows it."""
        key = f"{blob}:{path}"
        if key not in self._identities:
            try:
                who = self.forge.identity(self.mirror.last_change(head, path))
            except ForgeError as exc:
                report.errors.append(f"{path}: who merged it is unknown for now: {exc}")
                return NOBODY  # not cached: asked again on the next pass
            self._identities[key] = who
        who = self._identities[key]
        if who is not None and who.pull == 0:
            report.skipped.append(
                f"{path}: not merged through a pull request; nobody is counted as its author"
            )
        return who

    def _index_traces(self, tip: str | None) -> None:
        if tip is None:
            self._traces, self._trace_blobs = {}, {}
            return
        from foundry.ledger import parse_rfc3339

        entries = self.mirror.tree(tip, "traces/")
        index: dict[str, TraceInfo] = {}
        blobs: dict[str, str] = {}
        for path, sha in entries.items():
            if not path.endswith(".json"):
                continue
            execution = path.rsplit("/", 1)[-1].removesuffix(".json")
            blobs[execution] = sha
            if self._trace_blobs.get(execution) == sha and execution in self._traces:
                index[execution] = self._traces[execution]
                continue
            try:
                spec = json.loads(self.mirror.blob(sha))["spec"]
                finished = spec.get("finishedAt")
                index[execution] = TraceInfo(
                    status=spec["status"],
                    intent=spec["intent"],
                    artifact=spec["artifact"]["name"],
                    event=spec["event"]["type"],
                    finished_at=parse_rfc3339(finished) if finished else None,
                    key=str(spec["event"].get("key", "")),
                    digest=str(spec["artifact"].get("digest", "")),
                )
            except (ValueError, KeyError, TypeError):
                continue  # not a trace Foundry wrote; status tools report it
        self._traces, self._trace_blobs = index, blobs


#: The longest symbolic link target read (a longer "link" is not one a file system could hold).
_MAX_LINK_BYTES = 4096


def _read_by_foundry(path: str) -> bool:
    """Whether a pass reads the file at `path` (what it cannot read there is reported)."""
    parts = path.split("/")
    if path in (".alloy", ".alloy/alloy.yaml"):
        return True
    if len(parts) != 3 or parts[1] not in ("artifacts", "requests", "approvals"):
        return False
    return path.endswith(".json") if parts[1] == "artifacts" else path.endswith(".yaml")


def _traces_branch(document: Any) -> str:
    """`spec.traces.branch` of `.alloy/alloy.yaml`, read as plain data (Alloy validates it)."""
    if isinstance(document, bytes):
        import yaml

        try:
            data = yaml.load(document, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            return DEFAULT_TRACES
        spec = data.get("spec") if isinstance(data, dict) else None
        traces = spec.get("traces") if isinstance(spec, dict) else None
        branch = traces.get("branch") if isinstance(traces, dict) else None
        if isinstance(branch, str) and branch:
            return branch
    return DEFAULT_TRACES
