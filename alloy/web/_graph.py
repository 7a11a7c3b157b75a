"""An intent's automation drawn as SVG on the server: blocks in columns by their `needs` depth,
arrows for `needs`, each block's effects, and its gates as small marks before it.

Plain SVG text with every label escaped; no script, no external reference. With an execution's
block statuses, each box is coloured by its status.
"""

from __future__ import annotations

from html import escape
from typing import Any

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 54, 60, 22, 16
EFFECT_MARK = {"none": "", "reversible": "↺", "irreversible": "⚠"}


def _depths(blocks: list[dict[str, Any]]) -> dict[str, int]:
    ids = {b["id"] for b in blocks}
    needs = {b["id"]: [n for n in b["needs"] if n in ids] for b in blocks}
    depth: dict[str, int] = {}

    def of(block: str, seen: frozenset[str]) -> int:
        if block in depth:
            return depth[block]
        if block in seen:  # a cycle is refused by `alloy check`; never loop on one here
            return 0
        value = 1 + max((of(n, seen | {block}) for n in needs[block]), default=-1)
        depth[block] = value
        return value

    for b in blocks:
        of(b["id"], frozenset())
    return depth


def automation_svg(blocks: list[dict[str, Any]], statuses: dict[str, str] | None = None) -> str:
    if not blocks:
        return ""
    depth = _depths(blocks)
    columns: dict[int, list[dict[str, Any]]] = {}
    for b in blocks:
        columns.setdefault(depth[b["id"]], []).append(b)
    place: dict[str, tuple[int, int]] = {}
    for col, members in columns.items():
        for row, b in enumerate(members):
            place[b["id"]] = (PAD + col * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
    width = PAD * 2 + (max(columns) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + max(len(m) for m in columns.values()) * (BOX_H + GAP_Y) - GAP_Y
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        ),
        "<title>Automation: blocks, their needs, effects and gates</title>",
        (
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
        ),
    ]
    for b in blocks:
        x2, y2 = place[b["id"]]
        for need in b["needs"]:
            if need not in place:
                continue
            x1, y1 = place[need]
            out.append(
                f'<line class="edge" x1="{x1 + BOX_W}" y1="{y1 + BOX_H // 2}" x2="{x2}" '
                f'y2="{y2 + BOX_H // 2}" marker-end="url(#arrow)"/>'
            )
    for b in blocks:
        x, y = place[b["id"]]
        status = (statuses or {}).get(b["id"], "")
        klass = f"block effects-{escape(b['effects'])}" + (
            f" status-{escape(status)}" if status else ""
        )
        label = escape(b["id"])
        effects = escape(b["effects"]) + (
            f" {EFFECT_MARK.get(b['effects'], '')}" if EFFECT_MARK.get(b["effects"]) else ""
        )
        out.append(
            f'<g class="{klass}"><title>{label}: {effects}{" — " + escape(status) if status else ""}</title>'
        )
        out.append(f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>')
        out.append(f'<text x="{x + 10}" y="{y + 22}" class="label">{label[:22]}</text>')
        detail = effects + (f" · {escape(status)}" if status else "")
        out.append(f'<text x="{x + 10}" y="{y + 42}" class="detail">{detail}</text>')
        for i, gate in enumerate(b["gates"][:4]):
            gx, gy = x - 9, y + 8 + i * 12
            out.append(
                f'<g class="gate gate-{escape(gate["kind"])}"><title>gate {i}: {escape(gate["kind"])}</title>'
                f'<rect x="{gx}" y="{gy}" width="9" height="9" transform="rotate(45 {gx + 4.5} {gy + 4.5})"/></g>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
