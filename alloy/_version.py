"""Version numbers of the Alloy package and of what it writes."""

__version__ = "0.1.0"

#: The boundary format this Alloy reads and writes.
API_VERSION = "alloy.dev/v1"

#: Revision of the compiler's output. It is recorded in every artifact's provenance and is
#: bumped only when the compiler would write different bytes for the same intent, so that
#: upgrading Alloy without such a change never changes a digest (and never re-runs `apply`).
COMPILER = "alloy-compiler/1"
