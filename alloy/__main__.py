"""`python -m alloy` runs the alloy command line."""

from alloy.cli import main

main()
