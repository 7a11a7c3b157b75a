"""`python -m foundry` runs the foundry command line."""

from foundry.cli import main

main()
