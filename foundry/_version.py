"""Version of Foundry and of the boundary it reads."""

__version__ = "0.2.0"
BOUNDARY_VERSION = "alloy.dev/v1"
