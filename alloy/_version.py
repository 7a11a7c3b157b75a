"""Version numbers of the Alloy package and of what it writes."""

__version__ = "0.1.0"

#: The boundary format this Alloy reads and writes.
API_VERSION = "alloy.dev/v1"

#: Revision of the compiler's output. It is recorded in every artifact's provenance and is
#: bumped only when the compiler would write different bytes for the same intent, so that
#: upgrading Alloy without such a change never changes a digest (and never re-runs `apply`).
COMPILER = "alloy-compiler/2"

#: The first Foundry version that runs each boundary feature an artifact may use. A feature added
#: to `alloy.dev/v1` later (a field, a gate kind) gets the Foundry version that first reads it;
#: each artifact records the highest version among the features it uses (`provenance.requires`),
#: so that an older Foundry, which refuses what it does not know, can say which version would
#: run it.
FOUNDRY_FEATURES: dict[str, tuple[int, int, int]] = {
    "base": (0, 1, 0),
    "gate:approval": (0, 1, 0),
    "gate:check": (0, 1, 0),
    "gate:window": (0, 1, 0),
    "gate:after": (0, 1, 0),
    "gate:command": (0, 1, 0),
    "lane.rate": (0, 1, 0),
    "block.network": (0, 2, 0),
    "block.limits": (0, 2, 0),
}
