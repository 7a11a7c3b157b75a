"""Foundry: the execution side. It reads artifacts and requests at the `alloy.dev/v1` boundary
and never imports Alloy."""

from foundry._version import BOUNDARY_VERSION, __version__

__all__ = ["BOUNDARY_VERSION", "__version__"]
