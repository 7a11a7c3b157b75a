"""An outbox kept on the remote, for hosts that keep nothing between runs (a GitHub Actions job
starts with an empty state directory and loses it at the end).

Before a pass, the entries on `refs/alloy/outbox` are copied into the local outbox, which the
pass delivers first; after it, what is still undelivered is written back to the ref (and the
ref deleted when nothing is left), with compare-and-swap pushes. Two jobs that restore the same
entry both deliver it; delivering is idempotent (an unchanged check run is not re-sent).
"""

from __future__ import annotations

from controllers.gitops import GitError, Mirror
from controllers.outbox import Outbox

REF = "refs/alloy/outbox"
PREFIX = "entries/"
MAX_TRIES = 8


def restore(mirror: Mirror, outbox: Outbox) -> int:
    """Copy the remote's undelivered entries into `outbox`; how many there were."""
    tip = mirror.heads([REF]).get(REF)
    if tip is None:
        return 0
    mirror.fetch([REF])
    entries = mirror.tree(tip, PREFIX)
    outbox.root.mkdir(parents=True, exist_ok=True)
    for path, sha in entries.items():
        target = outbox.root / path.removeprefix(PREFIX)
        if not target.exists():
            tmp = target.with_suffix(".restore")
            tmp.write_bytes(mirror.blob(sha))
            tmp.replace(target)
    return len(entries)


def keep(mirror: Mirror, outbox: Outbox) -> int:
    """Make the remote hold exactly the entries still in `outbox`; how many that is."""
    pending = {f"{PREFIX}{e.path.name}": e.path.read_bytes() for e in outbox.entries()}
    for _ in range(MAX_TRIES):
        tip = mirror.heads([REF]).get(REF)
        if tip is not None:
            mirror.fetch([REF])
        held = mirror.tree(tip, PREFIX) if tip is not None else {}
        stale = sorted(p for p in held if p not in pending)
        fresh = {p: d for p, d in pending.items() if p not in held}
        if not stale and not fresh:
            return len(pending)
        if not pending:
            new = None
        else:
            new = mirror.commit(tip, fresh, f"outbox: {len(pending)} undelivered", remove=stale)
        if mirror.push([(new, REF, tip)]).ok:
            return len(pending)
    raise GitError(f"{mirror.url}: {REF} kept moving; gave up after {MAX_TRIES} tries")
