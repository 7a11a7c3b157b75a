"""The outbox kept on the remote: what one host could not deliver, any host delivers.

Entries live on `refs/alloy/outbox` as `entries/<name>.json` (the local outbox's own files).
Every pass that finds the ref copies its entries into its local outbox before delivering it
(`restore`), and afterwards makes the ref lose what it delivered and gain what it could not
(`update`), with compare-and-swap pushes rebuilt on whatever another host pushed meanwhile — so
two hosts never drop each other's entries. Two hosts that restore the same entry both deliver
it; delivering is idempotent (an unchanged check run is not re-sent, a trace already on the
branch is not committed again, a claim release is a compare-and-swap).
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Mapping
from typing import Any

from controllers.gitops import GitError, Mirror
from controllers.outbox import Outbox

REF = "refs/alloy/outbox"
PREFIX = "entries/"
MAX_TRIES = 12
#: The name of an entry file (`Outbox.put` writes them; nothing else is taken in).
_NAME = re.compile(r"^[0-9]{20}-[0-9]+-[a-z]+\.json$")


def restore(mirror: Mirror, outbox: Outbox, *, url: str | None = None) -> tuple[set[str], int]:
    """Copy the remote's undelivered entries into `outbox`: the names of the entries the remote
    holds, and how many of its files are not entries this version wrote (they are left on the
    remote, untouched). With `url`, each restored entry is addressed to it (the remote it was
    restored from)."""
    tip = mirror.heads([REF]).get(REF)
    if tip is None:
        return set(), 0
    try:
        mirror.fetch([REF])
        entries = mirror.tree(tip, PREFIX)
    except GitError:
        raise
    except Exception as exc:  # noqa: BLE001 - GitPython's own errors: not a commit, no tree
        raise GitError(f"{REF} is not an outbox ({exc})") from None
    outbox.root.mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    junk = 0
    for path, sha in entries.items():
        name = path.removeprefix(PREFIX)
        body = _entry(mirror.blob(sha)) if _NAME.match(name) else None
        if body is None:
            junk += 1
            continue
        names.add(name)
        target = outbox.root / name
        if target.exists():
            continue
        if url is not None:
            body["payload"]["repo"] = url
        tmp = target.with_suffix(".restore")
        tmp.write_text(json.dumps(body, sort_keys=True), encoding="utf-8")
        tmp.replace(target)
    return names, junk


def _entry(data: bytes) -> dict[str, Any] | None:
    """An outbox entry as this version writes it, or None."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("kind"), str)
        or not isinstance(body.get("payload"), dict)
        or not isinstance(body.get("attempts", 0), int)
    ):
        return None
    body.setdefault("attempts", 0)
    body.setdefault("error", "")
    return body


def update(mirror: Mirror, *, remove: set[str], add: Mapping[str, bytes]) -> None:
    """Remove `remove` from the remote's entries and add `add`, keeping whatever else is
    there (another host's entries)."""
    if not remove and not add:
        return
    for attempt in range(MAX_TRIES):
        tip = mirror.heads([REF]).get(REF)
        if tip is not None and mirror.rev(REF) != tip:
            mirror.fetch([REF])
        held = mirror.tree(tip, PREFIX) if tip is not None else {}
        stale = sorted(p for p in held if p.removeprefix(PREFIX) in remove)
        fresh = {f"{PREFIX}{n}": d for n, d in add.items() if f"{PREFIX}{n}" not in held}
        if not stale and not fresh:
            return
        left = len(held) - len(stale) + len(fresh)
        new = (
            None
            if left == 0
            else mirror.commit(tip, fresh, f"outbox: {left} undelivered", remove=stale)
        )
        if tip is None and new is None:
            return
        if mirror.push([(new, REF, tip)]).ok:
            return
        time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - jitter, not crypto
    raise GitError(f"{mirror.url}: {REF} kept moving; gave up after {MAX_TRIES} tries")
